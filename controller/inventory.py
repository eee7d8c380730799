"""The flow inventory: which network reference lives on which device, in which slot.

Owns ``Inventory``, fed by the NICs' digests (a new reference got a slot), by explicit reads of a
device's slots (``controller.nic.NicDriver.scan``) and by the migrator (a reference moved). It is
thread-safe: digests arrive on the P4Runtime receiver threads.

A slot holds one reference: when a reference is learned at a slot of a device that the inventory
holds under another key, that one is gone (the NIC aged it out, or replaced it: docs/dataplane.md
"Aging") and is forgotten (``evicted`` counts them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .flowstate import FlowKey

__all__ = ["FlowRecord", "Inventory", "SlotUse", "UnknownFlow", "NEAR_FULL"]

NEAR_FULL = 0.95   # a NIC above this share of used slots is reported "near full"


@dataclass(frozen=True)
class SlotUse:
    """A NIC's flow table occupancy as the inventory knows it (references learned or scanned)."""

    device: str
    used: int
    total: int

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)

    @property
    def full(self) -> bool:
        return self.used >= self.total

    @property
    def near_full(self) -> bool:
        return self.used > NEAR_FULL * self.total

    def label(self) -> str:
        """"FULL", "NEAR FULL" or "" (for tables and logs)."""
        return "FULL" if self.full else "NEAR FULL" if self.near_full else ""

    def __str__(self) -> str:
        pct = 100.0 * self.used / self.total if self.total else 0.0
        tail = f"  {self.label()}" if self.label() else ""
        return f"{self.device}: {self.used}/{self.total} slots used ({pct:.1f} %), {self.free} free{tail}"


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
        self._at: dict[tuple[str, int], FlowKey] = {}   # (device, slot) -> the key living there
        self._count: dict[str, int] = {}                # device -> len of its slots in _at
        self.evicted = 0

    def _put(self, device: str, slot: int, key: FlowKey) -> None:
        if (device, slot) not in self._at:
            self._count[device] = self._count.get(device, 0) + 1
        self._at[(device, slot)] = key

    def _drop(self, device: str, slot: int, key: FlowKey) -> None:
        if self._at.get((device, slot)) == key:
            del self._at[(device, slot)]
            self._count[device] -= 1

    def learn(self, key: FlowKey, device: str, slot: int, udp_ports: tuple[int, int] | None = None) -> FlowRecord:
        """Record that ``key`` lives on ``device`` at ``slot`` (idempotent). ``udp_ports``, when given
        (RoCE digests), replaces the record's; a scan (no ports) keeps what digests taught. A RoCE key
        that carries ports is stored without them, its ports becoming the record's ``udp_ports``."""
        if key.kind == "roce" and key.dst_port and udp_ports is None:
            udp_ports = (key.src_port, key.dst_port)
        key = _ikey(key)
        with self._lock:
            old = self._at.get((device, slot))
            if old is not None and old != key:   # the slot's former reference aged out / was replaced
                self._flows.pop(old, None)
                self.evicted += 1
            rec = self._flows.get(key)
            if rec is None:
                rec = self._flows[key] = FlowRecord(key, device, slot)
            else:
                self._drop(rec.device, rec.slot, key)
                rec.device, rec.slot, rec.updated = device, slot, time.time()
            self._put(device, slot, key)
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
        key = _ikey(key)
        with self._lock:
            rec = self._flows.pop(key, None)
            if rec is not None:
                self._drop(rec.device, rec.slot, key)


    def forget_missing(self, device: str, present: set[FlowKey], before: float) -> int:
        """A scan of ``device`` found exactly ``present``: forget its other references (their slots were
        emptied — aged out, cleared — with no digest to say so), except those learned or updated at or
        after ``before`` (the scan's start: a digest may have taught them since). Returns how many."""
        present = {_ikey(k) for k in present}
        with self._lock:
            gone = [r for r in self._flows.values()
                    if r.device == device and r.key not in present and r.updated < before]
            for r in gone:
                del self._flows[r.key]
                self._drop(r.device, r.slot, r.key)
        return len(gone)

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

    def count_on(self, device: str) -> int:
        """How many references ``device`` is known to hold (its used slots)."""
        with self._lock:
            return self._count.get(device, 0)

    def slots_on(self, device: str) -> set[int]:
        """The slots of ``device`` known to hold a reference (no sorting: the migrator's load plan)."""
        with self._lock:
            return {s for d, s in self._at if d == device}


    def all(self) -> list[FlowRecord]:
        with self._lock:
            return sorted(self._flows.values(), key=lambda r: (r.device, r.slot))


    def __len__(self) -> int:
        with self._lock:
            return len(self._flows)
