"""PTF test for tests/compiler/corpus/ecn.p4: a rate-limited egress queue (runtime CLI set_queue_rate)
builds up, egress sees enq_qdepth grow and marks CE once it reaches the threshold (10)."""

from __future__ import annotations

import time

from p4runtime_base import P4RuntimeTest, autocleanup
from ptf.testutils import dp_poll, send_packet, simple_tcp_packet, test_param_get
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from p4target.switch.runtime import run_commands


class EcnMarksWhenQueueBuilds(P4RuntimeTest):
    @autocleanup
    def runTest(self):
        thrift = int(test_param_get("thrift_port"))
        self.insert_table_entry("MyIngress.ipv4_lpm", {"hdr.ipv4.dstAddr": ("10.0.1.0", 24)},
                                "MyIngress.ipv4_forward", {"dstAddr": "00:00:00:00:01:01", "port": 1})
        self.assertEqual(run_commands(thrift, ["set_queue_rate 200 1"]), [""])
        got, times = [], []
        try:
            for i in range(30):
                send_packet(self, 0, simple_tcp_packet(ip_dst="10.0.1.1", ip_tos=1, ip_id=i))
            deadline = time.time() + 5
            while len(got) < 30 and time.time() < deadline:
                res = dp_poll(self, device_number=0, port_number=1, timeout=0.5)
                if isinstance(res, self.dataplane.PollSuccess):
                    got.append(Ether(res.packet))
                    times.append(res.time)
        finally:
            run_commands(thrift, ["set_queue_rate 0 1"])
        self.assertEqual([p[IP].id for p in got], list(range(30)))  # paced, in order, none lost
        ecn = [p[IP].tos & 3 for p in got]
        self.assertEqual(ecn[:5], [1] * 5)  # an empty queue: not marked
        self.assertEqual(ecn[-5:], [3] * 5)  # a standing queue >= 10 packets: CE
        self.assertGreater(times[-1] - times[0], 0.08)  # 30 packets at 200 pps take ~150 ms
