"""An MVTec AD category folder that is missing: refused in one line, or downloaded only when that can succeed."""

from __future__ import annotations

import difflib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from anomalib.data import MVTecAD
from anomalib.data.datamodules.image import mvtecad as mvtecad_module
from anomalib.data.datasets.image.mvtecad import CATEGORIES as MVTEC_CATEGORIES

from isstad_plugin.data.checks import DatasetError, missing_root_message

logger = logging.getLogger(__name__)


def download_host_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the host of ``url`` opens within ``timeout`` (``ISSTAD_OFFLINE=1``: never)."""
    if os.environ.get("ISSTAD_OFFLINE", "") not in ("", "0"):
        return False
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_mvtecad(datamodule: MVTecAD, prepare: Callable[[MVTecAD], None], download: bool = True) -> None:
    """Anomalib's ``MVTecAD.prepare_data`` (``prepare``) for a category folder it can read, else one line.

    Without ``<root>/<category>/train`` anomalib would download MVTec AD (about 5 GB). That is refused when
    ``download`` is off or the category folder exists, and when the download cannot succeed (:func:`check_download`);
    a failed download is one line too.

    Raises:
        DatasetError: The folder cannot be read or downloaded, or the download failed.
    """
    root, category = Path(datamodule.root), datamodule.category
    if (root / category / "train").is_dir():
        return prepare(datamodule)
    if not download or (root / category).is_dir():
        raise DatasetError(missing_root_message(root / category))
    check_download(root, category)
    created = not root.exists()
    logger.warning("ISSTAD: %s not found: downloading MVTec AD (about 5 GB) into %s", root / category, root)
    try:
        return prepare(datamodule)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash is a RuntimeError
        if created and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        msg = (
            f"download of MVTec AD into {root} failed ({type(error).__name__}: {error}): download "
            "mvtec_anomaly_detection.tar.xz by hand (www.mvtec.com), extract it and pass --data.root"
        )
        raise DatasetError(msg) from None


def check_download(root: Path, category: str) -> None:
    """Refuse, in one line, a download of MVTec AD for ``<root>/<category>`` that cannot succeed.

    Raises:
        DatasetError: The category is not an MVTec AD one (misspelled, other case), or the download host is
            unreachable.
    """
    category_dir = root / category
    if category not in MVTEC_CATEGORIES:
        close = difflib.get_close_matches(category.lower(), MVTEC_CATEGORIES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        msg = (
            f"{missing_root_message(category_dir)}; '{category}' is not an MVTec AD category{hint}, so it cannot be "
            "downloaded either"
        )
        raise DatasetError(msg)
    url = mvtecad_module.DOWNLOAD_INFO.url
    if not download_host_reachable(url):
        msg = (
            f"{missing_root_message(category_dir)}; MVTec AD (about 5 GB) cannot be downloaded: "
            f"{urlparse(url).hostname} is unreachable (offline?)"
        )
        raise DatasetError(msg)
