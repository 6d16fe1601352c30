"""The ``isstad`` command and the tools behind it: demo, benchmark, report, diagnose, predict; anomalib CLI corrections.

Layer: the top one. May import ``model``, ``training``, ``corruption``, ``data``, ``validation`` and the package's
``__version__``; only the package root imports ``tools`` (to install :mod:`~isstad_plugin.tools.anomalib_corrections`
under the ``anomalib`` command). ``tests/test_layers.py`` keeps these rules.
"""
