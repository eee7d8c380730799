"""PTF tests for tests/compiler/corpus/basic.p4 (tutorials' basic: IPv4 LPM, TTL, checksum)."""

from __future__ import annotations

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import (
    send_packet,
    simple_tcp_packet,
    simple_udp_packet,
    verify_no_other_packets,
    verify_packet,
)

ROUTER_MAC = "00:00:00:00:01:00"


def tcp(dst, ttl=64, eth_src="00:00:00:00:00:01", eth_dst=ROUTER_MAC):
    return simple_tcp_packet(eth_src=eth_src, eth_dst=eth_dst, ip_src="10.0.0.1", ip_dst=dst, ip_ttl=ttl)


class LpmForward(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.2.0", 24)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:02:02", "port": 2})
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.2.128", 25)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:03:03", "port": 3})
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.2.130", 32)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:01:01", "port": 1})
        # /24, /25 and /32 all match 10.0.2.130: the longest wins; the others pick their own
        for dst, port, mac in (("10.0.2.5", 2, "00:00:00:00:02:02"), ("10.0.2.200", 3, "00:00:00:00:03:03"),
                               ("10.0.2.130", 1, "00:00:00:00:01:01")):
            send_packet(self, 0, tcp(dst))
            # TTL decremented, MACs rewritten, IPv4 checksum recomputed (scapy computes the expected one)
            verify_packet(self, tcp(dst, ttl=63, eth_src=ROUTER_MAC, eth_dst=mac), port)
        verify_no_other_packets(self)


class MissIsDropped(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.2.0", 24)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:02:02", "port": 2})
        send_packet(self, 1, tcp("192.168.1.1"))
        send_packet(self, 1, simple_udp_packet(eth_dst=ROUTER_MAC, ip_dst="172.16.0.1"))
        verify_no_other_packets(self)


class ModifyAndDelete(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        match = {"hdr.ipv4.dstAddr": ("10.1.0.0", 16)}
        self.insert_table_entry("MyIngress.ipv4_lpm", match, "MyIngress.ipv4_forward",
                                {"dstAddr": "00:00:00:00:02:02", "port": 2})
        self.modify_table_entry("MyIngress.ipv4_lpm", match, "MyIngress.ipv4_forward",
                                {"dstAddr": "00:00:00:00:03:03", "port": 3})
        send_packet(self, 0, tcp("10.1.9.9"))
        verify_packet(self, tcp("10.1.9.9", ttl=63, eth_src=ROUTER_MAC, eth_dst="00:00:00:00:03:03"), 3)
        self.delete_table_entry("MyIngress.ipv4_lpm", match)
        send_packet(self, 0, tcp("10.1.9.9"))
        verify_no_other_packets(self)
        self.assertEqual(self.read_table_entries("MyIngress.ipv4_lpm"), [])
