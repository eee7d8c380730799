"""Policies: what to migrate, where and when, given the monitor's view.

Owns the four policies of docs/design.md "Monitoring and policies" and the engine that runs
them:

- ``Resiliency``: every reference of a degraded or dead device (link down, egress queue delay, or most
  of its references below their baseline rate) moves to the healthiest other device; a single
  degraded reference on an otherwise healthy device moves alone.
- ``LoadBalance``: a device that fails to carry its share — it carries less than ``1 - tolerance`` of
  the demand placed on it (the references' baseline rates) — sheds references, largest first, to the
  devices with the most headroom, until what it keeps fits what it has shown it can carry.
- ``node_migration``: all references of a device to another (maintenance; also the CLI's
  ``migrate --device``).
- ``VmMigration``: a host (VM) moves to another switch port keeping its addresses; its references are
  frozen, their FlowStates saved into the VM's configuration file (tagged JSON), the host is moved,
  the gateways' routes for it rewritten, and the saved states restored on the NIC serving the new
  attachment before traffic resumes.

``PolicyEngine`` receives monitor events, evaluates the policies in its own thread (migrations never
block sampling), runs the resulting migrations through ``controller.migrator.Migrator`` one at a time,
and keeps a record per migration (policy, trigger, detection and migration times). A reference that
moved is left alone for ``cooldown`` seconds, and degraded devices are never targets, so decisions
do not flap. A migration that was rolled back (its references are still on their device, which may be
why they had to move) makes its target a device to avoid for ``cooldown`` seconds, and the policy is
asked again at once: the references go to the next choice, if there is one.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .flowstate import FlowKey
from .migration.vm import VmMove, vm_steps
from .migrator import Migrator
from .monitor import Event, Monitor
from .runtime import Controller

__all__ = ["Decision", "Policy", "Resiliency", "LoadBalance", "PolicyEngine", "node_migration", "VmMigration",
           "VmMoveError"]

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """Move ``keys`` to ``target`` because of ``reason``."""

    policy: str
    keys: list[FlowKey]
    target: str
    reason: str
    trigger: Event | None = None


class Policy:
    name = "policy"

    def decide(self, ctrl: Controller, mon: Monitor, now: float, recent: Callable[[FlowKey], bool],
               avoid: frozenset[str] = frozenset()) -> list[Decision]:
        """The moves to make now. ``recent``: references moved lately (leave them be); ``avoid``: devices
        not to choose as targets (a migration to them was just rolled back)."""
        raise NotImplementedError


def _load(ctrl: Controller, mon: Monitor, device: str) -> float:
    """A device's current carried rate (sum of its references' bit/s)."""
    return sum(r.bps for k, r in mon.flow_rates.items() if r.device == device)


def _best_target(ctrl: Controller, mon: Monitor, exclude: set[str], extra: dict[str, float] | None = None) -> str | None:
    """The healthy device with the least load (references as tie-break), or None."""
    bad = set(mon.degraded_devices()) | exclude
    cands = [d for d in mon.devices if d not in bad and d in ctrl.nics]
    if not cands:
        return None
    extra = extra or {}
    return min(cands, key=lambda d: (_load(ctrl, mon, d) + extra.get(d, 0.0),
                                     len(ctrl.inventory.on_device(d)), d))


class Resiliency(Policy):
    """Move references off degraded or dead devices (and degraded references off their device)."""

    name = "resiliency"

    def __init__(self, device_fraction: float = 0.5, target: str | None = None) -> None:
        self.device_fraction = device_fraction   # this share of a device's references degraded = device
        self.target = target                     # fixed target (scenarios); else the healthiest device

    def decide(self, ctrl: Controller, mon: Monitor, now: float, recent: Callable[[FlowKey], bool],
               avoid: frozenset[str] = frozenset()) -> list[Decision]:
        out: list[Decision] = []
        bad_devices = mon.degraded_devices()
        bad_flows = mon.degraded_flows()
        by_dev: dict[str, list[FlowKey]] = {}
        for k in bad_flows:
            rec = ctrl.inventory.find(k)
            if rec is not None:
                by_dev.setdefault(rec.device, []).append(k)
        for dev, keys in by_dev.items():
            judged = [r.key for r in ctrl.inventory.on_device(dev) if r.key in mon.flow_rates]
            if dev not in bad_devices and judged and len(keys) >= self.device_fraction * len(judged):
                bad_devices[dev] = [f"bandwidth of {len(keys)}/{len(judged)} references"]
        for dev, why in sorted(bad_devices.items()):
            keys = [r.key for r in ctrl.inventory.on_device(dev) if not recent(r.key)]
            if not keys:
                continue
            target = self._target(ctrl, mon, dev, bad_devices, avoid)
            if target is None:
                log.warning("resiliency: %s is degraded (%s) but no healthy device can take its references",
                            dev, ", ".join(why))
                continue
            out.append(Decision(self.name, keys, target, f"{dev} degraded: {', '.join(why)}"))
        for dev, keys in by_dev.items():
            if dev in bad_devices:
                continue
            keys = [k for k in keys if not recent(k)]
            if keys:
                target = self._target(ctrl, mon, dev, bad_devices, avoid)
                if target is not None:
                    out.append(Decision(self.name, keys, target, f"{len(keys)} reference(s) degraded on {dev}"))
        return out

    def _target(self, ctrl: Controller, mon: Monitor, dev: str, bad: dict[str, list[str]],
                avoid: frozenset[str] = frozenset()) -> str | None:
        if self.target and self.target != dev and self.target not in bad and self.target not in avoid:
            return self.target
        return _best_target(ctrl, mon, {dev, *bad, *avoid})


def _latency_ports(signals: list[str]) -> list[str]:
    """The ``"sw:port"`` of a device's latency-degraded ports, from its ``degraded_devices`` signals."""
    return [s.split("@", 1)[1] for s in signals if s.startswith("latency@")]


class LoadBalance(Policy):
    """A device that does not carry the demand placed on it sheds references until the rest fits."""

    name = "load_balance"

    def __init__(self, tolerance: float = 0.2, k: int = 3, window: int = 5) -> None:
        self.tolerance = tolerance
        self.k = k                   # consecutive evaluations a device must be failing (1 once degraded)
        self.window = window         # samples averaged for the carried rate
        self.failing: dict[str, int] = {}
        self.capacity: dict[str, float] = {}   # what a failing device showed it can carry (bit/s)

    def _carried(self, mon: Monitor, n: int) -> dict[str, dict[str, float]]:
        """reference -> average bit/s over the last ``n`` samples, per device."""
        hist = mon.history[-n:]
        acc: dict[str, dict[str, list[float]]] = {}
        for h in hist:
            for ref, r in h["flows"].items():
                acc.setdefault(r["device"], {}).setdefault(ref, []).append(r["bps"])
        return {d: {ref: sum(v) / len(v) for ref, v in refs.items()} for d, refs in acc.items()}

    @staticmethod
    def _egress_bps(mon: Monitor, signals: list[str], n: int) -> float | None:
        """The egress bit/s of a device's latency-degraded ports over the last ``n`` samples (None: none)."""
        ports = _latency_ports(signals)
        seen = [sum(h["ports"][p]["tx_bps"] for p in ports) for h in mon.history[-n:]
                if ports and all(p in h.get("ports", {}) for p in ports)]
        return sum(seen) / len(seen) if seen else None

    @staticmethod
    def _bad_samples(mon: Monitor, signals: list[str], floor: float, k: int) -> int:
        """How many of the last samples belong to a device's degradation: ``k``, or, when it has
        latency-degraded ports, the trailing samples in which one of them was over ``floor`` (1..k)."""
        ports = _latency_ports(signals)
        last = mon.history[-1].get("ports", {}) if mon.history else {}
        if not ports or not all("delay_us" in last.get(p, {}) for p in ports):
            return k
        n = 0
        for h in reversed(mon.history[-k:]):
            if not any(h.get("ports", {}).get(p, {}).get("delay_us", 0.0) > floor for p in ports):
                break
            n += 1
        return max(1, n)

    def decide(self, ctrl: Controller, mon: Monitor, now: float, recent: Callable[[FlowKey], bool],
               avoid: frozenset[str] = frozenset()) -> list[Decision]:
        if len(mon.history) < self.window:
            return []
        carried = self._carried(mon, self.window)
        # A device the monitor found degraded is judged on the samples of its degradation alone: the
        # monitor's k bad samples in a row, or fewer when its queue delay degraded it at once (the
        # trailing samples whose delay is over the monitor's floor). The full window straddles the
        # fault, and its average would show the shortfall only ~window/2 samples later, while streams
        # stall behind the device.
        cfg = getattr(mon, "cfg", None)
        k_bad = max(1, min(self.window, getattr(cfg, "k", self.window)))
        demand: dict[str, dict[FlowKey, float]] = {}
        for d in mon.devices:
            for r in ctrl.inventory.on_device(d):
                base = mon.flow_baseline_bps(r.key)
                if base:
                    demand.setdefault(d, {})[r.key] = base
        out: list[Decision] = []
        planned: dict[str, float] = {}
        degraded = mon.degraded_devices()
        for d in sorted(demand):
            want = sum(demand[d].values())
            n_bad = self._bad_samples(mon, degraded.get(d, []), getattr(cfg, "latency_floor_us", 0.0), k_bad)
            got = sum((self._carried(mon, n_bad) if d in degraded else carried).get(d, {}).values())
            # a queue that grows says what the device can carry: its egress rate, while the references'
            # own rates (counted as they enter it) still show what TCP offers it
            egress = self._egress_bps(mon, degraded.get(d, []), n_bad)
            if egress is not None:
                got = min(got, egress)
            if want <= 0 or got >= (1 - self.tolerance) * want:
                self.failing[d] = 0
                continue
            self.failing[d] = self.failing.get(d, 0) + 1
            # k failing evaluations in a row — unless the monitor has already found the device degraded
            # (its own K-sample hysteresis): then the first failing evaluation acts, so the streams
            # stuck behind the device are not left stalling for k more evaluations
            if self.failing[d] < self.k and d not in degraded:
                continue
            self.failing[d] = 0
            # what it can carry: the lowest per-sample total of the window (the window may straddle the fault)
            totals = [sum(r["bps"] for r in h["flows"].values() if r["device"] == d) for h in mon.history[-self.window:]]
            cap = self.capacity[d] = min([t for t in totals if t > 0] + ([] if egress is None else [egress]) or [got])
            keep, shed, kept = [], [], 0.0
            movable = sorted(demand[d].items(), key=lambda kv: kv[1])       # smallest first stay
            for key, bps in movable:
                if kept + bps <= cap * (1 - self.tolerance) or recent(key):
                    keep.append(key)
                    kept += bps
                else:
                    shed.append((key, bps))
            if not shed:
                continue
            by_target: dict[str, list[FlowKey]] = {}
            for key, bps in sorted(shed, key=lambda kv: -kv[1]):
                t = self._headroom_target(ctrl, mon, {d, *avoid}, planned)
                if t is None:
                    break
                by_target.setdefault(t, []).append(key)
                planned[t] = planned.get(t, 0.0) + bps
            for t, keys in by_target.items():
                out.append(Decision(self.name, keys, t,
                                    f"{d} carries {got / 1e6:.2f} of {want / 1e6:.2f} Mbit/s demanded; "
                                    f"keeps {kept / 1e6:.2f}"))
        return out

    def _headroom_target(self, ctrl: Controller, mon: Monitor, exclude: set[str], planned: dict[str, float]) -> str | None:
        bad = set(mon.degraded_devices()) | exclude
        cands = [d for d in mon.devices if d not in bad and d in ctrl.nics]
        if not cands:
            return None

        def headroom(d: str) -> float:
            load = _load(ctrl, mon, d) + planned.get(d, 0.0)
            cap = self.capacity.get(d)
            return (cap - load) if cap is not None else -load / 1e12   # uncapped devices: least loaded
        return max(cands, key=lambda d: (self.capacity.get(d) is None, headroom(d), d))


def node_migration(migrator: Migrator, source: str, target: str, mode: str = "lossless") -> Any:
    """Move every reference of ``source`` to ``target`` (maintenance of a node). Returns the record."""
    return migrator.migrate_device(source, target, mode)


@dataclass
class EngineRecord:
    policy: str
    reason: str
    trigger: dict[str, Any] | None
    decided: float
    migration: dict[str, Any] = field(default_factory=dict)


class PolicyEngine:
    """Evaluates policies on monitor events (and periodically) and executes their decisions."""

    def __init__(self, ctrl: Controller, migrator: Migrator, monitor: Monitor, policies: Sequence[Policy],
                 mode: str = "lossless", cooldown: float = 3.0, period: float = 0.5) -> None:
        self.ctrl, self.migrator, self.monitor = ctrl, migrator, monitor
        self.policies = list(policies)
        self.mode, self.cooldown, self.period = mode, cooldown, period
        self.records: list[EngineRecord] = []
        self.moved_at: dict[FlowKey, float] = {}
        self.failed_at: dict[str, float] = {}   # target device -> when a migration to it was rolled back
        self._q: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.on_migration: Callable[[EngineRecord], None] | None = None
        monitor.on_event = self.notify

    def notify(self, ev: Event) -> None:
        self._q.put(ev)

    def start(self) -> PolicyEngine:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="flowmig-policy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _recent(self, key: FlowKey) -> bool:
        t = self.moved_at.get(key.canonical())
        return t is not None and time.monotonic() - t < self.cooldown

    def _loop(self) -> None:
        last_trigger: Event | None = None
        while not self._stop.is_set():
            try:
                ev = self._q.get(timeout=self.period)
            except queue.Empty:
                ev = None
            if self._stop.is_set():
                return
            if ev is not None and ev.kind == "degraded":
                last_trigger = ev
            try:
                self.evaluate(last_trigger)
            except Exception:  # noqa: BLE001 - keep the engine alive; the failure is logged
                log.exception("policy evaluation failed")

    def avoided(self) -> frozenset[str]:
        """Targets a migration to which was rolled back less than ``cooldown`` seconds ago."""
        now = time.monotonic()
        return frozenset(d for d, t in self.failed_at.items() if now - t < self.cooldown)

    def evaluate(self, trigger: Event | None = None) -> list[EngineRecord]:
        """Ask every policy and run what it decides (serially). A policy whose migration was rolled back
        is asked again at once with that target avoided (at most once per NIC). Returns the new records."""
        done: list[EngineRecord] = []
        for pol in self.policies:
            for _ in range(max(1, len(self.ctrl.nics))):
                if not self._run_decisions(pol, trigger, done):
                    break
        return done

    def _decide(self, pol: Policy, avoid: frozenset[str]) -> list[Decision]:
        """``pol.decide``, with ``avoid`` when it takes it (a policy written before it was added does not:
        its decisions for an avoided target are left out instead)."""
        try:
            takes = "avoid" in inspect.signature(pol.decide).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            return pol.decide(self.ctrl, self.monitor, time.monotonic(), self._recent, avoid=avoid)
        return [d for d in pol.decide(self.ctrl, self.monitor, time.monotonic(), self._recent)
                if d.target not in avoid]

    def _run_decisions(self, pol: Policy, trigger: Event | None, done: list[EngineRecord]) -> bool:
        """Run one round of ``pol``'s decisions; True when one was rolled back (ask again)."""
        rolled_back = False
        for dec in self._decide(pol, self.avoided()):
            keys = [k for k in dec.keys if not self._recent(k)]
            if not keys:
                continue
            rec = EngineRecord(dec.policy, dec.reason, (dec.trigger or trigger).to_dict()
                               if (dec.trigger or trigger) else None, time.time())
            log.info("%s: moving %d reference(s) to %s: %s", dec.policy, len(keys), dec.target, dec.reason)
            mrec = self.migrator.migrate(keys, dec.target, self.mode)
            rec.migration = mrec.to_dict()
            t = time.monotonic()
            if rec.migration.get("outcome") == "rolled_back":
                # the references are back where they were, live: try them elsewhere now, not after the
                # cooldown (their device may be the degraded one)
                log.warning("%s: migration to %s rolled back (%s); %s avoided for %.0f s", dec.policy, dec.target,
                            rec.migration.get("reason") or "no reason given", dec.target, self.cooldown)
                self.failed_at[dec.target] = t
                rolled_back = True
            else:
                for k in keys:
                    self.moved_at[k.canonical()] = t
                    self.monitor.forget_flow(k)
            self.records.append(rec)
            done.append(rec)
            if self.on_migration is not None:
                self.on_migration(rec)
        return rolled_back


# ---- VM migration --------------------------------------------------------------------------------------
class VmMoveError(RuntimeError):
    """A VM move could not be done; the message says which step and why."""


class VmMigration:
    """Move a host (VM) with its live references: freeze, save with the VM config, move, restore, resume.

    ``move_host(host, switch, port)`` performs the attachment change (``topologies.network.Lab.move_host``
    in a lab). The VM's configuration file holds the host's identity, old and new attachment, and the
    tagged FlowStates of its references as they were frozen; the states loaded at the new attachment are
    read back from that file (so the file is the trusted buffer).
    """

    def __init__(self, ctrl: Controller, migrator: Migrator, move_host: Callable[[str, str, int], Any]) -> None:
        self.ctrl, self.migrator, self.move_host = ctrl, migrator, move_host

    def references_of(self, host: str) -> list[FlowKey]:
        ip = int(ipaddress.IPv4Address(self.ctrl.hosts[host]["ip"]))
        return [r.key for r in self.ctrl.inventory.all() if ip in (r.key.src_ip, r.key.dst_ip)]

    def migrate(self, host: str, new_switch: str, new_port: int, target_nic: str, vm_config: str | Path,
                mode: str = "lossless") -> dict[str, Any]:
        """Move ``host`` to ``new_switch:new_port`` and its references to ``target_nic``: the migration
        with the VM's steps (config file, host move, routes, check) before ``load``, so the host moves
        while its references are frozen and a failure rolls the host, its routes and the file back
        with the rest. VmMoveError when it did not happen (everything rolled back)."""
        if host not in self.ctrl.hosts:
            raise VmMoveError(f"unknown host {host!r} (hosts: {', '.join(self.ctrl.hosts)})")
        if new_switch not in self.ctrl.gateways:
            raise VmMoveError(f"{new_switch!r} is not a gateway (gateways: {', '.join(self.ctrl.gateways)})")
        self.ctrl.nic(target_nic)
        keys = self.references_of(host)
        path = Path(vm_config)
        info = dict(self.ctrl.hosts[host])
        vm = VmMove(self.ctrl, host, info, new_switch, new_port, target_nic, path, self.move_host)
        rec = self.migrator.migrate(keys, target_nic, mode, before_load=vm_steps(vm))
        timings = {f"{what}_ms": rec.steps_ms.get(step, 0.0) for what, step in
                   (("save_vm_config", "vm_config"), ("move_host", "move_host"), ("routes", "routes"),
                    ("check_vm_config", "vm_check"))}
        if rec.outcome != "ok":
            raise VmMoveError(f"moving {host} failed at {rec.failed_step} ({rec.outcome}): {rec.reason}")
        info.update(switch=new_switch, port=new_port)
        self.ctrl.hosts[host] = info
        return {"host": host, "to": f"{new_switch}:{new_port}", "nic": target_nic, "vm_config": str(path),
                "timings_ms": timings, "migration": rec.to_dict()}
