"""Source generation for BMv2 action primitives (core ones and simple_switch's v1model ones).

Each primitive becomes a few Python statements over ``P`` (packet context), ``F`` (PHV) and
``A`` (action data). Side effects that act after a pipeline (clone, resubmit, recirculate,
digest, truncate) only set attributes of ``P``; the packet path in `pipeline` acts on them, as
simple_switch does with its packet registers.
"""

from __future__ import annotations

from typing import Any

from .exprs import ExprGen, Val

__all__ = ["gen_primitive"]


def _index(g: ExprGen, node: Any, size: int) -> tuple[str, str | None]:
    """(index expression, bounds condition or None when the index always fits)."""
    val = g.expr(node)
    code = g.as_data(val)
    if val.const is not None:
        return code, (None if 0 <= val.const < size else "False")
    if val.width is not None:
        if (1 << val.width) <= size:
            return code, None
        return code, f"{{i}} < {size}"
    return code, f"0 <= {{i}} < {size}"


def _guarded(g: ExprGen, node: Any, size: int, body: list[str]) -> list[str]:
    """`body` (using the name `_IDX_`) run only when the index is inside [0, size)."""
    code, cond = _index(g, node, size)
    if cond is None:
        return [s.replace("_IDX_", f"({code})" if not code.isidentifier() and "[" not in code else code)
                for s in body]
    i = g.tmp("i")
    return [f"{i} = {code}", f"if {cond.format(i=i)}:", *("    " + s.replace("_IDX_", i) for s in body)]


def gen_primitive(g: ExprGen, prim: dict[str, Any]) -> list[str]:
    """Python statements for one primitive call (jumps are handled by the action generator)."""
    op = prim.get("op")
    ps = prim.get("parameters", [])
    lay = g.layout
    trace = g.trace
    out: list[str] = []
    if trace:
        src = (prim.get("source_info") or {}).get("source_fragment")
        out.append(f"LOG(P, {('Primitive ' + (src or op))!r})")
    if op in ("assign", "modify_field"):
        dst, src = ps[0], ps[1]
        sval = g.expr(src)
        if sval.kind == "header":
            return out + _assign_header(g, g.header_ref(dst), sval)
        return out + g.store(dst, sval)
    if op == "assign_header" or op == "copy_header":
        return out + _assign_header(g, g.header_ref(ps[0]), g.header_ref(ps[1]))
    if op == "assign_header_stack":
        d, s = g.expr(ps[0]).stack, g.expr(ps[1]).stack
        n = d.size * d.stride
        return out + [f"F[{d.base}:{d.base + n}] = F[{s.base}:{s.base + n}]",
                      f"F[{d.next_slot}] = F[{s.next_slot}]"]
    if op in ("add_header", "setValid", "add_header_fast"):
        h = g.header_ref(ps[0])
        info = h.header
        b = g.tmp("b")
        lines = [f"{b} = {h.code}", f"if not F[{b} + {info.nfields}]:"]
        if op != "add_header_fast":
            lines.append(f"    F[{b}:{b} + {info.nfields}] = {[0] * info.nfields!r}")
        lines += [f"    F[{b} + {info.nfields}] = 1"]
        if not info.metadata:
            lines.append(f"    P.length += {info.nbytes}")
        return out + lines
    if op in ("remove_header", "setInvalid"):
        h = g.header_ref(ps[0])
        info = h.header
        b = g.tmp("b")
        lines = [f"{b} = {h.code}", f"if F[{b} + {info.nfields}]:", f"    F[{b} + {info.nfields}] = 0"]
        if not info.metadata:
            lines.append(f"    P.length -= {info.nbytes}")
        return out + lines
    if op in ("push", "pop"):
        st = g.expr(ps[0]).stack
        n = g.data(ps[1])
        fn = "_push" if op == "push" else "_pop"
        return out + [f"{fn}(F, {st.base}, {st.stride}, {st.size}, {st.next_slot}, {n})"]
    if op in ("mark_to_drop", "drop"):
        es = lay.intrinsic("egress_spec")
        mg = lay.intrinsic("mcast_grp")
        lines = [f"F[{es if es is not None else lay.scratch}] = 511"]
        if mg is not None:
            lines.append(f"F[{mg}] = 0")
        return out + lines
    if op == "exit":
        return out + ["P.exit = True", "return"]
    if op == "no_op":
        return out + ["pass"]
    if op == "register_read":
        reg = _obj(g, g.p.registers, ps[1], "register array")
        cells = g.const(reg.cells, "R")
        return out + _guarded(g, ps[2], reg.size,
                              g.store(ps[0], Val(f"{cells}[_IDX_]", "data", reg.bitwidth)))
    if op == "register_write":
        reg = _obj(g, g.p.registers, ps[0], "register array")
        cells = g.const(reg.cells, "R")
        val = g.expr(ps[2])
        code = g.as_data(val)
        if val.width is None or val.width > reg.bitwidth:
            code = f"{code} & {reg.mask}"
        return out + _guarded(g, ps[1], reg.size, [f"{cells}[_IDX_] = {code}"])
    if op == "count":
        if ps[0].get("value") in g.p.direct_names:
            return out + ["pass"]        # direct counters count on table hits by themselves
        ctr = _obj(g, g.p.counters, ps[0], "counter array")
        cp, cb = g.const(ctr.packets, "CP"), g.const(ctr.bytes, "CB")
        return out + _guarded(g, ps[1], ctr.size, [f"{cp}[_IDX_] += 1", f"{cb}[_IDX_] += P.in_len"])
    if op == "execute_meter":
        if ps[0].get("value") in g.p.direct_names:
            return out + ["pass"]        # direct meters run on table hits (result_target)
        m = _obj(g, g.p.meters, ps[0], "meter array")
        cells = g.const(m.cells, "M")
        size = "1" if m.unit == "packets" else "P.in_len"
        return out + _guarded(g, ps[1], m.size,
                              g.store(ps[2], Val(f"{cells}[_IDX_].execute(P.ts, {size})", "data", 2)))
    if op == "modify_field_with_hash_based_offset":
        calc = g.p._calc_name(ps[2]["value"])
        base, size = g.data(ps[1]), g.data(ps[3])
        h = g.tmp("h")
        return out + [f"{h} = {calc}(P, F)", f"{h} = {h} % {size} if {size} else {h}",
                      *g.store(ps[0], Val(f"({base} + {h})", "data", None))]
    if op == "modify_field_rng_uniform":
        return out + g.store(ps[0], Val(f"_randint({g.data(ps[1])}, {g.data(ps[2])})", "data", None))
    if op == "generate_digest":
        return out + [f"P.digest = {g.data(ps[1])}"]
    if op in ("clone_ingress_pkt_to_egress", "clone_egress_pkt_to_egress"):
        fl = g.data(ps[1]) if len(ps) > 1 else "0"
        return out + [f"P.clone = {g.data(ps[0])}", f"P.clone_fl = {fl}"]
    if op in ("resubmit", "resubmit_preserving_field_list"):
        return out + [f"P.resubmit = {g.data(ps[0]) if ps else '0'}"]
    if op in ("recirculate", "recirculate_preserving_field_list"):
        return out + [f"P.recirculate = {g.data(ps[0]) if ps else '0'}"]
    if op == "truncate":
        return out + [f"P.trunc = {g.data(ps[0])}"]
    if op == "log_msg":
        if not trace:
            return ["pass"]
        fmt = g.expr(ps[0])
        vec = g.expr(ps[1]) if len(ps) > 1 else Val("()", "vector")
        return out + [f"LOG(P, _fmt({fmt.code}, {vec.code}))"]
    if op in ("assert", "assume"):
        c = g.truth(ps[0])
        return out + [f"if not {c}:", f"    raise _AssertionFailed({(op + ' failed in ' + g.where)!r})"]
    if op in ("add_to_field", "subtract_from_field"):
        slot, w = g.lvalue(ps[0])
        sign = "+" if op == "add_to_field" else "-"
        return out + [f"F[{slot}] = (F[{slot}] {sign} {g.data(ps[1])}) & {(1 << w) - 1}"]
    if op in ("add", "subtract", "bit_and", "bit_or", "bit_xor", "shift_left", "shift_right"):
        sym = {"add": "+", "subtract": "-", "bit_and": "&", "bit_or": "|", "bit_xor": "^",
               "shift_left": "<<", "shift_right": ">>"}[op]
        return out + g.store(ps[0], Val(f"({g.data(ps[1])} {sym} {g.data(ps[2])})", "data", None))
    raise g.err(f"unsupported primitive '{op}'")


def _obj(g: ExprGen, table: dict[str, Any], node: dict[str, Any], what: str) -> Any:
    name = node.get("value")
    obj = table.get(name)
    if obj is None:
        raise g.err(f"unknown {what} '{name}'")
    return obj


def _assign_header(g: ExprGen, dst: Val, src: Val) -> list[str]:
    n = dst.header.stride
    if src.header.stride != n:
        raise g.err("assign_header between headers of different types")
    d, s = g.tmp("d"), g.tmp("s")
    return [f"{d} = {dst.code}", f"{s} = {src.code}", f"F[{d}:{d} + {n}] = F[{s}:{s} + {n}]"]
