"""Conformance with p4c-bm2-ss / simple_switch on points where the embedded compiler once diverged
(each test is a minimal self-written program; the p4c behaviour it pins is named in the test)."""
from __future__ import annotations

from pathlib import Path

import pytest

from p4target.compiler import CompileError, compile_file

HEAD = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<16> b; }
struct headers { h_t h; }
struct meta_t { bit<8> x; bit<16> y; }
parser P(packet_in p, out headers hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { p.extract(hdr.h); transition accept; }
}
"""
REST = """control V(inout headers hdr, inout meta_t m) { apply { } }
control E(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control C(inout headers hdr, inout meta_t m) { apply { } }
control D(packet_out p, in headers hdr) { apply { p.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""
ING = "control I(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) {\n%s\n}\n"


def build(tmp_path: Path, ingress: str, head: str = HEAD):
    src = tmp_path / "prog.p4"
    src.write_text(head + ING % ingress + REST)
    return compile_file(str(src))


def reject(tmp_path: Path, ingress: str, match: str, head: str = HEAD) -> str:
    with pytest.raises(CompileError) as ei:
        build(tmp_path, ingress, head)
    text = str(ei.value)
    assert ": error: " in text and "internal compiler error" not in text, text
    assert match in text, text
    return text


def table(res, name: str) -> dict:
    for pipe in res.bmv2_json["pipelines"]:
        for t in pipe["tables"]:
            if t["name"] == name:
                return t
    raise AssertionError(name)


def test_table_without_default_gets_noaction_defaultonly(tmp_path: Path) -> None:
    # p4c CreateBuiltins: `default_action = NoAction()` (not const) and NoAction added @defaultonly.
    res = build(tmp_path, """action fwd(bit<9> port) { sm.egress_spec = port; }
        table t { key = { hdr.h.a: exact; } actions = { fwd; } }
        apply { t.apply(); }""")
    t = table(res, "I.t")
    assert t["actions"] == ["I.fwd", "NoAction"]
    noaction = {a["name"]: a["id"] for a in res.bmv2_json["actions"]}["NoAction"]
    assert t["default_entry"] == {"action_id": noaction, "action_const": False, "action_data": [],
                                  "action_entry_const": False}
    (pt,) = res.p4info.tables
    ids = {a.preamble.name: a.preamble.id for a in res.p4info.actions}
    assert ids["NoAction"] == 21257015
    refs = {r.id: r.scope for r in pt.action_refs}
    assert refs[ids["NoAction"]] == 2  # DEFAULT_ONLY
    assert pt.initial_default_action.action_id == ids["NoAction"]
    assert not pt.const_default_action_id


def test_table_listing_noaction_keeps_its_scope(tmp_path: Path) -> None:
    res = build(tmp_path, """table t { key = { hdr.h.a: exact; } actions = { NoAction; } }
        apply { t.apply(); }""")
    assert table(res, "I.t")["actions"] == ["NoAction"]
    (pt,) = res.p4info.tables
    assert [r.scope for r in pt.action_refs] == [0]
