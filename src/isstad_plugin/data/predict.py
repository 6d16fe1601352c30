"""A predict dataset that skips unreadable images instead of stopping at the first one.

anomalib's :class:`~anomalib.data.PredictDataset` fails in the data loader at the first truncated or non-image file of
a folder, after the images before it were scored. :class:`ReadablePredictDataset` checks every file when it is built,
keeps the readable ones and names the others in one warning (and in :attr:`~ReadablePredictDataset.skipped_images`).

Use it in Python with ``engine.predict(model, dataset=ReadablePredictDataset("images/"))``; under the ``anomalib``
and ``isstad`` commands ``predict --data DIR`` of an ISSTAD model uses it
(:mod:`isstad_plugin.tools.anomalib_corrections`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from anomalib.data import PredictDataset

from isstad_plugin.data.checks import DatasetError, check_image

logger = logging.getLogger(__name__)


class ReadablePredictDataset(PredictDataset):
    """anomalib's ``PredictDataset`` over the readable images of ``path``.

    Args:
        path: An image file or a folder of images.
        *args: ``PredictDataset``'s further arguments (``transform``, ``image_size``).
        **kwargs: The same, by name.

    Raises:
        DatasetError: No image of ``path`` can be read.
    """

    def __init__(self, path: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        readable, skipped = [], []
        for filename in self.image_filenames:
            try:
                check_image(Path(filename))
                readable.append(filename)
            except DatasetError:
                skipped.append(str(filename))
        if skipped and not readable:
            msg = f"none of the {len(skipped)} image(s) in {path} can be read (first: {skipped[0]}): replace them"
            raise DatasetError(msg)
        self.image_filenames = readable
        self.skipped_images: list[str] = skipped
        if skipped:
            logger.warning(skipped_message(skipped))


def skipped_message(skipped: list[str]) -> str:
    """One line listing the unreadable images that ``predict`` skipped."""
    return (
        f"predict skipped {len(skipped)} unreadable image(s), replace or remove them and predict again: "
        f"{', '.join(skipped)}"
    )
