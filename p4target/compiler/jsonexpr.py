"""BMv2 JSON value helpers shared by the lowering passes: hex strings, expression nodes, masks."""
from __future__ import annotations

from typing import Any

from .layout import ScalarStore
from .types import BitsT, BoolT, Type

Json = dict[str, Any]


def hexstr(v: int, width: int | None = None) -> str:
    if v < 0:
        return "-" + hexstr(-v, width)
    digits = max(1, ((width or v.bit_length() or 1) + 7) // 8) * 2
    return f"0x{v:0{digits}x}"


def hexv(v: int, width: int | None = None) -> Json:
    return {"type": "hexstr", "value": hexstr(v, width)}


def ex(op: str, left: Json | None, right: Json, **kw: Json) -> Json:
    v: Json = {"op": op, "left": left, "right": right}
    v.update(kw)
    return {"type": "expression", "value": v}


def field_ref(s: ScalarStore) -> Json:
    return {"type": "field", "value": [s.inst, s.field]}


def mask_to(node: Json, t: Type) -> Json:
    if isinstance(t, BitsT):
        if t.signed:
            return ex("two_comp_mod", node, hexv(t.width, 8))
        return ex("&", node, hexv((1 << t.width) - 1, t.width))
    return node


def top(node: Json) -> Json:
    """A value as a direct primitive parameter (p4c wraps expressions once more)."""
    if node["type"] == "local":
        return {"type": "runtime_data", "value": node["value"]}
    if node["type"] == "expression":
        return {"type": "expression", "value": node}
    return node


def to_data(node: Json, t: Type) -> Json:
    """Convert a boolean-valued node into data (for storing into a field)."""
    if isinstance(t, BoolT):
        if node["type"] == "bool":
            return hexv(1 if node["value"] else 0, 1)
        return ex("b2d", None, node)
    return node
