"""Golden structural checks on the coverage programs of the corpus (BMv2 JSON and P4Info)."""
from __future__ import annotations

from pathlib import Path

from p4.config.v1 import p4info_pb2 as P

from p4target.compiler import compile_file

CORPUS = Path(__file__).resolve().parent / "corpus"


def build(name: str):
    return compile_file(str(CORPUS / name), include_dirs=[str(CORPUS)])


def tables(j: dict) -> dict:
    return {t["name"]: t for p in j["pipelines"] for t in p["tables"]}


def test_fabric_style_sub_controls() -> None:
    res = build("fabric_style.p4")
    j = res.bmv2_json
    ts = tables(j)
    assert {"FabricIngress.filtering.acl", "FabricIngress.forwarding.routing_v4",
            "FabricIngress.next_hop.next"} <= set(ts)          # @name("next_hop") on the instance
    acl = ts["FabricIngress.filtering.acl"]
    assert [k["name"] for k in acl["key"]] == ["ig_port", "ipv4_dst", "l4_dport"]
    assert acl["match_type"] == "range" and acl["with_counters"]
    routing = ts["FabricIngress.forwarding.routing_v4"]
    assert set(routing["next_tables"]) == {"__HIT__", "__MISS__"}
    counters = {c["name"]: c for c in j["counter_arrays"]}
    assert counters["FabricIngress.filtering.acl_counter"]["binding"] == "FabricIngress.filtering.acl"
    assert "FabricEgress.tx_counters.port_counter" in counters
    # 'return' in Filtering skips the acl: the validity test jumps past it
    conds = {c["name"]: c for p in j["pipelines"] for c in p["conditionals"]}
    ret = next(c for c in conds.values() if c["false_next"] == "FabricIngress.filtering.acl")
    assert ret["true_next"] == acl["next_tables"]["FabricIngress.filtering.deny"]
    # parser select without default gets p4c's explicit noMatch state
    states = {s["name"]: s for s in j["parsers"][0]["parse_states"]}
    assert states["start"]["transitions"][-1]["next_state"] == "noMatch"
    assert states["noMatch"]["parser_ops"][0]["op"] == "verify"
    info = res.p4info
    acl_info = next(t for t in info.tables if t.preamble.name == "FabricIngress.filtering.acl")
    dc = next(d for d in info.direct_counters if d.preamble.name == "FabricIngress.filtering.acl_counter")
    assert list(acl_info.direct_resource_ids) == [dc.preamble.id] and dc.direct_table_id == acl_info.preamble.id
    assert acl_info.const_default_action_id != 0
    scopes = {r.id: r.scope for t in info.tables for r in t.action_refs}
    noaction = next(a.preamble.id for a in info.actions if a.preamble.name == "NoAction")
    assert scopes[noaction] == P.ActionRef.DEFAULT_ONLY


def test_features_tables_meters_entries() -> None:
    res = build("features.p4")
    j = res.bmv2_json
    ts = tables(j)
    cls = ts["MyIngress.classifier"]
    assert cls["direct_meters"] == "MyIngress.class_meter" and cls["support_timeout"] is True
    # `optional` is ternary in the JSON (simple_switch has no optional match type), OPTIONAL in P4Info
    assert [k["match_type"] for k in cls["key"]] == ["lpm", "ternary", "range", "ternary"]
    cls_info = next(t for t in res.p4info.tables if t.preamble.name == "MyIngress.classifier")
    assert cls_info.match_fields[3].match_type == P.MatchField.OPTIONAL
    assert cls["key"][3]["target"] == ["vlan", "$valid$"]
    meters = {m["name"]: m for m in j["meter_arrays"]}
    assert meters["MyIngress.class_meter"]["result_target"] == ["scalars", "userMetadata.color"]
    assert meters["MyIngress.port_meter"] == {**meters["MyIngress.port_meter"], "size": 64, "type": "packets",
                                              "is_direct": False}
    fwd = ts["MyIngress.forward"]
    assert [e["priority"] for e in fwd["entries"]] == [1, 2, 3]
    assert fwd["entries"][1]["match_key"][1] == {"match_type": "ternary", "key": "0x00000000", "mask": "0x00000000"}
    # computed key (dst & mask) goes through a scalar temporary filled just before the table
    assert fwd["key"][1]["target"][0] == "scalars"
    pre = next(t for t in ts.values() if t["base_default_next"] == "MyIngress.forward" and not t["key"])
    assert pre["name"].startswith("tbl_act")
    # switch on action_run
    assert cls["next_tables"]["MyIngress.set_class"] == pre["name"]
    # ranges in select are expanded into value/mask pairs
    udp = next(s for s in j["parsers"][0]["parse_states"] if s["name"] == "parse_udp")
    pairs = [(t["value"], t["mask"]) for t in udp["transitions"] if t["type"] == "hexstr"]
    covered = {v for v in range(0x10000) for val, m in pairs if v & int(m, 16) == int(val, 16)}
    assert covered == set(range(1000, 2000))
    ops = {p["op"] for a in j["actions"] for p in a["primitives"]}
    assert {"execute_meter", "count", "modify_field_rng_uniform", "log_msg", "assert", "exit", "resubmit",
            "recirculate", "truncate", "assign_header", "remove_header"} <= ops
    assert j["field_lists"][0]["elements"] == [{"type": "field", "value": ["scalars", "userMetadata.recirc_count"]}]
    info = res.p4info
    t = next(t for t in info.tables if t.preamble.name == "MyIngress.classifier")
    assert [m.match_type for m in t.match_fields] == [P.MatchField.LPM, P.MatchField.TERNARY, P.MatchField.RANGE,
                                                      P.MatchField.OPTIONAL]
    assert t.idle_timeout_behavior == P.Table.NOTIFY_CONTROL and t.size == 512
    assert next(t for t in info.tables if t.preamble.name == "MyIngress.forward").is_const_table
    assert {m.preamble.name for m in info.direct_meters} == {"MyIngress.class_meter"}
    assert {m.preamble.name for m in info.meters} == {"MyIngress.port_meter"}


def test_clone_cpu_controller_headers() -> None:
    res = build("clone_cpu.p4")
    info = res.p4info
    cpm = {c.preamble.name: c for c in info.controller_packet_metadata}
    assert set(cpm) == {"packet_in", "packet_out"}
    assert [(m.id, m.name, m.bitwidth) for m in cpm["packet_out"].metadata] == [(1, "egress_port", 9), (2, "_pad", 7)]
    assert all(c.preamble.id >> 24 == 0x04 for c in cpm.values())
    ops = [p for a in res.bmv2_json["actions"] for p in a["primitives"]]
    clone = next(p for p in ops if p["op"] == "clone_ingress_pkt_to_egress")
    assert clone["parameters"][0]["value"] == "0x00000063"


def test_l2_learning_digest() -> None:
    res = build("l2_learning.p4")
    j = res.bmv2_json
    (ll,) = j["learn_lists"]
    assert ll["name"] == "learn_t" and len(ll["elements"]) == 2
    gen = next(p for a in j["actions"] for p in a["primitives"] if p["op"] == "generate_digest")
    assert gen["parameters"][1]["value"] == "0x00000001"
    (d,) = res.p4info.digests
    assert d.preamble.name == "learn_t" and d.type_spec.struct.name == "learn_t"
    members = res.p4info.type_info.structs["learn_t"].members
    assert [(m.name, m.type_spec.bitstring.bit.bitwidth) for m in members] == [("srcAddr", 48), ("ingress_port", 9)]


def test_legacy_ops_and_value_switch() -> None:
    j = build("legacy_ops.p4").bmv2_json
    # @field_list(1) on meta.op, @field_list(FL_RESUBMIT) (a constant: 2) on the nested meta.rs.pass
    assert [(fl["name"], fl["elements"]) for fl in j["field_lists"]] == [
        ("field_list1", [{"type": "field", "value": ["scalars", "userMetadata.op"]}]),
        ("field_list2", [{"type": "field", "value": ["scalars", "userMetadata.rs.pass"]}])]
    act = next(a for a in j["actions"] if a["name"] == "MyIngress.set_mode")
    ops = [p["op"] for p in act["primitives"]]
    assert ops == ["assign", "_jump_if_zero", "assign", "_jump", "assign"]
    assert act["primitives"][3]["parameters"][0]["value"] == "0x00000005"     # return: jump past the end
    conds = [c for p in j["pipelines"] for c in p["conditionals"]]
    labels = sorted(int(c["expression"]["value"]["right"]["value"], 16) for c in conds
                    if c["expression"]["value"]["op"] == "==" and
                    c["expression"]["value"]["left"]["value"] == ["scalars", "userMetadata.op"])
    assert labels == [0, 1, 2, 3]
