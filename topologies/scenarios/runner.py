"""Running a scenario: topology + traffic + fault + expected outcome, end to end on Mininet.

Owns ``Scenario`` / ``Traffic`` (the data a scenario is made of) and ``ScenarioRun`` (the sequence):
start the lab, connect the controller, optionally steer new flows onto one NIC, start the monitor and
the policy engine, start the verified traffic apps (receivers first), inject the fault (or run the
planned action) at ``fault_at``, print one progress line per second, wait for the apps, then build
the report (``controller.report``), check the expectations, write the JSON report and the plot, and
print the summary table. The lab (switches, hosts, apps) is torn down whatever happens, SIGTERM
included.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from controller.config import load_config
from controller.connections import longest_stall
from controller.migrator import Migrator
from controller.monitor import Monitor, MonitorConfig, ports_from_config
from controller.policies import Policy, PolicyEngine
from controller.report import build_report, plot, summary_table
from controller.runtime import Controller
from topologies.apps import parse_report
from topologies.description import Topology, from_dict, load
from topologies.lab import TLSLab
from topologies.network import Lab, LabOptions
from topologies.scenarios.capture import PathCapture, late_old_path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Traffic:
    kind: str              # "tcp" | "roce"
    src: str
    dst: str
    count: int = 1         # TCP connections, or RoCE QPs
    rate: str = "250k"     # TCP: bytes/s per connection; RoCE: packets/s for all QPs of the sender
    on: str | None = None  # NIC this group is steered onto, started (and learned) before the others


@dataclass
class Scenario:
    name: str
    description: str
    topology: str | dict[str, Any]
    traffic: list[Traffic]
    duration: float = 12.0                 # seconds of traffic
    fault_at: float = 4.0                  # seconds after the traffic starts
    fault: Callable[[ScenarioRun], dict[str, Any]] | None = None     # returns {"kind", "what", ...}
    policies: Callable[[ScenarioRun], list[Policy]] = lambda run: []
    steer: str | None = None               # NIC that every new flow is placed on at start
    faulted: str | None = None             # the device the fault hits (must end with no references)
    expect_target: str | None = None       # where its references must end up
    detection: bool = True                 # the monitor must detect the fault (< 1 s)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    min_after_ratio: float = 0.8
    # client-visible stall: no connection may go longer without new data after the fault is detected
    # (stall_from="detection"; the fault itself for planned moves) or after the fault ("fault")
    max_stall_ms: float | None = 200.0     # None: reported, not checked
    stall_from: str = "detection"

    def load_topology(self) -> Topology:
        return load(self.topology) if isinstance(self.topology, str) else from_dict(self.topology)


def _app(host: Any, module: str, *args: str, out: Path) -> subprocess.Popen:
    return host.popen([sys.executable, "-m", f"topologies.apps.{module}", *args, "--out", str(out)],
                      cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class ScenarioRun:
    """One execution of a scenario; ``execute()`` returns the report (the lab is gone afterwards)."""

    def __init__(self, sc: Scenario, target: str = "embedded", run_dir: Path | None = None,
                 out: TextIO | None = None, interval: float | None = None, old_path_wait: float = 0.0,
                 tls: str | None = None) -> None:
        self.sc = sc
        self.tls = tls                  # None: plaintext P4Runtime; "tls" | "mtls": topologies.lab.TLSLab
        self.old_path_wait = old_path_wait
        self.capture: PathCapture | None = None
        self.target = target
        self.run_dir = Path(run_dir or Path("out") / f"scenario-{sc.name}").resolve()
        self.out = out or sys.stdout
        self.cfg = sc.monitor if interval is None else MonitorConfig(**{**sc.monitor.__dict__, "interval": interval})
        self.lab: Lab | None = None
        self.ctrl: Controller | None = None
        self.migrator: Migrator | None = None
        self.monitor: Monitor | None = None
        self.engine: PolicyEngine | None = None
        self.actions: list[dict[str, Any]] = []       # planned (non-policy) migrations, report-shaped
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.rx_files: list[Path] = []
        self.tx_files: list[Path] = []
        self.t0 = 0.0

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # ---- helpers for scenario definitions -----------------------------------------------------------
    def thrift_port(self, switch: str) -> int:
        assert self.lab is not None
        return self.lab.switch(switch).thrift_port

    def steer(self, nic: str) -> None:
        """Place every new flow on ``nic``: each gateway's nic_group indexes all point at it."""
        from p4.v1 import p4runtime_pb2
        assert self.ctrl is not None
        for g, drv in self.ctrl.gateways.items():
            port = drv.port_of(nic)
            size = len(self.ctrl.config.switch(g).nic_group)
            ups = [p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY, entity=p4runtime_pb2.Entity(
                table_entry=drv.helper.table_entry("nic_group", {"index": i}, "set_group_port", {"port": port})))
                for i in range(size)]
            self.ctrl.fabric[g].write(ups)

    # ---- the sequence -----------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        sc = self.sc
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for f in self.run_dir.glob("*.jsonl"):
            f.unlink()
        self.say(f"[setup] scenario {sc.name}: {sc.description}")
        self.say(f"[setup] starting topology {sc.topology if isinstance(sc.topology, str) else sc.topology['name']} "
                 f"on the {self.target} target ...")
        t_lab = time.monotonic()
        opts = LabOptions(target=self.target, run_dir=self.run_dir, log_dir=self.run_dir / "logs",
                          lock_timeout=600.0)
        lab_of = Lab if self.tls is None else (lambda topo, o: TLSLab(topo, o, tls=self.tls))
        with lab_of(sc.load_topology(), opts) as lab:
            self.lab = lab
            self.say(f"[setup] lab up in {time.monotonic() - t_lab:.1f}s (config {lab.config_path}, "
                     f"switch logs {opts.log_dir})")
            try:
                return self._with_lab(lab)
            finally:
                self._teardown()

    def _with_lab(self, lab: Lab) -> dict[str, Any]:
        sc = self.sc
        cfg = load_config(lab.config_path)
        cfg.log_dir = str(self.run_dir / "logs")
        self.ctrl = Controller(cfg, hosts=cfg.hosts)
        self.ctrl.start()
        self.migrator = Migrator(self.ctrl, old_path_wait=self.old_path_wait)
        if sc.steer:
            self.steer(sc.steer)
            self.say(f"[setup] new flows steered onto {sc.steer}")
        self.monitor = Monitor(self.ctrl, ports_from_config(lab.config_path), self.cfg)
        self.engine = PolicyEngine(self.ctrl, self.migrator, self.monitor, sc.policies(self))
        self.engine.on_migration = lambda r: self.say(
            f"[{time.time() - self.t0:5.1f}s] MIGRATION ({r.policy}) {r.reason}: "
            f"{len(r.migration['references'])} ref(s) -> {r.migration['target']} {r.migration['outcome']}, "
            f"downtime {r.migration['downtime_ms']:.1f} ms")
        self.monitor.start()
        self.engine.start()
        self.capture = PathCapture.for_lab(lab, self.run_dir)
        self.capture.start()
        self._start_traffic(lab)
        fault: dict[str, Any] | None = None
        end = self.t0 + sc.duration
        next_line = self.t0 + 1.0
        seen_events = 0
        while True:
            now = time.time()
            if fault is None and sc.fault is not None and now >= self.t0 + sc.fault_at:
                # The fault starts when its injection starts: the monitor may see a link go down before
                # the injection (Mininet takes down both ends in turn) has returned.
                t_fault = time.time()
                fault = sc.fault(self)
                fault.setdefault("t", t_fault)
                self.say(f"[{fault['t'] - self.t0:5.1f}s] FAULT {fault.get('kind')}: {fault.get('what')}")
                now = time.time()
            for ev in self.monitor.events[seen_events:]:
                self.say(f"[{ev.t - self.t0:5.1f}s] EVENT {ev.kind} {ev.device} {ev.subject} {ev.signal} "
                         f"{ev.value:.0f} (baseline {ev.baseline:.0f})")
            seen_events = len(self.monitor.events)
            if now >= next_line:
                self.say(self._progress(now, fault))
                next_line += 1.0
            if now >= end:
                break
            time.sleep(0.05)
        self.say(f"[{time.time() - self.t0:5.1f}s] traffic done; waiting for the applications")
        t_end = time.time()
        self.engine.stop()           # the streams end now: closing connections are not degradations
        self.monitor.stop()
        self._wait_apps()
        self.capture.stop()
        return self._report(fault, t_end)

    def _phase(self, now: float, fault: dict[str, Any] | None) -> str:
        if fault is None:
            return "before"
        migs = [r.migration for r in self.engine.records] + [a["migration"] for a in self.actions]
        if any(m.get("finished", 0) >= fault["t"] for m in migs):
            return "after"
        return "during"

    def _progress(self, now: float, fault: dict[str, Any] | None) -> str:
        mon = self.monitor
        per_dev: dict[str, list[float]] = {}
        for r in mon.flow_rates.values():
            per_dev.setdefault(r.device, []).append(r.bps)
        devs = " ".join(f"{d}:{len(v)}@{sum(v) / 1e6:.1f}M" for d, v in sorted(per_dev.items())) or "-"
        delays = {d: 0.0 for d in mon.devices}
        for (sw, p), us in mon.port_delay_us.items():
            dev = mon.owner(sw, p)
            if dev is not None:
                delays[dev] = max(delays[dev], us)
        qd = " ".join(f"{d}={v / 1000:.1f}ms" for d, v in sorted(delays.items()))
        total = sum(r.bps for r in mon.flow_rates.values())
        return (f"[{now - self.t0:5.1f}s] {self._phase(now, fault):6}  flows {devs}  total {total / 1e6:.2f} Mbit/s  "
                f"qdelay {qd}  events {len(mon.events)}  migrations "
                f"{len(self.engine.records) + len(self.actions)}")

    def _pin(self, nic: str, n: int, timeout: float = 3.0) -> None:
        """Wait until ``nic`` holds ``n`` references, then pin them there with per-flow gateway entries
        (``set_nic_port``), so steering the next groups elsewhere does not move them."""
        assert self.ctrl is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.ctrl.inventory.on_device(nic)) < n:
            time.sleep(0.05)
        recs = self.ctrl.inventory.on_device(nic)
        for drv in self.ctrl.gateways.values():
            port = drv.port_of(nic)
            drv.apply({t: ("set_nic_port", {"port": port}) for r in recs for t in drv.tuples_for(r.key, r.udp_ports)})

    def _start_traffic(self, lab: Lab) -> None:
        sc = self.sc
        groups: dict[tuple[str, str], int] = {}
        for tr in sc.traffic:
            groups[(tr.kind, tr.dst)] = groups.get((tr.kind, tr.dst), 0) + tr.count
        wait = sc.duration + 20
        for i, ((kind, dst), n) in enumerate(sorted(groups.items())):
            f = self.run_dir / f"rx-{kind}-{dst}.jsonl"
            self.rx_files.append(f)
            if kind == "tcp":
                args = ["recv", "--port", "5001", "--count", str(n), "--timeout", str(wait)]
                self.procs.append(("rx", _app(lab.host(dst), "tcp_stream", *args, out=f)))
            else:
                args = ["recv", "--count", str(n), "--idle", "6", "--duration", str(wait)]
                self.procs.append(("rx", _app(lab.host(dst), "roce_stream", *args, out=f)))
            del i
        time.sleep(0.5)
        self.t0 = time.time()
        qpn = 0x11
        # groups pinned to a NIC first (steered there, then learned), then the rest on sc.steer
        order = sorted(enumerate(sc.traffic), key=lambda jt: jt[1].on is None)
        pinned = None                       # the NIC of the pinned groups being started
        for j, tr in order:
            if tr.on != pinned:
                if pinned is not None:      # its connections are placed before the others start
                    self._pin(pinned, sum(t.count for t in sc.traffic if t.on == pinned))
                nic = tr.on or sc.steer
                if nic:
                    self.steer(nic)
                pinned = tr.on
            dst_ip = lab.topo.hosts[tr.dst].ip
            if tr.kind == "tcp":
                for c in range(tr.count):
                    f = self.run_dir / f"tx-{j}-{c}.jsonl"
                    self.tx_files.append(f)
                    self.procs.append(("tx", _app(lab.host(tr.src), "tcp_stream", "send", "--dst", dst_ip, "--port",
                                                  "5001", "--duration", str(sc.duration), "--rate", tr.rate, out=f)))
            else:
                f = self.run_dir / f"tx-{j}.jsonl"
                self.tx_files.append(f)
                self.procs.append(("tx", _app(lab.host(tr.src), "roce_stream", "send", "--dst", dst_ip, "--qpn",
                                              hex(qpn), "--qps", str(tr.count), "--pps", tr.rate, "--duration",
                                              str(sc.duration), out=f)))
                qpn += tr.count
        self.say(f"[{time.time() - self.t0:5.1f}s] traffic started: " + ", ".join(
            f"{t.count} {t.kind} {t.src}->{t.dst} @ {t.rate}{' B/s' if t.kind == 'tcp' else ' pps'}"
            + (f" on {t.on}" if t.on else "") for t in sc.traffic))

    def _wait_apps(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        for role, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s app %d did not finish; killing it", role, p.pid)
                p.kill()
                p.wait(timeout=5)

    def _teardown(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        for _, p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            for stream in (p.stdout,):
                if stream is not None:
                    stream.close()
        for obj in (self.engine, self.monitor):
            if obj is not None:
                obj.stop()
        if self.ctrl is not None:
            self.ctrl.close()

    def _report(self, fault: dict[str, Any] | None, t_end: float) -> dict[str, Any]:
        sc = self.sc
        rx = [r for f in self.rx_files if f.exists() for r in parse_report(f)]
        tx = [r for f in self.tx_files if f.exists() for r in parse_report(f)]
        migrations = [{"policy": r.policy, "reason": r.reason, "trigger": r.trigger, "migration": r.migration}
                      for r in self.engine.records] + self.actions
        placement = {d: [str(r.key) for r in self.ctrl.inventory.on_device(d)] for d in sorted(self.ctrl.nics)}
        nic_drops = {}
        for n, drv in self.ctrl.nics.items():
            try:
                nic_drops[n] = {str(k): v for k, v in drv.drops().items() if v}
            except Exception as exc:  # noqa: BLE001 - the report says why it is missing
                nic_drops[n] = {"error": str(exc)}
        expected = sum(t.count for t in sc.traffic)
        rep = build_report(sc.name, self.target, rx, tx, [e.to_dict() for e in self.monitor.events], migrations,
                           fault, (self.t0, t_end),
                           extra={"description": sc.description, "expected_connections": expected,
                                  "run_id": self.lab.run_id if self.lab else None, "run_dir": str(self.run_dir),
                                  "p4runtime": self.tls or "plaintext",
                                  "monitor": {"interval_ms": self.cfg.interval * 1000, "k": self.cfg.k,
                                              "samples": len(self.monitor.sample_ms),
                                              "sample_ms_p50": _p50(self.monitor.sample_ms)},
                                  "placement_end": placement, "nic_drops": nic_drops,
                                  "timeline": self.monitor.history})
        # what the wire saw of the old paths: packets out of an old NIC after the new one delivered
        late = late_old_path(self.capture.arrivals(), [m["migration"] for m in migrations]) \
            if self.capture is not None else {}
        rep["late_old_path"] = late
        rep["late_old_path_packets"] = sum(late.values())
        rep["old_path_wait_ms"] = self.old_path_wait * 1000
        rep["checks"] = self._checks(rep)
        rep["passed"] = all(ok for ok, _ in rep["checks"].values())
        return rep

    def _checks(self, rep: dict[str, Any]) -> dict[str, tuple[bool, str]]:
        sc = self.sc
        c: dict[str, tuple[bool, str]] = {}
        n = rep["expected_connections"]
        c["survived"] = (rep["connections"] == n and rep["connections_survived"] == n and rep["senders_ok"],
                         f"{rep['connections_survived']}/{rep['connections']} (expected {n})")
        c["lossless"] = (rep["packets_lost"] == 0 and rep["bytes_lost"] == 0, f"{rep['packets_lost']} packets, "
                         f"{rep['bytes_lost']} bytes lost")
        c["in_order"] = (rep["packets_reordered"] == 0 and rep["bytes_corrupt"] == 0,
                         f"{rep['packets_reordered']} reordered, {rep['bytes_corrupt']} corrupt bytes")
        migs = [m["migration"] for m in rep["migrations"]]
        c["migrated"] = (bool(migs) and all(m["outcome"] == "ok" for m in migs),
                         f"{len(migs)} migration(s): {', '.join(m['outcome'] for m in migs) or 'none'}")
        if sc.detection:
            d = rep["detection_ms"]
            c["detection"] = (d is not None and d < 1000, "none" if d is None else f"{d:.0f} ms")
        if sc.faulted:
            left = rep["placement_end"].get(sc.faulted, [])
            where = {d for d, refs in rep["placement_end"].items() if refs}
            ok = not left and (sc.expect_target is None or where <= {sc.expect_target} | set())
            c["placement"] = (ok, f"{sc.faulted} keeps {len(left)}; references on {', '.join(sorted(where)) or '-'}")
        fault_t = (rep.get("fault") or {}).get("t")
        if fault_t is not None and sc.max_stall_ms is not None:
            t_ref, since = fault_t, "the fault"
            if sc.stall_from == "detection" and sc.detection and rep["detection_ms"] is not None:
                t_ref, since = fault_t + rep["detection_ms"] / 1000, "detection"
            worst = max((longest_stall(e.get("stalls") or [], t_ref) for e in rep["receivers"]), default=0.0)
            c["stall"] = (worst < sc.max_stall_ms, f"longest {worst:.0f} ms after {since} "
                          f"(limit {sc.max_stall_ms:.0f} ms)")
        if sc.expect_target is None and self.engine is not None and self.engine.records:
            c["choice"] = self._check_choice()
        tp = rep["throughput"]
        if tp["before"] and tp["after"] is not None:
            ratio = tp["after"] / tp["before"]
            c["throughput_after"] = (ratio >= sc.min_after_ratio, f"{ratio:.0%} of before")
        else:
            c["throughput_after"] = (False, "no samples")
        return c


    def _check_choice(self) -> tuple[bool, str]:
        """Each policy migration went to a healthy NIC that was the least loaded when it was decided
        (load = the monitor's per-reference bit/s in the last sample before the decision)."""
        assert self.engine is not None and self.monitor is not None and self.ctrl is not None
        notes, ok = [], True
        for r in self.engine.records:
            target = r.migration.get("target")
            sources = set(r.migration.get("sources") or {})
            before = [h for h in self.monitor.history if h["t"] <= r.decided]
            load = {n: 0.0 for n in self.ctrl.nics}
            for f in (before[-1]["flows"].values() if before else ()):
                if f.get("device") in load:
                    load[f["device"]] += f.get("bps") or 0.0
            healthy = {n: v for n, v in load.items() if n not in sources and n != self.sc.faulted}
            least = min(healthy.values(), default=0.0)
            good = target in healthy and load[target] <= least + max(0.05 * least, 1e3)
            ok &= good
            notes.append(f"{target} ({load.get(target, 0) / 1e6:.1f} Mbit/s; healthy: "
                         + ", ".join(f"{n} {v / 1e6:.1f}" for n, v in sorted(healthy.items())) + ")")
        return ok, "; ".join(notes)


def _p50(v: list[float]) -> float | None:
    if not v:
        return None
    return round(sorted(v)[len(v) // 2], 1)


def run_scenario(sc: Scenario, target: str = "embedded", report: str | Path | None = None,
                 plot_path: str | Path | None = None, out: TextIO | None = None,
                 run_dir: Path | None = None, interval: float | None = None,
                 old_path_wait: float = 0.0, tls: str | None = None) -> dict[str, Any]:
    """Run ``sc`` end to end, write the report/plot, print the summary; returns the report. ``tls``
    ("tls" | "mtls"): the lab's P4Runtime over (mutual) TLS (``topologies.lab.TLSLab``)."""
    prev = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")
    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:            # not the main thread: the caller handles signals
        prev = None
    try:
        run = ScenarioRun(sc, target, run_dir, out, interval, old_path_wait, tls)
        rep = run.execute()
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
    rx = [r for f in run.rx_files if f.exists() for r in parse_report(f)]
    if report:
        p = Path(report)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(rep, indent=2, default=str) + "\n")
    if plot_path:
        plot(rep, rx, plot_path)
    run.say("")
    run.say(summary_table(rep))
    if report or plot_path:
        run.say(f"report: {report or '-'}  plot: {plot_path or '-'}")
    run.say(f"RESULT: {'PASS' if rep['passed'] else 'FAIL'}")
    return rep
