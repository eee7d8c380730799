"""Named arguments (``f(x = a, y = b)``, ``V1Switch(p = P(), ig = I(), ...)``): bound to the callee's
parameters by name before type checking, so every later pass sees positional arguments only.

As in the P4_16 spec (and p4c): arguments are either all named or all positional, each parameter is
bound at most once, and a parameter left out takes its default value (or is an error)."""
from __future__ import annotations

from collections.abc import Sequence

from . import ast as A
from .errors import CompileError, Loc


def is_named(names: Sequence[str | None]) -> bool:
    return any(n is not None for n in names)


def bind(args: list[A.Expr], names: Sequence[str | None], params: Sequence[A.Param], what: str,
         loc: Loc) -> list[A.Expr]:
    """``args`` in parameter order (named ones placed by name, missing ones by default value)."""
    if not is_named(names):
        return args
    if not all(n is not None for n in names):
        raise CompileError(f"{what}: either all or none of the arguments must be named", loc)
    pos = {p.name: i for i, p in enumerate(params)}
    bound: list[A.Expr | None] = [None] * len(params)
    for a, n in zip(args, names, strict=True):
        assert n is not None
        if n not in pos:
            raise CompileError(f"{what}: no parameter named '{n}'", a.loc)
        if bound[pos[n]] is not None:
            raise CompileError(f"{what}: parameter '{n}' given more than once", a.loc)
        bound[pos[n]] = a
    out: list[A.Expr] = []
    for p, a in zip(params, bound, strict=True):
        if a is None:
            if p.default is None:
                raise CompileError(f"{what}: no argument for parameter '{p.name}'", loc)
            a = p.default
        out.append(a)
    return out


def pick_overload(cands: Sequence[Sequence[A.Param]], names: Sequence[str | None]) -> Sequence[A.Param] | None:
    """The overload whose parameter names cover the given names (fewest extra parameters first)."""
    given = {n for n in names if n is not None}
    fits = [ps for ps in cands if given <= {p.name for p in ps}
            and all(p.default is not None or p.name in given for p in ps)]
    return min(fits, key=len) if fits else None
