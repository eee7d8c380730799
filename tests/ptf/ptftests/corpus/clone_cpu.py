"""PTF tests for tests/compiler/corpus/clone_cpu.p4 (I2E clone to the CPU with packet_in metadata, PacketOut)."""

from __future__ import annotations

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import send_packet, simple_eth_packet, verify_no_other_packets, verify_packet

CPU_SESSION = 99


def frame(dst="00:00:00:00:00:02", eth_type=0x88CC):
    return simple_eth_packet(eth_dst=dst, eth_src="00:00:00:00:00:01", eth_type=eth_type)


class CloneToCpuAndForward(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_clone_session(CPU_SESSION, [(self.cpu_port, 0)])
        self.insert_table_entry("MyIngress.l2", {"hdr.ethernet.dstAddr": "00:00:00:00:00:02"},
                                "MyIngress.set_out", {"port": 2})
        self.insert_table_entry("MyIngress.acl", {"hdr.ethernet.etherType": (0x88CC, 0xFFFF)},
                                "MyIngress.send_to_cpu", priority=10)
        send_packet(self, 1, frame())
        verify_packet(self, frame(), 2)  # the original goes on
        self.verify_packet_in(frame(), {"ingress_port": 1})  # the clone reaches the controller
        send_packet(self, 1, frame(eth_type=0x0800))  # not matched by the ACL: no clone
        verify_packet(self, frame(eth_type=0x0800), 2)
        self.verify_no_packet_in()
        verify_no_other_packets(self)


class CloneSessionTruncates(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        self.insert_clone_session(CPU_SESSION, [(self.cpu_port, 0)], packet_length_bytes=20)
        self.insert_table_entry("MyIngress.acl", {"standard_metadata.ingress_port": (3, 0x1FF)},
                                "MyIngress.send_to_cpu", priority=1)
        p = frame() / (b"z" * 100)
        send_packet(self, 3, p)
        payload, md = self.get_packet_in()
        self.assertEqual(md["ingress_port"], 3)
        self.assertLess(len(payload), len(bytes(p)))  # truncated copy (session packet_length_bytes)
        self.assertEqual(payload, bytes(p)[:len(payload)])
        verify_no_other_packets(self)  # l2 miss drops the original


class PacketOutToPort(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        for port in (0, 3):
            self.send_packet_out(bytes(frame()), egress_port=port)
            verify_packet(self, frame(), port)
        verify_no_other_packets(self)
