"""P4 sources compiled by p4target.compiler, run through the pipeline with scapy packets and
expected outputs written out in full (corpus basic.p4, p4src/flow_nic.p4, p4src/gateway.p4)."""

import struct
import zlib
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, Ether, raw

import p4target.compiler as compiler
from p4target.pipeline import Match, Pipeline

ROOT = Path(__file__).resolve().parents[2]


def build(path):
    res = compiler.compile_file(str(ROOT / path), include_dirs=[str(ROOT / "p4src" / "include")])
    return Pipeline(res.bmv2_json)


@pytest.fixture(scope="module")
def basic_json():
    return compiler.compile_file(str(ROOT / "tests/compiler/corpus/basic.p4"),
                                 include_dirs=[str(ROOT / "p4src/include")]).bmv2_json


def test_basic_ipv4_lpm(basic_json):
    p = Pipeline(basic_json)
    t = p.tables["MyIngress.ipv4_lpm"]
    t.add([Match("lpm", 0x0A000100, prefix_len=24)], "MyIngress.ipv4_forward", [0x080000000111, 2])
    t.add([Match("lpm", 0x0A000000, prefix_len=8)], "MyIngress.ipv4_forward", [0x080000000222, 3])
    sent = raw(Ether(dst="08:00:00:00:01:00", src="08:00:00:00:00:01") /
               IP(src="10.0.0.1", dst="10.0.1.1", ttl=64, id=1) / TCP(sport=5000, dport=80) / b"hi")
    expected = raw(Ether(dst="08:00:00:00:01:11", src="08:00:00:00:01:00") /
                   IP(src="10.0.0.1", dst="10.0.1.1", ttl=63, id=1) / TCP(sport=5000, dport=80) / b"hi")
    assert p.process(1, sent) == [(2, expected)]
    other = sent.replace(bytes([10, 0, 1, 1]), bytes([10, 0, 2, 1]))
    (port, out), = p.process(1, other)
    assert port == 3 and out[:6] == bytes.fromhex("080000000222")
    assert p.process(1, raw(Ether() / IP(dst="192.168.1.1"))) == []      # default drop


NIC = "FlowNicIngress."


@pytest.fixture(scope="module")
def nic_json():
    return compiler.compile_file(str(ROOT / "p4src/flow_nic.p4"), include_dirs=[str(ROOT / "p4src/include")]).bmv2_json


@pytest.fixture
def nic(nic_json):
    p = Pipeline(nic_json)
    ports = p.tables[NIC + "nic_forwarding.nic_ports"]
    ports.add([Match("exact", 1)], NIC + "nic_forwarding.set_egress_port", [2])
    ports.add([Match("exact", 2)], NIC + "nic_forwarding.set_egress_port", [1])
    return p


def h1_slot(kind, lo, hi, plo, phi, proto, qpn):
    bits = (kind << 128) | (lo << 96) | (hi << 64) | (plo << 48) | (phi << 32) | (proto << 24) | qpn
    return zlib.crc32(bits.to_bytes(17, "big")) % 4096


def test_flow_nic_without_port_mapping_drops_and_counts(nic_json):
    p = Pipeline(nic_json)
    assert p.process(1, raw(Ether() / IP() / UDP())) == []
    assert p.counters[NIC + "drop_accounting.drops"].read(1)[0] == 1      # DROP_NO_PORT_MAPPING


def test_flow_nic_learns_tcp_syn_and_sends_digest(nic):
    digests = []
    nic.digest_sink = lambda *d: digests.append(d)
    syn = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01") /
              IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=40000, dport=80, flags="S", seq=1000))
    assert nic.process(1, syn, ts_us=77) == [(2, syn)]        # forwarded unchanged
    slot = h1_slot(1, 0x0A000001, 0x0A000101, 40000, 80, 6, 0)
    assert digests == [(1, "flow_learn_digest_t",
                        (1, 1, slot, 0x0A000001, 0x0A000101, 40000, 80, 6, 0, 40000, 80, 1))]
    reg = nic.registers
    fs = NIC + "flow_state."
    assert reg[fs + "slot_flags"].read(slot) == 1
    assert reg[fs + "slot_kind"].read(slot) == 1
    assert reg[fs + "tcp_phase"].read(slot) == 1
    assert reg[fs + "tcp_next_seq_fwd"].read(slot) == 1001
    assert reg[fs + "flow_packets"].read(slot) == 1
    assert reg[fs + "flow_bytes"].read(slot) == len(syn)
    assert reg[fs + "flow_first_seen"].read(slot) == 77


def test_flow_nic_drops_mid_connection_packet_of_unknown_connection(nic):
    data = raw(Ether() / IP(src="10.0.0.9", dst="10.0.1.1") / TCP(sport=1234, dport=80, flags="A", seq=5))
    assert nic.process(1, data) == []
    assert nic.counters[NIC + "drop_accounting.drops"].read(2)[0] == 1     # DROP_INVALID_UNKNOWN


def test_flow_nic_save_command_round_trip(nic):
    syn = raw(Ether() / IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=40000, dport=80, flags="S", seq=1000))
    nic.process(1, syn, ts_us=5)
    slot = h1_slot(1, 0x0A000001, 0x0A000101, 40000, 80, 6, 0)
    cmd = struct.pack(">BBBBII", 1, 2, 0, 1, slot, 0xABCD) + struct.pack(
        ">IIHHB", 0x0A000001, 0x0A000101, 40000, 80, 6) + b"\x00\x00\x00" + bytes(92 - 28)
    eth = raw(Ether(dst="00:00:00:00:00:00", src="00:00:00:00:00:00", type=0x88B5))
    packet_out = bytes(5)                                  # egress_port 0, ingress_port 0, mode DIRECT
    (port, reply), = nic.process(255, packet_out + eth + cmd)
    assert port == 255
    assert reply[:3] == bytes([0x7F, 0x80, 0x01])          # packet_in: ingress_port 255, reason REPLY
    body = reply[3 + 14:]
    assert len(body) == 92
    version, opcode, status, kind, rslot, req = struct.unpack(">BBBBII", body[:12])
    assert (version, opcode, status, kind, rslot, req) == (1, 2, 0, 1, slot, 0xABCD)
    assert body[28] == 1 and body[29] == 1                 # flags VALID, phase SYN_SENT
    assert struct.unpack(">I", body[32:36])[0] == 1001     # next_seq_fwd
    assert struct.unpack(">Q", body[64:72])[0] == 1        # packets


def test_gateway_routes_to_port():
    p = build("p4src/gateway.p4")
    gw = "GatewayIngress.gateway_forwarding."
    p.tables[gw + "ipv4_routes"].add([Match("lpm", 0x0A000100, prefix_len=24)], gw + "route_to_port", [3])
    sent = raw(Ether(dst="00:00:00:00:00:03", src="00:00:00:00:00:01") /
               IP(src="10.0.0.1", dst="10.0.1.5", ttl=9) / UDP(sport=5, dport=6) / b"gw")
    assert p.process(1, sent) == [(3, sent)]                # no MAC/TTL rewrite on the gateway
    assert p.process(1, raw(Ether() / IP(dst="11.0.0.1") / UDP())) == []
    assert p.counters["GatewayIngress.drop_accounting.drops"].read(5)[0] == 1   # DROP_NO_ROUTE


def test_flow_nic_trace_matches_fast_path(nic_json):
    fast, traced = Pipeline(nic_json), Pipeline(nic_json)
    for p in (fast, traced):
        p.tables[NIC + "nic_forwarding.nic_ports"].add([Match("exact", 1)], NIC + "nic_forwarding.set_egress_port", [2])
    lines = []
    traced.log_sink = lines.append
    pkts = [raw(Ether() / IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=1, dport=2, flags="S", seq=9)),
            raw(Ether() / IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=1, dport=2, flags="A", seq=10)),
            raw(Ether() / IP(src="10.0.0.1", dst="10.0.1.1") / UDP(sport=7, dport=4791) / bytes(12))]
    for data in pkts:
        assert fast.process(1, data) == traced.process(1, data)
    fs = NIC + "flow_state."
    for name in ("slot_flags", "tcp_phase", "tcp_next_seq_fwd", "flow_packets"):
        assert fast.registers[fs + name].cells == traced.registers[fs + name].cells
    text = "\n".join(lines)
    assert "Applying table 'FlowNicIngress.nic_forwarding.nic_ports'" in text
    assert "Pipeline 'egress': end" in text


SOURCES = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("tests/compiler/corpus/*.p4"), *ROOT.glob("p4src/*.p4")])


@pytest.mark.parametrize("source", SOURCES)
def test_every_program_loads_and_survives_assorted_packets(source):
    p = build(source)
    lines = []
    pkts = [b"", b"\x00" * 5, raw(Ether() / IP() / TCP()), raw(Ether() / IP(ihl=6, options=b"\x01\x01\x01\x01") / UDP()),
            raw(Ether(type=0x88B5) / bytes(120)), raw(Ether() / IP(dst="10.0.0.1") / UDP(dport=4791) / bytes(20))]
    for port in (0, 1, 2, 255):
        for data in pkts:
            for out_port, out in p.process(port, data):
                assert 0 <= out_port < 512 and isinstance(out, bytes)
    p.log_sink = lines.append
    p.process(1, pkts[2])
    assert lines


def test_corpus_multicast_replicates_to_group():
    p = build("tests/compiler/corpus/multicast.p4")
    p.set_mc_group(1, [(1, 0), (2, 0), (3, 0)])
    frame = raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="00:00:00:00:00:01", type=0x0800) / b"hello, everyone")
    # egress prunes the copy going back out of the ingress port
    assert sorted(p.process(1, frame)) == [(2, frame), (3, frame)]


def test_corpus_clone_cpu_preserves_field_list_into_packet_in():
    p = build("tests/compiler/corpus/clone_cpu.p4")
    p.set_clone_session(99, [(255, 0)])
    ing = "MyIngress."
    p.tables[ing + "l2"].add([Match("exact", 0x000000000002)], ing + "set_out", [2])
    p.tables[ing + "acl"].add([Match("ternary", 0, mask=0), Match("ternary", 0x0806, mask=0xFFFF),
                               Match("ternary", 0, mask=0)], ing + "send_to_cpu", [], priority=10)
    arp = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01", type=0x0806) / bytes(28))
    outs = sorted(p.process(7, arp))
    # the original goes to port 2; the clone to the CPU with packet_in {ingress_port = 7, pad 0}
    assert outs == [(2, arp), (255, bytes([7 >> 1, (7 & 1) << 7]) + arp)]
    # PacketOut: 2-byte header naming port 3, stripped, sent out unchanged
    frame = raw(Ether(dst="00:00:00:00:00:09", src="00:00:00:00:00:01", type=0x0800) / b"from the controller")
    assert p.process(255, bytes([3 >> 1, (3 & 1) << 7]) + frame) == [(3, frame)]


def test_corpus_source_routing_pops_the_stack():
    p = build("tests/compiler/corpus/source_routing.p4")
    hops = [(0, 2), (0, 3), (1, 4)]
    stack = b"".join(((bos << 15) | port).to_bytes(2, "big") for bos, port in hops)
    eth = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01", type=0x1234))
    ip = raw(IP(src="10.0.0.1", dst="10.0.0.2", ttl=20) / UDP(sport=1, dport=2) / b"sr")
    (port, out), = p.process(1, eth + stack + ip)
    # ttl 20 -> 19 (byte 8 of the IPv4 header); the program does not update the IPv4 checksum
    assert port == 2 and out == eth + stack[2:] + ip[:8] + bytes([19]) + ip[9:]


def test_corpus_nat_recomputes_tcp_and_udp_checksums_over_payload():
    p = build("tests/compiler/corpus/nat_checksum.p4")
    nat = "MyIngress.nat"
    snat = "MyIngress.snat"
    keys = [k.name for k in p.tables[nat].keys]
    assert len(keys) == 3
    p.tables[nat].add([Match("exact", 0x0A000001), Match("exact", 6), Match("exact", 1)], snat,
                      [0xC0A80001, 5555, 2])
    p.tables[nat].add([Match("exact", 0x0A000001), Match("exact", 17), Match("exact", 0)], snat,
                      [0xC0A80001, 6666, 3])
    tcp_in = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01") / IP(src="10.0.0.1", dst="8.8.8.8") /
                 TCP(sport=1234, dport=80, flags="PA", seq=42, ack=7) / b"GET / HTTP/1.0\r\n\r\n")
    tcp_out = raw(Ether(dst="00:00:00:00:00:02", src="00:00:00:00:00:01") / IP(src="192.168.0.1", dst="8.8.8.8") /
                  TCP(sport=5555, dport=80, flags="PA", seq=42, ack=7) / b"GET / HTTP/1.0\r\n\r\n")
    assert p.process(1, tcp_in) == [(2, tcp_out)]
    udp_in = raw(Ether() / IP(src="10.0.0.1", dst="8.8.4.4") / UDP(sport=999, dport=53) / b"\x12\x34query")
    udp_out = raw(Ether() / IP(src="192.168.0.1", dst="8.8.4.4") / UDP(sport=6666, dport=53) / b"\x12\x34query")
    assert p.process(1, udp_in) == [(3, udp_out)]
