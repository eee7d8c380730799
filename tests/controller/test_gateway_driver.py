"""GatewayDriver with a stand-in connection (records PacketOuts/Writes; feeds PacketIns)."""

import struct
import threading

import pytest

from controller.flowstate import parse_reference
from controller.gateway import (
    BARRIER_REASON,
    PACKET_IN_SUSPENDED,
    PACKET_OUT_DIRECT,
    PACKET_OUT_FORWARD,
    FiveTuple,
    GatewayDriver,
    directions,
    five_tuple_of,
)
from controller.p4rt.connection import PacketIn


def frame(src, dst, sport, dport, seq, proto=17):
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 28, 0, 0, 64, proto, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8, 0) + \
        struct.pack("!I", seq)


class Opts:
    cpu_port = 255


class FakeConn:
    name = "gw"
    options = Opts()
    reconnects = 0   # the stream is never re-established

    def __init__(self):
        from google.protobuf import text_format
        from p4.config.v1 import p4info_pb2

        from controller.p4rt.p4info import P4InfoHelper
        info = p4info_pb2.P4Info()
        text_format.Merge('''
tables { preamble { id: 1 name: "GatewayIngress.gateway_forwarding.flow_forwarding" alias: "flow_forwarding" }
  match_fields { id: 1 name: "src_addr" bitwidth: 32 match_type: EXACT }
  match_fields { id: 2 name: "dst_addr" bitwidth: 32 match_type: EXACT }
  match_fields { id: 3 name: "proto" bitwidth: 8 match_type: EXACT }
  match_fields { id: 4 name: "src_port" bitwidth: 16 match_type: EXACT }
  match_fields { id: 5 name: "dst_port" bitwidth: 16 match_type: EXACT } }
actions { preamble { id: 10 name: "set_nic_port" } params { id: 1 name: "port" bitwidth: 9 } }
actions { preamble { id: 11 name: "suspend_flow" } params { id: 1 name: "mode" bitwidth: 8 }
  params { id: 2 name: "port" bitwidth: 9 } params { id: 3 name: "drain" bitwidth: 32 }
  params { id: 4 name: "lease_us" bitwidth: 32 } params { id: 5 name: "lease_gen" bitwidth: 32 } }
actions { preamble { id: 12 name: "forward_after_drain" } params { id: 1 name: "port" bitwidth: 9 }
  params { id: 2 name: "drain" bitwidth: 32 } params { id: 3 name: "lease_us" bitwidth: 32 }
  params { id: 4 name: "lease_gen" bitwidth: 32 } }
controller_packet_metadata { preamble { id: 20 name: "packet_out" }
  metadata { id: 1 name: "egress_port" bitwidth: 9 } metadata { id: 2 name: "_pad0" bitwidth: 7 }
  metadata { id: 3 name: "ingress_port" bitwidth: 9 } metadata { id: 4 name: "_pad1" bitwidth: 7 }
  metadata { id: 5 name: "mode" bitwidth: 8 } }
''', info)
        self.helper = P4InfoHelper(info)
        self.subs = []
        self.sent = []
        self.writes = []

    def subscribe_packets(self, cb):
        self.subs.append(cb)
        return lambda: self.subs.remove(cb)

    def packet_out_many(self, pkts):
        self.sent += list(pkts)

    def packet_out(self, payload, **md):
        self.sent.append((payload, md))
        if md.get("egress_port") == 255:  # the pipeline sends it back to the CPU port
            threading.Timer(0.01, self.punt, args=(payload[3:], payload[2], 0)).start()

    def write(self, updates):
        self.writes.append(list(updates))

    def write_raw(self, updates):
        self.write(updates)

    def punt(self, payload, reason=PACKET_IN_SUSPENDED, port=1, received=0.0):
        for cb in list(self.subs):
            cb(PacketIn(payload, {"ingress_port": port, "reason": reason}, "gw", received))


A, B = 0x0A000001, 0x0A000002


def test_five_tuple_and_directions():
    t = five_tuple_of(frame(A, B, 1000, 9000, 1))
    assert t == FiveTuple(A, B, 17, 1000, 9000)
    assert five_tuple_of(b"\x00" * 12 + b"\x86\xdd" + b"\x00" * 40) is None
    key = parse_reference("udp:10.0.0.1:1000-10.0.0.2:9000")
    assert directions(key) == [t, FiveTuple(B, A, 17, 9000, 1000)]
    roce = parse_reference("roce:10.0.0.1:5000-10.0.0.2:4791:qp7")
    assert directions(roce) == [FiveTuple(A, B, 17, 5000, 4791)]


def test_only_host_side_direction_gets_an_entry():
    drv = GatewayDriver(FakeConn(), host_ips=[A], nic_ports={"nic1": 2, "nic2": 3})
    key = parse_reference("tcp:10.0.0.1:40000-10.0.0.2:5001")
    assert drv.tuples_for(key) == [FiveTuple(A, B, 6, 40000, 5001)]


def test_buffer_replays_in_arrival_order_and_barrier_returns():
    conn = FakeConn()
    drv = GatewayDriver(conn, host_ips=[A], nic_ports={"nic1": 2, "nic2": 3})
    t = FiveTuple(A, B, 17, 1000, 9000)
    other = FiveTuple(A, B, 17, 1001, 9000)
    drv.start_buffering([t])
    for seq in range(5):
        conn.punt(frame(A, B, 1000, 9000, seq), port=1)
    conn.punt(frame(A, B, 1001, 9000, 99))  # not being buffered: counted, not kept
    assert drv.unexpected_punts == 1
    assert drv.buffered([t, other]) == 5
    assert drv.replay([t]) == 5
    seqs = [struct.unpack("!I", p[-4:])[0] for p, _ in conn.sent]
    assert seqs == [0, 1, 2, 3, 4]
    assert all(md == {"mode": PACKET_OUT_FORWARD, "ingress_port": 1} for _, md in conn.sent)
    conn.sent.clear()
    conn.punt(frame(A, B, 1000, 9000, 5))
    assert drv.barrier(timeout=2.0)
    assert conn.sent[0][1]["egress_port"] == 255 and conn.sent[0][0][2] == BARRIER_REASON
    conn.sent.clear()
    assert drv.replay([t], late=True, direct_port=3) == 1
    assert conn.sent[0][1] == {"mode": PACKET_OUT_DIRECT, "egress_port": 3}
    buf = drv.stop_buffering([t])[t]
    assert (buf.total, buf.replayed, buf.late) == (6, 6, 1)


def test_apply_tracks_insert_modify_delete():
    conn = FakeConn()
    drv = GatewayDriver(conn, host_ips=[A], nic_ports={"nic1": 2})
    t = FiveTuple(A, B, 17, 1000, 9000)
    drv.apply({t: drv.leased("suspend_flow", 0.5, mode=1, port=2, drain=3)})
    drv.apply({t: ("set_nic_port", {"port": 2})})
    drv.apply({t: None})
    kinds = [w[0].type for w in conn.writes]
    from p4.v1 import p4runtime_pb2 as pb
    assert kinds == [pb.Update.INSERT, pb.Update.MODIFY, pb.Update.DELETE]
    params = [p.value for p in conn.writes[0][0].entity.table_entry.action.action.params]
    assert [int.from_bytes(v, "big") for v in params[:4]] == [1, 2, 3, 500_000]
    assert drv.entries == {}


def test_leased_entries_get_a_fresh_nonzero_generation_each():
    drv = GatewayDriver(FakeConn(), host_ips=[A], nic_ports={"nic1": 2})
    action, p = drv.leased("forward_after_drain", 0.3, port=2, drain=7)
    assert action == "forward_after_drain"
    assert {k: v for k, v in p.items() if k != "lease_gen"} == {"port": 2, "drain": 7, "lease_us": 300_000}
    gens = [p["lease_gen"]] + [drv.leased("suspend_flow", 0, mode=2, port=2, drain=7)[1]["lease_gen"]
                               for _ in range(3)]
    assert all(0 < g < 1 << 32 for g in gens)
    assert all(b == a % ((1 << 32) - 1) + 1 for a, b in zip(gens, gens[1:], strict=False))   # the next one
    drv._lease_gen = (1 << 32) - 2            # the wrap: ..., 2^32 - 1, then 1 (never 0)
    assert [drv.leased("suspend_flow", 1, mode=1, port=2, drain=1)[1]["lease_gen"] for _ in range(3)] == \
        [(1 << 32) - 1, 1, 2]
    for bad in (-0.1, float("inf"), float("nan"), 5000.0):
        with pytest.raises(ValueError, match="lease"):
            drv.leased("suspend_flow", bad, mode=1, port=2, drain=1)


def test_roce_qp_tuple_uses_the_records_udp_ports():
    from controller.flowstate import FlowKey
    drv = GatewayDriver(FakeConn(), host_ips=[A], nic_ports={"nic1": 2})
    qp = FlowKey("roce", A, B, 0, 0, 0x12)          # the NIC's key: no ports
    assert drv.tuples_for(qp, (49152, 4791)) == [FiveTuple(A, B, 17, 49152, 4791)]
    try:
        drv.tuples_for(qp)
    except ValueError as exc:
        assert "UDP ports" in str(exc)
    else:
        raise AssertionError("a RoCE QP without ports must not get a (.., 0, 0) entry")


def test_pass_through_keeps_order_and_counts_late():
    conn = FakeConn()
    drv = GatewayDriver(conn, host_ips=[A], nic_ports={"nic1": 2, "nic3": 4})
    t = FiveTuple(A, B, 17, 1000, 4791)
    drv.start_buffering([t])
    for seq in range(3):
        conn.punt(frame(A, B, 1000, 4791, seq))
    assert drv.pass_through([t], 4) == 3
    conn.punt(frame(A, B, 1000, 4791, 3))      # sent on at once, behind the drained ones
    assert drv.punts([t]) == 4
    conn.punt(frame(A, B, 1000, 4791, 4))
    seqs = [struct.unpack("!I", p[-4:])[0] for p, _ in conn.sent]
    assert seqs == [0, 1, 2, 3, 4]
    assert all(md == {"mode": PACKET_OUT_DIRECT, "egress_port": 4} for _, md in conn.sent)
    assert drv.buffered([t]) == 0
    buf = drv.stop_buffering([t])[t]
    assert (buf.total, buf.replayed, buf.late) == (5, 5, 0)


def test_a_replay_interleaves_flows_in_the_order_they_were_punted():
    """Each flow's order is kept and every flow's first packet goes out early (not after all of the
    flows listed before it)."""
    conn = FakeConn()
    drv = GatewayDriver(conn, host_ips=[A], nic_ports={"nic1": 2, "nic3": 4})
    flows = [FiveTuple(A, B, 17, 1000 + i, 9000) for i in range(3)]
    drv.start_buffering(flows)
    order = [(i % 3, i // 3) for i in range(9)]          # f0 s0, f1 s0, f2 s0, f0 s1, ...
    for n, (f, seq) in enumerate(order):
        conn.punt(frame(A, B, 1000 + f, 9000, seq), received=100.0 + n)
    assert drv.pass_through(flows, 4, forward=True) == 9
    got = [(struct.unpack("!H", p[34:36])[0] - 1000, struct.unpack("!I", p[-4:])[0]) for p, _ in conn.sent]
    assert got == order
    conn.sent.clear()
    drv.stop_pass_through(flows)
    for n, (f, seq) in enumerate(reversed(order)):   # a later burst, the flows in another order
        conn.punt(frame(A, B, 1000 + f, 9000, 10 + seq), received=200.0 + n)
    assert drv.replay(flows) == 9
    got = [(struct.unpack("!H", p[34:36])[0] - 1000, struct.unpack("!I", p[-4:])[0] - 10) for p, _ in conn.sent]
    assert got == list(reversed(order))


def test_stop_pass_through_buffers_again():
    conn = FakeConn()
    drv = GatewayDriver(conn, host_ips=[A], nic_ports={"nic1": 2})
    t = FiveTuple(A, B, 17, 1000, 4791)
    drv.start_buffering([t])
    drv.pass_through([t], 2)
    drv.stop_pass_through([t])
    conn.punt(frame(A, B, 1000, 4791, 0))
    assert conn.sent == [] and drv.buffered([t]) == 1
