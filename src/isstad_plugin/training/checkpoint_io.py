"""Checkpoint files written atomically in their own folder, and a full disk named in one line.

Lightning's ``TorchCheckpointIO`` (anomalib's ``AnomalibCheckpointIO``) stages a checkpoint in the system temp folder
and then moves it, so it needs free space there too, and a full disk leaves a truncated file behind a long traceback.
:class:`AtomicCheckpointIO` serialises the checkpoint in memory, writes ``.<name>.partial`` next to the target,
flushes it to disk (``fsync``) and renames it over the target: a reader sees the old file or the new one, never a
part. On any error or signal (``ENOSPC``: no space left, Ctrl-C, ``SIGTERM``) the partial file is removed and the
previous checkpoint is untouched; a failed write is one line naming the folder, the space the file needs and the
command that resumes the fit (:func:`resume_hint`). Before a checkpoint is read,
:func:`check_checkpoint_file` refuses a missing, empty or truncated file in one line naming it (Lightning would end in
torch's message, without the path): :meth:`AtomicCheckpointIO.load_checkpoint` for every file Lightning reads (the
``ckpt_path`` of fit, train, test, predict and validate); readers that bypass the checkpoint IO (anomalib's ``export``,
``isstad predict`` and ``diagnose``, ``stage1_checkpoint``) call it themselves.

:class:`~isstad_plugin.IsstadCheckpoints` installs it for every ISSTAD fit whose trainer uses anomalib's default IO;
a user's own ``CheckpointIO`` is kept.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from anomalib.engine.plugins import AnomalibCheckpointIO
from lightning.fabric.utilities.types import _PATH


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written; the message names the folder and what to do."""


class AtomicCheckpointIO(AnomalibCheckpointIO):
    """anomalib's checkpoint IO, writing each file atomically beside its target (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        Raises:
            TypeError: ``storage_options`` given (as Lightning's ``TorchCheckpointIO``).
            CheckpointWriteError: The file could not be written (e.g. a full disk); the previous file is kept.
        """
        if storage_options is not None:
            msg = f"{type(self).__name__} takes no storage_options"
            raise TypeError(msg)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(buffer.getbuffer(), Path(path))

    def load_checkpoint(
        self, path: _PATH, map_location: Any = None, weights_only: bool | None = True
    ) -> dict[str, Any]:
        """Check the file (:func:`check_checkpoint_file`: named in one line), then load it as anomalib does."""
        check_checkpoint_file(path)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)  # type: ignore[arg-type]  # None: as Lightning passes it


def write_atomically(data: memoryview | bytes, target: Path) -> None:
    """Write ``data`` to ``target`` through ``.<name>.partial`` in the same folder, fsync and rename.

    ``SIGTERM`` with Python's default action (which would end the process without cleaning up) ends it through
    ``SystemExit`` while the file is written; Lightning's own ``SIGTERM`` handler, in a fit, waits for the batch end.

    Raises:
        CheckpointWriteError: The write failed; no partial file is left and ``target`` is unchanged.
        BaseException: A signal (``KeyboardInterrupt``, ``SystemExit``) during the write, after removing the partial.
    """
    partial = target.with_name(f".{target.name}.partial")
    try:
        with _sigterm_as_exit():
            target.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(target)
            _fsync_folder(target.parent)
    except OSError as error:
        partial.unlink(missing_ok=True)
        failure = CheckpointWriteError(_write_error_message(error, target, len(data) / 2**20))
        failure.errno = error.errno
        raise failure from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_error_message(error: OSError, target: Path, megabytes: float) -> str:
    kept = "the previous checkpoint is kept" if target.is_file() else "nothing was written"
    if error.errno == errno.ENOSPC:
        return (
            f"no space left on the device of {target.parent} to write {target.name} ({megabytes:.1f} MB needed, "
            f"{kept}): free space there and {resume_hint(target.parent, larger_disk=True)}"
        )
    reason = error.strerror or error
    return f"could not write {target} ({reason}; {kept}): check the folder, then {resume_hint(target.parent)}"


def resume_hint(folder: Path, larger_disk: bool = False) -> str:
    """How to continue a fit whose checkpoints are in ``folder`` (``<run>/weights/lightning``), as a clause.

    With ``<run>/config.yaml`` (written by every ``anomalib train``/``fit``) it is the exact command: resume from
    ``last.ckpt``, or start again when there is none yet. ``larger_disk`` adds the top-level ``--default_root_dir``
    (anomalib's CLI refuses ``--trainer.default_root_dir``).
    """
    last = folder / "last.ckpt"
    run = folder.parent.parent
    config = run / "config.yaml"
    if folder.name == "lightning" and folder.parent.name == "weights" and config.is_file():
        resume = f" --ckpt_path {last.resolve()}" if last.is_file() else ""
        verb = "resume" if last.is_file() else "start again (no last.ckpt yet)"
        hint = f"{verb}: `anomalib train --config {config.resolve()}{resume}`"
        return hint + (" (add `--default_root_dir DIR` to continue on a larger disk)" if larger_disk else "")
    disk = " on a larger disk (Engine(default_root_dir=DIR))" if larger_disk else ""
    if last.is_file():
        return f"resume{disk}: fit again with ckpt_path={last.resolve()}"
    return f"start the fit again{disk} (no last.ckpt yet)"


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn ``SIGTERM`` into ``SystemExit(143)`` inside the block, when its action is Python's default (main thread)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def exit_now(signum: int, frame: object) -> None:
        del frame
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names the file and what to do."""


def check_checkpoint_file(path: str | Path, option: str = "--ckpt_path") -> Path:
    """Refuse a missing, truncated or non-checkpoint file with one line naming it, before torch reads it.

    A Lightning checkpoint is a zip archive (``torch.save``); a truncated copy has lost its central directory, which
    :mod:`zipfile` finds without reading the tensors.

    Args:
        path: The ``.ckpt`` file.
        option: How to name it in the message.

    Returns:
        The path.

    Raises:
        CheckpointError: The file is missing, empty, truncated or not a torch checkpoint.
    """
    file = Path(path).expanduser()
    advice = (
        "use another checkpoint of the run (weights/lightning/last.ckpt, stage1.ckpt or model.ckpt) or copy it again"
    )
    if not file.is_file():
        msg = f"{option} {file}: file not found: check the path ({advice})"
        raise CheckpointError(msg)
    size = file.stat().st_size
    if size == 0:
        msg = f"{option} {file} is empty (0 bytes): {advice}"
        raise CheckpointError(msg)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        msg = (
            f"{option} {file} is not a readable checkpoint ({size} bytes, {error}): it is truncated or not a torch "
            f"file; {advice}"
        )
        raise CheckpointError(msg) from None
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        msg = f"{option} {file} is a zip archive but not a torch checkpoint (no data.pkl): {advice}"
        raise CheckpointError(msg)
    return file
