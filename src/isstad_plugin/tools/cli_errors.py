"""One-line errors under the ``anomalib`` command: what the user can fix is printed as its one line, last.

Errors raised by this package name the option or file and the fix in one line; jsonargparse wraps a constructor's
error in "Does not validate against any of the Union subtypes", from which the reason is taken. The traceback is
shown only with ``ISSTAD_TRACEBACK=1``. :func:`one_log_handler` prints anomalib's log lines once instead of twice.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

_PACKAGE_DIR = str(Path(__file__).parents[1]) + os.sep  # src/isstad_plugin/
_UNION_ERROR = "Does not validate against any of the Union subtypes"


def format_cli_error(error: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or ``None`` (its traceback is then shown).

    Such errors are ``ValueError``/``OSError``/``FloatingPointError``/``RuntimeError`` raised by this package (their
    messages are one line naming the option or file and the fix), and jsonargparse's "Does not validate against any of
    the Union subtypes" around an ``isstad_plugin.Isstad`` constructor error, whose reason is extracted.
    """
    text = str(error)
    if isinstance(error, ValueError) and text.startswith(_UNION_ERROR) and "isstad_plugin" in text:
        reasons = [
            line.strip()[2:]
            for line in text.splitlines()
            if line.strip().startswith("- ")
            and not line.strip().startswith("- Expected a")
            and _UNION_ERROR not in line
            and "Problem with given class_path" not in line
        ]
        return f"--model isstad_plugin.Isstad: {reasons[-1]}" if reasons else None
    if not isinstance(error, ValueError | OSError | FloatingPointError | RuntimeError):
        return None
    frames = traceback.extract_tb(error.__traceback__)
    if not frames or not frames[-1].filename.startswith(_PACKAGE_DIR) or "\n" in text.strip():
        return None
    return text.strip()


def one_line_excepthook(
    previous: Callable[..., Any],
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
) -> None:
    """``sys.excepthook`` printing a fixable error as its one line, last (``ISSTAD_TRACEBACK=1``: after the trace)."""
    line = format_cli_error(exc) if exc is not None else None
    if line is None:
        previous(exc_type, exc, tb)
        return
    if os.environ.get("ISSTAD_TRACEBACK", "") not in ("", "0"):
        previous(exc_type, exc, tb)
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"error: {line}", file=sys.stderr, flush=True)


def one_log_handler() -> None:
    """Print each log line once under the ``anomalib`` command.

    anomalib's ``configure_logger`` gives the root logger a plain handler (``logging.basicConfig``) and a
    ``RichHandler``, so every INFO line appears twice, the second one wrapped at the terminal width. The plain one is
    kept: its lines are whole, so they can be searched and the one-line errors stay one line.
    """
    root = logging.getLogger()
    plain = [h for h in root.handlers if type(h) is logging.StreamHandler]
    if plain:
        for handler in [h for h in root.handlers if type(h).__name__ == "RichHandler"]:
            root.removeHandler(handler)


def running_anomalib_cli() -> bool:
    """Whether this process is the ``anomalib`` command."""
    return Path(sys.argv[0] if sys.argv else "").name in ("anomalib", "anomalib.exe", "anomalib-script.py")
