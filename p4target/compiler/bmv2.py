"""BMv2 JSON emitter: lowers the checked program to the JSON that simple_switch executes.

Mirrors p4c-bm2-ss: header types and instances from :mod:`layout`; one parser and one deparser;
ingress/egress pipelines whose straight-line code becomes hidden tables (``tbl_<action>`` for a direct
action call, ``tbl_act``/``act`` for other statements) and whose ``if``s become conditionals
``node_<n>``; extern instances become register/counter/meter arrays; hashes, checksums and digests
become calculations, checksums and learn lists. See docs/compiler.md for the conventions.
"""
from __future__ import annotations

import logging
from typing import Any

from . import ast as A
from .check import Checked, TableInfo, expr_str, param_name
from .errors import CompileError, unsupported
from .layout import HeaderStore, Layout, ScalarStore, StackStore, iter_headers, standard_metadata
from .lower import Ctx, ex, field_ref, hexstr, hexv, top
from .parser_lower import lower_parser
from .types import ActionSym, BitsT, BoolT, InstanceSym, ObjT, StructT, TableSym, width_of

log = logging.getLogger(__name__)
Json = dict[str, Any]

FIELD_ALIASES = [
    ("queueing_metadata.enq_timestamp", "enq_timestamp"),
    ("queueing_metadata.enq_qdepth", "enq_qdepth"),
    ("queueing_metadata.deq_timedelta", "deq_timedelta"),
    ("queueing_metadata.deq_qdepth", "deq_qdepth"),
    ("intrinsic_metadata.ingress_global_timestamp", "ingress_global_timestamp"),
    ("intrinsic_metadata.egress_global_timestamp", "egress_global_timestamp"),
    ("intrinsic_metadata.mcast_grp", "mcast_grp"),
    ("intrinsic_metadata.egress_rid", "egress_rid"),
    ("intrinsic_metadata.priority", "priority"),
]


def source_info(loc: Any, frag: str) -> Json:
    return {"filename": loc.file, "line": loc.line, "column": loc.col, "source_fragment": frag}


class Emitter:
    def __init__(self, checked: Checked, program_name: str) -> None:
        self.c = checked
        self.program_name = program_name
        self.layout = Layout()
        self.std = standard_metadata(self.layout, checked.std_t)
        self.hdrs = self.layout.build(checked.headers_t, [], "headers")
        self.meta = self.layout.build(checked.meta_t, [], "meta")
        self.actions: list[Json] = []
        self.action_by_key: dict[Any, Json] = {}
        self.hidden_actions: set[str] = set()
        self.used_actions: list[ActionSym] = []
        self.calcs: list[Json] = []
        self.learn_lists: list[Json] = []
        self.learn_types: list[StructT] = []
        self.field_lists: list[Json] = []
        self.checksums: list[Json] = []
        self.tables_used: list[TableSym] = []
        self.table_binding: dict[int, str] = {}      # id(InstanceSym) of direct resources -> table name
        self.meter_results: dict[int, ScalarStore] = {}
        self.instances: list[InstanceSym] = []
        self.node_id = 0
        self.table_id = 0
        self.names: set[str] = set()
        self.var_stores: dict[int, Any] = {}
        self.digest_temps: dict[int, list[ScalarStore]] = {}

    # ------------------------------------------------------------------ helpers used by lower.Ctx
    def ctx(self) -> Ctx:
        return Ctx(self.layout, {"headers": self.hdrs, "meta": self.meta, "standard_metadata": self.std},
                   self)

    def calculation(self, algo: str, inputs: list[Json], node: Any) -> str:
        for c in self.calcs:
            if c["algo"] == algo and c["input"] == inputs:
                return str(c["name"])
        name = "calc" if not self.calcs else f"calc_{len(self.calcs) - 1}"
        self.calcs.append({"name": name, "id": len(self.calcs), "source_info": source_info(node.loc, ""),
                           "algo": algo, "input": inputs})
        return name

    def learn_list(self, t: StructT, fields: list[Json], node: Any) -> int:
        for ll, lt in zip(self.learn_lists, self.learn_types, strict=True):
            if lt is t:
                if ll["elements"] != fields:
                    raise unsupported(f"digest<{t.name}> generated from different fields in two places", node.loc)
                return int(ll["id"])
        lid = len(self.learn_lists) + 1
        self.learn_lists.append({"id": lid, "name": t.name, "source_info": source_info(node.loc, ""),
                                 "elements": fields})
        self.learn_types.append(t)
        return lid

    def field_list(self, index: int) -> int:
        """Field list for clone/resubmit/recirculate_preserving_field_list(index): @field_list(index)."""
        for fl in self.field_lists:
            if fl["_index"] == index:
                return int(fl["id"])
        elems = []
        for s in _annotated_fields(self.meta, self.c.meta_t, index):
            elems.append(field_ref(s))
        fid = len(self.field_lists) + 1
        self.field_lists.append({"id": fid, "name": f"field_list{index}", "elements": elems, "_index": index})
        return fid

    def field_list_of(self, elems: list[Json]) -> int:
        """Field list with exactly these fields (resubmit/recirculate/clone3 data)."""
        for fl in self.field_lists:
            if fl["elements"] == elems:
                return int(fl["id"])
        fid = len(self.field_lists) + 1
        self.field_lists.append({"id": fid, "name": f"fl_{fid}", "elements": elems, "_index": None})
        return fid

    def direct_meter_result(self, inst: InstanceSym, dst: ScalarStore, node: Any) -> None:
        old = self.meter_results.get(id(inst))
        if old is not None and (old.inst, old.field) != (dst.inst, dst.field):
            raise unsupported("direct_meter.read into different fields", node.loc)
        self.meter_results[id(inst)] = dst

    def unique(self, base: str) -> str:
        name = base
        n = 0
        while name in self.names:
            name = f"{base}_{n}"
            n += 1
        self.names.add(name)
        return name

    # ------------------------------------------------------------------ actions
    def table_action(self, sym: ActionSym, env: dict[int, Any] | None = None) -> Json:
        key = ("action", id(sym))
        if key in self.action_by_key:
            return self.action_by_key[key]
        ctx = self.ctx()
        ctx.env = dict(env or {})
        rd = []
        idx = 0
        for p in sym.decl.params:
            psym = sym.decl._param_syms[p.name]
            if p.direction:
                raise unsupported(f"action {sym.name} with directional parameters used in a table",
                                  p.loc)
            ctx.env[id(psym)] = ("rt", idx)
            rd.append({"name": param_name(p), "bitwidth": width_of(psym.type)})
            idx += 1
        prims: list[Json] = []
        ctx.ret_patches.append([])
        ctx.stmts(sym.decl.body.stmts, prims)
        for j in ctx.ret_patches.pop():
            j["parameters"][0] = hexv(len(prims), 32)
        act = {"name": sym.fqname, "id": len(self.actions), "runtime_data": rd, "primitives": prims}
        self.actions.append(act)
        self.action_by_key[key] = act
        self.used_actions.append(sym)
        self.names.add(sym.fqname)
        return act

    def synthetic_action(self, prims: list[Json]) -> Json:
        name = self.unique("act")
        act = {"name": name, "id": len(self.actions), "runtime_data": [], "primitives": prims}
        self.actions.append(act)
        self.hidden_actions.add(name)
        return act

    # ------------------------------------------------------------------ program
    def run(self) -> Json:
        c = self.c
        parser_json, parse_vsets = lower_parser(self, c.blocks["parser"])
        pipelines = [self.pipeline("ingress", c.blocks["ingress"], 0),
                     self.pipeline("egress", c.blocks["egress"], 1)]
        self.checksum_control(c.blocks["verify"], verify=True)
        self.checksum_control(c.blocks["compute"], verify=False)
        deparser = self.deparser(c.blocks["deparser"])
        self.layout.finish()
        for fl in self.field_lists:
            fl.pop("_index", None)
        errors = sorted(c.errors.items(), key=lambda kv: kv[1])
        return {
            "header_types": self.layout.header_types,
            "headers": self.layout.headers,
            "header_stacks": self.layout.header_stacks,
            "header_union_types": [],
            "header_unions": [],
            "header_union_stacks": [],
            "field_lists": self.field_lists,
            "errors": [[n, v] for n, v in errors],
            "enums": [{"name": n, "entries": sorted(([k, v] for k, v in e.members.items()), key=lambda x: x[1])}
                      for n, e in c.enums.items() if e.base is None],
            "parsers": [parser_json],
            "parse_vsets": parse_vsets,
            "deparsers": [deparser],
            "meter_arrays": self.meter_arrays(),
            "counter_arrays": self.counter_arrays(),
            "register_arrays": self.register_arrays(),
            "calculations": self.calcs,
            "learn_lists": self.learn_lists,
            "actions": self.actions,
            "pipelines": pipelines,
            "checksums": self.checksums,
            "force_arith": [],
            "extern_instances": [],
            "field_aliases": [[a, ["standard_metadata", f]] for a, f in FIELD_ALIASES],
            "program": self.program_name,
            "__meta__": {"version": [2, 23], "compiler": "flowmig p4target.compiler (p4c-bm2-ss compatible)"},
        }

    # ------------------------------------------------------------------ extern arrays
    def all_instances(self) -> list[InstanceSym]:
        out: list[InstanceSym] = []

        def walk(locals_: list[Any]) -> None:
            for d in locals_:
                if isinstance(d, A.Instance) and hasattr(d, "sym"):
                    sub = getattr(d.sym, "sub", None)
                    if sub is not None:
                        walk(sub.locals)
                    else:
                        out.append(d.sym)

        walk(self.c.program.decls)
        for role in ("parser", "verify", "ingress", "egress", "compute", "deparser"):
            walk(self.c.blocks[role].locals)
        return out

    def register_arrays(self) -> list[Json]:
        out = []
        for s in self.all_instances():
            if s.type.name == "register":
                out.append({"name": s.fqname, "id": len(out), "source_info": source_info(s.decl.loc, s.name),
                            "size": int(s.args[0].const), "bitwidth": width_of(s.type.type_args[0])})
        return out

    def counter_arrays(self) -> list[Json]:
        out = []
        for s in self.all_instances():
            if s.type.name == "counter":
                out.append({"name": s.fqname, "id": len(out), "source_info": source_info(s.decl.loc, s.name),
                            "size": int(s.args[0].const), "is_direct": False})
            elif s.type.name == "direct_counter":
                binding = self.table_binding.get(id(s))
                if binding is None:
                    log.warning("direct_counter %s is not attached to any table", s.fqname)
                    continue
                out.append({"name": s.fqname, "id": len(out), "source_info": source_info(s.decl.loc, s.name),
                            "is_direct": True, "binding": binding})
        return out

    def meter_arrays(self) -> list[Json]:
        out = []
        for s in self.all_instances():
            kind = s.type.name
            if kind not in ("meter", "direct_meter"):
                continue
            mtype = _member_name(s.args[-1])
            m: Json = {"name": s.fqname, "id": len(out), "source_info": source_info(s.decl.loc, s.name),
                       "is_direct": kind == "direct_meter", "rate_count": 2, "type": mtype}
            if kind == "meter":
                m["size"] = int(s.args[0].const)
            else:
                binding = self.table_binding.get(id(s))
                if binding is None:
                    log.warning("direct_meter %s is not attached to any table", s.fqname)
                    continue
                m["size"] = self._binding_size.get(binding, 1024)
                m["binding"] = binding
                res = self.meter_results.get(id(s))
                if res is None:
                    raise CompileError(f"{s.fqname}: direct_meter has no read() in the table's actions",
                                       s.decl.loc)
                m["result_target"] = [res.inst, res.field]
            out.append(m)
        return out

    _binding_size: dict[str, int] = {}

    # ------------------------------------------------------------------ pipelines
    def pipeline(self, name: str, decl: A.ControlDecl, pid: int) -> Json:
        b = PipelineBuilder(self, decl)
        init = b.block(decl.body.stmts, None)
        return {"name": name, "id": pid, "source_info": source_info(decl.loc, decl.name),
                "init_table": init, "tables": b.tables, "action_profiles": [], "conditionals": b.conds}

    # ------------------------------------------------------------------ checksums
    def checksum_control(self, decl: A.ControlDecl, verify: bool) -> None:
        ctx = self.ctx()
        for s in _flat(decl.body.stmts):
            if isinstance(s, A.Empty):
                continue
            if not isinstance(s, A.CallStmt) or not isinstance(s.call.func, A.Name):
                raise unsupported(f"statement in {'VerifyChecksum' if verify else 'ComputeChecksum'} "
                                  "(only verify_checksum/update_checksum calls)", s.loc)
            fname = s.call.func.name
            a = s.call.args
            inputs = ctx.calc_inputs(a[1], s, None)
            if fname.endswith("_with_payload"):
                inputs.append({"type": "payload", "value": None})
            algo = _member_name(a[3])
            calc = self.calculation(algo, inputs, s)
            target = ctx.store(a[2])
            if not isinstance(target, ScalarStore):
                raise unsupported("checksum target that is not a field", a[2].loc)
            cond = None
            if a[0].const is None:
                cond = ctx.rv(a[0])
            elif not a[0].const:
                continue
            name = "cksum" if not self.checksums else f"cksum_{len(self.checksums) - 1}"
            self.checksums.append({"name": name, "id": len(self.checksums),
                                   "source_info": source_info(s.loc, expr_str(s.call)[:80]),
                                   "target": [target.inst, target.field], "type": "generic",
                                   "calculation": calc, "verify": verify, "update": not verify,
                                   "if_cond": cond})

    # ------------------------------------------------------------------ deparser
    def deparser(self, decl: A.ControlDecl) -> Json:
        ctx = self.ctx()
        order: list[str] = []
        for s in _flat(decl.body.stmts):
            if isinstance(s, A.Empty):
                continue
            if not (isinstance(s, A.CallStmt) and isinstance(s.call.func, A.Member) and s.call.func.name == "emit"):
                raise unsupported("deparser statements other than packet.emit(...)", s.loc)
            st = ctx.store(s.call.args[0])
            if st is None:
                raise unsupported(f"emit of '{expr_str(s.call.args[0])}'", s.loc)
            for h in iter_headers(st):
                if h.inst not in order:
                    order.append(h.inst)
        return {"name": "deparser", "id": 0, "source_info": source_info(decl.loc, decl.name), "order": order,
                "primitives": []}


def _member_name(e: A.Expr) -> str:
    if isinstance(e, A.Member):
        return e.name
    raise CompileError("expected an enum constant", e.loc)


def _flat(stmts: list[A.Stmt]) -> list[A.Stmt]:
    out: list[A.Stmt] = []
    for s in stmts:
        if isinstance(s, A.Block):
            out += _flat(s.stmts)
        else:
            out.append(s)
    return out


def _annotated_fields(store: Any, t: StructT, index: int) -> list[ScalarStore]:
    out: list[ScalarStore] = []
    decl = t.decl
    for f in decl.fields if decl is not None else []:
        sub = store.fields[f.name]
        a = A.anno(f.annos, "field_list")
        if a and any(getattr(x, "const", None) == index or getattr(x, "value", None) == index for x in a.args):
            if isinstance(sub, ScalarStore):
                out.append(sub)
        ft = t.field(f.name)
        if isinstance(ft, StructT) and ft.kind == "struct":
            out += _annotated_fields(sub, ft, index)
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
        flat = _flat(stmts)
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
            self.conds.append({"name": name, "id": cid, "source_info": source_info(c.loc, expr_str(c)[:80]),
                               "expression": self.ctx.rv(c), "true_next": t, "false_next": f})
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
        acts = [em.table_action(a, self.ctx.env) for a, _, _ in info.actions]
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
            dact = em.table_action(dsym, self.ctx.env)
            tj["default_entry"] = {
                "action_id": dact["id"], "action_const": dconst,
                "action_data": [hexstr(int(a.const), width_of(a.ty)) for a in dargs],
                "action_entry_const": dconst}
        if info.entries is not None:
            tj["entries"] = self.entries(info, match_type)
        for res in (info.counters, info.meters):
            if res is not None:
                if id(res) in em.table_binding:
                    raise CompileError(f"{res.fqname}: direct resource attached to two tables", t.decl.loc)
                em.table_binding[id(res)] = t.fqname
        em._binding_size[t.fqname] = size
        em.tables_used.append(t)
        em.names.add(t.fqname)
        self.tables.append(tj)
        if pre:
            act = em.synthetic_action(pre)
            return self.hidden_table(f"tbl_{act['name']}", act, [], t.fqname, t.decl)
        return t.fqname

    def key(self, e: A.Expr, mk: str, kname: str, pre: list[Json]) -> Json:
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

    def entries(self, info: TableInfo, match_type: str) -> list[Json]:
        out = []
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
                        mkeys.append({"match_type": "lpm", "key": hexstr(v & m, w), "prefix_length": plen})
                    else:
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
            act = em.table_action(asym, self.ctx.env)
            prio = i + 1
            if ent.priority is not None:
                prio = int(ent.priority.const)
            out.append({"source_info": source_info(ent.loc, ""), "matches": None, "match_key": mkeys,
                        "action_entry": {"action_id": act["id"],
                                         "action_data": [hexstr(int(a.const), width_of(a.ty)) for a in args]},
                        "priority": prio})
            out[-1].pop("matches")
        return out


def em_action_ref(e: A.Expr) -> tuple[ActionSym, list[A.Expr]]:
    if isinstance(e, A.Call):
        return e.func.ref, e.args
    return e.ref, []


__all__ = ["Emitter", "StackStore", "BitsT", "ex", "hexv"]
