"""Data helpers: the ``MVTec`` datamodule alias, checks, readers and the procedural demo dataset.

Layer: beside ``corruption``, below ``training``. May import ``validation`` only.
"""

from anomalib.data import MVTecAD

from isstad_plugin.data.checks import DatasetError, check_datamodule
from isstad_plugin.data.download import prepare_mvtecad
from isstad_plugin.data.folders import mvtec_layout_folder
from isstad_plugin.data.synthetic import DEFECT_TYPES, generate_dataset


class MVTec(MVTecAD):
    """anomalib's :class:`~anomalib.data.MVTecAD` under its pre-2.3 name ``MVTec``.

    anomalib 2.3 renamed ``MVTec`` to ``MVTecAD``. Once ``isstad_plugin`` is imported (the CLI imports it when it reads
    ``--model isstad_plugin.Isstad``), ``--data MVTec`` resolves to this subclass, which behaves exactly as
    ``MVTecAD``, except that a missing root is reported in one line instead of starting a download.
    """

    def prepare_data(self) -> None:
        """Refuse a category folder without ``train/`` in one line (anomalib would try to download MVTec AD)."""
        prepare_mvtecad(self, MVTecAD.prepare_data, download=False)


__all__ = ["DEFECT_TYPES", "DatasetError", "MVTec", "check_datamodule", "generate_dataset", "mvtec_layout_folder"]
