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
