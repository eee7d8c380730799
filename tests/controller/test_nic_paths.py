"""Both state-access paths on the real flow_nic pipeline (in process): identical FlowStates.

A stand-in SwitchConnection routes PacketOuts through ``p4target.pipeline.Pipeline`` (the CPU port
replies become PacketIns) and RegisterEntry reads/writes to the pipeline's registers, so the NicDriver
runs its in-band commands and its register path against the very program the switches execute.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from p4.v1 import p4runtime_pb2

from controller import commands as C
from controller.flowstate import FlowKey
from controller.nic import NicDriver
from controller.p4rt import codec
from controller.p4rt.connection import PacketIn
from controller.p4rt.p4info import P4InfoHelper
from p4target.compiler import compile_file
from p4target.pipeline import Match, Pipeline

REPO = Path(__file__).resolve().parents[2]

CPU = 255
A, B = 0x0A000001, 0x0A000002


class Opts:
    cpu_port = CPU


class PipelineConn:
    name = "nic-under-test"
    options = Opts()

    def __init__(self, pipeline: Pipeline, helper: P4InfoHelper) -> None:
        self.p = pipeline
        self.helper = helper
        self.subs: list = []
        self.t = 1000
        self.packets_out = 0

    def subscribe_packets(self, cb):
        self.subs.append(cb)
        return lambda: self.subs.remove(cb)

    def _reg(self, rid: int):
        return self.p.registers[self.helper.get_name(rid)]

    def packet_out_many(self, pkts) -> int:
        n = 0
        for payload, md in pkts:
            hdr = (md.get("egress_port", 0) << 31 | md.get("ingress_port", 0) << 15 | md.get("mode", 0))
            for port, data in self.p.process(CPU, hdr.to_bytes(5, "big") + payload, ts_us=self.t):
                if port == CPU:
                    meta = int.from_bytes(data[:3], "big")
                    pin = PacketIn(data[3:], {"ingress_port": meta >> 15, "reason": meta & 0xFF}, self.name, 0)
                    for cb in self.subs:
                        cb(pin)
            n += 1
        self.packets_out += n
        return n

    def read(self, entities):
        for ent in entities:
            re_ = ent if isinstance(ent, p4runtime_pb2.RegisterEntry) else ent.register_entry
            reg = self._reg(re_.register_id)
            idx = [re_.index.index] if re_.HasField("index") else range(reg.size)
            for i in idx:
                out = p4runtime_pb2.Entity()
                out.register_entry.register_id = re_.register_id
                out.register_entry.index.index = i
                out.register_entry.data.bitstring = codec.encode_int(reg.read(i), reg.bitwidth)
                yield out

    def read_all(self, entities):
        return list(self.read(entities))

    def read_registers(self, cells):
        out = {}
        for rid, index in cells:
            reg = self._reg(rid)
            for i in [index] if index is not None else range(reg.size):
                out[(rid, i)] = reg.read(i)
        return out

    def write_raw(self, updates):
        self.write(list(updates))

    def write(self, updates):
        for up in updates:
            re_ = up.entity.register_entry
            self._reg(re_.register_id).write(re_.index.index, codec.decode_int(re_.data.bitstring))


@pytest.fixture(scope="module")
def compiled():
    return compile_file(str(REPO / "p4src/flow_nic.p4"), include_dirs=[str(REPO / "p4src/include")])


@pytest.fixture
def nic(compiled):
    p = Pipeline(compiled.bmv2_json)
    t = next(n for n in p.tables if n.endswith("nic_ports"))
    act = next(a for a in p.tables[t].action_names if a.endswith("set_egress_port"))
    p.tables[t].add([Match("exact", 1)], act, [2])
    p.tables[t].add([Match("exact", 2)], act, [1])
    conn = PipelineConn(p, P4InfoHelper(compiled.p4info))
    return conn


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    tcph = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 4000, 0, 0)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcph) + len(payload), 1, 0, 64, 6, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + tcph + payload


def open_connection(conn: PipelineConn) -> list[tuple[int, str, tuple]]:
    digests: list = []
    conn.p.digest_sink = lambda lid, name, vals: digests.append((lid, name, vals))
    conn.p.process(1, tcp(A, B, 40000, 5001, 100, 0, 0x02))
    conn.p.process(2, tcp(B, A, 5001, 40000, 900, 101, 0x12))
    conn.p.process(1, tcp(A, B, 40000, 5001, 101, 901, 0x10))
    for i in range(3):
        conn.p.process(1, tcp(A, B, 40000, 5001, 101 + 100 * i, 901, 0x18, b"x" * 100))
    return digests


def _slot_of(digests) -> int:
    vals = digests[0][2]
    return vals[2]  # (event, kind, slot, ...)


@pytest.mark.parametrize("first,second", [("inband", "registers"), ("registers", "inband")])
def test_save_paths_agree(nic, first, second):
    digests = open_connection(nic)
    assert digests, "the NIC did not learn the connection"
    slot = _slot_of(digests)
    key = FlowKey("tcp", A, B, 40000, 5001)
    drv = NicDriver(nic, path=first)
    a = drv.save([(key, slot)], suspend=False)[0]
    b = drv.save([(key, slot)], suspend=False)[0] if first == second else \
        NicDriver(nic, path=second).save([(key, slot)], suspend=False)[0]
    b.saved_at = a.saved_at
    assert a == b
    st = a.state
    assert st.phase == 3 and st.fwd_next_seq == 401 and st.rev_next_seq == 901 and st.packets == 6


@pytest.mark.parametrize("path", ["inband", "registers"])
def test_suspend_load_resume_clear(nic, path):
    slot = _slot_of(open_connection(nic))
    key = FlowKey("tcp", A, B, 40000, 5001)
    drv = NicDriver(nic, path=path)
    fs = drv.save([(key, slot)], suspend=True)[0]
    sus = drv.run(C.SAVE, [(key, slot)])[0]
    assert sus.flags & C.SLOT_SUSPENDED or path == "registers"  # the register path does not freeze
    # load a copy at another slot, read it back through the OTHER path
    other = "registers" if path == "inband" else "inband"
    replies = drv.load([fs], [7])
    assert replies[0].status == C.STATUS_OK
    back = NicDriver(nic, path=other).save([(key, 7)], suspend=False)[0]
    back.saved_at, back.source_slot = fs.saved_at, fs.source_slot
    assert back == fs
    # a command naming another reference at that slot is refused
    other_key = FlowKey("udp", A, B, 1, 2)
    busy = drv.run(C.SAVE, [(other_key, 7)])[0]
    assert busy.status == C.STATUS_KEY_MISMATCH
    assert drv.run(C.RESUME, [(key, slot)])[0].status == C.STATUS_OK
    assert not drv.run(C.SAVE, [(key, slot)])[0].flags & C.SLOT_SUSPENDED
    assert drv.run(C.CLEAR, [(key, 7)])[0].status == C.STATUS_OK
    assert drv.run(C.SAVE, [(key, 7)])[0].status == C.STATUS_NOT_FOUND
    assert drv.run(C.SAVE, [(key, 5000)])[0].status == C.STATUS_BAD_SLOT


def test_slot_busy_on_load(nic):
    slot = _slot_of(open_connection(nic))
    key = FlowKey("tcp", A, B, 40000, 5001)
    drv = NicDriver(nic, path="inband")
    fs = drv.save([(key, slot)], suspend=False)[0]
    from controller.flowstate import FlowState, UdpState
    intruder = FlowState(FlowKey("udp", A, B, 7, 8), UdpState(1, 2, 3, 4))
    for path in ("inband", "registers"):
        drv.path = path
        assert drv.load([intruder], [slot])[0].status == C.STATUS_SLOT_BUSY
    assert drv.save([(key, slot)], suspend=False)[0].state == fs.state  # untouched


def test_hash_slots_match_the_pipeline(nic):
    digests = open_connection(nic)
    drv = NicDriver(nic, path="inband")
    key = FlowKey("tcp", A, B, 40000, 5001)
    assert _slot_of(digests) in drv.hash_slots(key)
    # many keys: the learned slot is always one of the two the controller computes
    got = []
    nic.p.digest_sink = lambda lid, name, vals: got.append(vals)
    for i in range(40):
        frame = tcp(A + i, B, 1000 + i, 80, 1, 0, 0x02)
        nic.p.process(1, frame)
    for vals in got:
        event, kind, slot, lo, hi, plo, phi, proto, qpn = vals[:9]
        k = FlowKey("tcp", lo, hi, plo, phi, qpn)
        if event == 1:
            assert slot in drv.hash_slots(k), (k, slot, drv.hash_slots(k))
    assert len(got) == 40


def test_commands_go_in_batches_in_order(nic):
    """Many commands travel as batches of BATCH_MAX records per PacketOut; replies come back in request
    order, a failing record does not stop the ones after it."""
    from controller.flowstate import FlowState, UdpState
    drv = NicDriver(nic, path="inband")
    keys = [FlowKey("udp", A, B, 1000 + i, 9) for i in range(40)]
    states = [FlowState(k, UdpState(i, 10 * i, 1, 2)) for i, k in enumerate(keys)]
    assert drv.channel.batches() and drv.channel.batch_max == C.BATCH_MAX
    before = nic.packets_out
    replies = drv.load(states, list(range(200, 240)))
    assert nic.packets_out - before == 3            # 16 + 16 + 8 records
    assert [r.status for r in replies] == [C.STATUS_OK] * 40
    items = [(k, 200 + i) for i, k in enumerate(keys)]
    items[5] = (keys[5], 300)                        # nothing there
    saved = drv.run(C.SAVE, items)
    assert [r.slot for r in saved] == [s for _, s in items]
    assert saved[5].status == C.STATUS_NOT_FOUND
    assert [r.packets for i, r in enumerate(saved) if i != 5] == [i for i in range(40) if i != 5]
    # one command alone keeps the single-command frame
    before = nic.packets_out
    assert drv.run(C.SAVE, items[:1])[0].packets == 0 and nic.packets_out - before == 1


def test_a_program_without_batches_gets_one_command_per_packet(nic):
    drv = NicDriver(nic, path="inband")
    real = nic.packet_out_many

    def old_program(pkts):   # a flow_nic without batch support never answers a batch frame
        pkts = list(pkts)
        if any(p[12:14] == b"\x88\xb6" for p, _ in pkts):
            return len(pkts)
        return real(pkts)
    nic.packet_out_many = old_program
    drv.channel.probe_timeout = 0.05
    assert not drv.channel.batches()
    before = nic.packets_out
    keys = [FlowKey("udp", A, B, 1000 + i, 9) for i in range(3)]
    assert [r.status for r in drv.run(C.SAVE, [(k, 10) for k in keys])] == [C.STATUS_NOT_FOUND] * 3
    assert nic.packets_out - before == 3
