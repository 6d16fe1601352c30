"""One-line errors under the ``anomalib`` command: what the user can fix is printed as its one line, last.

Errors raised by this package name the option or file and the fix in one line; jsonargparse wraps a constructor's
error in "Does not validate against any of the Union subtypes", from which the reason is taken. The traceback is
shown only with ``ISSTAD_TRACEBACK=1``. :func:`one_log_handler` prints anomalib's log lines once instead of twice.
:func:`parse_error_line` turns jsonargparse's report of an unknown or misspelt option (ten lines ending in
``Given value: NestedArg(...)``) into one line naming the option, the nearest valid name and the help command.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
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
        noise = ("- Expected a", _UNION_ERROR, "Problem with given class_path")
        lines = [line.strip() for line in text.splitlines()]
        reasons = [line[2:] for line in lines if line.startswith("- ") and not any(part in line for part in noise)]
        return f"--model isstad_plugin.Isstad: {reasons[-1]}" if reasons else None
    frames = traceback.extract_tb(error.__traceback__)
    fixable = isinstance(error, ValueError | OSError | FloatingPointError | RuntimeError) and "\n" not in text.strip()
    return text.strip() if fixable and frames and frames[-1].filename.startswith(_PACKAGE_DIR) else None


def one_line_excepthook(
    previous: Callable[..., Any], exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """``sys.excepthook`` printing a fixable error as its one line, last (``ISSTAD_TRACEBACK=1``: after the trace)."""
    line = format_cli_error(exc)
    if line is None or os.environ.get("ISSTAD_TRACEBACK", "") not in ("", "0"):
        previous(exc_type, exc, tb)
    if line is not None:
        sys.stdout.flush()
        print(f"error: {line}", file=sys.stderr, flush=True)


def one_log_handler() -> None:
    """Print each log line once under the ``anomalib`` command.

    anomalib's ``configure_logger`` gives the root logger a plain handler (``logging.basicConfig``) and a
    ``RichHandler``, so every INFO line appears twice, the second one wrapped at the terminal width. The plain one is
    kept: its lines are whole, so they can be searched and the one-line errors stay one line.
    """
    root = logging.getLogger()
    if any(type(h) is logging.StreamHandler for h in root.handlers):
        for handler in [h for h in root.handlers if type(h).__name__ == "RichHandler"]:
            root.removeHandler(handler)


def running_anomalib_cli() -> bool:
    """Whether this process is the ``anomalib`` command."""
    return Path(sys.argv[0] if sys.argv else "").name in ("anomalib", "anomalib.exe", "anomalib-script.py")


def unknown_option_line(option: str, valid: Iterable[str], help_command: str) -> str:
    """``unknown option <option>; did you mean <nearest>? see `<help_command>``` (one line).

    Args:
        option: The option as given, without the leading ``--`` (``model.foo``).
        valid: The valid names, in the same form.
        help_command: The command that lists them.
    """
    prefix, _, leaf = option.rpartition(".")
    leaves = {name.rpartition(".")[2]: name for name in valid if name.rpartition(".")[0] == prefix}
    nearest = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
    suggestion = f"did you mean {leaves[nearest[0]]}?" if nearest else "no option has a similar name;"
    return f"unknown option {option}; {suggestion} see `{help_command}`"


_NOT_ACCEPTED = re.compile(r"Problem with given class_path '([\w.]+)':\s*Option '([\w.]+)' is not accepted")


def parse_error_line(message: str, valid_options: Iterable[str], command: str = "train") -> str | None:
    """One line for jsonargparse's report of an unknown option of a class or of the command, else ``None``.

    Args:
        message: jsonargparse's error message.
        valid_options: The command's option names without ``--`` (for ``Unrecognized arguments``).
        command: The subcommand (``train``, ``fit``, ...), for the help command.
    """
    key = re.match(r'Parser key "([\w.]+)":', message)
    group = key[1].rpartition(".")[2] if key else ""
    unknown = _NOT_ACCEPTED.search(message)
    if key and unknown:
        class_path, option = unknown.groups()
        names = [f"{group}.{name}" for name in _init_options(class_path)]
        return unknown_option_line(f"{group}.{option}", names, f"anomalib {command} --{group}.help {class_path}")
    value = _INVALID_VALUE.search(message)
    if key and value:
        invalid = f"invalid value {value['given']} for {group}.{value['option']}{_expected(value['errors'])}"
        return f"{invalid}; see `anomalib {command} --{group}.help {value['class_path']}`"
    given = re.search(r"Given value: ([^\n]*)\s*$", message)
    if key and given and "class_path" not in message:
        return f"invalid value {given[1]} for {key[1]}{_expected(message)}; see `anomalib {command} --help -vv`"
    unrecognized = re.match(r"Unrecognized arguments: (--[\w.]+)", message)
    if unrecognized:
        option = unrecognized[1][2:].partition("=")[0]
        return unknown_option_line(option, valid_options, f"anomalib {command} --help -vv")
    return None


_INVALID_VALUE = re.compile(
    r"Problem with given class_path '(?P<class_path>[\w.]+)':\s*Parser key \"(?P<option>\w+)\":(?P<errors>.*?)"
    r"Given value: (?P<given>[^\n]*)",
    re.DOTALL,
)


def _expected(errors: str) -> str:
    """`` (expected null or int)`` from jsonargparse's ``- Expected a <class 'int'>`` lines (empty without any)."""
    names = [_type_name(name) for name in re.findall(r"- Expected an? (.+)", errors)]
    return f" (expected {' or '.join(names)})" if names else ""


def _type_name(text: str) -> str:
    """``<class 'int'>`` as ``int``, ``typing.Literal['auto']`` as ``'auto'``."""
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text.strip()).replace("NoneType", "null")
    return re.sub(r"typing\.Literal\[(.*)\]", r"\1", text).replace("typing.", "")


def _init_options(class_path: str) -> list[str]:
    """The keyword options of the class at ``class_path`` (its ``__init__`` signature, as jsonargparse reads it)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds and p.name != "self"]


def one_line_parse_error(parser: Any, previous: Callable[..., Any], message: str, ex: Exception | None = None) -> Any:
    """The ``error`` of jsonargparse's parser (``previous``), printing an unknown option as one line.

    The line is :func:`parse_error_line`'s; ``previous`` handles what it does not know.
    """
    if parser.exit_on_error:
        command_parser = getattr(ex, "subcommand_parser", None) or parser
        actions = command_parser._actions
        options = [name[2:] for action in actions for name in action.option_strings if name.startswith("--")]
        command = str(command_parser.prog).replace(" [options]", "").split()[-1:] or ["train"]
        line = parse_error_line(message, options, command[0])
        if line is None and "\n" not in message.strip():  # already one line: without the "tip" line before it
            line = f"{message.strip()}; see `anomalib {command[0]} --help -vv`"
        if line is not None:
            sys.stdout.flush()
            print(f"error: {line}", file=sys.stderr, flush=True)
            parser.exit(2)
    return previous(parser, message, ex)
