"""Programs p4c rejects are rejected too (a located error, never a traceback or silent output)."""
from __future__ import annotations

from pathlib import Path

import pytest

from p4target.compiler import CompileError, compile_file

HEAD = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<16> b; }
struct headers { h_t h; }
struct meta_t { bit<8> x; bool f; }
"""
PARSER = """parser P(packet_in p, out headers hdr, inout meta_t m, inout standard_metadata_t sm) {
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

CASES = {
    "duplicate action": ING % "action a() {} action a() {} apply { }",
    "entry action data width": ING % """action set(bit<8> v) { m.x = v; }
        table t { key = { hdr.h.a: exact; } actions = { set; } const entries = { 1: set(8w1 ++ 8w1); } }
        apply { t.apply(); }""",
    "key on a header": ING % "table t { key = { hdr.h: exact; } actions = { NoAction; } } apply { t.apply(); }",
    "assign to in param": "control I(inout headers hdr, in meta_t m, inout standard_metadata_t sm) "
                          "{ apply { m.x = 1; } }\n",
    "unknown extern": ING % "apply { frobnicate(m.x); }",
    "bad register syntax": ING % "register<bit<8>> r(4); apply { }",
    "unknown state": "",
    "table applied twice": ING % "table t { actions = { NoAction; } } apply { t.apply(); t.apply(); }",
    "unknown key field": ING % "table t { key = { hdr.h.zz: exact; } actions = { NoAction; } } apply { t.apply(); }",
    "bool into bit": ING % "apply { m.x = m.f; }",
    "action arg count": ING % "action a(bit<8> v) { m.x = v; } apply { a(); }",
    "default action not in list": ING % """action a() {} action b() {}
        table t { actions = { a; } default_action = b(); } apply { t.apply(); }""",
    "missing semicolon": ING % "apply { m.x = 1 m.x = 2; }",
    "comparison of bool and bit": ING % "apply { if (m.f == m.x) { m.x = 1; } }",
    "shift by signed": ING % "apply { m.x = m.x << (int<8>)1; }",
    "slice out of range": ING % "apply { m.x = hdr.h.b[16:9]; }",
    "unknown match kind": ING % "table t { key = { hdr.h.a: fuzzy; } actions = { NoAction; } } apply { t.apply(); }",
    "exit in parser": "",
}


def source(name: str, body: str) -> str:
    if name == "unknown state":
        parser = PARSER.replace("transition accept", "transition nowhere")
        return HEAD + parser + ING % "apply { }" + REST
    if name == "exit in parser":
        parser = PARSER.replace("p.extract(hdr.h);", "p.extract(hdr.h); exit;")
        return HEAD + parser + ING % "apply { }" + REST
    return HEAD + PARSER + body + REST


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejected_with_location(tmp_path: Path, name: str) -> None:
    src = tmp_path / "bad.p4"
    src.write_text(source(name, CASES[name]))
    with pytest.raises(CompileError) as ei:
        compile_file(str(src))
    text = str(ei.value)
    assert text.startswith(f"{src}:") and ": error: " in text, text
    assert "internal compiler error" not in text


def test_missing_main(tmp_path: Path) -> None:
    src = tmp_path / "nomain.p4"
    src.write_text(HEAD)
    with pytest.raises(CompileError, match="main"):
        compile_file(str(src))


UNSUPPORTED = {
    "varbit": ("header v_t { varbit<32> opts; }\n" + PARSER + ING % "apply { }", "varbit"),
    "header union": ("header_union u_t { h_t a; }\n" + PARSER + ING % "apply { }", "header unions"),
    "action selector": (PARSER + ING % """action_selector(HashAlgorithm.crc16, 32w64, 32w10) sel;
        table t { key = { hdr.h.a: selector; } actions = { NoAction; } implementation = sel; }
        apply { t.apply(); }""", "action_selector"),
    "tuple local": (PARSER + ING % "apply { tuple<bit<8>, bit<16>> t = {1, 2}; }", "tuple"),
    "value set": (PARSER.replace("state start", "value_set<bit<8>>(4) vs;\n    state start") + ING % "apply { }",
                  "parser value sets"),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_constructs_are_reported(tmp_path: Path, name: str) -> None:
    body, what = UNSUPPORTED[name]
    src = tmp_path / "u.p4"
    src.write_text(HEAD + body + REST)
    with pytest.raises(CompileError) as ei:
        compile_file(str(src))
    text = str(ei.value)
    assert text.startswith(f"{src}:") and "error: unsupported: " in text and what in text, text
