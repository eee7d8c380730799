"""Registers, counters, meters (direct and indirect), hashes, random, log_msg, assert, exit,
jumps inside actions and checksums (IPv4, TCP with payload)."""

import zlib

import pytest
from pl_jsonkit import (
    ETHERNET,
    IPV4,
    TCP,
    Doc,
    action_program,
    eth_doc,
    ex,
    extract,
    fld,
    hdr,
    hexv,
    ipv4_checksum,
    prim,
    rd,
    recorder,
    state,
    trans,
)
from scapy.all import IP, Ether, raw
from scapy.all import TCP as STCP

from p4target.pipeline import Match, Pipeline, TableError
from p4target.pipeline.hashes import crc16

SM = "standard_metadata"
REG = {"type": "register_array", "value": "rec"}
PKT = raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=0x1111)) + b"xy"


def test_register_read_modify_write_across_packets_and_bounds():
    doc = action_program([
        prim("register_read", fld("scalars", "tmp"), REG, fld(SM, "ingress_port")),
        prim("register_write", REG, fld(SM, "ingress_port"), ex("+", fld("scalars", "tmp"), hexv(1))),
    ], registers={"rec": (4, 8)})
    p = Pipeline(doc.d)
    for _ in range(3):
        p.process(2, PKT)
    p.process(9, PKT)                           # out of bounds: ignored, no crash
    r = p.registers["rec"]
    assert r.cells == [0, 0, 3, 0] and r.read(2) == 3
    r.write(1, 255)
    p.process(1, PKT)
    assert r.read(1) == 0                       # 8-bit register wraps
    with pytest.raises(TableError) as ei:
        r.read(4)
    assert ei.value.code == "OUT_OF_RANGE"
    with pytest.raises(TableError):
        r.write(0, 256)
    r.reset()
    assert r.cells == [0, 0, 0, 0]


def test_indirect_counter():
    doc = action_program([prim("count", {"type": "counter_array", "value": "c"}, fld(SM, "ingress_port"))])
    doc.d["counter_arrays"] = [{"name": "c", "id": 0, "is_direct": False, "size": 8}]
    p = Pipeline(doc.d)
    p.process(3, PKT)
    p.process(3, PKT + b"1234")
    assert p.counters["c"].read(3) == (2, 2 * len(PKT) + 4)
    p.counters["c"].write(3, 0, 0)
    assert p.counters["c"].read(3) == (0, 0)


def test_indirect_meter_two_rate_three_color():
    doc = action_program([prim("execute_meter", {"type": "meter_array", "value": "m"}, hexv(0), fld("scalars", "tmp")),
                          *recorder([fld("scalars", "tmp")])], registers={"rec": (1, 8)})
    doc.d["meter_arrays"] = [{"name": "m", "id": 0, "is_direct": False, "size": 2, "rate_count": 2, "type": "packets"}]
    p = Pipeline(doc.d)
    colors = []

    def send(ts):
        for job in p.ingress(1, PKT, ts):
            p.egress(job, ts, ts, 0, 0)
        colors.append(p.registers["rec"].cells[0])

    send(0)
    assert colors == [0]                        # unconfigured meter: GREEN
    # CIR 1 packet / 1000us burst 2, PIR 1 packet / 100us burst 3
    p.meters["m"].set_rates(0, [(0.001, 2), (0.01, 3)])
    colors.clear()
    for _ in range(4):
        send(10)
    assert colors == [0, 0, 1, 2]               # 2 green (committed burst), 1 yellow, then red
    colors.clear()
    send(2_000_000)                             # buckets refilled
    assert colors == [0]
    with pytest.raises(TableError):
        p.meters["m"].set_rates(0, [(1, 1)])


def direct_program():
    doc = Doc({"ethernet": ETHERNET}, scalars=[["color", 8, False], ["tmp", 32, False]])
    doc.parser([state("start", [extract("ethernet")])])
    doc.deparser(["ethernet"])
    doc.d["register_arrays"].append({"name": "rec", "id": 0, "size": 1, "bitwidth": 8})
    doc.d["meter_arrays"] = [{"name": "dm", "id": 0, "is_direct": True, "binding": "t", "size": 1024,
                              "rate_count": 2, "type": "packets", "result_target": ["scalars", "color"]}]
    doc.d["counter_arrays"] = [{"name": "dc", "id": 0, "is_direct": True, "binding": "t", "size": 1024}]
    doc.action("NoAction")
    doc.action("fwd", [("p", 9)], [prim("assign", fld(SM, "egress_spec"), rd(0)),
                                   *recorder([fld("scalars", "color")])])
    doc.table("ingress", "t", [("exact", ["ethernet", "dstAddr"])], ["fwd", "NoAction"],
              default=("NoAction", []), with_counters=True, direct_meter="dm")
    return Pipeline(doc.d)


def test_direct_meter_and_counter():
    p = direct_program()
    t = p.tables["t"]
    assert t.direct_counter == "dc" and t.direct_meter == "dm"
    e = t.add([Match("exact", 1)], "fwd", [4])
    t.set_meter(e, [(0.0001, 1), (0.0001, 2)])
    seen = []
    for _ in range(3):
        p.process(0, PKT, ts_us=5)
        seen.append(p.registers["rec"].cells[0])
    assert seen == [0, 1, 2]
    assert e.counter == [3, 3 * len(PKT)]
    assert e.meter_config == [(0.0001, 1), (0.0001, 2)]


def hash_program(algo, size):
    doc = action_program([prim("modify_field_with_hash_based_offset", fld("scalars", "tmp"), hexv(0),
                                {"type": "calculation", "value": "h"}, hexv(size)),
                          *recorder([fld("scalars", "tmp")])], registers={"rec": (1, 32)})
    doc.d["calculations"] = [{"name": "h", "id": 0, "algo": algo,
                              "input": [fld("ethernet", "srcAddr"), fld("ethernet", "etherType"),
                                        {"type": "hexstr", "value": "0x5", "bitwidth": 4},
                                        fld(SM, "ingress_port")]}]
    return Pipeline(doc.d)


@pytest.mark.parametrize("algo", ["crc16", "crc32", "identity", "csum16"])
def test_hash_over_bmv2_field_list_bytes(algo):
    p = hash_program(algo, 1 << 32)
    p.process(0x1AB, PKT)
    # bytes: srcAddr(48) etherType(16) 0x5(4) ingress_port(9) -> 77 bits, zero-padded to 80
    bits = (0x000000000002 << 29) | (0x1111 << 13) | (0x5 << 9) | 0x1AB
    data = (bits << 3).to_bytes(10, "big")
    expected = {"crc16": crc16(data), "crc32": zlib.crc32(data), "identity": int.from_bytes(data[:8], "big"),
                "csum16": None}[algo]
    got = p.registers["rec"].cells[0]
    if algo == "csum16":
        words = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, 10, 2))
        while words >> 16:
            words = (words & 0xFFFF) + (words >> 16)
        expected = ~words & 0xFFFF
    assert got == expected & 0xFFFFFFFF


def test_hash_modulo_and_base():
    p = hash_program("crc16", 100)
    p.process(1, PKT)
    first = p.registers["rec"].cells[0]
    assert 0 <= first < 100


def test_random_within_bounds():
    doc = action_program([prim("modify_field_rng_uniform", fld("scalars", "tmp"), hexv(10), hexv(12)),
                          *recorder([fld("scalars", "tmp")])], registers={"rec": (1, 32)})
    p = Pipeline(doc.d)
    seen = set()
    for _ in range(60):
        p.process(1, PKT)
        seen.add(p.registers["rec"].cells[0])
    assert seen == {10, 11, 12}


def test_log_msg_assert_and_exit():
    vec = {"type": "parameters_vector", "value": [fld(SM, "ingress_port"), hexv(5)]}
    doc = action_program([prim("log_msg", {"type": "string", "value": "port={} five={}"}, vec),
                          prim("assert", ex("!=", fld(SM, "ingress_port"), hexv(13))),
                          prim("assign", fld(SM, "egress_spec"), hexv(2)),
                          prim("exit"),
                          prim("assign", fld(SM, "egress_spec"), hexv(3))])
    doc.action("after", [], [prim("assign", fld(SM, "egress_spec"), hexv(4))])
    doc.d["pipelines"][0]["tables"][0]["base_default_next"] = "tbl_after"
    doc.d["pipelines"][0]["tables"][0]["next_tables"] = {"ing": "tbl_after"}
    doc.call("ingress", "tbl_after", "after")
    p = Pipeline(doc.d)
    lines = []
    p.log_sink = lines.append
    assert [port for port, _ in p.process(7, PKT)] == [2]       # exit skipped the rest
    assert any(line.endswith("port=7 five=5") for line in lines)
    assert p.process(13, PKT) == []                               # assert failed: dropped, no crash


def test_jumps_inside_actions():
    # if (port == 1) { tmp = 10 } else { tmp = 20 }; tmp = tmp + 1  (as p4c emits with _jump_if_zero)
    prims = [
        prim("_jump_if_zero", ex("b2d", None, ex("==", fld(SM, "ingress_port"), hexv(1))), hexv(3)),
        prim("assign", fld("scalars", "tmp"), hexv(10)),
        prim("_jump", hexv(4)),
        prim("assign", fld("scalars", "tmp"), hexv(20)),
        prim("assign", fld("scalars", "tmp"), ex("+", fld("scalars", "tmp"), hexv(1))),
        *recorder([fld("scalars", "tmp")]),
    ]
    p = Pipeline(action_program(prims, registers={"rec": (1, 32)}).d)
    p.process(1, PKT)
    assert p.registers["rec"].cells[0] == 11
    p.process(2, PKT)
    assert p.registers["rec"].cells[0] == 21


def tcp_program(with_verify=True):
    doc = Doc({"ethernet": ETHERNET, "ipv4": IPV4, "tcp": TCP}, scalars=[["tmp", 32, False]])
    doc.parser([
        state("start", [extract("ethernet")], [fld("ethernet", "etherType")], [trans(0x0800, "ip"), trans(None, None)]),
        state("ip", [extract("ipv4")], [fld("ipv4", "protocol")], [trans(6, "tcp", nbytes=1), trans(None, None)]),
        state("tcp", [extract("tcp")]),
    ])
    doc.deparser(["ethernet", "ipv4", "tcp"])
    ipv4_checksum(doc, verify=with_verify)
    # update_checksum_with_payload: pseudo header + tcp header + payload
    tcp_len = ex("&", ex("-", fld("ipv4", "totalLen"), hexv(20)), hexv(0xFFFF))
    doc.d["calculations"].append({"name": "tcp_calc", "id": 1, "algo": "csum16", "input": [
        fld("ipv4", "srcAddr"), fld("ipv4", "dstAddr"), {"type": "hexstr", "value": "0x00", "bitwidth": 8},
        fld("ipv4", "protocol"), fld("scalars", "tmp"),
        *[fld("tcp", f[0]) for f in TCP if f[0] != "checksum"], {"type": "payload", "value": None}]})
    doc.d["checksums"].append({"name": "tcp_ck", "id": 1, "target": ["tcp", "checksum"], "type": "generic",
                               "calculation": "tcp_calc", "verify": False, "update": True,
                               "if_cond": ex("d2b", None, ex("valid", None, hdr("tcp")))})
    # scalars.tmp is 32 bits in this program; the pseudo header's length is 16 bits -> use 16-bit slot
    doc.d["header_types"][0]["fields"] = [["tmp", 16, False]]
    doc.action("nat", [], [prim("assign", fld("ipv4", "srcAddr"), hexv(0x0A0A0A0A)),
                           prim("assign", fld("tcp", "dstPort"), hexv(8080)),
                           prim("assign", fld("scalars", "tmp"), tcp_len),
                           prim("assign", fld(SM, "egress_spec"), hexv(1)),
                           *recorder([fld(SM, "checksum_error")])])
    doc.d["register_arrays"].append({"name": "rec", "id": 0, "size": 1, "bitwidth": 8})
    doc.call("ingress", "tbl_nat", "nat")
    return Pipeline(doc.d)


def test_tcp_checksum_with_payload_and_ipv4_update():
    p = tcp_program()
    src = Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / STCP(sport=1234, dport=80, seq=7, flags="PA") / b"hello world"
    (port, out), = p.process(0, raw(src))
    expected = raw(Ether() / IP(src="10.10.10.10", dst="5.6.7.8") /
                   STCP(sport=1234, dport=8080, seq=7, flags="PA") / b"hello world")
    assert out == expected                       # scapy computed both checksums independently
    assert p.registers["rec"].cells[0] == 0


def test_checksum_verify_sets_checksum_error():
    p = tcp_program()
    bad = bytearray(raw(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / STCP()))
    bad[24] ^= 0xFF                               # corrupt the IPv4 header checksum
    p.process(0, bytes(bad))
    assert p.registers["rec"].cells[0] == 1


def test_table_without_meter_refuses_meter_config():
    p = direct_program()
    doc = eth_doc()
    doc.action("a", [], [])
    doc.table("ingress", "plain", [("exact", ["ethernet", "dstAddr"])], ["a"], default=("a", []))
    q = Pipeline(doc.d)
    e = q.tables["plain"].add([Match("exact", 1)], "a", [])
    with pytest.raises(TableError):
        q.tables["plain"].set_meter(e, [(1, 1), (1, 1)])
    assert p.tables["t"].direct_meter == "dm"


def test_byte_meter_counts_received_bytes():
    doc = action_program([prim("execute_meter", {"type": "meter_array", "value": "m"}, hexv(0), fld("scalars", "tmp")),
                          *recorder([fld("scalars", "tmp")])], registers={"rec": (1, 8)})
    doc.d["meter_arrays"] = [{"name": "m", "id": 0, "is_direct": False, "size": 1, "rate_count": 2, "type": "bytes"}]
    p = Pipeline(doc.d)
    n = len(PKT)
    p.meters["m"].set_rates(0, [(0.0, n), (0.0, 2 * n)])     # bursts of one and two packets' bytes
    colors = []
    for _ in range(3):
        p.process(1, PKT, ts_us=1)
        colors.append(p.registers["rec"].cells[0])
    assert colors == [0, 1, 2]
    assert p.meters["m"].get_rates(0) == [(0.0, n), (0.0, 2 * n)]
