"""anomalib behaviour this plugin corrects for ISSTAD runs under the ``anomalib`` and ``isstad`` commands.

anomalib 2.7 offers no hook for these (checked on anomalib 2.7.0 with Lightning 2.6):

* ``Engine.train(..., ckpt_path=...)`` resumes the fit, then tests ``ckpt_path`` (the model it resumed FROM);
* ``anomalib test`` / ``predict`` write ``config.yaml`` and images into the latest training run's folder, overwriting
  the training run's own ``config.yaml``;
* every fit moves the ``latest`` link to its new version folder when it starts, also when it then fails, and a fit
  that fails before it starts (a bad option found in ``setup``) leaves that folder behind;
* ``MVTecAD`` starts a 5 GB download for a missing or misspelled root/category and ends in a raw ``URLError``;
* ``anomalib predict --data DIR`` stops at the first unreadable image;
* a truncated ``--ckpt_path`` of ``export`` fails with torch's message, without the path;
* the CLI never applies ``seed_everything`` before it builds the model; every log line is printed twice and every
  error comes after a rich traceback; an unknown option is a ten-line jsonargparse report without the fix.

What has a hook uses it and works in Python too: the checkpoint file is checked when Lightning reads it
(:class:`~isstad_plugin.training.checkpoint_io.AtomicCheckpointIO`), the plugin's ``MVTec`` datamodule refuses a
missing root, :class:`~isstad_plugin.data.predict.ReadablePredictDataset` skips unreadable images. The rest is here.

:func:`install` applies the corrections below; it runs only in the ``anomalib`` command's process (when the CLI imports
``isstad_plugin`` to read ``--model isstad_plugin.Isstad``, see ``isstad_plugin/__init__.py``) and in the ``isstad``
command. ``import isstad_plugin`` and ``Isstad(...)`` in Python change nothing; :func:`uninstall` restores anomalib's
objects, and :func:`installed` applies them for a ``with`` block (for Python users who want them). Every correction
checks that the model is an :class:`~isstad_plugin.Isstad`; other models keep anomalib's behaviour:

* a resumed ``train`` tests the final, resumed model;
* ``test``/``predict``/``validate`` write into a folder of their own, ``<run>/<command>/v<N>`` (``<run>`` is the run
  of ``--ckpt_path`` when it lies in ``<run>/weights/lightning/``, else the ``latest`` run), removed again when the
  command wrote nothing there;
* ``latest`` moves to a new version folder only when its fit has finished; the folder of a fit that failed before
  writing anything but ``config.yaml`` is removed;
* a missing MVTecAD category folder stops in one line when the category is not an MVTec AD one or the download host
  is unreachable (or ``ISSTAD_OFFLINE=1``); a failed download stops in one line
  (:func:`~isstad_plugin.data.download.prepare_mvtecad`);
* ``predict --data DIR`` reads the folder with :class:`~isstad_plugin.data.predict.ReadablePredictDataset` and repeats
  the skipped files as its last line;
* ``export --ckpt_path`` is checked before anomalib reads it (with ``torch.load``, not Lightning's checkpoint IO);
* ``seed_everything`` of the config is applied before the model is built;
* under the ``anomalib`` command, each log line is printed once, and errors with a one-line message (raised by this
  package, or the constructor's reason inside jsonargparse's "Does not validate against any of the Union subtypes")
  are printed as that one line, last, without the traceback (``ISSTAD_TRACEBACK=1`` prints the traceback before it);
  an unknown or misspelt option is one line naming it, the nearest valid name and the help command.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import jsonargparse
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.engine import engine as engine_module
from anomalib.utils.path import _highest_version_dir
from lightning.pytorch import seed_everything
from lightning.pytorch.trainer.states import TrainerStatus

from isstad_plugin.data.download import prepare_mvtecad
from isstad_plugin.data.predict import ReadablePredictDataset, skipped_message
from isstad_plugin.data.reversible import installed_for_block
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.tools.cli_errors import (
    one_line_excepthook,
    one_line_parse_error,
    one_log_handler,
    running_anomalib_cli,
)
from isstad_plugin.tools.predict import PredictionTable, input_hw, is_small_image, small_images_message
from isstad_plugin.training.checkpoint_io import check_checkpoint_file

logger = logging.getLogger(__name__)

_ORIGINAL: dict[tuple[Any, str], Any] = {}
_KEEP_LATEST: contextvars.ContextVar[bool] = contextvars.ContextVar("isstad_keep_latest", default=False)
_COMMAND: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar("isstad_command", default=None)


# ------------------------------------------------------------------------------------------------ version folders
def _create_versioned_dir(root_dir: str | Path) -> Path:
    """Anomalib's ``create_versioned_dir``, without moving ``latest`` during an ISSTAD fit (moved when it ends)."""
    if not _KEEP_LATEST.get():
        return _ORIGINAL[engine_module, "create_versioned_dir"](root_dir)
    root = Path(root_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    highest = _highest_version_dir(root)
    version = root / f"v{int(highest[1:]) + 1 if highest else 0}"
    version.mkdir()
    return version


def point_latest(version_dir: Path) -> None:
    """Point ``<version_dir>/../latest`` at ``version_dir`` (atomically: a new link renamed over the old one)."""
    if not re.fullmatch(r"v\d+", version_dir.name) or not version_dir.is_dir():
        return
    link = version_dir.parent / "latest"
    if link.exists() and not link.is_symlink():
        logger.warning("ISSTAD: %s is not a link; it was left as it is", link)
        return
    temporary = version_dir.parent / f".latest.{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(version_dir, target_is_directory=True)
        temporary.replace(link)
    except OSError as error:  # e.g. no symlinks on this file system
        logger.warning("ISSTAD: could not point %s at %s (%s)", link, version_dir, error)


def _drop_unstarted_run(engine: Engine) -> None:
    """Remove the folders of a fit that failed before it wrote anything but ``config.yaml`` (it never started).

    The run's version folder (``<root>/v<N>``) and the logger's (``logs/<name>/version_<N>``, where Lightning's
    ``SaveConfigCallback`` writes the config at setup), each only when it holds nothing else.
    """
    trainer = engine._trainer
    if trainer is not None and trainer.fit_loop.epoch_progress.total.ready:
        return  # training began (its config.yaml is in the resume command an interruption prints)
    log_dir = trainer.log_dir if trainer is not None else None
    for folder in (Path(engine._cache.args.get("default_root_dir") or "."), Path(log_dir or ".")):
        if re.fullmatch(r"v\d+|version_\d+", folder.name):
            _remove_unwritten(folder, ignore="config.yaml")


def _remove_unwritten(folder: Path, ignore: str = "") -> bool:
    """Remove ``folder`` when it holds no file (a link counts as one) but files named ``ignore``; whether it did."""
    if not folder.is_dir() or any(p.name != ignore for p in folder.rglob("*") if p.is_symlink() or not p.is_dir()):
        return False
    shutil.rmtree(folder)
    return True


def _run_folder(ckpt_path: str | Path | None) -> Path | None:
    """``<run>`` of ``<run>/weights/lightning/<file>.ckpt``, else ``None``."""
    path = Path(ckpt_path).expanduser().resolve() if ckpt_path else None
    return path.parents[2] if path is not None and path.parts[-3:-1] == ("weights", "lightning") else None


def _setup_workspace(self: Engine, model: Any, *args: Any, versioned_dir: bool = False, **kwargs: Any) -> None:
    """Anomalib's workspace, but test/predict/validate of a fresh Engine get a new ``<run>/<command>/v<N>``."""
    _ORIGINAL[Engine, "_setup_workspace"](self, model, *args, versioned_dir=versioned_dir, **kwargs)
    command = _COMMAND.get()
    if versioned_dir or command is None or self._trainer is not None or not isinstance(model, Isstad):
        return
    name, ckpt_path = command
    resolved = Path(self._cache.args["default_root_dir"])
    base = _run_folder(ckpt_path) or (resolved if resolved.is_dir() else resolved.parent)
    folder = _ORIGINAL[engine_module, "create_versioned_dir"](base / name)
    self._cache.args["default_root_dir"] = self._isstad_command_dir = folder  # type: ignore[attr-defined]


def _drop_empty_command_dir(engine: Engine) -> None:
    """Remove ``<run>/<command>/v<N>`` when the command wrote nothing there, and ``<command>`` when then empty."""
    version: Path | None = getattr(engine, "_isstad_command_dir", None)
    if version is None:
        return
    del engine._isstad_command_dir  # type: ignore[attr-defined]
    if not _remove_unwritten(version):
        return
    latest = version.parent / "latest"
    if latest.is_symlink() and not latest.exists():  # anomalib's link to the folder just removed
        latest.unlink()
    if not any(version.parent.iterdir()):
        version.parent.rmdir()


# ------------------------------------------------------------------------------------------------ Engine methods
def _fit(self: Engine, model: Any, *args: Any, **kwargs: Any) -> None:
    """Anomalib's ``fit``; for ISSTAD, ``latest`` moves when the fit has finished and an unstarted run is removed."""
    if not isinstance(model, Isstad):
        return _ORIGINAL[Engine, "fit"](self, model, *args, **kwargs)
    token = _KEEP_LATEST.set(True)
    try:
        _ORIGINAL[Engine, "fit"](self, model, *args, **kwargs)
    except BaseException:
        _drop_unstarted_run(self)
        raise
    finally:
        _KEEP_LATEST.reset(token)
    trainer = self.trainer
    if trainer.is_global_zero and trainer.state.status == TrainerStatus.FINISHED and not trainer.interrupted:
        point_latest(Path(trainer.default_root_dir))


def _train(self: Engine, model: Any, *args: Any, **kwargs: Any) -> Any:
    """Anomalib's ``train``: :meth:`Engine.fit`, then a test of the model the fit ended with, also after resuming."""
    if not isinstance(model, Isstad):
        return _ORIGINAL[Engine, "train"](self, model, *args, **kwargs)
    arguments = inspect.signature(_ORIGINAL[Engine, "train"]).bind(self, model, *args, **kwargs).arguments
    test_dataloaders = arguments.pop("test_dataloaders", None)
    Engine.fit(**arguments)  # the corrected fit, resumed from ckpt_path if given
    return self.trainer.test(model, test_dataloaders, datamodule=arguments.get("datamodule"))  # not ckpt_path


def _evaluating(name: str) -> Callable[..., Any]:
    """``test``/``predict``/``validate``: write into a folder of their own."""
    signature = inspect.signature(getattr(Engine, name))

    def wrapper(self: Engine, *args: Any, **kwargs: Any) -> Any:
        original = _ORIGINAL[Engine, name]
        arguments = signature.bind(self, *args, **kwargs).arguments
        model = arguments.get("model")
        if model is None and self._trainer is not None:
            model = self._trainer.lightning_module
        if not isinstance(model, Isstad):
            return original(self, *args, **kwargs)
        if arguments.get("data_path") is not None and arguments.get("dataset") is None:
            arguments["dataset"] = ReadablePredictDataset(arguments.pop("data_path"))
        token = _COMMAND.set((name, arguments.get("ckpt_path")))
        try:
            result = original(**arguments)
        finally:
            _COMMAND.reset(token)
            _drop_empty_command_dir(self)
        if name == "predict":
            _report_skipped(self)
        return result

    return wrapper


def _export(self: Engine, *args: Any, **kwargs: Any) -> Any:
    arguments = inspect.signature(_ORIGINAL[Engine, "export"]).bind(self, *args, **kwargs).arguments
    if isinstance(arguments.get("model"), Isstad) and arguments.get("ckpt_path"):
        check_checkpoint_file(arguments["ckpt_path"])
    return _ORIGINAL[Engine, "export"](self, *args, **kwargs)


# ------------------------------------------------------------------------------------------------ MVTecAD download
def _mvtecad_prepare_data(self: MVTecAD) -> None:
    """Anomalib's ``prepare_data``; for an ISSTAD fit :func:`~isstad_plugin.data.download.prepare_mvtecad`."""
    if not isinstance(getattr(getattr(self, "trainer", None), "lightning_module", None), Isstad):
        return _ORIGINAL[MVTecAD, "prepare_data"](self)
    return prepare_mvtecad(self, _ORIGINAL[MVTecAD, "prepare_data"])


# ------------------------------------------------------------------------------------------------ predict folders
def _report_skipped(engine: Engine) -> None:
    """Repeat the list of skipped images as the last line of ``predict`` (``warning: predict skipped ...``).

    Images far smaller than the model's input are named in a line before it (unless a ``PredictionTable`` does).
    """
    loaders = engine.trainer.predict_dataloaders or []
    loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
    datasets = [getattr(loader, "dataset", None) for loader in loaders]
    skipped = [path for dataset in datasets for path in getattr(dataset, "skipped_images", [])]
    size = input_hw(engine.trainer.lightning_module)
    tables = any(isinstance(callback, PredictionTable) for callback in engine.trainer.callbacks)  # type: ignore[attr-defined]
    files = [str(path) for dataset in datasets for path in getattr(dataset, "image_filenames", [])]
    small = [path for path in files if not tables and is_small_image(path, size)]
    sys.stdout.flush()
    if small and size is not None:  # printed, not logged: anomalib's log handlers wrap long lines
        print(f"warning: {small_images_message(small, size)}", file=sys.stderr, flush=True)
    if skipped:  # the last line
        print(f"warning: {skipped_message(skipped)}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ install
ENGINE_METHODS = ("_setup_workspace", "fit", "train", "test", "predict", "validate", "export")
"""The ``Engine`` methods :func:`install` wraps."""


def _replacements() -> list[tuple[Any, str, Any]]:
    """``(owner, name, replacement)`` of every object :func:`install` replaces in this process."""
    engine = {"_setup_workspace": _setup_workspace, "fit": _fit, "train": _train, "export": _export}
    replacements: list[tuple[Any, str, Any]] = [(Engine, n, engine.get(n) or _evaluating(n)) for n in ENGINE_METHODS]
    replacements += [(engine_module, "create_versioned_dir", _create_versioned_dir)]
    replacements += [(MVTecAD, "prepare_data", _mvtecad_prepare_data)]
    cli_module = sys.modules.get("anomalib.cli.cli")
    if cli_module is not None:  # the CLI imported the plugin while reading --model / --config
        replacements += [(cli_module.AnomalibCLI, "before_instantiate_classes", _seed_before_instantiation)]
    if running_anomalib_cli():
        replacements += [(sys, "excepthook", functools.partial(one_line_excepthook, sys.excepthook))]
        parse_error = functools.partialmethod(one_line_parse_error, jsonargparse.ArgumentParser.error)
        replacements += [(jsonargparse.ArgumentParser, "error", parse_error)]
    return replacements


def install() -> None:
    """Apply the corrections listed in the module docstring (idempotent; :func:`uninstall` undoes them)."""
    if _ORIGINAL:
        return
    for owner, name, replacement in _replacements():
        _ORIGINAL[owner, name] = original = getattr(owner, name)
        setattr(owner, name, functools.wraps(original)(replacement))
    if running_anomalib_cli():
        one_log_handler()


def uninstall() -> None:
    """Give anomalib (and Python) back every object :func:`install` replaced (idempotent)."""
    for (owner, name), original in _ORIGINAL.items():
        setattr(owner, name, original)
    _ORIGINAL.clear()


def is_installed() -> bool:
    """Whether the corrections are in place."""
    return bool(_ORIGINAL)


def installed() -> AbstractContextManager[None]:
    """Apply the corrections inside the ``with`` block only (for Python users who want them)."""
    return installed_for_block(is_installed, install, uninstall)


def _seed_before_instantiation(self: Any) -> None:
    """Apply ``seed_everything`` before the classes are built, as its help says (anomalib 2.7 never applies it).

    Only for ``isstad_plugin`` models: without it, two runs of the same config start from different weights.
    """
    _ORIGINAL[sys.modules["anomalib.cli.cli"].AnomalibCLI, "before_instantiate_classes"](self)
    config = self.config.get(str(self.config.get("subcommand"))) or {}  # no section for the subcommand: nothing to seed
    seed, model = config.get("seed_everything"), config.get("model")
    if str(getattr(model, "class_path", "")).startswith("isstad_plugin") and seed is not None and seed is not False:
        seed_everything(None if seed is True else int(seed), workers=True, verbose=False)  # the config shows it
