"""PTF tests for tests/compiler/corpus/l2_learning.p4 (digest learning, flooding, learned entries)."""

from __future__ import annotations

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import (
    send_packet,
    simple_eth_packet,
    verify_no_other_packets,
    verify_packet,
    verify_packets,
)


def frame(src, dst="ff:ff:ff:ff:ff:ff"):
    return simple_eth_packet(eth_dst=dst, eth_src=src, eth_type=0x88B5)


class LearnByDigest(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_multicast_group(1, [(0, 1), (1, 1), (2, 1), (3, 1)])
        self.enable_digest("learn_t", max_timeout_ns=0, max_list_size=1)
        send_packet(self, 2, frame("00:00:00:00:00:22"))
        verify_packets(self, frame("00:00:00:00:00:22"), [0, 1, 3])
        dl = self.get_digest()
        self.assertEqual(len(dl.data), 1)
        members = [int.from_bytes(m.bitstring, "big") for m in dl.data[0].struct.members]
        self.assertEqual(members, [0x22, 2])
        # the controller learns: no more digests for that source, and unicast towards it
        self.insert_table_entry("MyIngress.smac", {"hdr.ethernet.srcAddr": "00:00:00:00:00:22"}, "MyIngress.learned")
        self.insert_table_entry("MyIngress.dmac", {"hdr.ethernet.dstAddr": "00:00:00:00:00:22"},
                                "MyIngress.forward", {"egress_port": 2})
        send_packet(self, 0, frame("00:00:00:00:00:11", "00:00:00:00:00:22"))
        verify_packet(self, frame("00:00:00:00:00:11", "00:00:00:00:00:22"), 2)
        self.get_digest()  # 00:..:11 is new
        send_packet(self, 2, frame("00:00:00:00:00:22", "00:00:00:00:00:22"))  # egress == ingress: pruned
        verify_no_other_packets(self)
        entries = self.read_table_entries("MyIngress.smac", with_counters=True)
        self.assertEqual([e.counter_data.packet_count for e in entries], [1])


class DigestBatching(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.enable_digest("learn_t", max_timeout_ns=200_000_000, max_list_size=3)
        for i in range(3):
            send_packet(self, 0, frame(f"00:00:00:00:01:0{i}"))
        dl = self.get_digest()
        self.assertEqual(len(dl.data), 3)  # one list of three samples
        send_packet(self, 1, frame("00:00:00:00:02:00"))
        dl = self.get_digest(timeout=2)  # flushed by max_timeout_ns
        self.assertEqual(len(dl.data), 1)
        verify_no_other_packets(self)  # group 1 not programmed
