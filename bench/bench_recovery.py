"""Benchmark: what a controller's death mid-migration costs a live TCP connection (``recovery``).

The crash drill (topologies.scenarios.crash) on fig2 with 4 verified kernel TCP streams: a controller
migrating one connection is SIGKILLed at a random instant of its migration (uniform over the first
``WINDOW_MS`` after the suspension began: suspend to release for a single reference), ``KILLS`` times:

- ``restart``: a new controller starts at once (``flowmig recover``, what a supervisor restarting the
  controller does) and finishes or undoes the migration. Reported: the migrated connection's longest
  client-visible stall around the kill (p50/p99/max), the recovery's own time (``recovery_ms``: from
  the switches' state and the journal to everything put right) and the restart's wall time
  (``restart_s``: process start, connections, recovery);
- ``lease_only``: nobody recovers; the gateways' data-plane lease (the default, 1 s) brings the flow
  back by itself. Reported: the stall.

Both with the default lease (1 s). Every connection must survive (``connections_ok``).

    python -m bench recovery        (merged into bench/results.json under "recovery")
"""

from __future__ import annotations

import json
import logging
import os
import statistics

from topologies.scenarios.crash import drill
from topologies.targets import resolve

KILLS = int(os.environ.get("FLOWMIG_BENCH_RECOVERY_KILLS", "20"))
LEASE_ONLY_KILLS = max(3, KILLS // 4)
WINDOW_MS = 15
LEASE = 1.0

log = logging.getLogger("bench.recovery")


def _stats(values: list[float]) -> dict:
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {"p50": round(statistics.median(v), 1), "p99": round(v[min(len(v) - 1, round(0.99 * (len(v) - 1)))], 1),
            "max": round(v[-1], 1), "n": len(v)}


def _summary(res: dict) -> dict:
    kills = res["kills"]
    out = {"kills": len(kills), "killed_mid_migration": sum(k["killed"] for k in kills),
           "stall_ms": _stats([k["stall_ms"] for k in kills]),
           "connections_ok": sum(c["ok"] and not c["gaps"] and not c["corrupt"] for c in res["connections"]),
           "connections": len(res["connections"])}
    if res["recover"]:
        out["recovery_ms"] = _stats([k["recovery_ms"] for k in kills])
        out["restart_s"] = _stats([k["restart_s"] for k in kills])
        out["decisions"] = {d: sum(d in k["decisions"] for k in kills) for d in ("forward", "back")}
        out["problems"] = [p for k in kills for p in k["problems"]]
    return out


def run() -> dict:
    target = resolve(os.environ.get("FLOWMIG_BENCH_TARGET", "embedded"))
    restart = drill(target, [f"random:{WINDOW_MS}"] * KILLS, lease=LEASE, recover=True)
    lease_only = drill(target, [f"random:{WINDOW_MS}"] * LEASE_ONLY_KILLS, lease=LEASE, recover=False,
                       settle=LEASE + 2.0)
    out = {"restart": _summary(restart), "lease_only": _summary(lease_only),
           "setup": {"target": target, "lease_ms": LEASE * 1000, "streams": 4, "kill_window_ms": WINDOW_MS}}
    log.info("recovery: %s", json.dumps(out))
    return {"recovery": out}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(run(), indent=2))
