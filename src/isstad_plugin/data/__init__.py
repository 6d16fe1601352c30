"""Data helpers: the ``MVTec`` datamodule alias and the procedural demo dataset."""

from pathlib import Path

from anomalib.data import MVTecAD

from isstad_plugin.data.checks import DatasetError, check_datamodule
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
            msg = (
                f"dataset folder {category_dir} has no train/ folder: pass --data.root and --data.category of an "
                "MVTec-layout dataset (<root>/<category>/train/good, test/, ground_truth/)"
            )
            raise DatasetError(msg)
        super().prepare_data()


__all__ = ["DEFECT_TYPES", "DatasetError", "MVTec", "check_datamodule", "generate_dataset", "mvtec_layout_folder"]
