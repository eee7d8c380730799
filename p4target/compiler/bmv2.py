"""BMv2 JSON emitter: lowers the checked program to the JSON that simple_switch executes.

Mirrors p4c-bm2-ss: header types and instances from :mod:`layout`; one parser and one deparser;
ingress/egress pipelines whose straight-line code becomes hidden tables (``tbl_<action>`` for a direct
action call, ``tbl_act``/``act`` for other statements) and whose ``if``s become conditionals
``node_<n>``; extern instances become register/counter/meter arrays; hashes, checksums and digests
become calculations, checksums and learn lists. See docs/compiler.md for the conventions.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from . import ast as A
from .check import Checked, expr_str, param_name
from .control_lower import PipelineBuilder, flatten_blocks
from .errors import CompileError, unsupported
from .layout import Layout, ScalarStore, StackStore, iter_headers, standard_metadata
from .lower import Ctx, ex, field_ref, hexv
from .parser_lower import lower_parser
from .preprocess import BUILTIN_INCLUDE_DIR
from .types import ActionSym, BitsT, ConstSym, InstanceSym, StructT, TableSym, width_of

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
        self.binding_size: dict[str, int] = {}       # table name -> size (of its direct meters)
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
        for s in _annotated_fields(self.meta, self.c.meta_t, index, self.c.globals):
            elems.append(field_ref(s))
        fid = len(self.field_lists) + 1
        self.field_lists.append({"id": fid, "name": f"field_list{index}", "elements": elems, "_index": index})
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
    def table_action(self, sym: ActionSym, env: dict[int, Any] | None = None,
                     bound: list[A.Expr] | None = None) -> Json:
        """The JSON action run by a table for ``sym``. Directional parameters are bound to the
        arguments given in the table's action list (``actions = { a(hdr.x); }``), as p4c does; the
        directionless ones are the action data."""
        dirs = [p for p in sym.decl.params if p.direction]
        if dirs and (bound is None or len(bound) != len(dirs)):
            raise unsupported(f"action {sym.name} with directional parameters used here", sym.decl.loc)
        ctx = self.ctx()
        ctx.env = dict(env or {})
        key: tuple[Any, ...] = ("action", id(sym))
        if dirs:
            assert bound is not None
            key += tuple(self._binding_key(ctx, a) for a in bound)
        if key in self.action_by_key:
            return self.action_by_key[key]
        saved = dict(ctx.env)
        bound_it = iter(bound or [])
        rd = []
        idx = 0
        for p in sym.decl.params:
            psym = sym.decl._param_syms[p.name]
            if p.direction:
                ctx.env[id(psym)] = ("expr", next(bound_it), saved)
                continue
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
        if not any(u is sym for u in self.used_actions):
            self.used_actions.append(sym)
        self.names.add(sym.fqname)
        return act

    @staticmethod
    def _binding_key(ctx: Any, a: A.Expr) -> Any:
        st = ctx.store(a)
        return ("store", id(st)) if st is not None else ("value", json.dumps(ctx.rv(a), sort_keys=True))

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
                      for n, e in c.enums.items() if e.base is None and not _builtin(e)],
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
                m["size"] = self.binding_size.get(binding, 1024)
                m["binding"] = binding
                res = self.meter_results.get(id(s))
                if res is None:
                    raise CompileError(f"{s.fqname}: direct_meter has no read() in the table's actions",
                                       s.decl.loc)
                m["result_target"] = [res.inst, res.field]
            out.append(m)
        return out

    # ------------------------------------------------------------------ pipelines
    def pipeline(self, name: str, decl: A.ControlDecl, pid: int) -> Json:
        b = PipelineBuilder(self, decl)
        init = b.block(decl.body.stmts, None)
        return {"name": name, "id": pid, "source_info": source_info(decl.loc, decl.name),
                "init_table": init, "tables": b.tables, "action_profiles": [], "conditionals": b.conds}

    # ------------------------------------------------------------------ checksums
    def checksum_control(self, decl: A.ControlDecl, verify: bool) -> None:
        ctx = self.ctx()
        for s in flatten_blocks(decl.body.stmts):
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
        for s in flatten_blocks(decl.body.stmts):
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


def _builtin(e: Any) -> bool:
    """Declared by the bundled core.p4/v1model.p4 (p4c does not list those enums)."""
    decl = getattr(e, "decl", None)
    return decl is None or str(BUILTIN_INCLUDE_DIR) in decl.loc.file


def _member_name(e: A.Expr) -> str:
    if isinstance(e, A.Member):
        return e.name
    raise CompileError("expected an enum constant", e.loc)


def _anno_int(x: Any, consts: dict[str, Any]) -> int | None:
    """An annotation argument's integer value: a literal, or the name of a global constant (p4c takes
    ``@field_list(FL_BATCH)`` with ``const bit<8> FL_BATCH = 1``)."""
    v = getattr(x, "const", None)
    if isinstance(v, int):
        return v
    if isinstance(x, A.IntLit):
        return x.value
    if isinstance(x, A.Name):
        sym = consts.get(x.name)
        if isinstance(sym, ConstSym) and isinstance(sym.value, int):
            return sym.value
    return x if isinstance(x, int) else None


def _annotated_fields(store: Any, t: StructT, index: int, consts: dict[str, Any]) -> list[ScalarStore]:
    out: list[ScalarStore] = []
    decl = t.decl
    for f in decl.fields if decl is not None else []:
        sub = store.fields[f.name]
        a = A.anno(f.annos, "field_list")
        if a and any(_anno_int(x, consts) == index for x in a.args):
            if isinstance(sub, ScalarStore):
                out.append(sub)
        ft = t.field(f.name)
        if isinstance(ft, StructT) and ft.kind == "struct":
            out += _annotated_fields(sub, ft, index, consts)
    return out


__all__ = ["Emitter", "StackStore", "BitsT", "ex", "hexv"]
