"""Names as p4c prints and exposes them: expression text, control-plane names (@name), key names."""
from __future__ import annotations

from typing import Any

from . import ast as A


def expr_str(e: A.Expr) -> str:
    """p4c-style source text of an expression (used for key and field names)."""
    if isinstance(e, A.Name):
        return e.name
    if isinstance(e, A.Member):
        return f"{expr_str(e.expr)}.{e.name}"
    if isinstance(e, A.Index):
        return f"{expr_str(e.expr)}[{expr_str(e.index)}]"
    if isinstance(e, A.Slice):
        return f"{expr_str(e.expr)}[{expr_str(e.hi)}:{expr_str(e.lo)}]"
    if isinstance(e, A.IntLit):
        return str(e.value)
    if isinstance(e, A.Call):
        inner = ", ".join(expr_str(a) for a in e.args)
        return f"{expr_str(e.func)}({inner})"
    if isinstance(e, A.Binary):
        return f"{expr_str(e.left)} {e.op} {expr_str(e.right)}"
    if isinstance(e, A.Unary):
        return f"{e.op}{expr_str(e.expr)}"
    if isinstance(e, A.Cast):
        return f"({type_ref_str(e.type)}){expr_str(e.expr)}"
    if isinstance(e, A.BoolLit):
        return "true" if e.value else "false"
    return type(e).__name__


def param_name(p: A.Param) -> str:
    """Control-plane name of an action parameter (@name honoured)."""
    a = A.anno(p.annos, "name")
    if a and a.args and isinstance(a.args[0], A.StrLit):
        return a.args[0].value
    return p.name


def key_name(e: A.Expr) -> str:
    """Control-plane name of a table key (p4c's TableKeyNames: h.isValid() is h.$valid$)."""
    if isinstance(e, A.Call) and isinstance(e.func, A.Member) and e.func.name == "isValid" and not e.args:
        return f"{expr_str(e.func.expr)}.$valid$"
    return expr_str(e)


def type_ref_str(t: Any) -> str:
    if isinstance(t, A.BitTypeRef):
        return f"{t.kind}<{expr_str(t.width) if t.width else ''}>"
    if isinstance(t, A.NamedTypeRef):
        return t.name
    if isinstance(t, A.SimpleTypeRef):
        return t.name
    return "?"


def control_plane_name(decl: Any, prefix: str) -> str:
    """Fully qualified control-plane name, honouring @name (absolute when it starts with '.')."""
    a = A.anno(decl.annos, "name")
    name = decl.name
    if a and a.args and isinstance(a.args[0], A.StrLit):
        name = a.args[0].value
        if name.startswith("."):
            return name[1:]
    return f"{prefix}.{name}" if prefix else name
