"""Lowering of the P4 parser to a BMv2 parse graph (parse_states, parser_ops, transition keys).

Select keys are fields, stack fields or lookaheads (other expressions are first ``set`` into a scalar
temporary); case values and masks are the concatenation of the byte-padded key widths, as BMv2 wants.
Range keysets are expanded into value/mask pairs. ``accept`` and ``reject`` both end parsing
(``next_state`` null), like p4c-bm2-ss for v1model.
"""
from __future__ import annotations

import logging
from typing import Any

from . import ast as A
from .errors import CompileError, unsupported
from .layout import HeaderStore, ScalarStore, StackStore
from .lower import ex, field_ref, hexstr, hexv, to_data, top
from .names import expr_str
from .types import BitsT, StackT, width_of

Json = dict[str, Any]
log = logging.getLogger(__name__)
MAX_RANGE_EXPANSION = 64


def range_to_masks(lo: int, hi: int, w: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] with aligned power-of-two blocks: list of (value, mask)."""
    out = []
    full = (1 << w) - 1
    while lo <= hi:
        size = lo & -lo if lo else 1 << w
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return out


def lower_parser(em: Any, decl: A.ParserDecl) -> tuple[Json, list[Json]]:
    ctx = em.ctx()
    ctx.in_parser = True
    states: list[Json] = []
    names = {st.name for st in decl.states}
    nomatch = False
    for st in decl.states:
        _warn_reject(st.transition, st.loc)
        _state(ctx, st.name, list(st.stmts), st.transition, states, names)
        nomatch = nomatch or _needs_nomatch(st)
    if nomatch:
        code = em.c.errors.get("NoMatch", 2)
        states.append({"name": "noMatch", "id": len(states),
                       "parser_ops": [{"parameters": [_bool_expr(False), hexv(code, 32)], "op": "verify"}],
                       "transitions": [{"type": "default", "value": None, "mask": None, "next_state": None}],
                       "transition_key": []})
    return {"name": "parser", "id": 0, "init_state": "start", "parse_states": states}, []


def _needs_nomatch(st: A.ParserState) -> bool:
    return _select_needs_nomatch(st.transition)


def _select_needs_nomatch(tr: Any) -> bool:
    if not isinstance(tr, A.Select):
        return False
    for c in tr.cases:
        items = c.keyset.items if isinstance(c.keyset, A.ListExpr) else [c.keyset]
        if all(isinstance(i, A.Default) for i in items):
            return False
    return True


def _state(ctx: Any, name: str, stmts: list[A.Stmt], tr: Any, states: list[Json], names: set[str]) -> None:
    """Emit one parse state; an 'if' splits it (condition into a temporary, branch and join states)."""
    ops: list[Json] = []
    js: Json = {"name": name, "id": len(states), "parser_ops": ops, "transitions": [], "transition_key": []}
    states.append(js)
    flat = _flat_parser(stmts)
    for i, s in enumerate(flat):
        if isinstance(s, A.If):
            def fresh(base: str) -> str:
                n, k = base, 0
                while n in names:
                    n = f"{base}_{k}"
                    k += 1
                names.add(n)
                return n
            join = fresh(f"{name}_join")
            t_state = fresh(f"{name}_true")
            f_state = fresh(f"{name}_false") if s.other is not None else join
            tmp = ctx.layout.temp(BitsT(1), "tmp")
            ops.append(_set_op(field_ref(tmp), to_data(ctx.rv(s.cond), s.cond.ty)))
            js["transition_key"] = [field_ref(tmp)]
            js["transitions"] = [{"type": "hexstr", "value": "0x01", "mask": None, "next_state": t_state},
                                 {"type": "default", "value": None, "mask": None, "next_state": f_state}]
            goto_join = A.Name(s.loc, name=join)
            _state(ctx, t_state, [s.then], goto_join, states, names)
            if s.other is not None:
                _state(ctx, f_state, [s.other], goto_join, states, names)
            _state(ctx, join, flat[i + 1:], tr, states, names)
            return
        _stmt(ctx, s, ops)
    if isinstance(tr, A.Name):
        js["transitions"].append({"type": "default", "value": None, "mask": None, "next_state": _next(tr.name)})
    else:
        widths = []
        for e in tr.exprs:
            js["transition_key"].append(_key(ctx, e, ops))
            widths.append(width_of(e.ty))
        for case in tr.cases:
            js["transitions"] += _cases(case, widths)
        if _select_needs_nomatch(tr):
            js["transitions"].append({"type": "default", "value": None, "mask": None, "next_state": "noMatch"})


def _flat_parser(stmts: list[A.Stmt]) -> list[A.Stmt]:
    out: list[A.Stmt] = []
    for s in stmts:
        if isinstance(s, A.Block):
            out += _flat_parser(s.stmts)
        else:
            out.append(s)
    return out


def _bool_expr(v: bool) -> Json:
    """A constant condition as an expression (verify wants an expression, not a bare bool)."""
    return ex("not", None, {"type": "bool", "value": not v})


def _next(name: str) -> str | None:
    return None if name in ("accept", "reject") else name


def _warn_reject(tr: Any, loc: Any) -> None:
    names = [tr.name] if isinstance(tr, A.Name) else [c.state for c in tr.cases] if isinstance(tr, A.Select) else []
    if "reject" in names:
        # as p4c for v1model: parsing ends and the packet still goes to ingress
        log.warning("%s: warning: explicit transition to reject ends parsing; v1model still runs ingress", loc)


def _key(ctx: Any, e: A.Expr, ops: list[Json]) -> Json:
    v = ctx.rv(e)
    if v["type"] in ("field", "stack_field", "lookahead"):
        return v
    if v["type"] == "expression" and v["value"]["op"] == "d2b" and v["value"]["right"]["type"] == "field":
        return v["value"]["right"]
    tmp = ctx.layout.temp(e.ty, "tmp")
    ops.append(_set_op(field_ref(tmp), to_data(v, e.ty)))
    return field_ref(tmp)


def _cases(case: A.SelectCase, widths: list[int]) -> list[Json]:
    ks = case.keyset
    nxt = _next(case.state)
    if isinstance(ks, A.Default):
        return [{"type": "default", "value": None, "mask": None, "next_state": nxt}]
    items = ks.items if isinstance(ks, A.ListExpr) else [ks]
    if all(isinstance(i, A.Default) for i in items):
        return [{"type": "default", "value": None, "mask": None, "next_state": nxt}]
    # each element: list of (value, mask) alternatives
    alts: list[list[tuple[int, int]]] = []
    for it, w in zip(items, widths, strict=True):
        full = (1 << w) - 1
        if isinstance(it, A.Default):
            alts.append([(0, 0)])
        elif isinstance(it, A.Binary) and it.op == "&&&":
            m = int(it.right.const) & full
            alts.append([(int(it.left.const) & m, m)])
        elif isinstance(it, A.Binary) and it.op == "..":
            lo, hi = int(it.left.const) & full, int(it.right.const) & full
            if lo > hi:
                raise CompileError("empty range in select case", it.loc)
            alts.append(range_to_masks(lo, hi, w))
        else:
            alts.append([(int(it.const) & full, full)])
    combos: list[list[tuple[int, int]]] = [[]]
    for a in alts:
        combos = [c + [x] for c in combos for x in a]
        if len(combos) > MAX_RANGE_EXPANSION:
            raise unsupported("select ranges that expand to more than 64 value/mask pairs", case.loc)
    out = []
    for combo in combos:
        value = "".join(hexstr(v, w)[2:] for (v, _), w in zip(combo, widths, strict=True))
        masked = any(m != (1 << w) - 1 for (_, m), w in zip(combo, widths, strict=True))
        mask = "".join(hexstr(m, w)[2:] for (_, m), w in zip(combo, widths, strict=True))
        out.append({"type": "hexstr", "value": "0x" + value, "mask": ("0x" + mask) if masked else None,
                    "next_state": nxt})
    return out


def _stmt(ctx: Any, s: A.Stmt, ops: list[Json]) -> None:
    if isinstance(s, A.Block):
        for x in s.stmts:
            _stmt(ctx, x, ops)
        return
    if isinstance(s, A.Empty):
        return
    if isinstance(s, A.VarDecl):
        if s.is_const or s.init is None:
            ctx.var_store(s.sym) if not s.is_const else None
            return
        dst = ctx.var_store(s.sym)
        _set(ctx, dst, s.init, s, ops)
        return
    if isinstance(s, A.Assign):
        dst = ctx.store(s.lhs)
        if dst is None:
            raise unsupported(f"assignment to '{expr_str(s.lhs)}' in a parser", s.loc)
        _set(ctx, dst, s.rhs, s, ops)
        return
    if isinstance(s, A.CallStmt):
        c = s.call
        f = c.func
        if isinstance(f, A.Member) and f.name == "extract":
            arg = c.args[0]
            if isinstance(arg, A.Member) and arg.name == "next" and isinstance(arg.expr.ty, StackT):
                st = ctx.store(arg.expr)
                assert isinstance(st, StackStore)
                ops.append({"parameters": [{"type": "stack", "value": st.name}], "op": "extract"})
                return
            h = ctx.store(arg)
            if not isinstance(h, HeaderStore):
                raise unsupported(f"extract into '{expr_str(arg)}'", arg.loc)
            ops.append({"parameters": [{"type": "regular", "value": h.inst}], "op": "extract"})
            return
        if isinstance(f, A.Member) and f.name == "advance":
            ops.append({"parameters": [top(ctx.rv(c.args[0]))], "op": "advance"})
            return
        if isinstance(f, A.Name) and f.name == "verify":
            cond = ctx.rv(c.args[0])
            if cond["type"] == "bool":
                cond = _bool_expr(bool(cond["value"]))
            ops.append({"parameters": [cond, hexv(int(c.args[1].const), 32)], "op": "verify"})
            return
        prims: list[Json] = []
        ctx.call_stmt(s, prims)
        for p in prims:
            ops.append({"parameters": [{"op": p["op"], "parameters": p["parameters"]}], "op": "primitive"})
        return
    raise unsupported(f"statement {type(s).__name__} in a parser", s.loc)


def _set(ctx: Any, dst: Any, rhs: A.Expr, s: A.Stmt, ops: list[Json]) -> None:
    if isinstance(dst, ScalarStore):
        v = ctx.rv(rhs)
        if v["type"] == "stack_field":      # 'set' takes a field, hexstr, lookahead or expression
            v = ex("&", v, hexv((1 << width_of(rhs.ty)) - 1, width_of(rhs.ty)))
        ops.append(_set_op(field_ref(dst), to_data(v, rhs.ty)))
        return
    prims: list[Json] = []
    ctx.assign_store(dst, rhs, s, prims)
    for p in prims:
        if p["op"] == "assign":
            ops.append(_set_op(p["parameters"][0], p["parameters"][1]))
        else:
            ops.append({"parameters": [{"op": p["op"], "parameters": p["parameters"]}], "op": "primitive"})


def _set_op(dst: Json, v: Json) -> Json:
    """A parser ``set`` op. As p4c (ParserConverter, ``convert(rhs, wrap=true)``) an expression source is
    wrapped once more: BMv2 builds the expression from the source's ``value``, which must itself be a
    typed node, so a single-wrapped ``{"op": ...}`` would not load in simple_switch."""
    return {"parameters": [dst, top(v)], "op": "set"}
