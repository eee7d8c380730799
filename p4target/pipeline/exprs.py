"""Translation of BMv2 JSON expressions and action primitives into Python source.

Generated code runs with these names in scope: ``P`` (the packet context), ``F`` (the PHV slot
list), ``A`` (action parameters, in actions) and, in parser states, ``d`` (packet bytes) and
``off`` (current byte offset). Objects the code needs (tables, registers, helpers) are put into
the generated module's globals through `ExprGen.const`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .layout import HeaderInfo, Layout
from .state import PipelineError

__all__ = ["ExprGen", "Val", "parse_hex"]


def parse_hex(s: str | int | bool) -> int:
    if isinstance(s, bool):
        return int(s)
    if isinstance(s, int):
        return s
    s = s.strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    v = int(s, 16) if s.lower().startswith("0x") else int(s, 0)
    return -v if neg else v


@dataclass
class Val:
    code: str
    kind: str                  # "data", "bool", "header", "stack", "string", "vector"
    width: int | None = None   # known non-negative bound in bits (data), None when unknown/signed
    header: HeaderInfo | None = None   # header type (for "header"), first element's info
    stack: Any = None

    @property
    def const(self) -> int | None:
        try:
            return int(self.code)
        except ValueError:
            return None


def _mask(w: int) -> int:
    return (1 << w) - 1


class ExprGen:
    """Turns JSON expression trees and primitives into Python source lines."""

    def __init__(self, layout: Layout, ns: dict[str, Any], pipeline: Any, trace: bool) -> None:
        self.layout = layout
        self.ns = ns
        self.p = pipeline
        self.trace = trace
        self._ids: dict[int, str] = {}
        self._n = 0
        self.ctx = "action"       # "action" | "parser" | "control"
        self.where = ""

    # ---- helpers ----
    def const(self, obj: Any, prefix: str = "K") -> str:
        key = id(obj)
        name = self._ids.get(key)
        if name is None:
            self._n += 1
            name = f"{prefix}{self._n}"
            self._ids[key] = name
            self.ns[name] = obj
        return name

    def tmp(self, prefix: str = "t") -> str:
        self._n += 1
        return f"_{prefix}{self._n}"

    def err(self, msg: str) -> PipelineError:
        return PipelineError(f"{self.where}: {msg}" if self.where else msg)

    # ---- expressions ----
    def expr(self, node: Any) -> Val:
        if not isinstance(node, dict) or "type" not in node:
            raise self.err(f"malformed expression {node!r}")
        t = node["type"]
        v = node.get("value")
        if t == "hexstr":
            n = parse_hex(v)
            return Val(str(n), "data", n.bit_length() if n >= 0 else None)
        if t == "bool":
            return Val("True" if v else "False", "bool")
        if t == "field":
            return self.field_read(v[0], v[1])
        if t in ("runtime_data", "local"):
            if self.ctx != "action":
                raise self.err("action parameter used outside an action")
            w = self.param_widths[v] if v < len(self.param_widths) else None
            return Val(f"A[{int(v)}]", "data", w)
        if t == "header":
            h = self.layout.header(v)
            return Val(str(h.base), "header", header=h)
        if t == "header_stack":
            st = self.layout.stack(v)
            return Val(repr(v), "stack", header=st.headers[0], stack=st)
        if t == "stack_field":
            st = self.layout.stack(v[0])
            j = self._field_pos(st.headers[0], v[1])
            h = st.headers[0]
            code = f"F[{st.base + j} + (F[{st.next_slot}] - 1) * {st.stride}]"
            return self._signed(code, h.widths[j], h.signed[j])
        if t == "register":
            reg = self.p.registers.get(v[0])
            if reg is None:
                raise self.err(f"unknown register array '{v[0]}'")
            idx = self.data(v[1])
            cells = self.const(reg.cells, "R")
            return Val(f"_rget({cells}, {idx})", "data", reg.bitwidth)
        if t == "lookahead":
            if self.ctx != "parser":
                raise self.err("lookahead outside a parser")
            return Val(f"_la(P, d, off, {int(v[0])}, {int(v[1])})", "data", int(v[1]))
        if t == "string":
            return Val(repr(v), "string")
        if t == "parameters_vector":
            return Val("(" + "".join(self.data(x) + ", " for x in v) + ")", "vector")
        if t == "expression":
            if isinstance(v, dict) and "op" not in v and "type" in v:
                return self.expr(v)       # primitive arguments are wrapped twice by p4c
            return self.op(v)
        if t in ("calculation", "counter_array", "meter_array", "register_array", "extern"):
            return Val(repr(v), t)
        raise self.err(f"unsupported expression operand type '{t}'")

    def _field_pos(self, h: HeaderInfo, fname: str) -> int:
        if fname == "$valid$":
            return h.nfields
        try:
            return h.names.index(fname)
        except ValueError:
            raise self.err(f"header '{h.name}' has no field '{fname}'") from None

    @staticmethod
    def _signed(code: str, w: int, signed: bool) -> Val:
        if signed:
            half = 1 << (w - 1)
            return Val(f"(({code} ^ {half}) - {half})", "data", None)
        return Val(code, "data", w)

    def field_read(self, hname: str, fname: str) -> Val:
        slot, w, signed = self.layout.field(hname, fname)
        return self._signed(f"F[{slot}]", w, signed)

    def data(self, node: Any) -> str:
        val = self.expr(node)
        return self.as_data(val)

    def as_data(self, val: Val) -> str:
        if val.kind == "data":
            return val.code
        if val.kind == "bool":
            return f"(1 if {val.code} else 0)"
        raise self.err(f"expected a value, got a {val.kind}")

    def truth(self, node: Any) -> str:
        val = self.expr(node)
        if val.kind == "bool":
            return val.code
        if val.kind == "data":
            return f"({val.code} != 0)"
        raise self.err(f"expected a condition, got a {val.kind}")

    def op(self, e: dict[str, Any]) -> Val:
        op = e.get("op")
        left, right = e.get("left"), e.get("right")
        if op in ("+", "-", "*", "&", "|", "^"):
            a, b = self.expr(left), self.expr(right)
            ca, cb = self.as_data(a), self.as_data(b)
            w: int | None = None
            if op == "&" and (a.width is not None or b.width is not None):
                w = min(x for x in (a.width, b.width) if x is not None)
            elif op in ("|", "^") and a.width is not None and b.width is not None:
                w = max(a.width, b.width)
            elif op == "+" and a.width is not None and b.width is not None:
                w = max(a.width, b.width) + 1
            elif op == "*" and a.width is not None and b.width is not None:
                w = a.width + b.width
            return Val(f"({ca} {op} {cb})", "data", w)
        if op in ("<<", ">>"):
            a, b = self.expr(left), self.expr(right)
            ca, cb = self.as_data(a), self.as_data(b)
            if op == ">>":
                return Val(f"({ca} >> {cb})", "data", a.width)
            if b.const is not None:
                return Val(f"({ca} << {cb})", "data", None if a.width is None else a.width + b.const)
            return Val(f"_shl({ca}, {cb})", "data", None)
        if op in ("==", "!="):
            a, b = self.expr(left), self.expr(right)
            if a.kind == "header" and b.kind == "header":
                return Val(f"({'' if op == '==' else 'not '}_heq(F, {a.code}, {b.code}, {a.header.stride}))",
                           "bool")
            if a.kind == "bool" and b.kind == "bool":
                return Val(f"({a.code} {op} {b.code})", "bool")
            return Val(f"({self.as_data(a)} {op} {self.as_data(b)})", "bool")
        if op in ("<", "<=", ">", ">="):
            return Val(f"({self.data(left)} {op} {self.data(right)})", "bool")
        if op in ("and", "or"):
            return Val(f"({self.truth(left)} {op} {self.truth(right)})", "bool")
        if op == "not":
            return Val(f"(not {self.truth(right)})", "bool")
        if op == "~":
            a = self.expr(right)
            return Val(f"(~{self.as_data(a)})", "data", None)
        if op == "valid":
            h = self.expr(right)
            if h.kind != "header":
                raise self.err("valid() of something that is not a header")
            return Val(f"(F[{self._slot(h.code, h.header.nfields)}] == 1)", "bool")
        if op == "d2b":
            return Val(f"({self.data(right)} != 0)", "bool")
        if op == "b2d":
            return Val(f"(1 if {self.truth(right)} else 0)", "data", 1)
        if op == "two_comp_mod":
            w = self.expr(right).const
            if w is None or w <= 0:
                raise self.err("two_comp_mod needs a constant width")
            half = 1 << (w - 1)
            return Val(f"((({self.data(left)} + {half}) & {_mask(w)}) - {half})", "data", None)
        if op in ("sat_cast", "usat_cast"):
            w = self.expr(right).const
            if w is None or w <= 0:
                raise self.err(f"{op} needs a constant width")
            if op == "usat_cast":
                return Val(f"min(max({self.data(left)}, 0), {_mask(w)})", "data", w)
            return Val(f"min(max({self.data(left)}, {-(1 << (w - 1))}), {(1 << (w - 1)) - 1})", "data", None)
        if op == "?":
            c = self.truth(e.get("cond"))
            a, b = self.expr(left), self.expr(right)
            if a.kind == "bool" and b.kind == "bool":
                return Val(f"({a.code} if {c} else {b.code})", "bool")
            if a.kind == "header" and b.kind == "header":
                return Val(f"({a.code} if {c} else {b.code})", "header", header=a.header)
            w = a.width if a.width is not None and b.width is not None and a.width >= b.width else b.width
            if a.width is None:
                w = None
            return Val(f"({self.as_data(a)} if {c} else {self.as_data(b)})", "data", w)
        if op == "dereference_header_stack":
            st = self.expr(left)
            if st.kind != "stack":
                raise self.err("dereference_header_stack of something that is not a stack")
            s = st.stack
            idx = self.data(right)
            return Val(f"_sidx({s.base}, {s.stride}, {s.size}, {idx})", "header", header=s.headers[0])
        if op == "last_stack_index":
            s = self.expr(right).stack
            return Val(f"(F[{s.next_slot}] - 1)", "data", None)
        if op == "size_stack":
            s = self.expr(right).stack
            return Val(f"F[{s.next_slot}]", "data", 32)
        if op == "access_field":
            h = self.expr(left)
            if h.kind != "header":
                raise self.err("access_field of something that is not a header")
            j = int(right)
            hi = h.header
            return self._signed(f"F[{self._slot(h.code, j)}]", hi.widths[j], hi.signed[j])
        raise self.err(f"unsupported expression operator '{op}'")

    @staticmethod
    def _slot(base_code: str, j: int) -> str:
        try:
            return str(int(base_code) + j)
        except ValueError:
            return f"{base_code} + {j}"

    # ---- stores ----
    def lvalue(self, node: Any) -> tuple[str, int]:
        """(slot expression, bitwidth) of an assignable field."""
        t = node.get("type")
        v = node.get("value")
        if t == "field":
            slot, w, _ = self.layout.field(v[0], v[1])
            if v[1] == "$valid$":
                raise self.err("cannot assign to $valid$")
            return str(slot), w
        if t == "stack_field":
            st = self.layout.stack(v[0])
            j = self._field_pos(st.headers[0], v[1])
            return f"{st.base + j} + (F[{st.next_slot}] - 1) * {st.stride}", st.headers[0].widths[j]
        if t == "expression":
            e = v
            if "op" not in e and "type" in e:
                return self.lvalue(e)
            if e.get("op") == "access_field":
                h = self.expr(e["left"])
                j = int(e["right"])
                return self._slot(h.code, j), h.header.widths[j]
            raise self.err(f"cannot assign to an expression with operator '{e.get('op')}'")
        raise self.err(f"cannot assign to a '{t}'")

    def store(self, node: Any, val: Val) -> list[str]:
        slot, w = self.lvalue(node)
        code = self.as_data(val)
        if val.width is not None and val.width <= w:
            return [f"F[{slot}] = {code}"]
        return [f"F[{slot}] = {code} & {_mask(w)}"]

    def header_ref(self, node: Any) -> Val:
        val = self.expr(node)
        if val.kind != "header":
            raise self.err(f"expected a header, got a {val.kind}")
        return val
