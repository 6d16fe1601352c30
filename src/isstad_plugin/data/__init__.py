"""Data helpers: the ``MVTec`` datamodule alias, checks, readers and the procedural demo dataset.

Layer: beside ``corruption``, below ``training``. May import ``validation`` only.
"""

from pathlib import Path

from anomalib.data import MVTecAD

from isstad_plugin.data.checks import DatasetError, check_datamodule, missing_root_message
from isstad_plugin.data.folders import mvtec_layout_folder
from isstad_plugin.data.synthetic import DEFECT_TYPES, generate_dataset


class MVTec(MVTecAD):
    """anomalib's :class:`~anomalib.data.MVTecAD` under its pre-2.3 name ``MVTec``.

    anomalib 2.3 renamed ``MVTec`` to ``MVTecAD``. Once ``isstad_plugin`` is imported (the CLI imports it when it reads
    ``--model isstad_plugin.Isstad``), ``--data MVTec`` resolves to this subclass, which behaves exactly as
    ``MVTecAD``, except that a missing root is reported in one line instead of starting a download.
    """

    def prepare_data(self) -> None:
        """Refuse a missing or empty category folder (anomalib would try to download MVTec AD)."""
        category_dir = Path(self.root) / self.category
        if not (category_dir / "train").is_dir():
            raise DatasetError(missing_root_message(category_dir))
        super().prepare_data()


__all__ = ["DEFECT_TYPES", "DatasetError", "MVTec", "check_datamodule", "generate_dataset", "mvtec_layout_folder"]
