"""Data helpers: the ``MVTec`` datamodule alias and the procedural demo dataset."""

from anomalib.data import MVTecAD

from isstad_plugin.data.synthetic import DEFECT_TYPES, generate_dataset


class MVTec(MVTecAD):
    """anomalib's :class:`~anomalib.data.MVTecAD` under its pre-2.3 name ``MVTec``.

    anomalib 2.3 renamed ``MVTec`` to ``MVTecAD``. Once ``isstad_plugin`` is imported (the CLI imports it when it reads
    ``--model isstad_plugin.Isstad``), ``--data MVTec`` resolves to this subclass, which behaves exactly as
    ``MVTecAD``.
    """


__all__ = ["DEFECT_TYPES", "MVTec", "generate_dataset"]
