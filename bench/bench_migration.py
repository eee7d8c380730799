"""Benchmark: migration downtime and loss for batches of 1, 100 and 1,000 references, on each target.

Results: ``migration.batch_{1,100,1000}`` on the embedded target (p4target-switch) and
``migration_bmv2.batch_{1,100,1000}`` on the bmv2 target (p4c + simple_switch_grpc, whose P4Runtime
server has no register access: the NICs' state moves through the in-band commands), each with its
``*_setup`` record (target, flows, state path). Without the BMv2 tools ``migration_bmv2`` is
``{"skipped": "<reason>"}``.

Method, the same on both targets: start fig2 (Mininet + the target's switch), run ``FLOWS`` paced UDP
flows hostA -> hostB (one socket per flow, a (flow, sequence) payload), let the NICs learn them, then
migrate batches of 1, 100 and 1,000 references between NICs in lossless mode, several times each.
Downtime per migration comes from the migration records (first suspend Write sent → the flip Write
done); packets lost and reordered are counted at the receiver from the sequence numbers, after the
senders stop.

    python -m bench migration      (merged into bench/results.json)
    python -m bench.bench_migration run [--target embedded|bmv2]   (prints the figures)
    python -m bench.bench_migration send|recv ...   (the traffic helpers, run inside the hosts)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOWS = 1000
RATE_PPS = 1500           # aggregate, all flows round robin
BASE_SPORT = 20000
DPORT = 9000
REPEATS = {1: 15, 100: 5, 1000: 3}

log = logging.getLogger("bench.migration")


# ---- traffic helpers (run in the Mininet hosts) ----------------------------------------------------------
def _send(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.flows + 256), hard))
    socks = []
    for i in range(args.flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", BASE_SPORT + i))
        socks.append(s)
    seq = [0] * args.flows
    gap = 1.0 / args.rate
    t_next = time.perf_counter()
    t_end = time.monotonic() + args.duration
    i = 0
    while time.monotonic() < t_end and not os.path.exists(args.stop):
        s = socks[i]
        s.sendto(struct.pack("!II", i, seq[i]) + b"\x00" * 56, (args.dst, DPORT))
        seq[i] += 1
        i = (i + 1) % args.flows
        t_next += gap
        delay = t_next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    Path(args.out).write_text(json.dumps({"sent": seq}))


def _recv(args: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", DPORT))
    s.settimeout(0.5)
    nxt: dict[int, int] = {}
    got: dict[int, int] = {}
    reordered = dup = 0
    samples: list[list] = []
    seen: dict[int, set[int]] = {}
    idle_since = None
    while True:
        try:
            data = s.recv(2048)
        except TimeoutError:
            if os.path.exists(args.stop):
                if idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 2.0:
                    break
            continue
        idle_since = None
        flow, seq = struct.unpack("!II", data[:8])
        fs = seen.setdefault(flow, set())
        if seq in fs:
            dup += 1
            continue
        fs.add(seq)
        got[flow] = got.get(flow, 0) + 1
        if seq < nxt.get(flow, 0):
            reordered += 1
            if len(samples) < 50:
                samples.append([flow, seq, nxt.get(flow, 0) - 1, round(time.time(), 4)])
        else:
            nxt[flow] = seq + 1
    Path(args.out).write_text(json.dumps({"got": got, "reordered": reordered, "duplicates": dup,
                                          "reorder_samples": samples}))


# ---- the benchmark -----------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    k = min(len(v) - 1, max(0, round(q * (len(v) - 1))))
    return v[k]


def _run_target(target: str) -> dict:
    """The migration figures of one target: ``{"migration": {...}, "migration_setup": {...}}``.
    The switch logs and traffic records are removed after a good run and kept (path logged) after a failure."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-mig-{target}-"))
    try:
        results = _measure(target, tmp)
    except BaseException:
        log.error("migration benchmark on %s: switch logs and traffic records kept in %s", target, tmp)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def _measure(target: str, tmp: Path) -> dict:
    from controller.config import load_config
    from controller.migrator import Migrator
    from controller.runtime import Controller
    from topologies.description import load
    from topologies.network import Lab, LabOptions

    stop = tmp / "stop"
    results: dict = {}
    lab = Lab(load("fig2"), LabOptions(target=target, run_dir=tmp / "run", log_dir=tmp / "logs",
                                      lock_timeout=1800))
    with lab:
        cfg = load_config(lab.config_path)
        cfg.election_id = (1, os.getpid() & 0xFFFF)  # above any stray CLI session (0,110)
        ctrl = Controller(cfg, hosts=cfg.hosts).start()
        try:
            py = sys.executable
            duration = 600
            rx = lab.host("hostB").popen([py, "-m", "bench.bench_migration", "recv", "--out", str(tmp / "rx.json"),
                                          "--stop", str(stop)], cwd=str(REPO))
            time.sleep(0.5)
            tx = lab.host("hostA").popen([py, "-m", "bench.bench_migration", "send", "--dst", "10.0.0.2",
                                          "--flows", str(FLOWS), "--rate", str(RATE_PPS), "--duration",
                                          str(duration), "--out", str(tmp / "tx.json"), "--stop", str(stop)],
                                         cwd=str(REPO))
            # wait until every flow is learned, or the count stops growing (a few references find both
            # of their hash slots taken on their NIC and stay untracked)
            deadline = time.monotonic() + 60
            last, still = -1, 0
            while time.monotonic() < deadline:
                n = sum(1 for r in ctrl.inventory.all() if r.key.kind == "udp")
                if n >= FLOWS:
                    break
                still = still + 1 if n == last and n > 0 else 0
                if still >= 15:
                    break
                last = n
                time.sleep(0.2)
            flows = [r.key for r in ctrl.inventory.all() if r.key.kind == "udp"]
            log.info("%d UDP references learned", len(flows))
            if len(flows) < 0.9 * max(REPEATS):   # a few find both hash slots taken; most must be there
                raise RuntimeError(f"only {len(flows)} of {FLOWS} UDP references learned on {target} (waited up to 60 s)")
            m = Migrator(ctrl)
            nics = sorted(ctrl.nics)
            # gather every reference on the first NIC (not measured)
            m.migrate(flows, nics[0])
            per_batch: dict[int, list] = {}
            for size in (1, 100, 1000):
                recs = []
                chosen = flows[:size]
                where = nics[0]
                for rep in range(REPEATS[size]):
                    to = nics[1 + rep % 2]
                    rec = m.migrate(chosen, to)
                    recs.append(rec)
                    log.info("batch %d rep %d: %s", size, rep, rec.summary())
                    where = to
                    time.sleep(0.2)
                if where != nics[0]:
                    m.migrate(chosen, nics[0])
                per_batch[size] = recs
            stop.write_text("stop")
            tx.wait(timeout=60)
            rx.wait(timeout=60)
            sent = json.loads((tmp / "tx.json").read_text())["sent"]
            rxd = json.loads((tmp / "rx.json").read_text())
            got = {int(k): v for k, v in rxd["got"].items()}
            lost_total = sum(max(0, n - got.get(i, 0)) for i, n in enumerate(sent))
            mig: dict = {}
            for size, recs in per_batch.items():
                downs = [r.downtime_ms for r in recs if r.outcome == "ok"]
                mig[f"batch_{size}"] = {
                    "downtime_ms": {"p50": round(_pct(downs, 0.5), 2), "p99": round(_pct(downs, 0.99), 2),
                                    "max": round(max(downs, default=0.0), 2)},
                    "total_ms": round(statistics.median([r.total_ms for r in recs]), 2),
                    "references": min(size, len(flows)), "runs": len(recs),
                    "ok": sum(r.outcome == "ok" for r in recs),
                    "packets_buffered": sum(r.packets_buffered for r in recs),
                    "packets_late": sum(r.packets_late for r in recs),
                    "steps_ms_median": {k: round(statistics.median([r.steps_ms.get(k, 0) for r in recs]), 2)
                                        for k in recs[0].steps_ms},
                    # loss/reorder are measured over the whole run (all batches share the flows)
                    "lost": lost_total, "reordered": rxd["reordered"],
                }
            log.info("reorder samples (flow, seq, highest before, t): %s", rxd.get("reorder_samples"))
            log.info("migration times: %s", [(r.id, round(r.started, 3), round(r.finished, 3))
                                             for recs in per_batch.values() for r in recs])
            results = {"migration": mig, "migration_setup": {
                "target": target, "topology": "fig2", "flows": len(flows), "rate_pps": RATE_PPS,
                "state_path": ctrl.nic(nics[0]).path, "packets_sent": sum(sent),
                "packets_received": sum(got.values()), "duplicates": rxd["duplicates"]}}
        finally:
            stop.write_text("stop")
            ctrl.close()
    return results


RESULT_KEYS = {"embedded": "migration", "bmv2": "migration_bmv2"}


def run(targets: tuple[str, ...] = ("embedded", "bmv2")) -> dict:
    """Each target in turn; one that fails is reported under its key (``{"error": ...}``) and the others
    still run; raises only when every target that could run failed."""
    from topologies.targets import bmv2_missing

    results: dict = {}
    failures: list[Exception] = []
    attempted = 0
    for target in targets:
        key = RESULT_KEYS[target]
        missing = bmv2_missing() if target == "bmv2" else []
        if missing:
            results[key] = {"skipped": f"bmv2 target: {', '.join(missing)} not on PATH"}
            continue
        attempted += 1
        try:
            res = _run_target(target)
        except Exception as exc:  # noqa: BLE001 - keep the other target's figures; the error is in the results
            log.exception("migration benchmark on %s failed", target)
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            failures.append(exc)
            continue
        results[key] = res["migration"]
        results[f"{key}_setup"] = res["migration_setup"]
    if attempted and len(failures) == attempted:
        raise failures[0]
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.bench_migration")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True)
    s.add_argument("--flows", type=int, default=FLOWS)
    s.add_argument("--rate", type=float, default=RATE_PPS)
    s.add_argument("--duration", type=float, default=60)
    s.add_argument("--out", required=True)
    s.add_argument("--stop", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--out", required=True)
    r.add_argument("--stop", required=True)
    g = sub.add_parser("run")
    g.add_argument("--target", action="append", choices=sorted(RESULT_KEYS),
                   help="run on this target only (repeatable; default: embedded, then bmv2)")
    args = ap.parse_args(argv)
    if args.cmd == "send":
        _send(args)
    elif args.cmd == "recv":
        _recv(args)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        print(json.dumps(run(tuple(args.target or ("embedded", "bmv2"))), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
