"""Error text shared by every layer: the one line a user sees."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
