"""Table semantics: match kinds, priorities (P4Runtime: larger wins), API errors, const entries."""

import pytest
from pl_jsonkit import ETHERNET, Doc, assign, extract, fld, rd, state
from scapy.all import Ether, raw

from p4target.pipeline import Match, Pipeline, TableError


def table_program(keys, entries=None, size=1024, const_default=False):
    """Ethernet program with one table keyed by `keys` whose action writes etherType."""
    doc = Doc({"ethernet": ETHERNET})
    doc.parser([state("start", [extract("ethernet")])])
    doc.deparser(["ethernet"])
    doc.action("NoAction")
    doc.action("set_type", [("t", 16)], [assign(fld("ethernet", "etherType"), rd(0))])
    doc.action("set_two", [("t", 16), ("p", 9)], [assign(fld("ethernet", "etherType"), rd(0)),
                                                 assign(fld("standard_metadata", "egress_spec"), rd(1))])
    doc.table("ingress", "t", keys, ["set_type", "set_two", "NoAction"], default=("NoAction", []),
              entries=entries, size=size, with_counters=True, const_default=const_default)
    return Pipeline(doc.d)


def run(p, dst, src="00:00:00:00:00:00", port=1):
    out = p.process(port, raw(Ether(dst=dst, src=src, type=0x1234)))
    assert len(out) == 1
    return int.from_bytes(out[0][1][12:14], "big")


def test_exact_two_keys():
    p = table_program([("exact", ["ethernet", "dstAddr"]), ("exact", ["standard_metadata", "ingress_port"])])
    t = p.tables["t"]
    t.add([Match("exact", 0x010203040506), Match("exact", 3)], "set_type", [0xAAAA])
    assert run(p, "01:02:03:04:05:06", port=3) == 0xAAAA
    assert run(p, "01:02:03:04:05:06", port=2) == 0x1234
    assert t.keys[1].bitwidth == 9 and t.keys[0].match_type == "exact"


def test_ternary_larger_priority_wins_and_ties_keep_insertion_order():
    p = table_program([("ternary", ["ethernet", "dstAddr"])])
    t = p.tables["t"]
    t.add([Match("ternary", 0x010000000000, mask=0xFF0000000000)], "set_type", [1], priority=10)
    t.add([Match("ternary", 0x010200000000, mask=0xFFFF00000000)], "set_type", [2], priority=20)
    t.add([Match("ternary", 0, mask=0)], "set_type", [3], priority=1)
    assert run(p, "01:02:00:00:00:00") == 2
    assert run(p, "01:03:00:00:00:00") == 1
    assert run(p, "02:00:00:00:00:00") == 3
    t.modify([Match("ternary", 0x010200000000, mask=0xFFFF00000000)], 20, "set_type", [7])
    assert run(p, "01:02:00:00:00:00") == 7
    # same key, different priority = a different entry
    t.add([Match("ternary", 0x010200000000, mask=0xFFFF00000000)], "set_type", [8], priority=30)
    assert run(p, "01:02:00:00:00:00") == 8
    t.delete([Match("ternary", 0x010200000000, mask=0xFFFF00000000)], 30)
    assert run(p, "01:02:00:00:00:00") == 7


def test_range_and_optional_with_wildcards():
    p = table_program([("range", ["ethernet", "srcAddr"]), ("optional", ["standard_metadata", "ingress_port"])])
    t = p.tables["t"]
    t.add([Match("range", 100, high=200), Match("optional", 5)], "set_type", [1], priority=5)
    t.add([Match("range", wildcard=True), Match("optional", 7)], "set_type", [2], priority=4)
    t.add([Match("range", 150, high=160), Match("optional", wildcard=True)], "set_type", [3], priority=3)
    assert run(p, "00:00:00:00:00:00", src="00:00:00:00:00:96", port=5) == 1      # 150
    assert run(p, "00:00:00:00:00:00", src="00:00:00:00:00:96", port=6) == 3
    assert run(p, "00:00:00:00:00:00", src="00:00:00:00:0f:ff", port=7) == 2
    assert run(p, "00:00:00:00:00:00", src="00:00:00:00:00:01", port=6) == 0x1234


def test_lpm_with_exact_key():
    p = table_program([("exact", ["standard_metadata", "ingress_port"]), ("lpm", ["ethernet", "dstAddr"])])
    t = p.tables["t"]
    assert t.kind == "lpm"
    t.add([Match("exact", 1), Match("lpm", 0x0A0000000000, prefix_len=8)], "set_type", [1])
    t.add([Match("exact", 1), Match("lpm", 0x0A0B00000000, prefix_len=16)], "set_type", [2])
    t.add([Match("exact", 2), Match("lpm", 0, prefix_len=0)], "set_type", [3])
    assert run(p, "0a:0b:00:00:00:01", port=1) == 2
    assert run(p, "0a:0c:00:00:00:01", port=1) == 1
    assert run(p, "0a:0b:00:00:00:01", port=2) == 3
    assert run(p, "0b:0b:00:00:00:01", port=1) == 0x1234


def test_valid_match_kind():
    p = table_program([("valid", "ethernet")])
    p.tables["t"].add([Match("valid", 1)], "set_type", [0x4242])
    assert run(p, "00:00:00:00:00:01") == 0x4242


def test_errors_have_p4runtime_codes():
    p = table_program([("exact", ["ethernet", "dstAddr"])], size=2)
    t = p.tables["t"]
    t.add([Match("exact", 1)], "set_type", [1])
    cases = [
        (lambda: t.add([Match("exact", 1)], "set_type", [1]), "ALREADY_EXISTS"),
        (lambda: t.delete([Match("exact", 2)]), "NOT_FOUND"),
        (lambda: t.modify([Match("exact", 2)], 0, "set_type", [1]), "NOT_FOUND"),
        (lambda: t.add([Match("exact", 1 << 48)], "set_type", [1]), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("exact", 3)], "nope", []), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("exact", 3)], "set_type", [1 << 16]), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("exact", 3)], "set_type", []), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("exact", 3)], "set_type", [1], priority=3), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("ternary", 3, mask=3)], "set_type", [1]), "INVALID_ARGUMENT"),
        (lambda: t.add([], "set_type", [1]), "INVALID_ARGUMENT"),
        (lambda: t.add([Match("exact", wildcard=True)], "set_type", [1]), "INVALID_ARGUMENT"),
    ]
    for fn, code in cases:
        with pytest.raises(TableError) as ei:
            fn()
        assert ei.value.code == code, (code, ei.value)
    t.add([Match("exact", 2)], "set_type", [1])
    with pytest.raises(TableError) as ei:
        t.add([Match("exact", 3)], "set_type", [1])
    assert ei.value.code == "RESOURCE_EXHAUSTED"
    assert [e.match[0].value for e in t.entries()] == [1, 2]
    assert t.get([Match("exact", 9)]) is None


def test_ternary_requires_priority_and_masked_value():
    p = table_program([("ternary", ["ethernet", "dstAddr"])])
    t = p.tables["t"]
    for fn in (lambda: t.add([Match("ternary", 1, mask=1)], "set_type", [1]),
               lambda: t.add([Match("ternary", 3, mask=1)], "set_type", [1], priority=1)):
        with pytest.raises(TableError) as ei:
            fn()
        assert ei.value.code == "INVALID_ARGUMENT"


def test_direct_counters_count_hits_and_misses():
    p = table_program([("exact", ["ethernet", "dstAddr"])])
    t = p.tables["t"]
    e = t.add([Match("exact", 1)], "set_type", [5])
    for _ in range(3):
        run(p, "00:00:00:00:00:01")
    run(p, "00:00:00:00:00:02")
    assert e.counter == [3, 3 * 14]      # bytes counted as received (a bare 14-byte frame)
    assert t.default_counter[0] == 1


def test_const_entries_from_json_and_const_default():
    entries = [
        {"match_key": [{"match_type": "ternary", "key": "0x010000000000", "mask": "0xff0000000000"}],
         "action_entry": {"action_id": 1, "action_data": ["0x1"]}, "priority": 1},
        {"match_key": [{"match_type": "ternary", "key": "0x000000000000", "mask": "0x000000000000"}],
         "action_entry": {"action_id": 1, "action_data": ["0x2"]}, "priority": 2},
    ]
    p = table_program([("ternary", ["ethernet", "dstAddr"])], entries=entries, const_default=True)
    t = p.tables["t"]
    assert t.is_const
    # BMv2: lower JSON priority value = higher priority; first entry wins
    assert run(p, "01:00:00:00:00:00") == 1
    assert run(p, "02:00:00:00:00:00") == 2
    with pytest.raises(TableError) as ei:
        t.add([Match("ternary", 0, mask=0)], "set_type", [1], priority=9)
    assert ei.value.code == "PERMISSION_DENIED"
    with pytest.raises(TableError) as ei:
        t.set_default("set_type", [1])
    assert ei.value.code == "PERMISSION_DENIED"
    ents = t.entries()
    assert ents[0].priority > ents[1].priority
