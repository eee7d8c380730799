"""Counter sampling for the CLI's live views (and a base for the monitor): rates per port and per flow.

Owns the reads of the programs' telemetry — ``rx_port_counter`` / ``tx_port_counter`` (per port),
the egress queue registers (``queue_delay_sum_us``, ``queue_depth_last``) and each reference's packet
and byte counts on its NIC (registers where readable — P4Runtime or BMv2 Thrift — else SAVE commands,
streamed) — and
``RateTracker``, which turns successive samples into rates. One Read per switch per sample.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass

from . import commands as C
from .flowstate import FlowKey
from .p4rt.connection import SwitchConnection
from .p4rt.errors import P4RuntimeError
from .p4rt.registers import RegisterAccess
from .runtime import Controller

__all__ = ["PortSample", "port_sample", "flow_sample", "RateTracker"]


@dataclass
class PortSample:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    queue_delay_sum_us: int = 0
    queue_depth: int = 0


def _named(conn: SwitchConnection, kind: str, suffix: str) -> str | None:
    if conn.helper is None:
        return None
    return next((n for n in conn.helper.names(kind) if n.endswith(suffix)), None)


def port_sample(conn: SwitchConnection, ports: set[int] | None = None,
                regs: RegisterAccess | None = None) -> dict[int, PortSample]:
    """Per-port counters and queue registers of one switch: one counter Read, one register read
    (through ``regs`` — P4Runtime, or BMv2 Thrift where P4Runtime has none; a new one if not given)."""
    h = conn.helper
    if h is None:
        return {}
    rx, tx = _named(conn, "counter", "rx_port_counter"), _named(conn, "counter", "tx_port_counter")
    qsum, qdepth = _named(conn, "register", "queue_delay_sum_us"), _named(conn, "register", "queue_depth_last")
    ents = [h.counter_entry(n) for n in (rx, tx) if n]
    out: dict[int, PortSample] = {}

    def get(i: int) -> PortSample:
        return out.setdefault(i, PortSample())

    for e in conn.read(ents):
        ce = e.counter_entry
        i = ce.index.index
        if ports is not None and i not in ports:
            continue
        if ce.counter_id == h.get_id("counter", rx):
            get(i).rx_packets, get(i).rx_bytes = ce.data.packet_count, ce.data.byte_count
        else:
            get(i).tx_packets, get(i).tx_bytes = ce.data.packet_count, ce.data.byte_count
    cells = [(h.get_id("register", n), i) for n in (qsum, qdepth) if n for i in sorted(out)]
    if cells:
        regs = regs if regs is not None else RegisterAccess(conn)
        try:
            for (rid, i), v in regs.read(cells).items():
                if rid == h.get_id("register", qsum):
                    get(i).queue_delay_sum_us = v
                else:
                    get(i).queue_depth = v
        except P4RuntimeError as exc:
            if not exc.is_unimplemented():
                raise
    return {i: s for i, s in out.items() if s.rx_packets or s.tx_packets}


def flow_sample(ctrl: Controller, nic: str) -> dict[FlowKey, tuple[int, int]]:
    """(packets, bytes) of every reference the inventory places on ``nic``."""
    drv = ctrl.nic(nic)
    recs = ctrl.inventory.on_device(nic)
    if not recs:
        return {}
    items = [(r.key, r.slot) for r in recs]
    if drv.registers_ok:   # P4Runtime or BMv2 Thrift
        vals = drv._read_regs([s for _, s in items], ["flow_packets", "flow_bytes"])
        return {k: (vals[s]["flow_packets"], vals[s]["flow_bytes"]) for k, s in items}
    replies = drv.run(C.SAVE, items)
    return {k: (r.packets, r.bytes) for (k, _), r in zip(items, replies, strict=True) if r.status == C.STATUS_OK}


class RateTracker:
    """Rates (per second) of monotonically increasing counters between successive samples."""

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[float, tuple[int, ...]]] = {}

    def update(self, key: Hashable, values: tuple[int, ...], now: float | None = None) -> tuple[float, ...]:
        now = time.monotonic() if now is None else now
        prev = self._last.get(key)
        self._last[key] = (now, values)
        if prev is None or now <= prev[0]:
            return tuple(0.0 for _ in values)
        dt = now - prev[0]
        return tuple(max(0, v - p) / dt for v, p in zip(values, prev[1], strict=True))
