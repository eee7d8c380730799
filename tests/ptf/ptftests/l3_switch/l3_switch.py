"""PTF tests for tests/ptf/p4/l3_switch.p4 (run by tests/ptf/test_ptf_l3_switch.py through harness.run_ptf).

Ports: 0, 1, 2, 3 as the switch numbers them; CPU port 255. Expected packets are written out in full.
"""

from __future__ import annotations

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import (
    send_packet,
    simple_tcp_packet,
    simple_udp_packet,
    verify_no_other_packets,
    verify_packet,
    verify_packets,
)

SMAC = "00:00:00:00:00:01"
SWITCH_MAC = "00:00:00:00:aa:aa"
NEXT_HOP = "00:00:00:00:00:02"


def pkt(ip_dst="10.0.1.1", ip_src="10.0.0.1", eth_src=SMAC, eth_dst=SWITCH_MAC, ttl=64):
    return simple_tcp_packet(eth_dst=eth_dst, eth_src=eth_src, ip_dst=ip_dst, ip_src=ip_src, ip_ttl=ttl)


def known_mac(test, mac=SMAC):
    """Tell smac the source MAC is known (no digest)."""
    test.insert_table_entry("MyIngress.smac", {"hdr.ethernet.srcAddr": mac}, "NoAction")


class Ipv4LpmForwardTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.0.0", 8)},
                                "MyIngress.ipv4_forward", {"dstAddr": NEXT_HOP, "port": 1})
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.2.0", 24)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:00:03", "port": 2})
        send_packet(self, 0, pkt("10.0.1.1"))
        verify_packet(self, pkt("10.0.1.1", eth_src=SWITCH_MAC, eth_dst=NEXT_HOP, ttl=63), 1)
        send_packet(self, 0, pkt("10.0.2.9"))
        verify_packet(self, pkt("10.0.2.9", eth_src=SWITCH_MAC, eth_dst="00:00:00:00:00:03", ttl=63), 2)
        send_packet(self, 0, pkt("192.168.0.1"))  # default action: drop
        verify_no_other_packets(self)
        entries = self.read_table_entries("MyIngress.ipv4_lpm", with_counters=True)
        counts = sorted((e.match[0].lpm.prefix_len, e.counter_data.packet_count) for e in entries)
        self.assertEqual(counts, [(8, 1), (24, 1)])


class DefaultActionTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        self.set_default_action("MyIngress.ipv4_lpm", "MyIngress.ipv4_forward", {"dstAddr": NEXT_HOP, "port": 3})
        send_packet(self, 1, pkt("172.16.0.1"))
        verify_packet(self, pkt("172.16.0.1", eth_src=SWITCH_MAC, eth_dst=NEXT_HOP, ttl=63), 3)
        verify_no_other_packets(self)


class MulticastTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        self.insert_multicast_group(7, [(1, 1), (2, 1), (3, 1)])
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("224.0.0.0", 4)},
                                "MyIngress.set_mcast", {"group": 7})
        p = simple_udp_packet(eth_dst="01:00:5e:00:00:01", eth_src=SMAC, ip_dst="224.0.0.1", ip_src="10.0.0.1")
        send_packet(self, 0, p)
        verify_packets(self, p, [1, 2, 3])


class PacketOutTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        p = pkt("10.9.9.9")
        for port in (0, 2):
            self.send_packet_out(bytes(p), egress_port=port)
            verify_packet(self, p, port)
        verify_no_other_packets(self)


class PacketInTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.0.254", 32)},
                                "MyIngress.send_to_cpu")
        p = pkt("10.0.0.254")
        send_packet(self, 2, p)
        self.verify_packet_in(p, {"ingress_port": 2})
        verify_no_other_packets(self)


class CloneToCpuTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        self.insert_clone_session(100, [(self.cpu_port, 0)])
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.1.0", 24)},
                                "MyIngress.ipv4_forward", {"dstAddr": NEXT_HOP, "port": 1})
        self.insert_table_entry("MyIngress.acl", {"hdr.ipv4.protocol": (6, 0xFF)}, "MyIngress.clone_to_cpu",
                                priority=10)
        send_packet(self, 0, pkt("10.0.1.5"))
        verify_packet(self, pkt("10.0.1.5", eth_src=SWITCH_MAC, eth_dst=NEXT_HOP, ttl=63), 1)
        # the I2E clone carries the packet as it entered ingress
        self.verify_packet_in(pkt("10.0.1.5"), {"ingress_port": 0})
        verify_no_other_packets(self)


class DigestLearnTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.enable_digest("learn_t", max_timeout_ns=0, max_list_size=1)
        send_packet(self, 3, pkt(eth_src="00:00:00:00:00:42"))
        dl = self.get_digest()
        members = [int.from_bytes(m.bitstring, "big") for m in dl.data[0].struct.members]
        self.assertEqual(members, [0x42, 3])
        verify_no_other_packets(self)  # no route: dropped


class RegisterAndCounterTest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        known_mac(self)
        for _ in range(3):
            send_packet(self, 1, pkt("10.0.1.1"))
        verify_no_other_packets(self)
        self.assertEqual(self.read_register("MyIngress.port_pkts", 1), 3)
        pkts, nbytes = self.read_counter("MyIngress.port_counter", 1)
        self.assertEqual((pkts, nbytes), (3, 3 * len(pkt("10.0.1.1"))))
        self.write_register("MyIngress.port_pkts", 1, 1000)
        send_packet(self, 1, pkt("10.0.1.1"))
        verify_no_other_packets(self)
        self.assertEqual(self.read_register("MyIngress.port_pkts", 1), 1001)
