"""flow_nic.p4 against realistic TCP, in process (p4target.pipeline, no root, no sockets).

The PTF suites check each rule with hand-written packets; this checks the claim the window rules are
built on: a real Linux-style TCP transfer of several MB — SYN options with window scaling, ISN near
the 2^32 wrap, a window of segments in flight, delayed ACKs with SACK options, retransmissions,
reordering, a zero-window episode — crosses the NIC without a single drop, and the tracked state
ends exactly where the stream ends. And the counterpart: the same stream picked up mid-way by a NIC
without the state is dropped, packet after packet, until the state is loaded.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from p4target.compiler import compile_file
from p4target.pipeline import Match, Pipeline

ROOT = Path(__file__).resolve().parents[2]
FS = "FlowNicIngress.flow_state."
DROPS = "FlowNicIngress.drop_accounting.drops"
DROP_INVALID_UNKNOWN, DROP_INVALID_WINDOW = 2, 3
MSS = 1448
C_IP, S_IP, C_PORT, S_PORT = "10.0.0.1", "10.0.1.1", 43210, 5201
ISN_C, ISN_S = 0xFFFF_F000, 0x1234_5678     # the client's stream wraps past 2^32
TS_OPT = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))]


@pytest.fixture(scope="module")
def nic_json() -> dict:
    res = compile_file(str(ROOT / "p4src" / "flow_nic.p4"), include_dirs=[str(ROOT / "p4src" / "include")])
    return res.bmv2_json


def new_nic(nic_json: dict) -> Pipeline:
    p = Pipeline(nic_json)
    t = p.tables["FlowNicIngress.nic_forwarding.nic_ports"]
    t.add([Match("exact", 1)], "FlowNicIngress.nic_forwarding.set_egress_port", [2])
    t.add([Match("exact", 2)], "FlowNicIngress.nic_forwarding.set_egress_port", [1])
    return p


def seg(src: str, flags: str, seq: int, ack: int, win: int, payload: int = 0, options=None) -> bytes:
    if src == "C":
        ip, tcp = IP(src=C_IP, dst=S_IP), TCP(sport=C_PORT, dport=S_PORT)
    else:
        ip, tcp = IP(src=S_IP, dst=C_IP), TCP(sport=S_PORT, dport=C_PORT)
    tcp.flags, tcp.seq, tcp.ack, tcp.window = flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, win
    tcp.options = options if options is not None else TS_OPT
    pkt = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / ip / tcp
    if payload:
        pkt = pkt / Raw(b"\xab" * payload)
    return bytes(pkt)


class Wire:
    """Sends frames through the NIC and records what was dropped."""

    def __init__(self, nic: Pipeline) -> None:
        self.nic, self.sent, self.dropped, self.ts = nic, 0, 0, 1_000_000

    def send(self, src: str, frame: bytes) -> bool:
        self.ts += 10
        in_port, out_port = (1, 2) if src == "C" else (2, 1)
        out = self.nic.process(in_port, frame, ts_us=self.ts)
        self.sent += 1
        if out:
            assert out == [(out_port, frame)], "the NIC must not modify frames"
            return True
        self.dropped += 1
        return False


def transfer(wire: Wire, total: int, rng: random.Random, start_seq: int, start_ack: int) -> tuple[int, int]:
    """Client sends ``total`` bytes from start_seq; the server ACKs (delayed, with SACK blocks when it
    saw a hole). Loss before the NIC is simulated by retransmitting segments the NIC already carried,
    reordering by swapping neighbours, and one zero-window stall. Returns (client next seq, server seq)."""
    una, nxt, end = start_seq, start_seq, start_seq + total
    server_seq = start_ack
    flight = 40 * MSS
    zero_window_done = False
    while una < end:
        burst = []
        while nxt < end and nxt - una < flight:
            n = min(MSS, end - nxt)
            burst.append((nxt, n))
            nxt += n
        if len(burst) > 2 and rng.random() < 0.3:
            i = rng.randrange(len(burst) - 1)
            burst[i], burst[i + 1] = burst[i + 1], burst[i]
        for s, n in burst:
            assert wire.send("C", seg("C", "PA", s, server_seq, 502, n))
        if burst and rng.random() < 0.2:                        # a retransmission of old data
            s, n = burst[rng.randrange(len(burst))]
            assert wire.send("C", seg("C", "A", s, server_seq, 502, n))
        # Delayed ACKs: every other segment, the last one with a SACK block for the top of the burst.
        for k, (s, n) in enumerate(burst):
            if k % 2 == 1 or k == len(burst) - 1:
                opts = TS_OPT
                if k == len(burst) - 1 and len(burst) > 3:
                    left, right = (s & 0xFFFFFFFF), ((s + n) & 0xFFFFFFFF)
                    opts = TS_OPT + [("NOP", None), ("NOP", None), ("SAck", (left, right))]
                assert wire.send("S", seg("S", "A", server_seq, s + n, 3000, 0, opts))
        una = nxt
        if not zero_window_done and una - start_seq > total // 2:
            zero_window_done = True
            assert wire.send("S", seg("S", "A", server_seq, una, 0))       # window closes
            assert wire.send("C", seg("C", "A", una - 1, server_seq, 502, 1))  # zero-window probe
            assert wire.send("S", seg("S", "A", server_seq, una, 3000))    # window reopens
        if rng.random() < 0.05:                                 # the server sends a little data back
            assert wire.send("S", seg("S", "PA", server_seq, una, 3000, 100))
            server_seq += 100
    return end, server_seq


def handshake(wire: Wire) -> None:
    syn_opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 7)]
    assert wire.send("C", seg("C", "S", ISN_C, 0, 64240, 0, syn_opts))
    assert wire.send("S", seg("S", "SA", ISN_S, ISN_C + 1, 65160, 0, syn_opts))
    assert wire.send("C", seg("C", "A", ISN_C + 1, ISN_S + 1, 502))


def slot_of(nic: Pipeline) -> int:
    flags = nic.registers[FS + "slot_flags"]
    slots = [i for i in range(flags.size) if flags.read(i) & 1]
    assert len(slots) == 1
    return slots[0]


def test_linux_like_transfer_is_never_dropped(nic_json):
    nic = new_nic(nic_json)
    wire = Wire(nic)
    handshake(wire)
    total = 4 * 1024 * 1024
    cnext, snext = transfer(wire, total, random.Random(7), ISN_C + 1, ISN_S + 1)
    assert wire.dropped == 0
    assert wire.sent > 1.4 * total / MSS  # data segments plus delayed ACKs
    slot = slot_of(nic)
    reg = nic.registers
    assert reg[FS + "tcp_phase"].read(slot) == 3
    assert reg[FS + "tcp_next_seq_fwd"].read(slot) == cnext & 0xFFFFFFFF
    assert reg[FS + "tcp_next_seq_rev"].read(slot) == snext & 0xFFFFFFFF
    assert reg[FS + "tcp_max_ack_rev"].read(slot) == cnext & 0xFFFFFFFF
    assert reg[FS + "tcp_max_window_rev"].read(slot) == 3000
    assert reg[FS + "flow_packets"].read(slot) == wire.sent
    assert nic.counters[DROPS].read(DROP_INVALID_WINDOW) == (0, 0)
    assert nic.counters[DROPS].read(DROP_INVALID_UNKNOWN) == (0, 0)
    # A segment a quarter of the sequence space away is still caught.
    assert not wire.send("C", seg("C", "PA", cnext + 0x4000_0000, snext, 502, 100))
    assert nic.counters[DROPS].read(DROP_INVALID_WINDOW)[0] == 1


def test_stream_moved_without_state_is_dropped_until_loaded(nic_json):
    old = new_nic(nic_json)
    wire_old = Wire(old)
    handshake(wire_old)
    cnext, snext = transfer(wire_old, 300_000, random.Random(3), ISN_C + 1, ISN_S + 1)
    slot = slot_of(old)
    state = {name: r.read(slot) for name, r in old.registers.items() if name.startswith(FS)}

    new = new_nic(nic_json)
    wire_new = Wire(new)
    for i in range(5):
        assert not wire_new.send("C", seg("C", "PA", cnext + i * MSS, snext, 502, MSS))
        assert not wire_new.send("S", seg("S", "A", snext, cnext + (i + 1) * MSS, 3000))
    assert new.counters[DROPS].read(DROP_INVALID_UNKNOWN)[0] == 10

    # Load the state at another slot, as the controller does, and place the key there.
    new_slot = 4000
    for name, value in state.items():
        new.registers[name].write(new_slot, value)
    key = [Match("exact", v) for v in (1, 0x0A000001, 0x0A000101, C_PORT, S_PORT, 6, 0)]
    new.tables[FS + "flow_slots"].add(key, FS + "use_slot", [new_slot])
    cnext2, snext2 = transfer(wire_new, 300_000, random.Random(4), cnext, snext)
    assert wire_new.dropped == 10
    assert new.registers[FS + "tcp_next_seq_fwd"].read(new_slot) == cnext2 & 0xFFFFFFFF
    assert new.registers[FS + "flow_packets"].read(new_slot) == state[FS + "flow_packets"] + wire_new.sent - 10


def test_command_header_size_matches_docs():
    """docs/dataplane.md promises a 92-byte command header and a 5/3-byte packet_out/packet_in."""
    text = (ROOT / "p4src" / "include" / "headers.p4").read_text()
    body = text.split("header flowmig_cmd_t {", 1)[1].split("}", 1)[0]
    widths = {"bit<8>": 8, "bit<16>": 16, "bit<32>": 32, "bit<48>": 48, "bit<64>": 64, "slot_id_t": 32,
              "ipv4_addr_t": 32, "l4_port_t": 16, "qpn_t": 24, "psn_t": 24}
    bits = sum(widths[line.split()[0]] for line in body.splitlines() if line.strip() and
               not line.strip().startswith("//"))
    assert bits == 92 * 8
    assert struct.calcsize("!BBBBIIIIHHB") + 3 == 28   # key ends at offset 28 (docs table)
