"""simple_switch_CLI table commands against the real compiler + pipeline (corpus basic.p4 and features.p4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p4target.switch import Switch
from p4target.switch.runtime import RuntimeCommands

CORPUS = Path(__file__).resolve().parents[1] / "compiler" / "corpus"


def _switch(program: str) -> Switch:
    from p4target.compiler import compile_file

    src = CORPUS / program
    if not src.exists():
        pytest.skip(f"{src} missing")
    sw = Switch({}, cpu_port=255)
    sw.set_pipeline(json.dumps(compile_file(str(src)).bmv2_json))
    return sw


def test_table_add_forwards_and_dump_delete():
    sw = _switch("basic.p4")
    cmds = RuntimeCommands(sw)
    out = cmds.execute("table_add MyIngress.ipv4_lpm ipv4_forward 10.0.1.0/24 => 00:00:00:00:01:01 3")
    assert out.endswith("Entry has been added with handle 0\n")
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    outs = sw.pipeline.process(0, bytes(Ether() / IP(dst="10.0.1.7", ttl=9) / TCP()))
    assert [(port, Ether(data)[IP].ttl, Ether(data).dst) for port, data in outs] == [(3, 8, "00:00:00:00:01:01")]
    assert "LPM       0a000100/24" in cmds.execute("table_dump ipv4_lpm")
    assert cmds.execute("table_modify ipv4_lpm ipv4_forward 0 00:00:00:00:02:02 4").startswith("Modifying entry 0")
    assert sw.pipeline.tables["MyIngress.ipv4_lpm"].entries()[0].params == [0x202, 4]
    assert cmds.execute("table_add ipv4_lpm ipv4_forward 10.0.1.0/24 => 1 1").endswith(
        "Invalid table operation (DUPLICATE_ENTRY)\n")
    assert cmds.execute("table_add ipv4_lpm ipv4_forward 10.0.1.0/33 => 1 1").endswith("(BAD_MATCH_KEY)\n")
    assert cmds.execute("table_add ipv4_lpm nope 10.0.2.0/24 =>") == "Error: Table ipv4_lpm has no action nope\n"
    assert cmds.execute("table_add ipv4_lpm ipv4_forward 10.0.2.0/24 => 1") == (
        "Error: Action MyIngress.ipv4_forward needs 2 parameters\n")
    assert cmds.execute("table_delete ipv4_lpm 0") == "Deleting entry 0 from ipv4_lpm\n"
    assert cmds.execute("table_num_entries ipv4_lpm") == "0\n"
    assert cmds.execute("table_delete ipv4_lpm 0").endswith("Invalid table operation (INVALID_HANDLE)\n")
    assert cmds.execute("table_set_default ipv4_lpm ipv4_forward 0x1 2").startswith("Setting default action")
    assert sw.pipeline.tables["MyIngress.ipv4_lpm"].get_default() == ("MyIngress.ipv4_forward", [1, 2])
    assert cmds.execute("table_reset_default ipv4_lpm") == ""
    assert sw.pipeline.tables["MyIngress.ipv4_lpm"].get_default()[0] == "MyIngress.drop"
    cmds.execute("table_add ipv4_lpm drop 10.0.0.0/8 =>")
    cmds.execute("table_add ipv4_lpm drop 11.0.0.0/8 =>")
    assert cmds.execute("table_clear ipv4_lpm") == "" and cmds.execute("table_num_entries ipv4_lpm") == "0\n"


def test_table_add_ternary_range_with_priority():
    sw = _switch("features.p4")
    cmds = RuntimeCommands(sw)
    table = sw.pipeline.tables["MyIngress.classifier"]
    # p4c emits an `optional` key as ternary (simple_switch has no optional match type): the ternary
    # value must fit the narrowest such key (a 1-bit validity bit).
    kinds = [k.match_type for k in table.keys]
    words = {"lpm": "10.0.0.0/8", "ternary": "0x1&&&0x1", "range": "1000->2000"}
    keys = " ".join(words.get(k, "0&&&0") for k in kinds)
    out = cmds.execute(f"table_add classifier set_class {keys} => 7 10")
    assert "Entry has been added" in out, out
    (e,) = table.entries()
    assert e.priority == (1 << 31) - 1 - 10 and e.params == [7]  # BMv2 priority 10 (smaller wins)
    assert cmds.execute(f"table_add classifier set_class {keys} => 7 x").startswith(
        "Error: Table is ternary, but could not extract a valid priority")
