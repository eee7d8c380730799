"""Interoperability: corpus programs compiled by p4target.compiler run on p4target.pipeline and
produce the packets the P4 source says (expected packets written out by hand)."""
from __future__ import annotations

import struct
from pathlib import Path

from scapy.all import IP, UDP, Ether, Raw, raw

from p4target.compiler import compile_file
from p4target.pipeline import Pipeline
from p4target.pipeline.tables import Match

CORPUS = Path(__file__).resolve().parent / "corpus"


def pipeline(name: str) -> Pipeline:
    return Pipeline(compile_file(str(CORPUS / name), include_dirs=[str(CORPUS)]).bmv2_json)


def test_basic_routes_and_updates_checksum() -> None:
    p = pipeline("basic.p4")
    p.tables["MyIngress.ipv4_lpm"].add([Match("lpm", 0x0A000200, prefix_len=24)], "MyIngress.ipv4_forward",
                                        [0x0000000002AA, 3])
    pkt = Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:09") / IP(src="10.0.1.1", dst="10.0.2.2", ttl=64) \
        / UDP(sport=1, dport=2) / b"hello"
    outs = p.process(1, raw(pkt))
    want = Ether(dst="00:00:00:00:02:aa", src="00:00:00:00:00:01") / IP(src="10.0.1.1", dst="10.0.2.2", ttl=63) \
        / UDP(sport=1, dport=2) / b"hello"
    assert outs == [(3, raw(want))]
    assert p.process(1, raw(Ether() / IP(dst="10.9.9.9") / UDP())) == []      # default action drop


def test_calc_subtracts_and_reflects() -> None:
    p = pipeline("calc.p4")
    req = struct.pack("!BBBBIII", 0x50, 0x34, 1, 0x2D, 100, 58, 0)
    outs = p.process(2, raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=0x1234) / Raw(req)))
    want = Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01", type=0x1234) \
        / Raw(struct.pack("!BBBBIII", 0x50, 0x34, 1, 0x2D, 100, 58, 42))
    assert outs == [(2, raw(want))]


def test_source_routing_pops_a_hop() -> None:
    p = pipeline("source_routing.p4")
    hops = struct.pack("!HHH", 2, 3, (1 << 15) | 4)
    outs = p.process(1, raw(Ether(type=0x1234) / Raw(hops)))
    assert len(outs) == 1 and outs[0][0] == 2
    assert outs[0][1][12:18] == bytes.fromhex("1234") + struct.pack("!HH", 3, (1 << 15) | 4)


DYN_INDEX = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; }
struct headers { h_t[4] s; }
struct meta_t { bit<2> i; }
parser P(packet_in p, out headers hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        p.extract(hdr.s.next); p.extract(hdr.s.next); p.extract(hdr.s.next); p.extract(hdr.s.next);
        transition accept;
    }
}
control I(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply { m.i = hdr.s[0].a[1:0]; hdr.s[m.i].b = hdr.s[m.i].a + 1; sm.egress_spec = 1; }
}
control V(inout headers hdr, inout meta_t m) { apply { } }
control E(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control C(inout headers hdr, inout meta_t m) { apply { } }
control D(packet_out p, in headers hdr) { apply { p.emit(hdr.s); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


def test_runtime_stack_index(tmp_path: Path) -> None:
    src = tmp_path / "dyn.p4"
    src.write_text(DYN_INDEX)
    p = Pipeline(compile_file(str(src)).bmv2_json)
    assert p.process(1, bytes([2, 0, 5, 0, 7, 0, 9, 0]) + b"payload") == \
        [(1, bytes([2, 0, 5, 0, 7, 8, 9, 0]) + b"payload")]


def test_l2_learning_digest_and_flood() -> None:
    p = pipeline("l2_learning.p4")
    got: list[tuple[int, str, tuple[int, ...]]] = []
    p.digest_sink = lambda lid, name, vals: got.append((lid, name, vals))
    p.set_mc_group(1, [(1, 0), (2, 0), (3, 0)])
    outs = p.process(2, raw(Ether(src="00:00:00:00:00:aa", dst="00:00:00:00:00:bb") / (b"x" * 50)))
    assert got == [(1, "learn_t", (0xAA, 2))]
    assert sorted(port for port, _ in outs) == [1, 3]          # flooded, pruned on the ingress port


def test_firewall_bloom_filter() -> None:
    from scapy.all import TCP

    p = pipeline("firewall.p4")
    lpm = p.tables["MyIngress.ipv4_lpm"]
    lpm.add([Match("lpm", 0x0A000101, prefix_len=32)], "MyIngress.ipv4_forward", [0x1, 1])
    lpm.add([Match("lpm", 0x0A000303, prefix_len=32)], "MyIngress.ipv4_forward", [0x3, 3])
    ports = p.tables["MyIngress.check_ports"]
    ports.add([Match("exact", 1), Match("exact", 3)], "MyIngress.set_direction", [0])
    ports.add([Match("exact", 3), Match("exact", 1)], "MyIngress.set_direction", [1])

    def seg(src: str, dst: str, sport: int, dport: int, flags: str) -> bytes:
        return raw(Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags))

    assert p.process(3, seg("10.0.3.3", "10.0.1.1", 80, 1234, "A")) == []         # unsolicited
    assert [o[0] for o in p.process(1, seg("10.0.1.1", "10.0.3.3", 1234, 80, "S"))] == [3]
    assert [o[0] for o in p.process(3, seg("10.0.3.3", "10.0.1.1", 80, 1234, "SA"))] == [1]
    assert p.process(3, seg("10.0.3.3", "10.0.1.1", 81, 1234, "SA")) == []         # other flow


def test_functions_are_inlined() -> None:
    p = pipeline("functions.p4")
    assert p.process(1, bytes([5, 9, 0]) + b"pay") == [(1, bytes([100, 9, 10]) + b"pay")]
    assert p.process(1, bytes([200, 150, 0]) + b"pay") == [(1, bytes([150, 150, 201]) + b"pay")]
