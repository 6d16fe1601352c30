"""The ISSTAD model: the pure-torch network and its parts, the options, the schedule, the losses, the anomalib module.

Layer: below ``tools``. May import ``training``, ``corruption``, ``data`` and ``validation``; never ``tools``.
"""
