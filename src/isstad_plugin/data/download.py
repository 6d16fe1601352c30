"""Before anomalib downloads MVTec AD for a missing category folder: refuse, in one line, what cannot succeed."""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from anomalib.data.datamodules.image import mvtecad as mvtecad_module
from anomalib.data.datasets.image.mvtecad import CATEGORIES as MVTEC_CATEGORIES

from isstad_plugin.data.checks import DatasetError, missing_root_message


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


def check_mvtecad_download(root: Path, category: str) -> None:
    """Before anomalib downloads MVTec AD (its category folder is missing): refuse what cannot succeed, in one line.

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
