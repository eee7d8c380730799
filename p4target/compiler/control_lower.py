"""Lowering of ingress/egress controls to BMv2 pipelines: tables, hidden tables and conditionals.

Built in continuation style: statements are lowered last to first, each node knowing its successor;
straight-line code becomes hidden tables (``tbl_act``/``tbl_<action>``), ``if`` becomes conditionals
``node_<n>``, table applies get per-action or hit/miss ``next_tables``; sub-controls are inlined.
"""
from __future__ import annotations

from typing import Any, Protocol

from . import ast as A
from .check_tables import TableInfo
from .errors import CompileError, unsupported
from .layout import HeaderStore, Layout, ScalarStore
from .lower import Ctx, ex, field_ref, hexstr, top
from .names import expr_str
from .types import ActionSym, BoolT, InstanceSym, ObjT, TableSym, width_of

Json = dict[str, Any]


class Emitter(Protocol):
    """What a pipeline builder uses of the program emitter (``bmv2.Emitter``, which imports this
    module: naming it here instead keeps the two modules out of an import cycle)."""

    layout: Layout
    names: set[str]
    node_id: int
    table_id: int
    tables_used: list[TableSym]
    table_binding: dict[int, str]
    binding_size: dict[str, int]

    def ctx(self) -> Ctx: ...
    def unique(self, base: str) -> str: ...
    def table_action(self, sym: ActionSym, env: dict[int, Any] | None = None,
                     bound: list[A.Expr] | None = None) -> Json: ...
    def synthetic_action(self, prims: list[Json]) -> Json: ...


def source_info(loc: Any, frag: str) -> Json:
    return {"filename": loc.file, "line": loc.line, "column": loc.col, "source_fragment": frag}


def flatten_blocks(stmts: list[A.Stmt]) -> list[A.Stmt]:
    """The statements with nested blocks spliced in (scoping is already resolved by the checker)."""
    out: list[A.Stmt] = []
    for s in stmts:
        if isinstance(s, A.Block):
            out += flatten_blocks(s.stmts)
        else:
            out.append(s)
    return out


def _is_apply(e: A.Expr) -> TableSym | None:
    if isinstance(e, A.Call) and isinstance(e.func, A.Member) and e.func.name == "apply" \
            and isinstance(e.func.expr.ref, TableSym):
        return e.func.expr.ref
    return None


def _sub_apply(e: A.Expr) -> InstanceSym | None:
    if isinstance(e, A.Call) and isinstance(e.func, A.Member) and e.func.name == "apply" \
            and isinstance(e.func.expr.ref, InstanceSym) and getattr(e.func.expr.ref, "sub", None) is not None:
        return e.func.expr.ref
    return None


def _contains_apply(e: Any) -> bool:
    if isinstance(e, A.Call) and _is_apply(e):
        return True
    for v in getattr(e, "__dict__", {}).values():
        if isinstance(v, A.Expr) and _contains_apply(v):
            return True
        if isinstance(v, list) and any(isinstance(x, A.Expr) and _contains_apply(x) for x in v):
            return True
    return False


class PipelineBuilder:
    """Builds one pipeline's control-flow graph in continuation style (statements in reverse)."""

    def __init__(self, em: Emitter, decl: A.ControlDecl) -> None:
        self.em = em
        self.decl = decl
        self.ctx = em.ctx()
        self.tables: list[Json] = []
        self.conds: list[Json] = []
        self.ret: list[str | None] = [None]      # where 'return' continues (per inlined control)

    def block(self, stmts: list[A.Stmt], nxt: str | None) -> str | None:
        flat = flatten_blocks(stmts)
        for i, s in enumerate(flat):
            if isinstance(s, A.Exit):
                flat = flat[: i + 1]
                nxt = None
                break
            if isinstance(s, A.Return):
                flat = flat[:i]
                nxt = self.ret[-1]
                break
        cur = nxt
        pending: list[A.Stmt] = []
        for s in reversed(flat):
            if self.is_simple(s):
                pending.insert(0, s)
                continue
            cur = self.flush(pending, cur)
            pending = []
            cur = self.control(s, cur)
        return self.flush(pending, cur)

    @staticmethod
    def is_simple(s: A.Stmt) -> bool:
        if isinstance(s, (A.Assign, A.VarDecl, A.Exit, A.Empty)):
            return True
        if isinstance(s, A.CallStmt):
            return _is_apply(s.call) is None and _sub_apply(s.call) is None
        return False

    def direct_call(self, s: A.Stmt) -> ActionSym | None:
        """A direct action call that becomes its own tbl_<action> (constant action data only)."""
        if isinstance(s, A.CallStmt) and isinstance(s.call.func, A.Name) and isinstance(s.call.func.ref, ActionSym):
            sym = s.call.func.ref
            if all(not p.direction for p in sym.decl.params) and all(a.const is not None for a in s.call.args):
                return sym
        return None

    def flush(self, pending: list[A.Stmt], nxt: str | None) -> str | None:
        groups: list[list[A.Stmt]] = []
        for s in pending:
            if isinstance(s, A.Empty):
                continue
            if self.direct_call(s) is not None:
                groups.append([s])
                groups.append([])
            else:
                if not groups:
                    groups.append([])
                groups[-1].append(s)
        cur = nxt
        for g in reversed([g for g in groups if g]):
            sym = self.direct_call(g[0]) if len(g) == 1 else None
            if sym is not None:
                act = self.em.table_action(sym, self.ctx.env)
                data = [hexstr(a.const if not isinstance(a.ty, BoolT) else int(a.const), width_of(a.ty))
                        for a in g[0].call.args]
                cur = self.hidden_table(f"tbl_{sym.decl.name}", act, data, cur, g[0])
            else:
                prims: list[Json] = []
                self.ctx.stmts(g, prims)
                act = self.em.synthetic_action(prims)
                cur = self.hidden_table(f"tbl_{act['name']}", act, [], cur, g[0])
        return cur

    def hidden_table(self, base: str, act: Json, data: list[str], nxt: str | None, node: A.Stmt) -> str:
        name = self.em.unique(base)
        self.tables.append({
            "name": name, "id": self._tid(), "source_info": source_info(node.loc, ""),
            "key": [], "match_type": "exact", "type": "simple", "max_size": 1024,
            "with_counters": False, "support_timeout": False, "direct_meters": None,
            "action_ids": [act["id"]], "actions": [act["name"]], "base_default_next": nxt,
            "next_tables": {act["name"]: nxt},
            "default_entry": {"action_id": act["id"], "action_const": True, "action_data": data,
                              "action_entry_const": True}})
        return name

    def _tid(self) -> int:
        self.em.table_id += 1
        return self.em.table_id - 1

    def control(self, s: A.Stmt, nxt: str | None) -> str | None:
        if isinstance(s, A.CallStmt) and _sub_apply(s.call) is not None:
            return self.sub_apply(s, _sub_apply(s.call), nxt)
        if isinstance(s, A.CallStmt):
            t = _is_apply(s.call)
            assert t is not None
            return self.table(t, None, nxt)
        if isinstance(s, A.If):
            return self.if_stmt(s, nxt)
        if isinstance(s, A.Switch) and not isinstance(s.expr.ty, ObjT):
            return self.value_switch(s, nxt)
        if isinstance(s, A.Switch):
            t = s.expr.ref
            tinfo: TableInfo = t.info
            per_action: dict[str, str | None] = {}
            default_next = nxt
            labels: list[A.Expr | None] = []
            for case in s.cases:
                labels.append(case.label)
                if case.body is None:
                    continue
                entry = self.block(case.body.stmts, nxt)
                for lb in labels:
                    if lb is None:
                        default_next = entry
                    else:
                        per_action[lb.ref.fqname] = entry
                labels = []
            for lb in labels:      # trailing labels without a body fall out of the switch
                if lb is not None:
                    per_action[lb.ref.fqname] = nxt
            nexts = {a.fqname: per_action.get(a.fqname, default_next) for a, _, _ in tinfo.actions}
            return self.table(t, nexts, nxt)
        raise unsupported(f"statement {type(s).__name__} in a control", s.loc)

    def sub_apply(self, s: A.CallStmt, inst: InstanceSym, nxt: str | None) -> str | None:
        """Inline a sub-control: its parameters alias the arguments (in-expressions are copied)."""
        sub = inst.sub
        ctx = self.ctx
        saved = ctx.env
        env = dict(saved)
        prims: list[Json] = []
        for p, a in zip(sub.params, s.call.args, strict=True):
            psym = sub._param_syms[p.name]
            st = ctx.store(a)
            if a.const is not None or (st is not None and not (p.direction in ("in", "")
                                                                and isinstance(st, ScalarStore))):
                env[id(psym)] = ("expr", a, saved)
            elif p.direction in ("in", ""):
                tmp = self.em.layout.temp(psym.type, p.name)
                ctx.assign_store(tmp, a, s, prims)
                env[id(psym)] = ("store", tmp)
            else:
                raise unsupported(f"argument '{expr_str(a)}' for {p.direction} parameter {p.name}", a.loc)
        ctx.env = env
        self.ret.append(nxt)
        try:
            entry = self.block(sub.body.stmts, nxt)
        finally:
            ctx.env = saved
            self.ret.pop()
        if prims:
            act = self.em.synthetic_action(prims)
            entry = self.hidden_table(f"tbl_{act['name']}", act, [], entry, s)
        return entry

    def value_switch(self, s: A.Switch, nxt: str | None) -> str | None:
        """switch on a bit-string/enum value: a chain of equality conditionals."""
        groups: list[tuple[list[A.Expr | None], str | None]] = []
        labels: list[A.Expr | None] = []
        for case in s.cases:
            labels.append(case.label)
            if case.body is not None:
                groups.append((labels, self.block(case.body.stmts, nxt)))
                labels = []
        if labels:
            groups.append((labels, nxt))
        default = nxt
        for lbls, entry in groups:
            if None in lbls:
                default = entry
        cur = default
        for lbls, entry in reversed(groups):
            for lb in reversed([x for x in lbls if x is not None]):
                cid = self.em.node_id
                self.em.node_id += 1
                name = f"node_{cid}"
                self.em.names.add(name)
                self.conds.append({"name": name, "id": cid, "source_info": source_info(lb.loc, expr_str(lb)),
                                   "expression": ex("==", self.ctx.data(s.expr), self.ctx.rv(lb)),
                                   "true_next": entry, "false_next": cur})
                cur = name
        return cur

    def if_stmt(self, s: A.If, nxt: str | None) -> str | None:
        if s.cond.const is not None:
            if s.cond.const:
                return self.block([s.then], nxt)
            return self.block([s.other], nxt) if s.other is not None else nxt
        then_e = self.block([s.then], nxt)
        else_e = self.block([s.other], nxt) if s.other is not None else nxt
        return self.cond(s.cond, then_e, else_e)

    def cond(self, c: A.Expr, t: str | None, f: str | None) -> str | None:
        """Entry node evaluating c, continuing at t or f; table applies in c become hit/miss branches
        (&&, || and ! are split into a graph so each table is applied once)."""
        if not _contains_apply(c):
            cid = self.em.node_id
            name = f"node_{cid}"
            self.em.node_id += 1
            self.em.names.add(name)
            pre: list[Json] = []            # pure functions called in c, inlined ahead of the test
            saved, self.ctx.hoist_out = self.ctx.hoist_out, pre
            try:
                expr = self.ctx.rv(c)
            finally:
                self.ctx.hoist_out = saved
            self.conds.append({"name": name, "id": cid, "source_info": source_info(c.loc, expr_str(c)[:80]),
                               "expression": expr, "true_next": t, "false_next": f})
            if pre:
                act = self.em.synthetic_action(pre)
                return self.hidden_table(f"tbl_{act['name']}", act, [], name, c)
            return name
        if isinstance(c, A.Unary) and c.op == "!":
            return self.cond(c.expr, f, t)
        if isinstance(c, A.Binary) and c.op == "&&":
            return self.cond(c.left, self.cond(c.right, t, f), f)
        if isinstance(c, A.Binary) and c.op == "||":
            return self.cond(c.left, t, self.cond(c.right, t, f))
        if isinstance(c, A.Member) and c.name in ("hit", "miss") and _is_apply(c.expr):
            table = _is_apply(c.expr)
            assert table is not None
            if c.name == "miss":
                t, f = f, t
            return self.table(table, {"__HIT__": t, "__MISS__": f}, None)
        raise unsupported("table apply inside this expression (use t.apply().hit/.miss with !, &&, ||)", c.loc)

    def table(self, t: TableSym, nexts: dict[str, str | None] | None, nxt: str | None) -> str:
        info: TableInfo = t.info
        em = self.em
        keys = []
        pre: list[Json] = []
        for kexpr, mk, kname in info.keys:
            keys.append(self.key(kexpr, mk, kname, pre))
        kinds = {mk for _, mk, _ in info.keys}
        match_type = "range" if "range" in kinds else "ternary" if kinds & {"ternary", "optional"} else \
            "lpm" if "lpm" in kinds else "exact"
        bound = {id(a): _bound_args(a, ref) for a, _, ref in info.actions}
        acts = [em.table_action(a, self.ctx.env, bound[id(a)]) for a, _, _ in info.actions]
        if nexts is None:
            nexts = {a["name"]: nxt for a in acts}
        size = info.size if info.size is not None else 1024
        tj: Json = {
            "name": t.fqname, "id": self._tid(), "source_info": source_info(t.decl.loc, t.name),
            "key": keys, "match_type": match_type, "type": "simple", "max_size": size,
            "with_counters": info.counters is not None, "support_timeout": info.timeout,
            "direct_meters": info.meters.fqname if info.meters is not None else None,
            "action_ids": [a["id"] for a in acts], "actions": [a["name"] for a in acts],
            "base_default_next": nexts.get("__MISS__", nxt) if "__MISS__" in nexts else nxt,
            "next_tables": nexts,
        }
        if info.default is not None:
            dsym, dargs, dconst = info.default
            dact = em.table_action(dsym, self.ctx.env, bound.get(id(dsym)))
            tj["default_entry"] = {
                "action_id": dact["id"], "action_const": dconst,
                "action_data": [hexstr(int(a.const), width_of(a.ty)) for a in _data_args(dsym, dargs)],
                "action_entry_const": dconst}
        if info.entries is not None:
            tj["entries"] = self.entries(info, match_type, bound)
        for res in (info.counters, info.meters):
            if res is not None:
                if id(res) in em.table_binding:
                    raise CompileError(f"{res.fqname}: direct resource attached to two tables", t.decl.loc)
                em.table_binding[id(res)] = t.fqname
        em.binding_size[t.fqname] = size
        em.tables_used.append(t)
        em.names.add(t.fqname)
        self.tables.append(tj)
        if pre:
            act = em.synthetic_action(pre)
            return self.hidden_table(f"tbl_{act['name']}", act, [], t.fqname, t.decl)
        return t.fqname

    def key(self, e: A.Expr, mk: str, kname: str, pre: list[Json]) -> Json:
        # simple_switch knows exact/lpm/ternary/range/valid only: p4c implements `optional` as ternary
        # (P4Info keeps OPTIONAL; the P4Runtime server sends all-ones or zero masks)
        jmk = "ternary" if mk == "optional" else mk
        if isinstance(e, A.Call) and isinstance(e.func, A.Member) and e.func.name == "isValid":
            h = self.ctx.store(e.func.expr)
            if isinstance(h, HeaderStore):
                return {"match_type": jmk, "name": kname, "target": [h.inst, "$valid$"], "mask": None}
        s = self.ctx.store(e)
        if isinstance(s, ScalarStore):
            return {"match_type": jmk, "name": kname, "target": [s.inst, s.field], "mask": None}
        tmp = self.em.layout.temp(e.ty, "key")
        pre.append({"op": "assign", "parameters": [field_ref(tmp), top(self.ctx.data(e))],
                    "source_info": source_info(e.loc, kname)})
        return {"match_type": jmk, "name": kname, "target": [tmp.inst, tmp.field], "mask": None}

    @staticmethod
    def _entry_priority(info: TableInfo, i: int) -> int:
        """BMv2 priority of const entry ``i``: a smaller value wins. Without explicit priorities the first
        entry wins (1, 2, ...); explicit ``priority = N`` values are inverted when the largest wins
        (``largest_priority_wins``, true by default) so that simple_switch keeps the P4 order."""
        ents = info.entries or []
        explicit = [e.priority for e in ents if e.priority is not None]
        if not explicit:
            return i + 1
        if len(explicit) != len(ents):
            raise unsupported("const entries with priorities on some entries only", ents[i].loc)
        prios = [int(e.priority.const) for e in ents]
        return (max(prios) + 1 - prios[i]) if info.largest_priority_wins else prios[i]

    def entries(self, info: TableInfo, match_type: str, bound: dict[int, list[A.Expr]]) -> list[Json]:
        out = []
        seen: set[str] = set()
        em = self.em
        for i, ent in enumerate(info.entries or []):
            mkeys = []
            for ke, (kexpr, mk, _) in zip(ent.keys, info.keys, strict=True):
                w = width_of(kexpr.ty)
                full = (1 << w) - 1
                if isinstance(ke, A.Default):
                    if mk == "exact":
                        raise CompileError("don't-care on an exact key", ke.loc)
                    if mk == "lpm":
                        mkeys.append({"match_type": "lpm", "key": hexstr(0, w), "prefix_length": 0})
                    elif mk == "range":
                        mkeys.append({"match_type": "range", "start": hexstr(0, w), "end": hexstr(full, w)})
                    else:
                        mkeys.append({"match_type": "ternary", "key": hexstr(0, w), "mask": hexstr(0, w)})
                    continue
                if isinstance(ke, A.Binary) and ke.op == "&&&":
                    v, m = int(ke.left.const) & full, int(ke.right.const) & full
                    if mk == "lpm":
                        plen = bin(m).count("1")
                        if m != ((1 << plen) - 1) << (w - plen):
                            raise CompileError(f"{m:#x} is not a valid lpm mask (ones then zeros)", ke.right.loc)
                        mkeys.append({"match_type": "lpm", "key": hexstr(v & m, w), "prefix_length": plen})
                    else:
                        if mk == "optional" and m not in (0, full):
                            raise CompileError("an optional key matches a value or anything (_)", ke.loc)
                        mkeys.append({"match_type": "ternary", "key": hexstr(v & m, w), "mask": hexstr(m, w)})
                    continue
                if isinstance(ke, A.Binary) and ke.op == "..":
                    mkeys.append({"match_type": "range", "start": hexstr(int(ke.left.const) & full, w),
                                  "end": hexstr(int(ke.right.const) & full, w)})
                    continue
                v = int(ke.const) & full
                if mk == "lpm":
                    mkeys.append({"match_type": "lpm", "key": hexstr(v, w), "prefix_length": w})
                elif mk in ("ternary", "optional"):
                    mkeys.append({"match_type": "ternary", "key": hexstr(v, w), "mask": hexstr(full, w)})
                elif mk == "range":
                    mkeys.append({"match_type": "range", "start": hexstr(v, w), "end": hexstr(v, w)})
                else:
                    mkeys.append({"match_type": "exact", "key": hexstr(v, w)})
            asym, args = em_action_ref(ent.action)
            act = em.table_action(asym, self.ctx.env, bound.get(id(asym)))
            args = _data_args(asym, args)
            prio = self._entry_priority(info, i)
            out.append({"source_info": source_info(ent.loc, ""), "matches": None, "match_key": mkeys,
                        "action_entry": {"action_id": act["id"],
                                         "action_data": [hexstr(int(a.const), width_of(a.ty)) for a in args]},
                        "priority": prio})
            out[-1].pop("matches")
            if not ({mk for _, mk, _ in info.keys} - {"exact", "lpm"}):
                # no priorities: simple_switch refuses the whole JSON on a duplicate key
                ident = repr(mkeys)
                if ident in seen:
                    raise CompileError("duplicate entry (same key as an earlier entry)", ent.loc)
                seen.add(ident)
        return out


def em_action_ref(e: A.Expr) -> tuple[ActionSym, list[A.Expr]]:
    if isinstance(e, A.Call):
        return e.func.ref, e.args
    return e.ref, []


def _bound_args(sym: ActionSym, ref: A.Expr) -> list[A.Expr]:
    """Arguments of the directional parameters given in a table's action list (``a(hdr.x)``)."""
    return list(ref.args) if isinstance(ref, A.Call) else []


def _data_args(sym: ActionSym, args: list[A.Expr]) -> list[A.Expr]:
    """The action-data arguments of a full call (directional arguments left out)."""
    if len(args) != len(sym.decl.params):
        return args
    return [a for a, p in zip(args, sym.decl.params, strict=True) if not p.direction]
