"""The flow inventory: which network reference lives on which device, in which slot.

Owns ``Inventory``, fed by the NICs' digests (a new reference got a slot), by explicit reads of a
device's slots (``controller.nic.NicDriver.scan``) and by the migrator (a reference moved). It is
thread-safe: digests arrive on the P4Runtime receiver threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .flowstate import FlowKey

__all__ = ["FlowRecord", "Inventory", "UnknownFlow"]


class UnknownFlow(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class FlowRecord:
    key: FlowKey
    device: str
    slot: int
    first_seen: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    packets: int = 0
    bytes: int = 0
    summary: str = ""
    migrations: int = 0
    # RoCE: the QP's UDP (source, dest) ports from the learn digest. The NIC keys a QP without ports,
    # but the gateways' flow_forwarding entries are exact on the packet's 5-tuple (RoCEv2 uses a
    # per-QP UDP source port and dest port 4791). None until a digest has shown them.
    udp_ports: tuple[int, int] | None = None

    def reference(self) -> str:
        """The textual reference; a RoCE QP's shows its UDP ports when known (parsed back to this record)."""
        if self.key.kind == "roce" and self.udp_ports is not None:
            k = self.key
            return str(FlowKey("roce", k.src_ip, k.dst_ip, self.udp_ports[0], self.udp_ports[1], k.qpn))
        return str(self.key)


def _ikey(key: FlowKey) -> FlowKey:
    """The inventory's key: canonical, and for RoCE the NIC's (no UDP ports: those are the record's)."""
    key = key.canonical()
    if key.kind == "roce" and (key.src_port or key.dst_port):
        return FlowKey("roce", key.src_ip, key.dst_ip, 0, 0, key.qpn)
    return key


class Inventory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flows: dict[FlowKey, FlowRecord] = {}

    def learn(self, key: FlowKey, device: str, slot: int, udp_ports: tuple[int, int] | None = None) -> FlowRecord:
        """Record that ``key`` lives on ``device`` at ``slot`` (idempotent). ``udp_ports``, when given
        (RoCE digests), replaces the record's; a scan (no ports) keeps what digests taught. A RoCE key
        that carries ports is stored without them, its ports becoming the record's ``udp_ports``."""
        if key.kind == "roce" and key.dst_port and udp_ports is None:
            udp_ports = (key.src_port, key.dst_port)
        key = _ikey(key)
        with self._lock:
            rec = self._flows.get(key)
            if rec is None:
                rec = self._flows[key] = FlowRecord(key, device, slot)
            else:
                rec.device, rec.slot, rec.updated = device, slot, time.time()
            if udp_ports is not None:
                rec.udp_ports = udp_ports
            return rec

    def sharing_tuple(self, rec: FlowRecord) -> list[FlowRecord]:
        """RoCE QPs whose packets carry the same 5-tuple as ``rec``'s (same IPs and UDP ports, other
        QPN): a gateway's exact-match entry cannot tell them apart, so they move together."""
        if rec.key.kind != "roce" or rec.udp_ports is None:
            return []
        with self._lock:
            return sorted((r for r in self._flows.values()
                           if r.key.kind == "roce" and r.key != rec.key and r.udp_ports == rec.udp_ports
                           and (r.key.src_ip, r.key.dst_ip) == (rec.key.src_ip, rec.key.dst_ip)),
                          key=lambda r: r.key.qpn)

    def moved(self, key: FlowKey, device: str, slot: int) -> None:
        rec = self.learn(key, device, slot)
        rec.migrations += 1

    def forget(self, key: FlowKey) -> None:
        with self._lock:
            self._flows.pop(_ikey(key), None)


    def get(self, key: FlowKey) -> FlowRecord:
        with self._lock:
            try:
                return self._flows[_ikey(key)]
            except KeyError:
                raise UnknownFlow(f"unknown flow {key} (not tracked by any NIC)") from None

    def find(self, key: FlowKey) -> FlowRecord | None:
        with self._lock:
            return self._flows.get(_ikey(key))

    def on_device(self, device: str) -> list[FlowRecord]:
        with self._lock:
            return sorted((r for r in self._flows.values() if r.device == device), key=lambda r: r.slot)

    def slots_on(self, device: str) -> set[int]:
        """The slots of ``device`` known to hold a reference (no sorting: the migrator's load plan)."""
        with self._lock:
            return {r.slot for r in self._flows.values() if r.device == device}


    def all(self) -> list[FlowRecord]:
        with self._lock:
            return sorted(self._flows.values(), key=lambda r: (r.device, r.slot))


    def __len__(self) -> int:
        with self._lock:
            return len(self._flows)
