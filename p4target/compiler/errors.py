"""Diagnostics of the embedded P4 compiler: source locations and the CompileError exception.

Every diagnostic carries a location and is rendered as ``file:line:col: error: message`` like p4c.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOLOC = Loc("<builtin>", 0, 0)


class CompileError(Exception):
    """A compilation failure; ``str(err)`` is ``file:line:col: error: message``."""

    def __init__(self, message: str, loc: Loc | None = None) -> None:
        self.loc = loc
        self.message = message
        text = f"{loc}: error: {message}" if loc is not None else f"error: {message}"
        super().__init__(text)


def unsupported(what: str, loc: Loc | None) -> CompileError:
    """The error for a construct this compiler does not implement (never silently mis-compiled)."""
    return CompileError(f"unsupported: {what}", loc)
