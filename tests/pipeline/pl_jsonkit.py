"""Helpers to write small BMv2 JSON documents by hand, shaped as p4c-bm2-ss emits them for
v1model (standard_metadata layout, scalars header, core errors, field aliases)."""

from __future__ import annotations

import copy
from typing import Any

STD_META = [
    ["ingress_port", 9, False], ["egress_spec", 9, False], ["egress_port", 9, False],
    ["instance_type", 32, False], ["packet_length", 32, False], ["enq_timestamp", 32, False],
    ["enq_qdepth", 19, False], ["deq_timedelta", 32, False], ["deq_qdepth", 19, False],
    ["ingress_global_timestamp", 48, False], ["egress_global_timestamp", 48, False],
    ["mcast_grp", 16, False], ["egress_rid", 16, False], ["checksum_error", 1, False],
    ["parser_error", 32, False], ["priority", 3, False], ["_padding", 3, False],
]
ETHERNET = [["dstAddr", 48, False], ["srcAddr", 48, False], ["etherType", 16, False]]
IPV4 = [["version", 4, False], ["ihl", 4, False], ["diffserv", 8, False], ["totalLen", 16, False],
        ["identification", 16, False], ["flags", 3, False], ["fragOffset", 13, False],
        ["ttl", 8, False], ["protocol", 8, False], ["hdrChecksum", 16, False],
        ["srcAddr", 32, False], ["dstAddr", 32, False]]
TCP = [["srcPort", 16, False], ["dstPort", 16, False], ["seqNo", 32, False], ["ackNo", 32, False],
       ["dataOffset", 4, False], ["res", 4, False], ["flags", 8, False], ["window", 16, False],
       ["checksum", 16, False], ["urgentPtr", 16, False]]
UDP = [["srcPort", 16, False], ["dstPort", 16, False], ["length_", 16, False], ["checksum", 16, False]]

CORE_ERRORS = [["NoError", 0], ["PacketTooShort", 1], ["NoMatch", 2], ["StackOutOfBounds", 3],
               ["HeaderTooShort", 4], ["ParserTimeout", 5], ["ParserInvalidArgument", 6]]


def fld(h: str, f: str) -> dict[str, Any]:
    return {"type": "field", "value": [h, f]}


def hexv(v: int) -> dict[str, Any]:
    return {"type": "hexstr", "value": hex(v) if v >= 0 else "-" + hex(-v)}


def rd(i: int) -> dict[str, Any]:
    return {"type": "runtime_data", "value": i}


def hdr(name: str) -> dict[str, Any]:
    return {"type": "header", "value": name}


def boolean(b: bool) -> dict[str, Any]:
    return {"type": "bool", "value": b}


def ex(op: str, left: Any, right: Any, cond: Any = None) -> dict[str, Any]:
    v = {"op": op, "left": left, "right": right}
    if cond is not None:
        v["cond"] = cond
    return {"type": "expression", "value": v}


def assign(dst: Any, src: Any) -> dict[str, Any]:
    return prim("assign", dst, src)


def prim(op: str, *params: Any) -> dict[str, Any]:
    return {"op": op, "parameters": list(params), "source_info": {"source_fragment": op}}


def masked(e: Any, width: int) -> dict[str, Any]:
    """p4c's truncation of bit<w> arithmetic: (e) & (2^w - 1)."""
    return ex("&", e, hexv((1 << width) - 1))


class Doc:
    """A growing BMv2 JSON document."""

    def __init__(self, headers: dict[str, list] | None = None, scalars: list | None = None) -> None:
        self.d: dict[str, Any] = {
            "header_types": [
                {"name": "scalars_0", "id": 0, "fields": scalars or [["tmp", 32, False]]},
                {"name": "standard_metadata", "id": 1, "fields": copy.deepcopy(STD_META)},
            ],
            "headers": [
                {"name": "scalars", "id": 0, "header_type": "scalars_0", "metadata": True, "pi_omit": True},
                {"name": "standard_metadata", "id": 1, "header_type": "standard_metadata",
                 "metadata": True, "pi_omit": True},
            ],
            "header_stacks": [], "header_union_types": [], "header_unions": [],
            "header_union_stacks": [], "field_lists": [], "errors": CORE_ERRORS, "enums": [],
            "parsers": [], "parse_vsets": [], "deparsers": [], "meter_arrays": [],
            "counter_arrays": [], "register_arrays": [], "calculations": [], "learn_lists": [],
            "actions": [], "pipelines": [
                {"name": "ingress", "id": 0, "init_table": None, "tables": [], "action_profiles": [],
                 "conditionals": []},
                {"name": "egress", "id": 1, "init_table": None, "tables": [], "action_profiles": [],
                 "conditionals": []},
            ],
            "checksums": [], "force_arith": [], "extern_instances": [],
            "field_aliases": [
                ["queueing_metadata.enq_timestamp", ["standard_metadata", "enq_timestamp"]],
                ["queueing_metadata.enq_qdepth", ["standard_metadata", "enq_qdepth"]],
                ["queueing_metadata.deq_timedelta", ["standard_metadata", "deq_timedelta"]],
                ["queueing_metadata.deq_qdepth", ["standard_metadata", "deq_qdepth"]],
                ["intrinsic_metadata.ingress_global_timestamp",
                 ["standard_metadata", "ingress_global_timestamp"]],
                ["intrinsic_metadata.egress_global_timestamp",
                 ["standard_metadata", "egress_global_timestamp"]],
                ["intrinsic_metadata.mcast_grp", ["standard_metadata", "mcast_grp"]],
                ["intrinsic_metadata.egress_rid", ["standard_metadata", "egress_rid"]],
                ["intrinsic_metadata.priority", ["standard_metadata", "priority"]],
            ],
            "program": "test.p4",
            "__meta__": {"version": [2, 23], "compiler": "hand-written"},
        }
        self._ids: dict[str, int] = {}
        for name, fields in (headers or {}).items():
            self.header(name, fields)

    def _id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def header(self, name: str, fields: list, metadata: bool = False, type_name: str | None = None) -> None:
        tname = type_name or f"{name}_t"
        if not any(t["name"] == tname for t in self.d["header_types"]):
            self.d["header_types"].append({"name": tname, "id": len(self.d["header_types"]),
                                           "fields": copy.deepcopy(fields)})
        self.d["headers"].append({"name": name, "id": len(self.d["headers"]), "header_type": tname,
                                  "metadata": metadata, "pi_omit": True})

    def stack(self, name: str, fields: list, size: int) -> None:
        tname = f"{name}_t"
        ids = []
        for i in range(size):
            self.header(f"{name}[{i}]", fields, type_name=tname)
            ids.append(self.d["headers"][-1]["id"])
        self.d["header_stacks"].append({"name": name, "id": len(self.d["header_stacks"]),
                                        "header_type": tname, "size": size, "header_ids": ids})

    def parser(self, states: list[dict[str, Any]], init: str = "start") -> None:
        for i, s in enumerate(states):
            s["id"] = i
        self.d["parsers"] = [{"name": "parser", "id": 0, "init_state": init, "parse_states": states}]

    def deparser(self, order: list[str]) -> None:
        self.d["deparsers"] = [{"name": "deparser", "id": 0, "order": order, "primitives": []}]

    def action(self, name: str, params: list[tuple[str, int]] = (), prims: list = ()) -> int:
        aid = len(self.d["actions"])
        self.d["actions"].append({"name": name, "id": aid,
                                  "runtime_data": [{"name": n, "bitwidth": w} for n, w in params],
                                  "primitives": list(prims)})
        return aid

    def aid(self, name: str) -> int:
        return next(a["id"] for a in self.d["actions"] if a["name"] == name)

    def _pipe(self, name: str) -> dict[str, Any]:
        return next(p for p in self.d["pipelines"] if p["name"] == name)

    def table(self, pipe: str, name: str, keys: list[tuple[str, Any]], actions: list[str],
              default: tuple[str, list[int]] | None = None, next_tables: dict | None = None,
              base_next: str | None = None, entries: list | None = None, with_counters: bool = False,
              size: int = 1024, direct_meter: str | None = None, const_default: bool = False,
              key_names: list[str] | None = None, key_masks: list | None = None) -> None:
        p = self._pipe(pipe)
        key = []
        for i, (mt, target) in enumerate(keys):
            name_i = key_names[i] if key_names else (target if isinstance(target, str) else ".".join(target))
            key.append({"match_type": mt, "name": name_i, "target": target,
                        "mask": key_masks[i] if key_masks else None})
        mtypes = {k[0] for k in keys}
        mt = "range" if "range" in mtypes else "ternary" if mtypes & {"ternary", "optional"} else \
            "lpm" if "lpm" in mtypes else "exact"
        t = {"name": name, "id": self._id("table"), "source_info": {}, "key": key, "match_type": mt,
             "type": "simple", "max_size": size, "with_counters": with_counters,
             "support_timeout": False, "direct_meters": direct_meter,
             "action_ids": [self.aid(a) for a in actions], "actions": actions,
             "base_default_next": base_next,
             "next_tables": next_tables if next_tables is not None else {a: base_next for a in actions}}
        if default is not None:
            t["default_entry"] = {"action_id": self.aid(default[0]), "action_const": const_default,
                                  "action_data": [hex(x) for x in default[1]], "action_entry_const": const_default}
        if entries is not None:
            t["entries"] = entries
        p["tables"].append(t)
        if p["init_table"] is None:
            p["init_table"] = name

    def cond(self, pipe: str, name: str, expression: Any, true_next: str | None,
             false_next: str | None) -> None:
        p = self._pipe(pipe)
        p["conditionals"].append({"name": name, "id": self._id("cond"), "source_info": {},
                                  "expression": expression, "true_next": true_next,
                                  "false_next": false_next})
        if p["init_table"] is None:
            p["init_table"] = name

    def init(self, pipe: str, node: str | None) -> None:
        self._pipe(pipe)["init_table"] = node

    def call(self, pipe: str, name: str, action: str, next_node: str | None = None) -> None:
        """An action call in a control body, the way p4c emits it: a keyless table (tbl_*)."""
        self.table(pipe, name, [], [action], default=(action, []), base_next=next_node, const_default=True)


def state(name: str, ops: list | None = None, key: list | None = None,
          transitions: list | None = None) -> dict[str, Any]:
    return {"name": name, "id": 0, "parser_ops": ops or [], "transition_key": key or [],
            "transitions": transitions or [{"type": "default", "value": None, "mask": None, "next_state": None}]}


def extract(h: str) -> dict[str, Any]:
    return {"op": "extract", "parameters": [{"type": "regular", "value": h}]}


def extract_stack(s: str) -> dict[str, Any]:
    return {"op": "extract", "parameters": [{"type": "stack", "value": s}]}


def trans(value: int | None, next_state: str | None, mask: int | None = None, nbytes: int = 2) -> dict:
    if value is None:
        return {"type": "default", "value": None, "mask": None, "next_state": next_state}
    return {"type": "hexstr", "value": "0x" + format(value, f"0{nbytes * 2}x"),
            "mask": None if mask is None else "0x" + format(mask, f"0{nbytes * 2}x"), "next_state": next_state}


def ipv4_checksum(doc: Doc, verify: bool = True, update: bool = True) -> None:
    """v1model's verify/update_checksum over the IPv4 header (csum16), as p4c emits it."""
    names = [f[0] for f in IPV4 if f[0] != "hdrChecksum"]
    doc.d["calculations"].append({"name": "calc", "id": 0, "algo": "csum16",
                                  "input": [fld("ipv4", n) for n in names]})
    doc.d["checksums"].append({"name": "cksum", "id": 0, "target": ["ipv4", "hdrChecksum"],
                               "type": "generic", "calculation": "calc", "verify": verify,
                               "update": update, "if_cond": ex("d2b", None, ex("valid", None, hdr("ipv4")))})


def lpm_program() -> dict[str, Any]:
    """The p4lang tutorials' basic.p4 (IPv4 LPM forwarding) as p4c-bm2-ss would emit it."""
    doc = Doc({"ethernet": ETHERNET, "ipv4": IPV4})
    doc.parser([
        state("start", [extract("ethernet")], [fld("ethernet", "etherType")],
              [trans(0x0800, "parse_ipv4"), trans(None, None)]),
        state("parse_ipv4", [extract("ipv4")]),
    ])
    doc.deparser(["ethernet", "ipv4"])
    doc.action("NoAction")
    doc.action("MyIngress.drop", [], [prim("mark_to_drop", hdr("standard_metadata"))])
    doc.action("MyIngress.ipv4_forward", [("dstAddr", 48), ("port", 9)], [
        assign(fld("standard_metadata", "egress_spec"), rd(1)),
        assign(fld("ethernet", "srcAddr"), fld("ethernet", "dstAddr")),
        assign(fld("ethernet", "dstAddr"), rd(0)),
        assign(fld("ipv4", "ttl"), masked(ex("+", fld("ipv4", "ttl"), hexv(0xff)), 8)),
    ])
    doc.cond("ingress", "node_2", ex("d2b", None, ex("valid", None, hdr("ipv4"))), "MyIngress.ipv4_lpm", None)
    doc.table("ingress", "MyIngress.ipv4_lpm", [("lpm", ["ipv4", "dstAddr"])],
              ["MyIngress.ipv4_forward", "MyIngress.drop", "NoAction"], default=("MyIngress.drop", []),
              key_names=["hdr.ipv4.dstAddr"], with_counters=False)
    ipv4_checksum(doc)
    return doc.d


def eth_doc(scalars: list | None = None) -> Doc:
    """Ethernet-only program skeleton (parser + deparser), no control nodes yet."""
    doc = Doc({"ethernet": ETHERNET}, scalars=scalars)
    doc.parser([state("start", [extract("ethernet")])])
    doc.deparser(["ethernet"])
    return doc


def action_program(ingress: list, egress: list | None = None, scalars: list | None = None,
                   registers: dict[str, tuple[int, int]] | None = None, doc: Doc | None = None) -> Doc:
    """Ethernet-only program whose ingress (and egress) run one action with `ingress` primitives,
    applied the way p4c emits a bare action call (a keyless tbl_* table). Registers: name -> (size, width)."""
    doc = doc or eth_doc(scalars)
    for i, (name, (size, width)) in enumerate((registers or {}).items()):
        doc.d["register_arrays"].append({"name": name, "id": i, "size": size, "bitwidth": width})
    doc.action("ing", [], ingress)
    doc.call("ingress", "tbl_ing", "ing")
    if egress is not None:
        doc.action("egr", [], egress)
        doc.call("egress", "tbl_egr", "egr")
    return doc


def recorder(values: list, reg: str = "rec") -> list:
    """Primitives writing each expression of `values` into cell i of register `reg`."""
    return [prim("register_write", {"type": "register_array", "value": reg}, hexv(i), v)
            for i, v in enumerate(values)]
