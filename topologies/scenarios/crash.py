"""The crash drill: a controller killed mid-migration under live kernel TCP, and what it costs.

``victim`` is a controller process that dies mid-migration: the real ``Controller`` and ``Migrator`` on
a lab config, SIGKILLed at a chosen point — a step name (just before that step runs; its journal record
is written by then), ``after`` (the migration returned) or ``random:MS`` (a uniformly random instant up
to MS ms after the suspension began):

    python -m topologies.scenarios.crash victim CONFIG REFERENCE|udp-sport:N|tcp-sport:N TARGET|other AT \\
        [--mode lossless|drop] [--lease S]

It prints one JSON line ``{"reference", "source", "target"}`` before migrating.

``drill`` runs fig2 with ``streams`` verified TCP streams hostA -> hostB (topologies.apps.tcp_stream),
and for each kill point: a victim migrates one of the connections and dies; then (``recover``) a new
controller starts at once — ``flowmig recover`` — and finishes or undoes the migration; without it only
the gateways' lease brings the flow back. Per kill it reports where the victim died, how the migration
was recovered, the recovery's own time and the restart's wall time, and the migrated connection's
longest client-visible stall around the kill; per connection whether it survived (no reset, no byte
lost or corrupted: the receiver verifies the stream). Used by tests/scenarios/test_recovery_mininet.py
and ``python -m bench recovery``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
STEPS = ["warm", "suspend", "quiesce", "save", "validate", "load", "redirect", "release", "resume"]


# ---- the victim ------------------------------------------------------------------------------------------
def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _find(ctrl: Any, ref: str) -> Any:
    kind, _, rest = ref.partition("-sport:")
    for r in ctrl.inventory.all():
        if rest and r.key.kind == kind and int(rest) in (r.key.src_port, r.key.dst_port):
            return r
        if not rest and str(r.key) == ref:
            return r
    return None


def victim(argv: Sequence[str]) -> int:
    from controller.config import load_config
    from controller.migrator import Migrator
    from controller.runtime import Controller

    ap = argparse.ArgumentParser(prog="crash victim")
    ap.add_argument("config")
    ap.add_argument("reference")
    ap.add_argument("target")
    ap.add_argument("at")
    ap.add_argument("--mode", default="lossless")
    ap.add_argument("--lease", type=float, default=1.0)
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    cfg.log_dir = None
    ctrl = Controller(cfg, hosts=cfg.hosts).start()
    deadline = time.monotonic() + 10
    rec = None
    while rec is None and time.monotonic() < deadline:
        ctrl.scan()
        rec = _find(ctrl, a.reference)
        if rec is None:
            time.sleep(0.1)
    if rec is None:
        print(json.dumps({"error": f"{a.reference} not learned"}), flush=True)
        return 1
    target = a.target if a.target != "other" else next(n for n in sorted(ctrl.nics) if n != rec.device)
    print(json.dumps({"reference": str(rec.key), "source": rec.device, "target": target}), flush=True)
    mig = Migrator(ctrl, lease=a.lease)
    if a.at.startswith("random:"):
        delay = random.uniform(0, float(a.at.split(":", 1)[1]) / 1000)

        def arm(step: Any, ctx: Any) -> None:
            if step.name == "suspend":
                threading.Timer(delay, _die).start()
        mig.before_step.append(arm)
    elif a.at != "after":
        mig.before_step.append(lambda step, ctx: _die() if step.name == a.at else None)
    r = mig.migrate([rec.key], target, mode=a.mode)
    if a.at == "after":
        _die()
    print(json.dumps(r.to_dict()), flush=True)
    ctrl.close()
    return 0


def run_victim(config: str | Path, reference: str, at: str, target: str = "other", mode: str = "lossless",
               lease: float = 1.0, timeout: float = 60) -> tuple[dict[str, Any], int]:
    """Run a victim to its end; (its first JSON line, its exit code: -SIGKILL when it was killed)."""
    p = subprocess.run([sys.executable, "-m", "topologies.scenarios.crash", "victim", str(config), reference,
                        target, at, "--mode", mode, "--lease", str(lease)],
                       capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines or "error" in json.loads(lines[0]):
        raise RuntimeError(f"victim failed (rc {p.returncode}): {p.stdout[-500:]} {p.stderr[-1500:]}")
    return json.loads(lines[0]), p.returncode


# ---- the drill -------------------------------------------------------------------------------------------
def _flowmig(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "topologies.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))


def _worst_stall(stalls: list[list[float]], a: float, b: float) -> float:
    """The longest stall (ms) overlapping [a, b] (epoch seconds)."""
    return max((ms for s, ms in stalls if s < b and s + ms / 1000 > a), default=0.0)


def drill(target: str, kills: Sequence[str], lease: float = 0.5, streams: int = 4, recover: bool = True,
          settle: float = 1.5, rate: str = "250k", work: Path | None = None,
          progress: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run the drill on a fig2 lab of ``target`` (see the module docstring); returns the per-kill and
    per-connection results."""
    import tempfile

    from controller.config import load_config
    from controller.runtime import Controller
    from topologies.apps import parse_report, tcp_streams
    from topologies.description import load
    from topologies.network import Lab, LabOptions

    tmp = work or Path(tempfile.mkdtemp(prefix="flowmig-crash-"))
    lab = Lab(load("fig2"), LabOptions(target=target, run_dir=tmp / "run", log_dir=tmp / "logs",
                                       lock_timeout=1800))
    kills_out: list[dict[str, Any]] = []
    with lab, tcp_streams(lab, streams, rate, 500, tmp):
        cfg_path = lab.config_path
        cfg = load_config(cfg_path)
        cfg.log_dir = None
        cfg.election_id = (0, 5)   # a backup: it watches, the victims and recoverers write
        with Controller(cfg, hosts=cfg.hosts).start() as watch:
            deadline = time.monotonic() + 30
            ports: list[int] = []
            while time.monotonic() < deadline and len(ports) < streams:
                watch.scan()
                ports = sorted({r.key.src_port if r.key.dst_port == 5001 else r.key.dst_port
                                for r in watch.inventory.all() if r.key.kind == "tcp"})
                time.sleep(0.2)
        if len(ports) < streams:
            raise RuntimeError(f"only {len(ports)} of {streams} TCP connections learned")
        time.sleep(1.0)
        for n, at in enumerate(kills):
            port = ports[n % len(ports)]
            t_kill0 = time.time()
            info, rc = run_victim(cfg_path, f"tcp-sport:{port}", at, lease=lease)
            t_dead = time.time()
            row: dict[str, Any] = {"at": at, "killed": rc == -signal.SIGKILL, "port": port, **info}
            if recover:
                t0 = time.monotonic()
                p = _flowmig(cfg_path, "recover", "--json")
                row["restart_s"] = round(time.monotonic() - t0, 3)
                rep = json.loads(p.stdout) if p.stdout.startswith("{") else {"problems": [p.stderr[-500:]]}
                row["recovery_ms"] = rep.get("ms")
                row["decisions"] = [m["decision"] for m in rep.get("migrations", [])]
                row["entries_fixed"] = sum(rep.get("entries", {}).values())
                row["problems"] = rep.get("problems", [])
            row["window"] = [t_kill0, t_dead + settle]
            kills_out.append(row)
            progress(f"kill {n + 1}/{len(kills)} at {at}: "
                     f"{'killed' if row['killed'] else 'finished'}"
                     + (f", recovered {row['decisions'] or 'nothing open'} in {row['recovery_ms']} ms"
                        if recover else ""))
            time.sleep(settle)
    ends = [r for r in parse_report(tmp / "rx.jsonl") if r["event"] == "end"]
    by_port = {int(e["flow"].rsplit(":", 1)[1]): e for e in ends}
    for row in kills_out:
        e = by_port.get(row["port"])
        row["stall_ms"] = _worst_stall(e.get("stalls", []), *row.pop("window")) if e else None
    return {"target": target, "lease_ms": lease * 1000, "recover": recover, "kills": kills_out,
            "connections": [{"flow": e["flow"], "ok": e["ok"], "reset": e["reset"], "bytes": e["bytes"],
                             "gaps": e["gaps"], "corrupt": e["corrupt"], "stall_ms": e.get("stall_ms")}
                            for e in ends]}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["victim"]:
        return victim(argv[1:])
    print("usage: python -m topologies.scenarios.crash victim CONFIG REFERENCE TARGET AT [--mode M] [--lease S]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
