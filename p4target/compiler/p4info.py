"""P4Info (p4.config.v1) generation with p4c's id scheme.

Ids are ``(prefix << 24) | (jenkins_one_at_a_time(fully_qualified_name) & 0xffffff)``, assigned in
name order per entity type with linear probing on collisions, exactly as p4c's P4RuntimeSymbolTable
does; ``@id`` annotations win. Aliases are the shortest unique dot-suffix. Names equal the BMv2 JSON
names, key order equals the JSON key order and action parameter order equals ``runtime_data`` order.
"""
from __future__ import annotations

from typing import Any

from p4.config.v1 import p4info_pb2 as P

from . import ast as A
from .check import Checked, expr_str, param_name
from .errors import CompileError
from .types import ActionSym, BitsT, BoolT, EnumT, InstanceSym, StructT, TableSym, width_of

PREFIX = {
    "action": P.P4Ids.ACTION, "table": P.P4Ids.TABLE, "controller_header": P.P4Ids.CONTROLLER_HEADER,
    "counter": P.P4Ids.COUNTER, "direct_counter": P.P4Ids.DIRECT_COUNTER, "meter": P.P4Ids.METER,
    "direct_meter": P.P4Ids.DIRECT_METER, "register": P.P4Ids.REGISTER, "digest": P.P4Ids.DIGEST,
}
MATCH = {"exact": P.MatchField.EXACT, "lpm": P.MatchField.LPM, "ternary": P.MatchField.TERNARY,
         "range": P.MatchField.RANGE, "optional": P.MatchField.OPTIONAL}


def jenkins_hash(name: str) -> int:
    """Bob Jenkins' one-at-a-time hash (32-bit), as used by p4c for P4Runtime ids."""
    h = 0
    for b in name.encode():
        h = (h + b) & 0xFFFFFFFF
        h = (h + (h << 10)) & 0xFFFFFFFF
        h ^= h >> 6
    h = (h + (h << 3)) & 0xFFFFFFFF
    h ^= h >> 11
    h = (h + (h << 15)) & 0xFFFFFFFF
    return h


def compute_ids(kind: str, names: list[str], fixed: dict[str, int] | None = None,
                assigned: set[int] | None = None) -> dict[str, int]:
    """p4c's id assignment for one entity type (names sorted, linear probing on collisions)."""
    prefix = PREFIX[kind]
    assigned = assigned if assigned is not None else set()
    out: dict[str, int] = {}
    for n, i in (fixed or {}).items():
        out[n] = i
        assigned.add(i)
    for n in sorted(set(names) - set(out)):
        h = jenkins_hash(n)
        for _ in range(1 << 24):
            cand = (prefix << 24) | (h & 0xFFFFFF)
            if cand not in assigned:
                break
            h += 1
        else:
            raise CompileError(f"no available P4Runtime id for {n}")
        assigned.add(cand)
        out[n] = cand
    return out


def shortest_suffixes(names: list[str]) -> dict[str, str]:
    counts: dict[tuple[str, ...], int] = {}
    uniq = sorted(set(names))
    for n in uniq:
        parts = n.split(".")
        for k in range(1, len(parts) + 1):
            key = tuple(parts[-k:])
            counts[key] = counts.get(key, 0) + 1
    out = {}
    for n in uniq:
        parts = n.split(".")
        for k in range(1, len(parts) + 1):
            if counts[tuple(parts[-k:])] < 2:
                out[n] = ".".join(parts[-k:])
                break
        else:
            out[n] = n
    return out


def _id_anno(decl: Any, kind: str) -> int | None:
    a = A.anno(getattr(decl, "annos", []), "id")
    if a is None or not a.args or not isinstance(getattr(a.args[0], "value", None), int):
        return None
    v = int(a.args[0].value)
    prefix = PREFIX[kind] << 24
    if v & 0xFF000000 and v & 0xFF000000 != prefix:
        raise CompileError("@id has the wrong 8-bit prefix", a.loc)
    return v | prefix


class P4InfoBuilder:
    def __init__(self, checked: Checked, em: Any) -> None:
        self.c = checked
        self.em = em
        self.p = P.P4Info()

    def build(self) -> P.P4Info:
        em = self.em
        p = self.p
        p.pkg_info.arch = "v1model"
        tables = em.tables_used
        acts = p4info_actions(self.c, tables)
        actions = [a for a, _ in acts]
        insts = em.all_instances()
        ctrl_hdrs = self.controller_headers()
        kinds: dict[str, list[tuple[str, Any]]] = {
            "table": [(t.fqname, t.decl) for t in tables],
            "action": [(a.fqname, a.decl) for a in actions],
            "controller_header": [(control_type_name(d), d) for _, d, _ in ctrl_hdrs],
            "digest": [(t.name, t.decl) for t in em.learn_types],
        }
        ikind = {"counter": "counter", "direct_counter": "direct_counter", "meter": "meter",
                 "direct_meter": "direct_meter", "register": "register"}
        bound = set(em.table_binding)
        for s in insts:
            k = ikind.get(s.type.name)
            if k is None or (k.startswith("direct") and id(s) not in bound):
                continue
            kinds.setdefault(k, []).append((s.fqname, s.decl))
        ids: dict[tuple[str, str], int] = {}
        for k, items in kinds.items():
            fixed = {}
            for n, d in items:
                v = _id_anno(d, k)
                if v is not None:
                    fixed[n] = v
            for n, i in compute_ids(k, [n for n, _ in items], fixed).items():
                ids[(k, n)] = i
        alias = shortest_suffixes([n for k, items in kinds.items() for n, _ in items if k != "controller_header"])

        def pre(msg: Any, kind: str, name: str, annos: list[str] | None = None, decl: Any = None) -> None:
            msg.preamble.id = ids[(kind, name)]
            msg.preamble.name = name
            msg.preamble.alias = alias.get(name, name)
            for a in (annos or []) + user_annotations(decl):
                msg.preamble.annotations.append(a)
            set_documentation(msg.preamble, decl)

        for t in sorted(tables, key=lambda t: getattr(t, "order", 0)):
            info = t.info
            tm = p.tables.add()
            pre(tm, "table", t.fqname, decl=t.decl)
            for i, (kexpr, mk, kname) in enumerate(info.keys):
                mf = tm.match_fields.add()
                mf.id = i + 1
                mf.name = kname
                mf.bitwidth = width_of(kexpr.ty)
                mf.match_type = MATCH[mk]
            for a, annos, _ in info.actions:
                ar = tm.action_refs.add()
                ar.id = ids[("action", a.fqname)]
                if A.anno(annos, "defaultonly"):
                    ar.scope = P.ActionRef.DEFAULT_ONLY
                    ar.annotations.append("@defaultonly")
                elif A.anno(annos, "tableonly"):
                    ar.scope = P.ActionRef.TABLE_ONLY
                    ar.annotations.append("@tableonly")
            if info.default is not None:
                dsym, dargs, dconst = info.default
                if dconst:
                    tm.const_default_action_id = ids[("action", dsym.fqname)]
                tm.initial_default_action.action_id = ids[("action", dsym.fqname)]
                data = [a for a, prm in zip(dargs, dsym.decl.params, strict=False) if not prm.direction]
                for i, a in enumerate(data):
                    arg = tm.initial_default_action.arguments.add()
                    arg.param_id = i + 1
                    v = int(a.const) & ((1 << width_of(a.ty)) - 1)
                    arg.value = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
            if info.counters is not None:
                tm.direct_resource_ids.append(ids[("direct_counter", info.counters.fqname)])
            if info.meters is not None:
                tm.direct_resource_ids.append(ids[("direct_meter", info.meters.fqname)])
            tm.size = info.size if info.size is not None else 1024
            if info.timeout:
                tm.idle_timeout_behavior = P.Table.NOTIFY_CONTROL
            if info.entries is not None:
                # p4c: const entries make a const table; has_initial_entries when there is an entry
                tm.is_const_table = info.entries_const
                tm.has_initial_entries = bool(info.entries)
        for a, keeps_params in acts:
            am = p.actions.add()
            pre(am, "action", a.fqname, decl=a.decl)
            if not keeps_params:
                continue
            for i, prm in enumerate(p_ for p_ in a.decl.params if not p_.direction):
                pm = am.params.add()
                pm.id = i + 1
                pm.name = param_name(prm)
                pm.bitwidth = width_of(a.decl._param_syms[prm.name].type)
        by_table = {v: k for k, v in em.table_binding.items()}
        del by_table
        tid_of = {t.fqname: ids[("table", t.fqname)] for t in tables}
        for s in insts:     # p4c: block order (V1Switch order, declarations in order, sub-controls in place)
            k = ikind.get(s.type.name)
            if k is None or (k, s.fqname) not in ids:
                continue
            if k == "register":
                r = p.registers.add()
                pre(r, k, s.fqname)
                vt = s.type.type_args[0]
                if isinstance(vt, BoolT):
                    r.type_spec.bool.SetInParent()
                else:
                    r.type_spec.bitstring.bit.bitwidth = width_of(vt)
                r.size = int(s.args[0].const)
            elif k in ("counter", "direct_counter"):
                m = p.counters.add() if k == "counter" else p.direct_counters.add()
                pre(m, k, s.fqname)
                unit = _member(s.args[-1])
                m.spec.unit = {"packets": P.CounterSpec.PACKETS, "bytes": P.CounterSpec.BYTES,
                               "packets_and_bytes": P.CounterSpec.BOTH}[unit]
                if k == "counter":
                    m.size = int(s.args[0].const)
                else:
                    m.direct_table_id = tid_of[em.table_binding[id(s)]]
            else:
                m = p.meters.add() if k == "meter" else p.direct_meters.add()
                pre(m, k, s.fqname)
                unit = _member(s.args[-1])
                m.spec.unit = {"packets": P.MeterSpec.PACKETS, "bytes": P.MeterSpec.BYTES}[unit]
                if k == "meter":
                    m.size = int(s.args[0].const)
                else:
                    m.direct_table_id = tid_of[em.table_binding[id(s)]]
        for name, decl, st in ctrl_hdrs:
            # p4c hashes the header type's name for the id; the preamble name is the annotation's
            cm = p.controller_packet_metadata.add()
            cm.preamble.id = ids[("controller_header", control_type_name(decl))]
            cm.preamble.name = name
            cm.preamble.alias = name
            cm.preamble.annotations.append(f'@controller_header("{name}")')
            for i, (fn, ft) in enumerate(st.fields):
                md = cm.metadata.add()
                md.id = i + 1
                md.name = fn
                md.bitwidth = width_of(ft)
        for t in self.em.learn_types:
            d = p.digests.add()
            pre(d, "digest", t.name)
            d.type_spec.struct.name = t.name
            self.add_struct_type(t)
        return p

    def add_struct_type(self, t: StructT) -> None:
        ti = self.p.type_info
        if t.name in ti.structs:
            return
        s = ti.structs[t.name]
        for fn, ft in t.fields:
            m = s.members.add()
            m.name = fn
            if isinstance(ft, BoolT):
                m.type_spec.bool.SetInParent()
            elif isinstance(ft, StructT):
                m.type_spec.struct.name = ft.name
                self.add_struct_type(ft)
            else:
                m.type_spec.bitstring.bit.bitwidth = width_of(ft)

    def controller_headers(self) -> list[tuple[str, Any, StructT]]:
        out = []
        for d in self.c.program.decls:
            if isinstance(d, A.HeaderDecl) and d.kind == "header":
                a = A.anno(d.annos, "controller_header")
                if a is None:
                    continue
                if not a.args or not isinstance(a.args[0], A.StrLit):
                    raise CompileError("@controller_header expects a string argument", a.loc)
                st = self.c.struct_types[d.name]
                for fname, ft in st.fields:      # p4c: "not bit<>, int<>, type, or serializable enum"
                    if not (isinstance(ft, BitsT) or (isinstance(ft, EnumT) and ft.base is not None)):
                        raise CompileError(f"{d.name}.{fname}: a @controller_header field must be a bit-string,"
                                           f" not {ft}", d.loc)
                if sum(width_of(ft) for _, ft in st.fields) % 8:
                    raise CompileError(f"{d.name}: @controller_header headers must be a whole number of bytes",
                                       d.loc)
                out.append((a.args[0].value, d, st))
        return out


HIDDEN_ANNOTATIONS = {"name", "id", "hidden", "defaultonly", "tableonly", "controller_header", "field_list",
                      "brief", "description"}


def set_documentation(preamble: Any, decl: Any) -> None:
    """``@brief("...")`` / ``@description("...")`` go to the preamble's ``doc``, not its annotations (p4c)."""
    for a in getattr(decl, "annos", []) if decl is not None else []:
        if a.name in ("brief", "description") and a.args and isinstance(a.args[0], A.StrLit):
            setattr(preamble.doc, a.name, a.args[0].value)


def user_annotations(decl: Any) -> list[str]:
    """Annotations p4c copies into a preamble (all but the ones the compiler itself interprets)."""
    out = []
    for a in getattr(decl, "annos", []) if decl is not None else []:
        if a.name in HIDDEN_ANNOTATIONS:
            continue
        if not a.args:
            out.append(f"@{a.name}")
            continue
        if a.name == "pragma":
            out.append("@pragma " + " ".join(str(x) for x in a.args))
            continue
        parts = []
        for x in a.args:
            if isinstance(x, A.StrLit):
                parts.append('"' + x.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
            elif isinstance(x, A.Expr):
                parts.append(expr_str(x))
            else:
                parts.append(str(x))
        out.append(f"@{a.name}({', '.join(parts)})")
    return out


def control_type_name(decl: Any) -> str:
    a = A.anno(decl.annos, "name")
    if a and a.args and isinstance(a.args[0], A.StrLit):
        return a.args[0].value.lstrip(".")
    return decl.name


def _member(e: Any) -> str:
    return e.name


def p4info_actions(checked: Checked, tables_used: list[TableSym]) -> list[tuple[ActionSym, bool]]:
    """The actions p4c-bm2-ss lists in P4Info, in its order, each with whether it keeps its parameters.

    p4c inlines sub-controls in place, localizes each global action into every control using it (in
    front of the control's own declarations, in order of first use), then makes one copy of an action
    per user, right after the original: tables (the control's declarations) come before the direct
    calls of its body. A directly called copy loses all its parameters (RemoveActionParameters), and
    P4Info keeps the first copy of each name. Actions only called from other actions are inlined away.
    """
    used_tables = {id(t) for t in tables_used}
    out: dict[str, tuple[ActionSym, bool]] = {}
    for role in ("verify", "ingress", "egress", "compute", "deparser"):
        ctl = checked.blocks[role]
        local: list[ActionSym] = []
        uses: list[ActionSym] = []
        in_table: set[int] = set()
        _control_locals(ctl.locals, used_tables, local, uses, in_table)
        _direct_calls(ctl.body, uses)
        used = {id(a) for a in uses}
        glob = list({id(a): a for a in uses if a.control is None}.values())
        for a in glob + [a for a in local if id(a) in used]:
            out.setdefault(a.fqname, (a, id(a) in in_table))
    return list(out.values())


def _control_locals(decls: list[Any], used_tables: set[int], local: list[ActionSym], uses: list[ActionSym],
                    in_table: set[int]) -> None:
    """A control's action declarations and table action uses, sub-controls expanded in place."""
    for d in decls:
        sym = getattr(d, "sym", None)
        if isinstance(d, A.ActionDecl) and isinstance(sym, ActionSym):
            local.append(sym)
        elif isinstance(d, A.TableDecl) and id(sym) in used_tables:
            for a, _, _ in sym.info.actions:
                uses.append(a)
                in_table.add(id(a))
        elif isinstance(d, A.Instance) and getattr(sym, "sub", None) is not None:
            _control_locals(sym.sub.locals, used_tables, local, uses, in_table)


def _direct_calls(node: Any, uses: list[ActionSym]) -> None:
    """Actions called directly in a control body, in order (applied sub-controls' bodies in place)."""
    if isinstance(node, A.Call):
        f = node.func
        if isinstance(f, A.Name) and isinstance(f.ref, ActionSym):
            uses.append(f.ref)
        elif isinstance(f, A.Member) and f.name == "apply" and isinstance(f.expr, A.Name) \
                and getattr(f.expr.ref, "sub", None) is not None:
            _direct_calls(f.expr.ref.sub.body, uses)
        else:
            _direct_calls(f, uses)
        for a in node.args:
            _direct_calls(a, uses)
    elif isinstance(node, (A.Stmt, A.Expr, A.SwitchCase)):
        for k, v in vars(node).items():
            if k in ("ref", "ty", "const"):     # set by check: meanings, not sub-expressions
                continue
            if isinstance(v, list):
                for x in v:
                    _direct_calls(x, uses)
            elif isinstance(v, (A.Stmt, A.Expr, A.SwitchCase)):
                _direct_calls(v, uses)


def build_p4info(checked: Checked, em: Any) -> P.P4Info:
    return P4InfoBuilder(checked, em).build()


__all__ = ["build_p4info", "jenkins_hash", "compute_ids", "InstanceSym"]
