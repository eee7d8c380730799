"""PTF tests for p4src/gateway.p4 (run by tests/dataplane/test_ptf_dataplane.py through harness.run_ptf).

Ports as the switch numbers them: 0 faces the local hosts (10.0.0.0/24), 1, 2, 3 face NIC 0, 1, 2
(``nic_group`` index i -> port i + 1); destinations 10.0.1.0/24 and 10.0.3.0/24 lie behind the NICs
(``route_via_nics(3)``). CPU port 255. Packets are written out in full.
"""

from __future__ import annotations

import struct
import time

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import send_packet, verify_no_other_packets, verify_packet, verify_packet_any_port
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

GF = "GatewayIngress.gateway_forwarding."
DROPS = "GatewayIngress.drop_accounting.drops"
DROP_NOT_IPV4, DROP_COMMAND_NOT_FROM_CPU, DROP_NO_ROUTE, DROP_NO_NIC, DROP_SUSPENDED, DROP_BAD_PACKET_OUT = \
    0, 4, 5, 6, 7, 8
DROP_FORGED_MARKER = 9
PACKET_IN_DRAIN_MARKER = 4
SUSPEND_PUNT, SUSPEND_DROP = 1, 2
PACKET_IN_SUSPENDED = 2
NIC_PORTS = [1, 2, 3]
A_MAC, B_MAC = "00:00:00:00:00:0a", "00:00:00:00:00:0b"


def tcp(src="10.0.0.1", dst="10.0.1.1", sport=40000, dport=5001, flags="PA", seq=1, payload=b"p" * 40):
    return Ether(src=A_MAC, dst=B_MAC) / IP(src=src, dst=dst, id=9, ttl=64) / \
        TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=1, window=500) / Raw(payload)


def udp(src="10.0.0.1", dst="10.0.1.1", sport=40000, dport=5001):
    return Ether(src=A_MAC, dst=B_MAC) / IP(src=src, dst=dst, id=9, ttl=64) / UDP(sport=sport, dport=dport) / \
        Raw(b"u" * 40)


PATH_MARKER_PORT, DRAIN_MARKER_PORT = 0xFA1B, 0xFA1C


def marker(dport: int = PATH_MARKER_PORT, token: int = 0x1234):
    """A marker frame (UDP 0.0.0.1 -> 0.0.0.2, ``dport`` both ways) carrying ``token``."""
    return (Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:fa") /
            IP(src="0.0.0.1", dst="0.0.0.2", flags="DF") / UDP(sport=dport, dport=dport) /
            Raw(struct.pack("!Q", token)))


def five_tuple(src="10.0.0.1", dst="10.0.1.1", proto=6, sport=40000, dport=5001) -> dict:
    return {"src_addr": src, "dst_addr": dst, "proto": proto, "src_port": sport, "dst_port": dport}


def suspended(mode: int, port: int, drain: int = 0, lease_us: int = 0, lease_gen: int = 0) -> dict:
    """suspend_flow's parameters (no lease unless given)."""
    return {"mode": mode, "port": port, "drain": drain, "lease_us": lease_us, "lease_gen": lease_gen}


def draining(port: int, drain: int, lease_us: int = 0, lease_gen: int = 0) -> dict:
    """forward_after_drain's parameters (no lease unless given)."""
    return {"port": port, "drain": drain, "lease_us": lease_us, "lease_gen": lease_gen}


# Leases of the lease tests: generous for a busy machine; "expired" is checked after twice as long.
LEASE_US = 300_000
EXPIRED_S = 2 * LEASE_US / 1e6


class GatewayTest(P4RuntimeTest):
    def setUp(self) -> None:
        super().setUp()
        self.insert_table_entry(GF + "ipv4_routes", {"dst_addr": ("10.0.0.0", 24)}, GF + "route_to_port",
                                {"port": 0})
        for prefix in ("10.0.1.0", "10.0.3.0"):
            self.insert_table_entry(GF + "ipv4_routes", {"dst_addr": (prefix, 24)}, GF + "route_via_nics",
                                    {"group_size": 3})
        for i, port in enumerate(NIC_PORTS):
            self.insert_table_entry(GF + "nic_group", {"index": i}, GF + "set_group_port", {"port": port})
            self.insert_table_entry("GatewayIngress.nic_facing_ports", {"ingress_port": port},
                                    "GatewayIngress.nic_facing")

    def drops(self, reason: int) -> int:
        return self.read_counter(DROPS, reason)[0]

    def expired(self, drain: int) -> int:
        """Packets let through by an expired lease of drain index ``drain``."""
        return self.read_counter(GF + "drain_lease_expired", drain)[0]

    def reset_drains(self, *drains: int) -> None:
        """Zero the drain and lease registers of ``drains`` (the switch outlives a test class)."""
        for drain in drains:
            for r in ("drain_punted", "drain_replayed", "drain_lease_gen"):
                self.write_register(GF + r, drain, 0)

    def placed_port(self, pkt, in_port: int = 0) -> int:
        send_packet(self, in_port, pkt)
        idx, _ = verify_packet_any_port(self, pkt, NIC_PORTS)
        return NIC_PORTS[idx]

    def packet_out(self, pkt, mode: int, egress_port: int = 0, ingress_port: int = 0) -> None:
        self.send_packet_out(bytes(pkt), egress_port=egress_port, _pad0=0, ingress_port=ingress_port, _pad1=0,
                             mode=mode)


class RoutesTest(GatewayTest):
    """Local hosts by route_to_port; no route and non-IPv4 are dropped and counted."""

    @autocleanup
    def runTest(self):
        back = tcp(src="10.0.1.1", dst="10.0.0.7", sport=5001, dport=40000)
        send_packet(self, 2, back)
        verify_packet(self, back, 0)
        send_packet(self, 0, tcp(dst="192.168.1.1"))
        send_packet(self, 0, Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / Raw(b"\x00" * 28))
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.drops(DROP_NO_ROUTE), 1)
        self.assertEqual(self.drops(DROP_NOT_IPV4), 1)
        routes = self.read_table_entries(GF + "ipv4_routes", with_counters=True)
        hits = {e.match[0].lpm.value: e.counter_data.packet_count for e in routes}
        self.assertEqual(hits[bytes([10, 0, 0, 0])], 1)


class HashPlacementTest(GatewayTest):
    """New flows are spread over the NIC group; a flow always takes the same NIC, and both directions
    of a connection take the same NIC (symmetric hash over the normalized key)."""

    @autocleanup
    def runTest(self):
        used = set()
        for i in range(16):
            fwd = tcp(src="10.0.3.1", dst="10.0.1.1", sport=40000 + i, dport=5001)
            rev = tcp(src="10.0.1.1", dst="10.0.3.1", sport=5001, dport=40000 + i)
            p = self.placed_port(fwd)
            self.assertEqual(self.placed_port(fwd), p, "a flow keeps its NIC")
            self.assertEqual(self.placed_port(rev), p, "both directions cross the same NIC")
            used.add(p)
        self.assertGreaterEqual(len(used), 2, "16 flows should not all hash to one NIC")
        entries = self.read_table_entries(GF + "nic_group", with_counters=True)
        self.assertEqual(sum(e.counter_data.packet_count for e in entries), 48)


class NicGroupTest(GatewayTest):
    """group_size bounds the hash index; an index without a nic_group entry is dropped and counted."""

    @autocleanup
    def runTest(self):
        self.insert_table_entry(GF + "ipv4_routes", {"dst_addr": ("10.0.5.0", 24)}, GF + "route_via_nics",
                                {"group_size": 1})
        for i in range(4):
            p = udp(dst="10.0.5.1", sport=30000 + i)
            send_packet(self, 0, p)
            verify_packet(self, p, 1)   # index always 0 -> port 1
        self.delete_table_entry(GF + "nic_group", {"index": 0})
        send_packet(self, 0, udp(dst="10.0.5.1"))
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.drops(DROP_NO_NIC), 1)


class FlowForwardingOverrideTest(GatewayTest):
    """A flow_forwarding entry pins one direction of one flow, overriding the hash; deleting it
    returns the flow to its hashed NIC."""

    @autocleanup
    def runTest(self):
        fwd = tcp()
        hashed = self.placed_port(fwd)
        pinned = NIC_PORTS[(NIC_PORTS.index(hashed) + 1) % 3]
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "set_nic_port", {"port": pinned})
        for _ in range(3):
            send_packet(self, 0, fwd)
            verify_packet(self, fwd, pinned)
        # Another flow (other source port) and the other protocol keep the hash.
        other = tcp(sport=40001)
        self.assertIn(self.placed_port(other), NIC_PORTS)
        u = udp()
        self.assertIn(self.placed_port(u), NIC_PORTS)
        (entry,) = self.read_table_entries(GF + "flow_forwarding", with_counters=True)
        self.assertEqual(entry.counter_data.packet_count, 3)
        self.assertEqual(entry.counter_data.byte_count, 3 * len(bytes(fwd)))
        self.delete_table_entry(GF + "flow_forwarding", five_tuple())
        self.assertEqual(self.placed_port(fwd), hashed)


class SuspendPuntReplayTest(GatewayTest):
    """Lossless suspension: packets of the flow reach the controller in order with their ingress port;
    replayed packets (PacketOut FORWARD) bypass the suspension and take the entry's port; lifting the
    suspension (set_nic_port) forwards directly again."""

    @autocleanup
    def runTest(self):
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 3))
        pkts = [tcp(seq=1 + 40 * i, payload=bytes([97 + i]) * 40) for i in range(3)]
        for p in pkts:
            send_packet(self, 0, p)
        for p in pkts:
            self.verify_packet_in(p, {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.3)
        # The reverse direction and other flows are not suspended.
        back = tcp(src="10.0.1.1", dst="10.0.0.1", sport=5001, dport=40000)
        send_packet(self, 1, back)
        verify_packet(self, back, 0)
        # Replay in order through the pipeline, as if arriving on port 0.
        for p in pkts:
            self.packet_out(p, mode=1, ingress_port=0)
            verify_packet(self, p, 3)
        self.verify_no_packet_in()
        # Lift the suspension.
        self.modify_table_entry(GF + "flow_forwarding", five_tuple(), GF + "set_nic_port", {"port": 3})
        nxt = tcp(seq=121, payload=b"z" * 40)
        send_packet(self, 0, nxt)
        verify_packet(self, nxt, 3)
        self.verify_no_packet_in()
        verify_no_other_packets(self)


class DrainOrderTest(GatewayTest):
    """The lossless flip keeps order: suspend_flow counts punts in drain_punted[i]; under
    forward_after_drain(port, i) a data packet arriving while punted != replayed is punted too (and
    counted), a replay is counted in drain_replayed[i] and forwarded; once the counts are equal, data
    packets are forwarded directly."""

    IDX = 5

    def counts(self) -> tuple[int, int]:
        return (self.read_register(GF + "drain_punted", self.IDX), self.read_register(GF + "drain_replayed", self.IDX))

    @autocleanup
    def runTest(self):
        for r in ("drain_punted", "drain_replayed"):
            self.write_register(GF + r, self.IDX, 0)
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 1, self.IDX))
        pkts = [tcp(seq=1 + 40 * i, payload=bytes([97 + i]) * 40) for i in range(4)]
        for p in pkts[:2]:
            send_packet(self, 0, p)
            self.verify_packet_in(p, {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        self.assertEqual(self.counts(), (2, 0))
        # The flip toward port 3; two punts are still outstanding.
        self.modify_table_entry(GF + "flow_forwarding", five_tuple(), GF + "forward_after_drain",
                                draining(3, self.IDX))
        send_packet(self, 0, pkts[2])             # newer: must not overtake -> punted, queued behind
        self.verify_packet_in(pkts[2], {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.counts(), (3, 0))
        # The controller replays in arrival order: each goes to the new port and is counted.
        for p in pkts[:2]:
            self.packet_out(p, mode=1, ingress_port=0)
            verify_packet(self, p, 3)
        self.assertEqual(self.counts(), (3, 2))
        send_packet(self, 0, pkts[3])             # still one outstanding (pkts[2]) -> punted
        self.verify_packet_in(pkts[3], {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        for p in pkts[2:]:
            self.packet_out(p, mode=1, ingress_port=0)
            verify_packet(self, p, 3)
        self.assertEqual(self.counts(), (4, 4))
        # Drained: data packets go straight to the new port, nothing more is punted or counted.
        nxt = tcp(seq=161, payload=b"z" * 40)
        send_packet(self, 0, nxt)
        verify_packet(self, nxt, 3)
        self.verify_no_packet_in()
        verify_no_other_packets(self)
        self.assertEqual(self.counts(), (4, 4))
        for r in ("drain_punted", "drain_replayed"):
            self.write_register(GF + r, self.IDX, 0)


class DrainMarkerTest(GatewayTest):
    """A drain marker coming out of a NIC (UDP to 0.0.0.2:64028 on a data port) is not routed: it goes
    to the controller as PacketIn DRAIN_MARKER (4) with the port it came in on, unchanged."""

    @autocleanup
    def runTest(self):
        drain = marker(DRAIN_MARKER_PORT, 0x9ABC)
        send_packet(self, 2, drain)
        self.verify_packet_in(drain, {"ingress_port": 2, "reason": 4})
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.drops(DROP_NO_ROUTE), 0)


class ForgedMarkerTest(GatewayTest):
    """Only the controller sends path markers toward the NICs (PacketOut DIRECT): a packet to the marker
    address 0.0.0.2 from a port, host- or NIC-facing, is dropped and counted (DROP_FORGED_MARKER), even
    with a route that would carry 0.0.0.2 to the NICs; nothing reaches the controller. A drain marker is
    accepted only from a NIC-facing port (a `nic_facing_ports` entry): from the host port it is forged
    too; from a NIC port it reaches the controller, and the controller's own path marker still leaves."""

    @autocleanup
    def runTest(self):
        self.insert_table_entry(GF + "ipv4_routes", {"dst_addr": ("0.0.0.0", 8)}, GF + "route_via_nics",
                                {"group_size": 3})
        forged = [marker(), marker(dport=5001),
                  Ether(src=A_MAC, dst=B_MAC) / IP(src="10.0.0.1", dst="0.0.0.2") / TCP(sport=1, dport=0xFA1B)]
        for port in (0, 2):                      # host-facing, NIC-facing
            for p in forged:
                send_packet(self, port, p)
        verify_no_other_packets(self, timeout=0.3)
        self.verify_no_packet_in()
        self.assertEqual(self.drops(DROP_FORGED_MARKER), 2 * len(forged))
        drain = marker(DRAIN_MARKER_PORT)
        send_packet(self, 0, drain)              # host-facing: forged
        verify_no_other_packets(self, timeout=0.3)
        self.verify_no_packet_in()
        self.assertEqual(self.drops(DROP_FORGED_MARKER), 2 * len(forged) + 1)
        send_packet(self, 3, drain)
        self.verify_packet_in(drain, {"ingress_port": 3, "reason": PACKET_IN_DRAIN_MARKER})
        own = marker(token=0x77)
        self.packet_out(own, mode=0, egress_port=1)
        verify_packet(self, own, 1)
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.drops(DROP_FORGED_MARKER), 2 * len(forged) + 1)


class SuspendDropTest(GatewayTest):
    """Drop-mode suspension drops the flow's packets and counts them; nothing reaches the controller."""

    @autocleanup
    def runTest(self):
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(proto=17), GF + "suspend_flow",
                                suspended(SUSPEND_DROP, 1))
        for _ in range(2):
            send_packet(self, 0, udp())
        verify_no_other_packets(self, timeout=0.3)
        self.verify_no_packet_in()
        self.assertEqual(self.drops(DROP_SUSPENDED), 2)


class LeaseSuspendTest(GatewayTest):
    """A suspension's lease: until it runs out, punt mode punts and drop mode drops; once nobody renewed
    it for lease_us, both send the flow's packets to the entry's port (the old NIC) and
    drain_lease_expired[drain] counts them. A replay still goes to the port, uncounted. A renewal (the
    entry rewritten with a new lease_gen) restarts the lease: punted again, until it runs out too."""

    PUNT_IDX, DROP_IDX = 21, 22

    @autocleanup
    def runTest(self):
        self.reset_drains(self.PUNT_IDX, self.DROP_IDX)
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 2, self.PUNT_IDX, LEASE_US, 1000))
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(proto=17), GF + "suspend_flow",
                                suspended(SUSPEND_DROP, 1, self.DROP_IDX, LEASE_US, 2000))
        pkts = [tcp(seq=1 + 40 * i, payload=bytes([97 + i]) * 40) for i in range(6)]
        # within the lease (it starts at each flow's first packet): punted / dropped
        send_packet(self, 0, pkts[0])
        send_packet(self, 0, pkts[1])
        send_packet(self, 0, udp())
        send_packet(self, 0, udp())
        for p in pkts[:2]:
            self.verify_packet_in(p, {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.1)
        self.assertEqual(self.drops(DROP_SUSPENDED), 2)
        self.assertEqual((self.expired(self.PUNT_IDX), self.expired(self.DROP_IDX)), (0, 0))
        # not renewed: expired, both flows go to their entry's port again
        time.sleep(EXPIRED_S)
        send_packet(self, 0, pkts[2])
        verify_packet(self, pkts[2], 2)
        send_packet(self, 0, udp())
        verify_packet(self, udp(), 1)
        self.verify_no_packet_in()
        self.assertEqual(self.drops(DROP_SUSPENDED), 2)
        self.assertEqual((self.expired(self.PUNT_IDX), self.expired(self.DROP_IDX)), (1, 1))
        self.packet_out(pkts[0], mode=1, ingress_port=0)   # a replay: to the port, not counted
        verify_packet(self, pkts[0], 2)
        self.assertEqual(self.expired(self.PUNT_IDX), 1)
        # renewed (new gen): the lease starts again at the next packet
        self.modify_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 2, self.PUNT_IDX, LEASE_US, 1001))
        send_packet(self, 0, pkts[3])
        self.verify_packet_in(pkts[3], {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.1)
        time.sleep(EXPIRED_S)
        send_packet(self, 0, pkts[4])
        verify_packet(self, pkts[4], 2)
        self.verify_no_packet_in()
        self.assertEqual(self.expired(self.PUNT_IDX), 2)
        self.assertEqual(self.read_register(GF + "drain_lease_gen", self.PUNT_IDX), 1001)
        self.reset_drains(self.PUNT_IDX, self.DROP_IDX)


class LeaseDrainTest(GatewayTest):
    """forward_after_drain's lease: the flip (a new entry, a new gen) restarts it; while it runs a data
    packet is punted behind outstanding punts; once it has expired the packet goes to the new port even
    though punts are outstanding (nothing is punted or counted in drain_punted), counted as expired."""

    IDX = 23

    def counts(self) -> tuple[int, int]:
        return (self.read_register(GF + "drain_punted", self.IDX), self.read_register(GF + "drain_replayed", self.IDX))

    @autocleanup
    def runTest(self):
        self.reset_drains(self.IDX)
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 1, self.IDX, LEASE_US, 3000))
        pkts = [tcp(seq=1 + 40 * i, payload=bytes([97 + i]) * 40) for i in range(3)]
        send_packet(self, 0, pkts[0])
        self.verify_packet_in(pkts[0], {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        self.modify_table_entry(GF + "flow_forwarding", five_tuple(), GF + "forward_after_drain",
                                draining(3, self.IDX, LEASE_US, 3001))
        send_packet(self, 0, pkts[1])            # one punt outstanding, lease running: punted
        self.verify_packet_in(pkts[1], {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.1)
        self.assertEqual(self.counts(), (2, 0))
        time.sleep(EXPIRED_S)                    # the controller is gone: nobody replays or renews
        send_packet(self, 0, pkts[2])
        verify_packet(self, pkts[2], 3)
        self.verify_no_packet_in()
        self.assertEqual(self.counts(), (2, 0))
        self.assertEqual(self.expired(self.IDX), 1)
        self.reset_drains(self.IDX)


class LeaseOffTest(GatewayTest):
    """No lease without both a drain index and lease_us: lease_us = 0 (with a drain index) and drain = 0
    (with a lease_us) keep punting however long the suspension lasts; nothing is counted as expired."""

    IDX = 24

    @autocleanup
    def runTest(self):
        self.reset_drains(self.IDX)
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 2, self.IDX, 0, 4000))
        self.insert_table_entry(GF + "flow_forwarding", five_tuple(sport=40001), GF + "suspend_flow",
                                suspended(SUSPEND_PUNT, 2, 0, LEASE_US, 4001))
        flows = [tcp(), tcp(sport=40001)]
        for p in flows:
            send_packet(self, 0, p)
            self.verify_packet_in(p, {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        time.sleep(EXPIRED_S)
        for p in flows:
            send_packet(self, 0, p)
            self.verify_packet_in(p, {"ingress_port": 0, "reason": PACKET_IN_SUSPENDED})
        verify_no_other_packets(self, timeout=0.1)
        self.assertEqual((self.expired(self.IDX), self.expired(0)), (0, 0))
        self.assertEqual(self.read_register(GF + "drain_lease_gen", self.IDX), 0)
        self.reset_drains(self.IDX)


class PacketOutTest(GatewayTest):
    """PacketOut DIRECT sends a frame out of the given port as is, a flowmig command too (a path save
    toward a NIC); an unknown mode, or a command sent any other way (the gateway has no flow state), is
    dropped and counted; a command frame from a port is dropped as not from the CPU."""

    @autocleanup
    def runTest(self):
        p = udp(dst="172.16.0.1")                # no route: DIRECT does not look
        self.packet_out(p, mode=0, egress_port=2)
        verify_packet(self, p, 2)
        self.packet_out(p, mode=7)
        cmd = b"\x02\x00\x00\x00\x00\xff" * 2 + b"\x88\xb5" + bytes([1, 2]) + bytes(90)
        self.send_packet_out(cmd, egress_port=3, _pad0=0, ingress_port=0, _pad1=0, mode=0)
        verify_packet(self, cmd, 3)
        self.send_packet_out(cmd, egress_port=3, _pad0=0, ingress_port=1, _pad1=0, mode=1)   # FORWARD
        verify_no_other_packets(self, timeout=0.3)
        self.verify_no_packet_in()
        self.assertEqual(self.drops(DROP_BAD_PACKET_OUT), 2)
        send_packet(self, 1, cmd)
        verify_no_other_packets(self, timeout=0.3)
        self.assertEqual(self.drops(DROP_COMMAND_NOT_FROM_CPU), 1)
