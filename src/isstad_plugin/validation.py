"""One-line checks of option values, shared by the configurations of the model, the corruption and the data.

Each check raises a ``ValueError`` whose message starts from the option's name, so that a bad value on the command line
or in a YAML file points to the key to change.

Layer: the lowest one; it imports nothing of the package.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    Args:
        name: Option name for the message.
        value: Given value.
        choices: Allowed values.
    """
    if value not in choices:
        msg = f"unknown {name} {value!r}: {name} must be one of {', '.join(map(str, choices))}"
        raise ValueError(msg)


def check_names(kind: str, names: Iterable[str], valid: Sequence[str]) -> None:
    """Raise ``ValueError`` on the first of ``names`` that is not in ``valid``, naming the nearest valid name.

    Args:
        kind: What the names are, for the message (``"corruption setting"``).
        names: Given names.
        valid: Allowed names.
    """
    for name in names:
        if name not in valid:
            msg = f"unknown {kind} {name!r}: {nearest_hint(name, valid)}valid: {', '.join(valid)}"
            raise ValueError(msg)


def nearest_hint(name: str, valid: Sequence[str]) -> str:
    """``"did you mean 'x'? "`` with the valid name closest to ``name`` (empty when ``valid`` is)."""
    nearest = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
    return f"did you mean {nearest[0]!r}? " if nearest else ""


def check_subset(name: str, value: Sequence[object], choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is a non-empty subset of ``choices``."""
    if not value or any(item not in choices for item in value):
        msg = f"{name} must be a non-empty subset of {tuple(choices)}, got {value}"
        raise ValueError(msg)


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) in ``[minimum, maximum]``.

    Args:
        name: Option name for the message.
        value: Given value.
        minimum: Smallest allowed value.
        maximum: Largest allowed value, or ``None`` for no limit.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be an integer, got {value!r}"
        raise ValueError(msg)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        msg = f"{name} must be {bound}, got {value}"
        raise ValueError(msg)


def check_probability(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``."""
    if not 0 <= value <= 1:
        msg = f"{name} must be a probability in [0, 1], got {value}"
        raise ValueError(msg)


def check_pair(name: str, value: tuple[float, float], minimum: float = 0, integers: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a pair ``minimum <= low <= high`` (of integers when ``integers``).

    Args:
        name: Option name for the message.
        value: Given ``(low, high)``.
        minimum: Smallest allowed ``low``.
        integers: Whether both ends must be whole numbers.
    """
    low, high = value
    whole = int(low) == low and int(high) == high
    if (integers and not whole) or not minimum <= low <= high:
        kind = "integers" if integers else "a pair"
        msg = f"{name} must be {kind} ({minimum} <= low <= high), got {value}"
        raise ValueError(msg)
