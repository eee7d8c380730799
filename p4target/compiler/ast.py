"""The compiler's one IR: the P4_16 syntax tree, annotated in place by the checker.

Parsing builds these nodes; :mod:`check` resolves names and sets ``ty`` (and ``ref``) on expressions;
the backends read the annotated tree. Every node has a ``loc`` for diagnostics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Loc


@dataclass
class Annotation:
    name: str
    args: list[Any]            # expressions (or raw tokens values for unstructured ones)
    loc: Loc


def anno(annos: list[Annotation], name: str) -> Annotation | None:
    for a in annos:
        if a.name == name:
            return a
    return None


# ---------------------------------------------------------------- types (syntax)
@dataclass
class TypeRef:
    loc: Loc


@dataclass
class BitTypeRef(TypeRef):
    width: Expr | None = None   # None for bool-like fixed kinds
    signed: bool = False
    kind: str = "bit"          # bit, int (signed), varbit


@dataclass
class NamedTypeRef(TypeRef):
    name: str = ""
    args: list[TypeRef] = field(default_factory=list)


@dataclass
class SimpleTypeRef(TypeRef):
    name: str = ""   # bool, error, string, void, match_kind, int (arbitrary precision), _ (don't care)


@dataclass
class StackTypeRef(TypeRef):
    base: TypeRef | None = None
    size: Expr | None = None


@dataclass
class TupleTypeRef(TypeRef):
    args: list[TypeRef] = field(default_factory=list)


# ---------------------------------------------------------------- expressions
@dataclass
class Expr:
    loc: Loc

    def __post_init__(self) -> None:
        self.ty: Any = None       # set by check
        self.ref: Any = None      # resolved declaration / meaning, set by check
        self.const: Any = None    # compile-time value if known


@dataclass
class IntLit(Expr):
    value: int = 0
    width: int | None = None
    signed: bool = False


@dataclass
class BoolLit(Expr):
    value: bool = False


@dataclass
class StrLit(Expr):
    value: str = ""


@dataclass
class Name(Expr):
    name: str = ""
    dotted: bool = False    # .name (top-level scope)


@dataclass
class Member(Expr):
    expr: Expr | None = None
    name: str = ""


@dataclass
class Index(Expr):
    expr: Expr | None = None
    index: Expr | None = None


@dataclass
class Slice(Expr):
    expr: Expr | None = None
    hi: Expr | None = None
    lo: Expr | None = None


@dataclass
class Call(Expr):
    func: Expr | None = None
    type_args: list[TypeRef] = field(default_factory=list)
    args: list[Expr] = field(default_factory=list)
    arg_names: list[str | None] = field(default_factory=list)


@dataclass
class Unary(Expr):
    op: str = ""
    expr: Expr | None = None


@dataclass
class Binary(Expr):
    op: str = ""
    left: Expr | None = None
    right: Expr | None = None


@dataclass
class Ternary(Expr):
    cond: Expr | None = None
    then: Expr | None = None
    other: Expr | None = None


@dataclass
class Cast(Expr):
    type: TypeRef | None = None
    expr: Expr | None = None


@dataclass
class ListExpr(Expr):
    items: list[Expr] = field(default_factory=list)
    names: list[str] | None = None    # struct-valued {a = x, b = y}


@dataclass
class Default(Expr):
    pass


@dataclass
class TypeExpr(Expr):
    """A type used where an expression is expected (e.g. in a constructor call)."""
    type: TypeRef | None = None


# ---------------------------------------------------------------- statements
@dataclass
class Stmt:
    loc: Loc


@dataclass
class Assign(Stmt):
    lhs: Expr | None = None
    rhs: Expr | None = None


@dataclass
class CallStmt(Stmt):
    call: Call | None = None


@dataclass
class If(Stmt):
    cond: Expr | None = None
    then: Stmt | None = None
    other: Stmt | None = None


@dataclass
class Block(Stmt):
    stmts: list[Stmt] = field(default_factory=list)


@dataclass
class SwitchCase:
    label: Expr | None     # None for default
    body: Block | None     # None for fall-through
    loc: Loc


@dataclass
class Switch(Stmt):
    expr: Expr | None = None
    cases: list[SwitchCase] = field(default_factory=list)


@dataclass
class Exit(Stmt):
    pass


@dataclass
class Return(Stmt):
    value: Expr | None = None


@dataclass
class Empty(Stmt):
    pass


@dataclass
class VarDecl(Stmt):
    type: TypeRef | None = None
    name: str = ""
    init: Expr | None = None
    annos: list[Annotation] = field(default_factory=list)
    is_const: bool = False


# ---------------------------------------------------------------- declarations
@dataclass
class Decl:
    loc: Loc
    name: str = ""
    annos: list[Annotation] = field(default_factory=list)


@dataclass
class FieldDecl:
    name: str
    type: TypeRef
    annos: list[Annotation]
    loc: Loc


@dataclass
class HeaderDecl(Decl):
    fields: list[FieldDecl] = field(default_factory=list)
    kind: str = "header"     # header, struct, header_union


@dataclass
class TypedefDecl(Decl):
    type: TypeRef | None = None
    is_type: bool = False     # 'type' (new type) vs 'typedef'


@dataclass
class ConstDecl(Decl):
    type: TypeRef | None = None
    value: Expr | None = None


@dataclass
class EnumDecl(Decl):
    members: list[str] = field(default_factory=list)
    values: list[Expr | None] = field(default_factory=list)
    base: TypeRef | None = None


@dataclass
class ErrorDecl(Decl):
    members: list[str] = field(default_factory=list)


@dataclass
class MatchKindDecl(Decl):
    members: list[str] = field(default_factory=list)


@dataclass
class Param:
    direction: str       # "", in, out, inout
    type: TypeRef
    name: str
    loc: Loc
    annos: list[Annotation] = field(default_factory=list)
    default: Expr | None = None


@dataclass
class ExternDecl(Decl):
    """extern object or extern function (declarations only; semantics are built in)."""
    type_params: list[str] = field(default_factory=list)
    methods: list[Any] = field(default_factory=list)
    is_function: bool = False
    params: list[Param] = field(default_factory=list)


@dataclass
class ActionDecl(Decl):
    params: list[Param] = field(default_factory=list)
    body: Block | None = None


@dataclass
class FunctionDecl(Decl):
    ret: TypeRef | None = None
    params: list[Param] = field(default_factory=list)
    body: Block | None = None


@dataclass
class TableProperty:
    name: str
    value: Any
    loc: Loc
    is_const: bool = False
    annos: list[Annotation] = field(default_factory=list)


@dataclass
class KeyElement:
    expr: Expr
    match_kind: str
    annos: list[Annotation]
    loc: Loc


@dataclass
class ActionRef:
    expr: Expr          # Name or Call
    annos: list[Annotation]
    loc: Loc


@dataclass
class TableEntry:
    keys: list[Expr]
    action: Expr
    loc: Loc
    priority: Expr | None = None


@dataclass
class TableDecl(Decl):
    props: list[TableProperty] = field(default_factory=list)


@dataclass
class Instance(Decl):
    type: TypeRef | None = None
    args: list[Expr] = field(default_factory=list)
    arg_names: list[str | None] = field(default_factory=list)


@dataclass
class ParserState:
    name: str
    stmts: list[Stmt]
    transition: Any       # Name expr, or SelectExpr
    loc: Loc
    annos: list[Annotation] = field(default_factory=list)


@dataclass
class SelectCase:
    keyset: Expr
    state: str
    loc: Loc


@dataclass
class Select:
    exprs: list[Expr]
    cases: list[SelectCase]
    loc: Loc


@dataclass
class ParserDecl(Decl):
    params: list[Param] = field(default_factory=list)
    ctor_params: list[Param] = field(default_factory=list)
    locals: list[Any] = field(default_factory=list)
    states: list[ParserState] = field(default_factory=list)
    type_params: list[str] = field(default_factory=list)
    is_type: bool = False     # parser type declaration (no body)


@dataclass
class ControlDecl(Decl):
    params: list[Param] = field(default_factory=list)
    ctor_params: list[Param] = field(default_factory=list)
    locals: list[Any] = field(default_factory=list)
    body: Block | None = None
    type_params: list[str] = field(default_factory=list)
    is_type: bool = False


@dataclass
class PackageDecl(Decl):
    params: list[Param] = field(default_factory=list)
    type_params: list[str] = field(default_factory=list)


@dataclass
class Program:
    decls: list[Any]
