"""Benchmark: what live kernel TCP connections feel when they are migrated (``migration_tcp``).

Starts fig2, runs ``STREAMS`` verified TCP streams hostA -> hostB (topologies.apps.tcp_stream, paced to
``RATE`` each, small writes so a stall is visible to within a few ms), lets the NICs learn them, then
moves all of them back and forth between two healthy NICs ``MIGRATIONS`` times in lossless mode and
``MIGRATIONS`` times in drop mode. Per migration (all streams as one batch):

- client-visible stall: the longest interval in which a receiver got no new byte, among the stalls
  that overlap the migration (the receivers list every pause > 5 ms);
- what TCP saw on the wire, from both ends' TCP_INFO records: segments retransmitted (sender
  ``tcpi_total_retrans``) and data segments received out of order (receiver ``tcpi_rcv_ooopack``)
  over the migration window [started - 10 ms, finished + ``TAIL[mode]``];
- the noise floor: the same measures over a window of equal length in the quiet time after each
  migration, so what the migration caused is the difference.

Then, in a fresh lab, ``LIGHT_MIGRATIONS`` lossless migrations of ``LIGHT_STREAMS`` streams
(``migration_tcp.lossless_2_streams``): the same protocol with a quarter of the traffic, which shows how
much of the stall is the machine's load (``cpu_busy_pct``, here and in ``setup``: the share of both
CPUs busy while migrating — the switches forwarding the streams, the apps, the controller).

    python -m bench migration_tcp        (merged into bench/results.json under "migration_tcp")

The per-migration figures are also drawn, next to the results: ``bench/migration_tcp-<target>.png``
(the distribution of the stalls in both modes against the noise floor, and the segments TCP
retransmitted or received out of order per migration).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

STREAMS = 8
RATE = "500k"               # bytes/s per stream (4 Mbit/s)
CHUNK = 1000                # bytes per write: one write every 2 ms per stream
MIGRATIONS = int(os.environ.get("FLOWMIG_BENCH_TCP_MIGRATIONS", "100"))   # per mode
# then, in a second lab, lossless migrations of fewer streams: the same protocol on a less busy machine
LIGHT_STREAMS = 2
LIGHT_MIGRATIONS = int(os.environ.get("FLOWMIG_BENCH_TCP_LIGHT_MIGRATIONS", "30"))
# Seconds after a migration that still count as its effect (drop mode: a lost segment costs an RTO,
# 200 ms at least), and the pause before the next one: room for the effect window and a quiet window
# of the same length after it.
TAIL = {"lossless": 0.25, "drop": 0.6}
GAP_S = {"lossless": 0.7, "drop": 1.4}

log = logging.getLogger("bench.migration_tcp")
HERE = Path(__file__).resolve().parent


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, round(q * (len(v) - 1)))], 2)


def _at(series: list[tuple[float, int]], t: float) -> int:
    """Cumulative counter at time t: the last sample at or before t (0 before the first)."""
    best = 0
    for ts, v in series:
        if ts > t:
            break
        best = v
    return best


def _window_effects(windows: list[tuple[float, float]], stalls: list[list[float]],
                    retrans: dict[str, list[tuple[float, int]]], ooo: dict[str, list[tuple[float, int]]]
                    ) -> list[dict]:
    out = []
    for a, b in windows:
        worst = 0.0
        for s, ms in stalls:
            if s < b and s + ms / 1000 > a:
                worst = max(worst, ms)
        out.append({"stall_ms": worst,
                    "retransmitted": sum(_at(ser, b) - _at(ser, a) for ser in retrans.values()),
                    "out_of_order": sum(_at(ser, b) - _at(ser, a) for ser in ooo.values())})
    return out


def _summary(effects: list[dict], noise: list[dict]) -> dict:
    def stat(rows: list[dict], k: str) -> dict:
        vals = [r[k] for r in rows]
        return {"p50": _pct(vals, 0.5), "p99": _pct(vals, 0.99), "max": max(vals, default=None),
                "total": round(sum(vals), 2)}
    return {
        "migrations": len(effects),
        "stall_ms": stat(effects, "stall_ms"),
        "retransmitted": stat(effects, "retransmitted"),
        "out_of_order": stat(effects, "out_of_order"),
        "noise_floor": {"stall_ms": stat(noise, "stall_ms"), "retransmitted": stat(noise, "retransmitted"),
                        "out_of_order": stat(noise, "out_of_order")},
        "caused_by_migration": {
            "retransmitted": sum(r["retransmitted"] for r in effects) - sum(r["retransmitted"] for r in noise),
            "out_of_order": sum(r["out_of_order"] for r in effects) - sum(r["out_of_order"] for r in noise)},
    }


def plot(series: dict[str, dict[str, list[dict]]], target: str, path: Path, goal_ms: float = 20.0,
         light: tuple[str, list[dict]] | None = None) -> Path:
    """PNG of the per-migration effects: the stalls' distribution (CDF) per mode and for the noise floor
    (equal windows with no migration), and the retransmitted / out-of-order segments per migration.
    ``light``: (label, effects) of a run with fewer streams, drawn as one more stall curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"lossless": "tab:blue", "drop": "tab:red"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [3, 2]})
    noise = [r["stall_ms"] for m in series.values() for r in m["noise"]]
    curves = [(f"{mode} ({len(m['effects'])} migrations)", [r["stall_ms"] for r in m["effects"]], colors.get(mode), "-")
              for mode, m in series.items()]
    curves.append((f"noise floor ({len(noise)} windows, no migration)", noise, "0.45", "--"))
    if light is not None:
        curves.append((f"{light[0]} ({len(light[1])} migrations)", [r["stall_ms"] for r in light[1]],
                       "tab:cyan", "-."))
    for label, vals, color, style in curves:
        if vals:
            v = sorted(vals)
            ax.step(v, [(i + 1) / len(v) for i in range(len(v))], where="post", color=color, linestyle=style,
                    label=f"{label}: p50 {_pct(v, 0.5)}, p99 {_pct(v, 0.99)} ms")
    ax.axvline(goal_ms, color="green", linestyle=":", label=f"goal: p99 < {goal_ms:.0f} ms (lossless)")
    ax.set_xlabel("client-visible stall per migration (ms): the longest gap with no new byte at a receiver")
    ax.set_ylabel("share of migrations (CDF)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)   # below: off the curves
    kinds = [("retransmitted", "retransmitted (sender)"), ("out_of_order", "received out of order")]
    width = 0.8 / max(1, len(series))
    for i, (mode, m) in enumerate(series.items()):
        n = max(1, len(m["effects"]))
        caused = [max(0.0, (sum(r[k] for r in m["effects"]) - sum(r[k] for r in m["noise"])) / n) for k, _ in kinds]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(kinds))]
        bars = bx.bar(xs, caused, width, color=colors.get(mode), label=mode)
        bx.bar_label(bars, fmt="%.1f", fontsize=8)
    bx.set_xticks(range(len(kinds)), [label for _, label in kinds])
    bx.set_ylabel("segments per migration, minus the noise floor")
    bx.legend(fontsize=8)
    bx.grid(axis="y", alpha=0.3)
    fig.suptitle(f"migration_tcp on {target}: {STREAMS} live TCP streams moved between two NICs, what they felt"
                 + (f" (and {light[0]})" if light is not None else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) time of all CPUs so far, in jiffies (the first line of /proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)     # idle + iowait
    return sum(v) - idle, sum(v)


def _busy_pct(a: tuple[int, int], b: tuple[int, int]) -> float | None:
    return round(100.0 * (b[0] - a[0]) / (b[1] - a[1]), 1) if b[1] > a[1] else None


def _session(target: str, streams: int, plan: list[tuple[str, int]], tmp: Path) -> tuple[dict[str, list], dict]:
    """One lab: ``streams`` live TCP streams, gathered on one NIC, then for each (mode, n) of ``plan`` n
    migrations of all of them back and forth between two NICs. Returns the records per mode and what
    the streams' reports and the machine showed: every receiver's stalls, the senders' retransmission
    and the receivers' out-of-order counters over time, the connections, and how busy the CPUs were
    while migrating (``cpu_busy_pct``: the emulation itself, as much as the migrations)."""
    from controller.config import load_config
    from controller.migrator import Migrator
    from controller.runtime import Controller
    from topologies.apps import parse_report, tcp_streams
    from topologies.description import load
    from topologies.network import Lab, LabOptions

    tmp.mkdir(parents=True, exist_ok=True)
    lab = Lab(load("fig2"), LabOptions(target=target, run_dir=tmp / "run", log_dir=tmp / "logs",
                                       lock_timeout=1800))
    runs: dict[str, list] = {mode: [] for mode, _ in plan}
    with lab:
        cfg = load_config(lab.config_path)
        cfg.election_id = (1, os.getpid() & 0xFFFF)
        with Controller(cfg, hosts=cfg.hosts).start() as ctrl, tcp_streams(lab, streams, RATE, CHUNK, tmp):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                keys = [r.key for r in ctrl.inventory.all() if r.key.kind == "tcp"]
                if len(keys) >= streams:
                    break
                time.sleep(0.2)
            if len(keys) < streams:
                raise RuntimeError(f"only {len(keys)} of {streams} TCP connections learned")
            time.sleep(1.0)
            m = Migrator(ctrl)
            nics = sorted({ctrl.inventory.get(k).device for k in keys})
            healthy = sorted(ctrl.nics)
            a = nics[0]
            m.migrate(keys, a)                     # gather them on one NIC (not measured)
            b = next(n for n in healthy if n != a)
            time.sleep(0.5)
            cpu0 = _cpu_jiffies()
            for mode, count in plan:
                for i in range(count):
                    rec = m.migrate(keys, b if i % 2 == 0 else a, mode=mode)
                    runs[mode].append(rec)
                    if rec.outcome != "ok":
                        log.warning("%s migration %d: %s", mode, i, rec.summary())
                    time.sleep(GAP_S[mode])
                if count % 2:
                    m.migrate(keys, a)
                    time.sleep(GAP_S[mode])
                log.info("%d streams, %s: %d migrations done", streams, mode, len(runs[mode]))
            cpu = _busy_pct(cpu0, _cpu_jiffies())
    rx = parse_report(tmp / "rx.jsonl")
    tx = [r for i in range(streams) for r in parse_report(tmp / f"tx{i}.jsonl")]
    ends = [r for r in rx if r["event"] == "end"]
    obs: dict = {"stalls": [s for e in ends for s in e.get("stalls", [])], "retrans": {}, "ooo": {},
                 "connections_ok": sum(bool(e.get("ok")) for e in ends), "connections": len(ends),
                 "cpu_busy_pct": cpu}
    for r in tx:
        if r["event"] == "tcp":
            obs["retrans"].setdefault(r["flow"], []).append((r["t"], r["total_retrans"] or 0))
    for r in rx:
        if r["event"] == "tcp":
            obs["ooo"].setdefault(r["flow"], []).append((r["t"], r["rcv_ooopack"] or 0))
    return runs, obs


def _measured(mode: str, recs: list, obs: dict) -> tuple[dict, dict[str, list[dict]]]:
    """The summary of one mode's migrations and its per-migration series (effects, noise)."""
    wins = [(r.started - 0.01, r.finished + TAIL[mode]) for r in recs if r.outcome == "ok"]
    quiet = [(b + 0.02, b + 0.02 + (b - a)) for a, b in wins]        # same length, after the effect
    eff = _window_effects(wins, obs["stalls"], obs["retrans"], obs["ooo"])
    noise = _window_effects(quiet, obs["stalls"], obs["retrans"], obs["ooo"])
    summ = _summary(eff, noise)
    summ["ok"] = sum(r.outcome == "ok" for r in recs)
    summ["downtime_ms"] = {"p50": _pct([r.downtime_ms for r in recs], 0.5),
                           "p99": _pct([r.downtime_ms for r in recs], 0.99)}
    # punted to the controller per migration (lossless): held during the hold, then replayed, and passed
    # on while the drain settles — what goes through the controller instead of the switch
    summ["packets_buffered"] = {"p50": _pct([r.packets_buffered for r in recs], 0.5),
                                "max": max((r.packets_buffered for r in recs), default=None)}
    summ["steps_ms_median"] = {k: round(statistics.median([r.steps_ms.get(k, 0) for r in recs]), 2)
                               for k in recs[0].steps_ms} if recs else {}
    return summ, {"effects": eff, "noise": noise}


def run() -> dict:
    from topologies.targets import resolve

    target = resolve(os.environ.get("FLOWMIG_BENCH_TARGET", "embedded"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-migtcp-"))
    out: dict = {}
    series: dict[str, dict[str, list[dict]]] = {}
    try:
        runs, obs = _session(target, STREAMS, [("lossless", MIGRATIONS), ("drop", MIGRATIONS)], tmp / "full")
        # the same lossless migrations with a quarter of the streams: how much of the stall is the load
        light_runs, light_obs = _session(target, LIGHT_STREAMS, [("lossless", LIGHT_MIGRATIONS)], tmp / "light")
    except BaseException:
        log.error("migration_tcp on %s: the streams' records and switch logs kept in %s", target, tmp)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    for mode, recs in runs.items():
        out[mode], series[mode] = _measured(mode, recs, obs)
    light, light_series = _measured("lossless", light_runs["lossless"], light_obs)
    light["streams"], light["cpu_busy_pct"] = LIGHT_STREAMS, light_obs["cpu_busy_pct"]
    out[f"lossless_{LIGHT_STREAMS}_streams"] = light
    out["setup"] = {"target": target, "streams": STREAMS, "rate_per_stream": RATE, "chunk": CHUNK,
                    "connections_ok": obs["connections_ok"], "connections": obs["connections"],
                    "cpu_busy_pct": obs["cpu_busy_pct"],
                    "window": {m: f"[started - 10 ms, finished + {int(t * 1000)} ms]" for m, t in TAIL.items()}}
    try:
        out["plot"] = str(plot(series, target, HERE / f"migration_tcp-{target}.png",
                               light=(f"lossless, {LIGHT_STREAMS} streams", light_series["effects"])))
    except Exception as exc:  # noqa: BLE001 - the figures stand without their picture
        log.warning("migration_tcp: no plot: %s", exc)
    log.info("migration_tcp: %s", json.dumps(out))
    return {"migration_tcp": out}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(run(), indent=2))
