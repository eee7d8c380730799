"""Shared pieces of the traffic apps: JSON-lines reporting, rate parsing, pacing, stall tracking."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO


def parse_rate(text: str | None) -> float | None:
    """'10M' -> 10e6, '500k' -> 500e3, '0'/None -> None (unlimited). Units are per second."""
    if text is None:
        return None
    t = str(text).strip().lower()
    mult = 1.0
    for suffix, m in (("g", 1e9), ("m", 1e6), ("k", 1e3)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = float(t) * mult
    except ValueError:
        raise ValueError(f"bad rate {text!r} (examples: 2000, 500k, 10M)") from None
    if value < 0:
        raise ValueError(f"bad rate {text!r}: negative")
    return value or None


class Reporter:
    """Writes one JSON object per line, flushed, thread-safe; each record gets a wall-clock 't'."""

    def __init__(self, out: IO[str] | None = None, role: str = "") -> None:
        self.out = out or sys.stdout
        self.role = role
        self.lock = threading.Lock()
        self.records: list[dict] = []

    def emit(self, event: str, **fields) -> dict:
        rec = {"t": round(time.time(), 6), "event": event, **({"role": self.role} if self.role else {}),
               **fields}
        with self.lock:
            self.records.append(rec)
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        return rec


class Pacer:
    """Spaces out work to a target rate of units per second (None: no pacing)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.done = 0.0

    def wait(self, units: float) -> None:
        self.done += units
        if not self.rate:
            return
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


STALL_MIN_S = 0.005        # shorter pauses between deliveries are not listed as stalls
STALLS_KEPT = 2000         # the longest ones are kept when a connection has more


class StallTracker:
    """Intervals with no new delivery (TCP: application bytes; RoCE: a QP's next PSN).

    Each interval longer than ``STALL_MIN_S`` is kept as (start wall time, seconds); the longest
    ``STALLS_KEPT`` survive when there are more.
    """

    def __init__(self) -> None:
        self.last: float | None = None        # wall time of the last delivery
        self.stalls: list[tuple[float, float]] = []

    def delivered(self, now: float) -> None:
        if self.last is not None and now - self.last > STALL_MIN_S:
            self.stalls.append((self.last, now - self.last))
            if len(self.stalls) > 2 * STALLS_KEPT:
                self.stalls = sorted(self.stalls, key=lambda s: -s[1])[:STALLS_KEPT]
        self.last = now

    def record(self) -> dict:
        kept = sorted(sorted(self.stalls, key=lambda s: -s[1])[:STALLS_KEPT])
        return {"stall_ms": round(max((d for _, d in kept), default=0.0) * 1000, 3),
                "stalls": [[round(t, 6), round(d * 1000, 3)] for t, d in kept]}
