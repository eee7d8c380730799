"""Unit tests of the monitor's Sampler against a fake switch connection that answers Reads with real
P4Runtime entities (the flow_nic P4Info), including a target without register reads (like BMv2)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from p4.v1 import p4runtime_pb2

from controller.flowstate import FlowKey
from controller.inventory import Inventory
from controller.monitor import Sampler
from controller.p4rt import codec
from controller.p4rt.errors import P4RuntimeError

REPO = Path(__file__).resolve().parents[2]
P4INFO = REPO / "build" / "flow_nic.p4info.txtpb"
KEY = FlowKey("tcp", 0x0A000001, 0x0A000002, 40000, 5001)

pytestmark = pytest.mark.skipif(not P4INFO.is_file(), reason="build/flow_nic.p4info.txtpb not built (make build)")


class FakeConn:
    def __init__(self, helper, registers: bool) -> None:
        self.helper, self.registers, self.reads = helper, registers, []

    def read(self, ents):
        ents = list(ents)
        self.reads.append(ents)
        out = []
        for e in ents:
            ent = p4runtime_pb2.Entity()
            if isinstance(e, p4runtime_pb2.CounterEntry):
                ent.counter_entry.CopyFrom(e)
                ent.counter_entry.data.packet_count = 10 * e.index.index
                ent.counter_entry.data.byte_count = 1000 * e.index.index
            else:
                if not self.registers:
                    raise P4RuntimeError("Read", grpc.StatusCode.UNIMPLEMENTED, "registers", switch="nic2")
                ent.register_entry.CopyFrom(e)
                name = self.helper.get_name(e.register_id)
                value = {"flow_packets": 77, "flow_bytes": 7700, "tcp_phase": 3,
                         "queue_delay_sum_us": 500}.get(name.rsplit(".", 1)[-1], 4)
                ent.register_entry.data.bitstring = codec.encode_int(value, 64)
            out.append(ent)
        return iter(out)


def _ctrl(registers: bool):
    from controller import commands as C
    from controller.p4rt.p4info import P4InfoHelper, load_p4info
    helper = P4InfoHelper(load_p4info(str(P4INFO)))
    conn = FakeConn(helper, registers)
    inv = Inventory()
    inv.learn(KEY, "nic2", 42)

    class Driver:
        path = "registers" if registers else "inband"

        def run(self, opcode, items):
            assert opcode == C.SAVE
            return [SimpleNamespace(status=C.STATUS_OK, packets=55, bytes=5500, tcp_phase=3) for _ in items]

    fab = {"nic2": conn}

    class Fabric:
        def __getitem__(self, n):
            return fab[n]

        def __contains__(self, n):
            return n in fab

        def parallel(self, calls, raise_first=True):
            return {n: fn() for n, fn in calls.items()}
    return SimpleNamespace(fabric=Fabric(), nics={"nic2": Driver()}, inventory=inv,
                           config=SimpleNamespace(switches={})), conn


def test_one_read_per_switch_with_ports_queues_and_flows():
    ctrl, conn = _ctrl(registers=True)
    s = Sampler(ctrl, {"nic2": {1: "nosuch-eth1", 2: "nosuch-eth2"}}).sample()
    assert len(conn.reads) == 1
    p2 = s.ports[("nic2", 2)]
    assert (p2.rx_packets, p2.tx_bytes, p2.queue_delay_sum_us) == (20, 2000, 500)
    assert p2.up is None                                # unknown interface, no runtime port: unknown, not up
    f = s.flows[KEY]
    assert (f.device, f.packets, f.bytes, f.phase) == ("nic2", 77, 7700, 3)


def test_target_without_register_reads_falls_back_to_counters_and_save_commands():
    ctrl, conn = _ctrl(registers=False)
    smp = Sampler(ctrl, {"nic2": {1: "x1", 2: "x2"}})
    s = smp.sample()
    assert s.ports[("nic2", 1)].tx_packets == 10 and s.ports[("nic2", 1)].queue_delay_sum_us == 0
    assert (s.flows[KEY].packets, s.flows[KEY].bytes) == (55, 5500)
    n = len(conn.reads)
    smp.sample()                                        # remembered: no more register reads tried
    assert len(conn.reads) == n + 1
    assert all(isinstance(e, p4runtime_pb2.CounterEntry) for e in conn.reads[-1])
