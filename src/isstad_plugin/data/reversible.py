"""A ``with`` block for something installed into another library and removed again (16-bit reader, CLI corrections)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def installed_for_block(
    is_installed: Callable[[], bool], install: Callable[[], None], uninstall: Callable[[], None]
) -> Iterator[None]:
    """``install()`` for the ``with`` block; ``uninstall()`` after it unless it was installed before."""
    was_installed = is_installed()
    install()
    try:
        yield
    finally:
        if not was_installed:
            uninstall()
