"""Lexical scopes of the checker: names to symbols, chained to the enclosing scope.

Its own module so that the checker's mixins (``check_expr``, ``check_externs``, ``check_tables``) can
name it without importing ``check``, which imports them (no import cycle).
"""
from __future__ import annotations

from .errors import CompileError, Loc
from .types import Sym, TypeSym


class Scope:
    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.names: dict[str, Sym] = {}

    def lookup(self, name: str) -> Sym | None:
        s: Scope | None = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        return None

    def add(self, sym: Sym, loc: Loc) -> None:
        if sym.name in self.names and not isinstance(self.names[sym.name], TypeSym):
            raise CompileError(f"{sym.name}: re-declaration of a name in the same scope", loc)
        self.names[sym.name] = sym
