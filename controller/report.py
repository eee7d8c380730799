"""Scenario reports: the JSON summary of a run and its plot.

Owns ``build_report`` (receivers' JSON-lines records + the monitor's events + the migrations →
the report fields of docs/design.md: scenario, target, connections, connections_survived,
packets_lost, packets_reordered, detection_ms, downtime_ms {p50, p99, max}, throughput
{before, during, after}, plus per-migration records), ``summary_table`` (the text printed at the end of
a run) and ``plot`` (PNG, matplotlib's Agg backend: per-flow throughput over time with the fault,
the detection and the migrations marked).

Application-level accounting: a TCP stream's lost bytes are the gaps its receiver found and its
corrupt bytes (any reordering the application could see); a RoCE QP's lost packets are the missing
PSNs, its reordered packets the ones that arrived behind the expected PSN.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.connections import connection_views, flow_id, wire_totals

__all__ = ["build_report", "summary_table", "plot", "percentile", "throughput_series"]

log = logging.getLogger(__name__)


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (1..99), linearly interpolated between the closest ranks
    (``statistics.quantiles``, inclusive method); None for no values."""
    if not 1 <= q <= 99:
        raise ValueError(f"percentile {q}: expected 1..99")
    if len(values) < 2:
        return float(values[0]) if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def throughput_series(receiver_records: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """flow -> [(wall time, bit/s)] from the receivers' ``sample`` records (RoCE: pps × bytes ≈ bit/s)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in receiver_records:
        if r.get("event") != "sample":
            continue
        if "qpn" in r and r.get("pps") is not None:          # RoCE QPs are plotted in packets/s
            out.setdefault(flow_id(r), []).append((r["t"], float(r["pps"])))
        elif r.get("bps") is not None:
            out.setdefault(flow_id(r), []).append((r["t"], float(r["bps"])))
    return out


def _window_rate(series: dict[str, list[tuple[float, float]]], t0: float, t1: float) -> float | None:
    """Aggregate rate over [t0, t1): the per-flow mean rates in the window, summed."""
    if t1 <= t0:
        return None
    total, seen = 0.0, False
    for pts in series.values():
        vals = [v for t, v in pts if t0 <= t < t1]
        if vals:
            total += sum(vals) / len(vals)
            seen = True
    return total if seen else None


def build_report(scenario: str, target: str, receiver_records: Sequence[dict[str, Any]],
                 sender_records: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]],
                 migrations: Sequence[dict[str, Any]], fault: dict[str, Any] | None,
                 traffic: tuple[float, float], extra: dict[str, Any] | None = None,
                 settle: float = 1.0) -> dict[str, Any]:
    """The report of one run. ``traffic`` = (start, end) wall times of the traffic; ``fault`` has ``t``."""
    ends = [r for r in receiver_records if r.get("event") == "end"]
    tcp = [r for r in ends if "flow" in r and "qpn" not in r]
    roce = [r for r in ends if "qpn" in r]
    sent = {(r.get("qpn")): r.get("packets", 0) for r in sender_records if r.get("event") == "end" and "qpn" in r}

    def roce_lost(r: dict[str, Any]) -> int:
        if r.get("qpn") in sent:                 # what the sender sent and the receiver never got
            return max(0, sent[r["qpn"]] - r.get("packets", 0))
        return max(0, r.get("missing", 0) - r.get("duplicates", 0))

    survived = [r for r in tcp if r.get("ok") and not r.get("reset") and not r.get("error")]
    survived += [r for r in roce if r.get("complete", r.get("ok")) and roce_lost(r) == 0]
    senders_ok = all(r.get("ok", True) for r in sender_records if r.get("event") == "end")
    started = [r for r in receiver_records if r.get("event") in ("connected", "qp")]
    connections = max(len(started), len(ends))
    fault_t = fault.get("t") if fault else None
    det = [e for e in events if e.get("kind") == "degraded" and fault_t is not None and e["t"] >= fault_t]
    detection_ms = round((det[0]["t"] - fault_t) * 1000, 1) if det else None
    ok_migs = [m for m in migrations if m.get("migration", m).get("outcome") == "ok"]
    downs = []
    for m in ok_migs:
        mig = m.get("migration", m)
        downs += [mig.get("downtime_ms", 0.0)] * max(1, len(mig.get("references", [])))
    mig_end = max((m.get("migration", m).get("finished", 0.0) for m in ok_migs), default=None)
    mig_start = min((m.get("migration", m).get("started", 0.0) for m in ok_migs), default=None)
    series = throughput_series(receiver_records)
    t_start, t_end = traffic
    fault_or_mig = fault_t if fault_t is not None else mig_start
    before = during = after = None
    if fault_or_mig is not None:
        before = _window_rate(series, max(t_start + settle, fault_or_mig - 3.0), fault_or_mig)
        if mig_end is not None:
            during = _window_rate(series, fault_or_mig, max(mig_end, fault_or_mig + 0.2))
            after = _window_rate(series, mig_end + settle, t_end - 0.3)
    unit = "pps" if roce and not tcp else "bps"
    views = connection_views(receiver_records, sender_records, traffic, fault_t,
                             (mig_start, mig_end) if mig_start is not None and mig_end is not None else None)
    rep: dict[str, Any] = {
        "scenario": scenario,
        "target": target,
        "connections": connections,
        "connections_survived": len(survived),
        "senders_ok": senders_ok,
        "packets_lost": sum(roce_lost(r) for r in roce) + sum(r.get("gaps", 0) for r in tcp),
        "bytes_lost": sum(r.get("gap_bytes", 0) for r in tcp),
        "bytes_corrupt": sum(r.get("corrupt", 0) for r in tcp),
        "packets_reordered": sum(r.get("duplicates", 0) for r in roce),
        "detection_ms": detection_ms,
        "downtime_ms": {"p50": _r(percentile(downs, 50)), "p99": _r(percentile(downs, 99)), "max": _r(max(downs, default=None))},
        "throughput": {"unit": unit, "before": _r(before), "during": _r(during), "after": _r(after)},
        "stall_ms": {"max": max((v["stall_ms"] for v in views), default=None),
                     "max_after_fault": max((v["stall_after_fault_ms"] for v in views
                                             if v["stall_after_fault_ms"] is not None), default=None)},
        "tcp_wire": wire_totals(views),
        "per_connection": views,
        "fault": fault,
        "traffic": {"start": t_start, "end": t_end},
        "events": list(events),
        "migrations": list(migrations),
        "receivers": ends,
    }
    if extra:
        rep.update(extra)
    return rep


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _rate(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "pps":
        return f"{v:.0f} pps"
    for u, d in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= d:
            return f"{v / d:.2f} {u}bit/s"
    return f"{v:.0f} bit/s"


def summary_table(rep: dict[str, Any]) -> str:
    """Human-readable summary of a report (printed at the end of ``flowmig run``)."""
    unit = rep["throughput"]["unit"]
    d = rep["downtime_ms"]
    rows = [
        ("scenario", f"{rep['scenario']} ({rep['target']})"),
        ("connections survived", f"{rep['connections_survived']}/{rep['connections']}"),
        ("lost (app level)", f"{rep['packets_lost']} packets, {rep.get('bytes_lost', 0)} bytes"),
        ("reordered (app level)", f"{rep['packets_reordered']} packets, {rep.get('bytes_corrupt', 0)} corrupt bytes"),
        ("detection", "-" if rep["detection_ms"] is None else f"{rep['detection_ms']:.0f} ms after the fault"),
        ("migrations", str(len(rep["migrations"]))),
        ("downtime p50/p99/max", "/".join("-" if d[k] is None else f"{d[k]:.1f}" for k in ("p50", "p99", "max")) + " ms"),
        ("throughput before", _rate(rep["throughput"]["before"], unit)),
        ("throughput during", _rate(rep["throughput"]["during"], unit)),
        ("throughput after", _rate(rep["throughput"]["after"], unit)),
    ]
    for v in rep.get("per_connection", []):
        after = v.get("stall_after_fault_ms")
        rows.append((f"  {v['connection']}", f"longest stall {v['stall_ms']:.0f} ms"
                     + ("" if after is None else f" ({after:.0f} ms after the fault)")))
    if "late_old_path_packets" in rep:
        wait = rep.get("old_path_wait_ms") or 0
        rows.append(("late on the old path", f"{rep['late_old_path_packets']} packets came out of an old NIC after "
                     f"the new one had delivered ({'waited up to ' + format(wait, '.0f') + ' ms' if wait else 'switched at once'})"))
    for w, tot in rep.get("tcp_wire", {}).items():
        rows.append((f"TCP on the wire: {w.replace('_', ' ')}",
                     f"{tot['retransmitted']} retransmitted, {tot['out_of_order']} out-of-order segments"))
    for m in rep["migrations"]:
        mig = m.get("migration", m)
        moved = sorted({x["from"] for x in mig.get("moved", [])})
        rows.append((f"  #{mig.get('id')} {m.get('policy', '')}".rstrip(),
                     f"{len(mig.get('references', []))} ref(s) {','.join(moved) or '?'} -> {mig.get('target')}: "
                     f"{mig.get('outcome')}, downtime {mig.get('downtime_ms', 0):.1f} ms, buffered "
                     f"{mig.get('packets_buffered', 0)}/replayed {mig.get('packets_replayed', 0)}"))
    if "checks" in rep:
        for name, (ok, detail) in rep["checks"].items():
            rows.append((f"check {name}", f"{'PASS' if ok else 'FAIL'}  {detail}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def plot(rep: dict[str, Any], receiver_records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Per-flow throughput over time, the fault, the detection and the migrations marked; PNG."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'flowmig[plot]' (make install does)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = throughput_series(receiver_records)
    t0 = rep["traffic"]["start"]
    unit = rep["throughput"]["unit"]
    scale, label = (1.0, "packets/s") if unit == "pps" else (1e6, "Mbit/s")
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    stalls = {v["connection"]: v for v in rep.get("per_connection", [])}
    bars: list[tuple[float, float, str]] = []
    for name, pts in sorted(series.items()):
        st = stalls.get(name)
        longest = f" (longest stall {st['stall_ms']:.0f} ms)" if st and st.get("stall_ms") is not None else ""
        (line,) = ax.plot([t - t0 for t, _ in pts], [v / scale for _, v in pts], linewidth=1.2, label=name + longest)
        if st and st.get("stall_at") and st["stall_ms"] >= 20:      # each connection's longest stall
            bars.append((st["stall_at"] - t0, st["stall_ms"], line.get_color()))
    if bars:
        # one lane per connection below zero: bars that overlap in time stay apart, labels too
        top = ax.get_ylim()[1]
        ticks = [t for t in ax.get_yticks() if 0 <= t <= top]
        h = top * 0.04
        base = -h * (len(bars) + 0.3)
        for i, (a, ms, color) in enumerate(bars):
            y = base + i * h
            ax.broken_barh([(a, ms / 1000)], (y + 0.1 * h, 0.8 * h), color=color)
            ax.text(a + ms / 1000, y + 0.5 * h, f" {ms:.0f} ms", fontsize=7, color=color, va="center")
        ax.set_ylim(base, top)
        ax.set_yticks(ticks)                 # no throughput ticks below zero
        ax.axhline(0, color="black", linewidth=0.6)
    fault = rep.get("fault") or {}
    if fault.get("t"):
        ax.axvline(fault["t"] - t0, color="red", linestyle="-", linewidth=1.5,
                   label=f"fault: {fault.get('what', fault.get('kind', ''))}")
    if rep.get("detection_ms") is not None and fault.get("t"):
        ax.axvline(fault["t"] - t0 + rep["detection_ms"] / 1000, color="orange", linestyle="--", linewidth=1.2,
                   label=f"detected (+{rep['detection_ms']:.0f} ms)")
    for i, m in enumerate(rep["migrations"]):
        mig = m.get("migration", m)
        if not mig.get("started"):
            continue
        a, b = mig["started"] - t0, (mig.get("finished") or mig["started"]) - t0
        ax.axvspan(a, max(b, a + 0.02), color="green", alpha=0.35,
                   label="migration" if i == 0 else None)
        ax.annotate(f"-> {mig.get('target')}", (a, ax.get_ylim()[1] * 0.95), fontsize=8, color="green")
    ax.set_xlabel("time since traffic start (s)")
    ax.set_ylabel(f"throughput per flow ({label})")
    ax.set_title(f"flowmig scenario '{rep['scenario']}' ({rep['target']}): "
                 f"{rep['connections_survived']}/{rep['connections']} connections survived")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0,
              title="bars below zero: each connection's longest stall", title_fontsize=7)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    plt.close(fig)
    return p
