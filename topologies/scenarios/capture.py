"""Which path each packet took: tcpdump on every gateway port that faces a NIC, inbound only.

A migration away from a slow NIC (the ``degrade`` scenario) leaves the packets already queued in that
NIC on their way: they reach the far gateway after the first packets of the new path, and so arrive out
of order at the host behind it. The controller cannot see that; the wire can. ``PathCapture`` records
every TCP/UDP packet a gateway receives from a NIC (``tcpdump -Q in``, headers only) and
:func:`late_old_path` counts, per migrated reference and direction, the packets that came out of its old
NIC after the first one had come out of its new NIC.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.utils import RawPcapReader

from controller.flowstate import parse_reference
from controller.gateway import FiveTuple, five_tuple_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tap:
    gateway: str
    nic: str
    iface: str
    pcap: Path


class PathCapture:
    """tcpdump per gateway port toward a NIC (snaplen 96: headers), started before the traffic."""

    def __init__(self, taps: list[Tap]) -> None:
        self.taps = taps
        self.procs: list[subprocess.Popen] = []

    @classmethod
    def for_lab(cls, lab: Any, run_dir: Path) -> PathCapture:
        taps = [Tap(g, nic, f"{g}-eth{port}", run_dir / f"path-{g}-{nic}.pcap")
                for g in lab.topo.gateways() for port, nic in lab.topo.gateway_nic_ports(g)]
        return cls(taps)

    def start(self) -> bool:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            log.warning("tcpdump not found: late old-path packets are not measured (apt-get install tcpdump)")
            return False
        for t in self.taps:
            t.pcap.unlink(missing_ok=True)
            self.procs.append(subprocess.Popen(
                [tcpdump, "-i", t.iface, "-Q", "in", "-s", "96", "-U", "-n", "-w", str(t.pcap), "ip and (tcp or udp)"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return True

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs = []

    def arrivals(self) -> dict[tuple[str, str], list[tuple[float, FiveTuple]]]:
        """(gateway, nic) -> [(epoch s, 5-tuple)] of the packets the gateway received from that NIC."""
        out: dict[tuple[str, str], list[tuple[float, FiveTuple]]] = {}
        for t in self.taps:
            pkts: list[tuple[float, FiveTuple]] = []
            if t.pcap.exists() and t.pcap.stat().st_size > 24:
                with RawPcapReader(str(t.pcap)) as rd:
                    for data, meta in rd:
                        ft = five_tuple_of(bytes(data))
                        if ft is not None:
                            pkts.append((meta.sec + meta.usec / 1e6, ft))
            out[(t.gateway, t.nic)] = pkts
        return out


def _matches(key: Any, ft: FiveTuple) -> bool:
    ends = {(key.src_ip, key.src_port), (key.dst_ip, key.dst_port)}
    if key.kind == "roce":                   # a QP is keyed without UDP ports: both hosts, UDP 4791
        return ft.proto == 17 and {ft.src, ft.dst} == {key.src_ip, key.dst_ip} and 4791 in (ft.sport, ft.dport)
    return ft.proto == (6 if key.kind == "tcp" else 17) and {(ft.src, ft.sport), (ft.dst, ft.dport)} == ends


def late_old_path(arrivals: dict[tuple[str, str], list[tuple[float, FiveTuple]]],
                  migrations: list[dict[str, Any]]) -> dict[str, int]:
    """Per migrated reference: packets that left its old NIC after its new NIC had delivered one of the
    same direction to the same gateway (they arrive behind newer packets: out of order downstream)."""
    late: dict[str, int] = defaultdict(int)
    for m in migrations:
        if m.get("outcome") != "ok":
            continue
        for mv in m.get("moved", []):
            key = parse_reference(mv["reference"])
            for (g, nic), pkts in arrivals.items():
                if nic != mv["to"]:
                    continue
                firsts: dict[FiveTuple, float] = {}
                for t, ft in pkts:
                    if t >= m.get("started", 0) and ft not in firsts and _matches(key, ft):
                        firsts[ft] = t
                for t, ft in arrivals.get((g, mv["from"]), []):
                    if ft in firsts and t > firsts[ft]:
                        late[mv["reference"]] += 1
    return dict(late)
