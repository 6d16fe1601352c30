"""What keeps a fit safe and fast: checkpoints, the divergence guard, exact resumes, precision.

Layer: below ``model``. May import ``corruption``, ``data`` and ``validation``; never ``model`` or ``tools``: the
callbacks read the model through :class:`~isstad_plugin.training.two_stage.TwoStageModule`.
"""
