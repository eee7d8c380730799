"""Semantic types of the checker and the symbols names resolve to.

Types are small value objects; struct-like types keep their declaration for layouts. Symbols record
what a name means (a parameter, a local variable, an action, a table, an extern instance...) so the
backends never re-resolve names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Type:
    def __str__(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class BitsT(Type):
    width: int
    signed: bool = False

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'bit'}<{self.width}>"


@dataclass(frozen=True)
class IntT(Type):
    """Arbitrary-precision integer (untyped literals and constants)."""

    def __str__(self) -> str:
        return "int"


@dataclass(frozen=True)
class BoolT(Type):
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class StringT(Type):
    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True)
class VoidT(Type):
    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True)
class ErrorT(Type):
    def __str__(self) -> str:
        return "error"


@dataclass(frozen=True)
class MatchKindT(Type):
    def __str__(self) -> str:
        return "match_kind"


@dataclass(frozen=True)
class DontCareT(Type):
    def __str__(self) -> str:
        return "_"


@dataclass(eq=False)
class StructT(Type):
    """header, struct or header_union type."""

    name: str
    kind: str                             # header, struct, header_union
    fields: list[tuple[str, Type]]
    decl: Any = None

    def field(self, name: str) -> Type | None:
        for n, t in self.fields:
            if n == name:
                return t
        return None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class StackT(Type):
    elem: StructT
    size: int

    def __str__(self) -> str:
        return f"{self.elem}[{self.size}]"


@dataclass(eq=False)
class EnumT(Type):
    name: str
    members: dict[str, int]
    base: BitsT | None = None      # serializable enum

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ListT(Type):
    items: tuple[Type, ...]

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.items)) + "}"


@dataclass(eq=False)
class ExternT(Type):
    name: str
    type_args: list[Type] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ObjT(Type):
    """Non-value objects: table, action, parser, control, package, method, type name, packet."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".strip()


def width_of(t: Type) -> int:
    """Width in bits of a scalar type as stored in BMv2 (bool = 1, error/plain enum = 32)."""
    if isinstance(t, BitsT):
        return t.width
    if isinstance(t, BoolT):
        return 1
    if isinstance(t, EnumT):
        return t.base.width if t.base else 32
    if isinstance(t, ErrorT):
        return 32
    if isinstance(t, StructT):
        return sum(width_of(ft) for _, ft in t.fields)
    raise TypeError(f"no width for {t}")


# ---------------------------------------------------------------- symbols
@dataclass(eq=False)
class Sym:
    name: str
    type: Type


@dataclass(eq=False)
class ConstSym(Sym):
    value: Any = None


@dataclass(eq=False)
class ParamSym(Sym):
    """Parameter of a parser/control: bound to a storage root by the backend."""

    role: str = ""          # headers, meta, standard_metadata, packet_in, packet_out
    direction: str = ""


@dataclass(eq=False)
class ActionParamSym(Sym):
    index: int = 0
    direction: str = ""
    action: Any = None


@dataclass(eq=False)
class VarSym(Sym):
    decl: Any = None
    unique: str = ""        # unique storage name


@dataclass(eq=False)
class ActionSym(Sym):
    decl: Any = None
    fqname: str = ""
    control: Any = None


@dataclass(eq=False)
class TableSym(Sym):
    decl: Any = None
    fqname: str = ""
    info: Any = None        # TableInfo filled by check


@dataclass(eq=False)
class InstanceSym(Sym):
    decl: Any = None
    fqname: str = ""
    args: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class TypeSym(Sym):
    pass


@dataclass(eq=False)
class ExternFuncSym(Sym):
    decl: Any = None


@dataclass(eq=False)
class FunctionSym(Sym):
    """A P4 function (inlined at each call)."""

    decl: Any = None
    ret: Any = None


@dataclass(eq=False)
class BlockSym(Sym):
    """A parser or control declaration (or package)."""

    decl: Any = None
