"""PTF tests for tests/compiler/corpus/multicast.p4 (flooding through group 1, pruning the ingress port)."""

from __future__ import annotations

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import (
    send_packet,
    simple_eth_packet,
    verify_no_other_packets,
    verify_packet,
    verify_packets,
)


class FloodPrunesIngressPort(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_multicast_group(1, [(0, 1), (1, 1), (2, 1), (3, 1)])
        p = simple_eth_packet(eth_dst="ff:ff:ff:ff:ff:ff", eth_src="00:00:00:00:00:01", eth_type=0x88B5)
        send_packet(self, 1, p)
        verify_packets(self, p, [0, 2, 3])  # not back out of port 1


class KnownMacIsUnicast(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_multicast_group(1, [(0, 1), (1, 1), (2, 1), (3, 1)])
        self.insert_table_entry("MyIngress.mac_lookup", {"hdr.ethernet.dstAddr": "00:00:00:00:00:03"},
                                "MyIngress.mac_forward", {"port": 3})
        p = simple_eth_packet(eth_dst="00:00:00:00:00:03", eth_src="00:00:00:00:00:01", eth_type=0x88B5)
        send_packet(self, 0, p)
        verify_packet(self, p, 3)
        verify_no_other_packets(self)


class NoGroupNoCopies(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        p = simple_eth_packet(eth_dst="ff:ff:ff:ff:ff:ff", eth_src="00:00:00:00:00:01", eth_type=0x88B5)
        send_packet(self, 0, p)  # group 1 not programmed: replicated to nobody
        verify_no_other_packets(self)
