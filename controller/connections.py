"""What each connection felt during a run: its client-visible stalls and what TCP saw on the wire.

The report's application-level counts (lost bytes, reordered packets) are taken after the kernel's TCP
has retransmitted and reordered, so they cannot show whether a migration itself was lossless. This
module reads the stream apps' own records (``topologies.apps``):

- the receivers' ``end`` records list every interval with no new delivery (``stalls``: [[start, ms]]):
  a connection's **stall** is the longest of them, over the run and within [fault, end];
- the ``tcp`` records of both ends carry the kernel's cumulative TCP_INFO counters whenever one
  changed: their deltas over the run's **windows** (before the fault, fault → migration start, during
  the migrations, after them) say how many segments were retransmitted or arrived out of order in each.

Pure functions over record dicts: the scenario runner, the benchmarks and tests call them alike.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

COUNTERS = ("total_retrans", "bytes_retrans", "rcv_ooopack", "reord_seen", "dsack_dups")
WINDOWS = ("before_fault", "fault_to_migration", "migration", "after")


def flow_id(rec: dict[str, Any]) -> str:
    """A connection's name in reports: ``tcp A:P`` (client address) or ``qp SRC/QPN``."""
    if "qpn" in rec:
        return f"qp {rec.get('src', '?')}/{rec['qpn']:#x}"
    return f"tcp {rec.get('flow', '?')}"


def windows(start: float, end: float, fault_t: float | None, mig: tuple[float, float] | None
            ) -> dict[str, tuple[float, float]]:
    """The run's windows as (t0, t1); a window the run does not have (no fault, no migration) is left out."""
    out: dict[str, tuple[float, float]] = {}
    first_mark = fault_t if fault_t is not None else (mig[0] if mig else None)
    if first_mark is None:
        return {"before_fault": (start, end)}
    out["before_fault"] = (start, first_mark)
    if mig is None:
        out["after"] = (first_mark, end)
        return out
    if fault_t is not None:
        out["fault_to_migration"] = (fault_t, max(fault_t, mig[0]))
    out["migration"] = (mig[0], max(mig[0], mig[1]))
    out["after"] = (max(mig[0], mig[1]), end)
    return out


class _Series:
    """Cumulative counters of one socket over time: the value at t is the last record at or before t."""

    def __init__(self, recs: Sequence[dict[str, Any]]) -> None:
        recs = sorted(recs, key=lambda r: r["t"])
        self.ts = [r["t"] for r in recs]
        self.recs = recs

    def at(self, t: float) -> dict[str, int]:
        i = bisect.bisect_right(self.ts, t) - 1
        rec = self.recs[max(i, 0)]            # before the first record: the first (zero delta)
        return {k: int(rec.get(k) or 0) for k in COUNTERS}

    def delta(self, t0: float, t1: float) -> dict[str, int]:
        a, b = self.at(t0), self.at(t1)
        return {k: b[k] - a[k] for k in COUNTERS}


def longest_stall(stalls: Sequence[Sequence[float]], t0: float | None = None) -> float:
    """The longest of ``stalls`` ([start, ms]) in ms, counting only the part after ``t0`` (None: all)."""
    best = 0.0
    for s, ms in stalls:
        e = s + ms / 1000
        if t0 is not None:
            s = max(s, t0)
        best = max(best, (e - s) * 1000)
    return round(best, 1)


def connection_views(receiver_records: Sequence[dict[str, Any]], sender_records: Sequence[dict[str, Any]],
                     traffic: tuple[float, float], fault_t: float | None,
                     mig: tuple[float, float] | None) -> list[dict[str, Any]]:
    """Per connection: ``stall_ms`` (run), ``stall_after_fault_ms``, ``stall_at`` (its start, epoch s)
    and, for TCP, ``tcp`` = {"send"|"recv": {window: {counter: delta}}}."""
    tcp_recs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in (*receiver_records, *sender_records):
        if r.get("event") == "tcp":
            tcp_recs.setdefault((r.get("flow", "?"), r.get("side", "?")), []).append(r)
    wins = windows(traffic[0], traffic[1], fault_t, mig)
    out = []
    for end in receiver_records:
        if end.get("event") != "end":
            continue
        stalls = end.get("stalls") or []
        longest = max(stalls, key=lambda s: s[1], default=None)
        view: dict[str, Any] = {
            "connection": flow_id(end),
            "stall_ms": longest_stall(stalls),
            "stall_after_fault_ms": longest_stall(stalls, fault_t) if fault_t is not None else None,
            "stall_at": longest[0] if longest else None,
        }
        if "qpn" not in end:
            sides = {}
            for side in ("send", "recv"):
                recs = tcp_recs.get((end.get("flow", "?"), side))
                if recs:
                    ser = _Series(recs)
                    sides[side] = {w: ser.delta(*span) for w, span in wins.items()}
            view["tcp"] = sides
        out.append(view)
    return out


def wire_totals(views: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per window, the segments retransmitted (sender side) and received out of order (receiver side),
    summed over the TCP connections."""
    tot: dict[str, dict[str, int]] = {}
    for v in views:
        for side, per_win in (v.get("tcp") or {}).items():
            for w, d in per_win.items():
                t = tot.setdefault(w, {"retransmitted": 0, "out_of_order": 0, "dsack_dups": 0})
                if side == "send":
                    t["retransmitted"] += d["total_retrans"]
                    t["dsack_dups"] += d["dsack_dups"]
                else:
                    t["out_of_order"] += d["rcv_ooopack"]
    return {w: tot[w] for w in WINDOWS if w in tot}
