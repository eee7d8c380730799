"""The monitor: samples the switches over P4Runtime, keeps baselines, raises degradation events.

Owns ``Sampler`` (one Read RPC per switch per sample, all switches concurrently: the per-port
``rx_port_counter`` / ``tx_port_counter`` cells and egress queue registers of the ports the topology
cables, plus — on NICs — each tracked reference's ``flow_packets`` / ``flow_bytes`` / ``tcp_phase``
registers; SAVE commands where P4Runtime has no register access — on BMv2 the queue registers are
then read through its Thrift API instead, ``Controller.registers``), interface state (the switch
ports' operstate, read from sysfs when the switch runs on this machine, else through the switch's
``controller.p4rt.ports.PortStatus``: BMv2 Thrift or the embedded runtime CLI, chosen by what its
runtime port answers; a state that cannot be read is unknown, ``None``, and judges nothing),
``Detector`` (one signal against its baseline, with K-sample trigger and hysteresis) and ``Monitor``
(a background thread that turns samples into rates and events).

Signals and the events they raise (docs/design.md, "Monitoring and policies"):

- per reference: bandwidth (bit/s) and message rate (packets/s) — degraded when below
  ``drop_fraction`` × baseline for ``k`` consecutive samples;
- per device port: egress queue delay (Δ ``queue_delay_sum_us`` / Δ tx packets) — degraded when
  above ``latency_factor`` × baseline (and above ``latency_floor_us``) for ``k`` samples, or at once
  when one sample is above ``latency_severe_us`` too (a queue that deep is no passing burst: healthy
  ports measure well under a millisecond on both targets);
- per device port: interface state — a port that goes down degrades its device at once (an unknown
  state neither degrades nor recovers it).

A degraded signal clears only after ``recover_k`` consecutive samples back on the good side of a
stricter threshold (``recover_fraction`` of the baseline, or below ``latency_factor / 2`` × it), so
a signal hovering at the threshold does not flap. Baselines are EWMAs of healthy samples after a
``warmup``; they freeze while a signal is suspect or degraded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import commands as C
from .flowstate import FlowKey
from .labconfig import LabConfig
from .p4rt import codec
from .p4rt.errors import P4RuntimeError
from .p4rt.ports import PortStatus, PortStatusError, probe_port_status
from .p4rt.thrift import ThriftError
from .runtime import Controller
from .stats import PortSample

__all__ = ["MonitorConfig", "Detector", "Sampler", "Sample", "PortCounters", "Event", "Monitor",
           "ports_from_config"]

log = logging.getLogger(__name__)

TCP_PHASE_ESTABLISHED = 3
PROBE_RETRY_S = 5.0        # a switch whose runtime port answered no protocol is probed again after this


@dataclass(frozen=True)
class MonitorConfig:
    interval: float = 0.1            # seconds between samples
    k: int = 3                       # consecutive bad samples before an event
    drop_fraction: float = 0.5       # rate signals: bad below this fraction of the baseline
    latency_factor: float = 5.0      # latency signals: bad above this multiple of the baseline ...
    latency_floor_us: float = 5000.0  # ... and above this absolute queue delay
    latency_severe_us: float | None = 50_000.0   # one sample above this (and the factor) is enough
    recover_k: int = 5               # consecutive good samples before a degraded signal clears
    recover_fraction: float = 0.8    # rate signals: good again at this fraction of the baseline
    warmup: int = 5                  # samples before a baseline is trusted
    alpha: float = 0.2               # EWMA weight of a healthy sample in the baseline
    min_bps: float = 200e3           # rate signals whose baseline is below this are not judged (idle)
    min_pps: float = 20.0
    settle: int = 10                 # samples ignored after a reference moved (TCP catches up, then settles)
    scan_interval: float = 5.0       # seconds between register scans of the NICs (digests feed the rest)


@dataclass
class Event:
    """A degradation (or recovery) of one signal of one subject."""

    t: float                         # wall clock (time.time())
    kind: str                        # "degraded" | "recovered"; "full" | "freed" (NIC slots)
    device: str                      # the device the subject lives on
    subject: str                     # "port:N" | "flow:<reference>"
    signal: str                      # "bandwidth" | "message_rate" | "latency" | "link"
    value: float
    baseline: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Detector:
    """One signal against its baseline: ``drop`` signals degrade when low, ``rise`` ones when high."""

    def __init__(self, direction: str, cfg: MonitorConfig, floor: float = 0.0, severe: float | None = None) -> None:
        if direction not in ("drop", "rise"):
            raise ValueError(f"direction must be 'drop' or 'rise', not {direction!r}")
        self.direction, self.cfg, self.floor = direction, cfg, floor
        self.severe = severe             # rise signals: a sample above it degrades at once
        self.baseline: float | None = None
        self.samples = 0
        self.bad = 0
        self.good = 0
        self.degraded = False
        self.hold = 0                    # samples still to ignore (after the subject moved)

    def _is_bad(self, v: float, b: float) -> bool:
        if self.direction == "drop":
            return v < self.cfg.drop_fraction * b
        return v > max(self.cfg.latency_factor * b, self.floor)

    def _is_good(self, v: float, b: float) -> bool:
        if self.direction == "drop":
            return v >= self.cfg.recover_fraction * b
        return v <= max(self.cfg.latency_factor / 2 * b, self.floor / 2)

    def judged(self) -> bool:
        """True when the baseline is established (and, for rates, not idle)."""
        if self.baseline is None or self.samples < self.cfg.warmup:
            return False
        return self.direction == "rise" or self.baseline >= self.floor

    def update(self, value: float | None) -> str | None:
        """Feed one sample (None: no measurement); returns "degraded"/"recovered" on a transition."""
        if value is None:
            return None
        if self.hold > 0:
            self.hold -= 1
            return None
        if not self.judged():
            self.samples += 1
            self.baseline = value if self.baseline is None else \
                (1 - self.cfg.alpha) * self.baseline + self.cfg.alpha * value
            return None
        b = self.baseline
        assert b is not None
        if not self.degraded:
            if self._is_bad(value, b):
                self.bad += 1
                if self.bad >= self.cfg.k or (self.severe and value > self.severe):
                    self.degraded, self.bad, self.good = True, 0, 0
                    return "degraded"
            else:
                self.bad = 0
                # a burst (TCP catching up) may lift the baseline only a little per sample
                capped = min(value, 1.25 * b) if self.direction == "drop" and b > 0 else value
                self.baseline = (1 - self.cfg.alpha) * b + self.cfg.alpha * capped
            return None
        if self._is_good(value, b):
            self.good += 1
            if self.good >= self.cfg.recover_k:
                self.degraded, self.good = False, 0
                return "recovered"
        else:
            self.good = 0
        return None

    def reset(self) -> None:
        """Forget the baseline (the subject now takes another path)."""
        self.baseline, self.samples, self.bad, self.good, self.degraded, self.hold = None, 0, 0, 0, False, 0


@dataclass
class PortCounters(PortSample):
    """A port's counters (the CLI's ``PortSample``) and its interface state (None: unknown)."""
    up: bool | None = None


@dataclass
class FlowCounters:
    device: str
    packets: int
    bytes: int
    phase: int = 0


@dataclass
class Sample:
    t: float                                              # time.monotonic()
    wall: float                                           # time.time()
    ports: dict[tuple[str, int], PortCounters] = field(default_factory=dict)
    flows: dict[FlowKey, FlowCounters] = field(default_factory=dict)


def ports_from_config(config: str | Path | LabConfig) -> dict[str, dict[int, str]]:
    """switch -> {port: interface} from the lab config (its file, or a ``LabConfig`` read already)."""
    lab = config if isinstance(config, LabConfig) else LabConfig.load(config)
    return {name: dict(sw.ports) for name, sw in lab.switches.items()}


def _suffix(names: list[str], suffix: str) -> str | None:
    return next((n for n in names if n == suffix or n.endswith("." + suffix)), None)


class Sampler:
    """Takes one ``Sample`` of every switch: one Read RPC per switch, all switches concurrently."""

    def __init__(self, ctrl: Controller, ports: dict[str, dict[int, str]]) -> None:
        self.ctrl = ctrl
        self.ports = {s: dict(p) for s, p in ports.items() if s in ctrl.fabric}
        self._names: dict[str, dict[str, str | None]] = {}
        for s in self.ports:
            h = ctrl.fabric[s].helper
            counters, registers = (h.names("counter"), h.names("register")) if h else ([], [])
            self._names[s] = {"rx": _suffix(counters, "rx_port_counter"), "tx": _suffix(counters, "tx_port_counter"),
                              "qsum": _suffix(registers, "queue_delay_sum_us"),
                              "qdepth": _suffix(registers, "queue_depth_last"),
                              "packets": _suffix(registers, "flow_packets"), "bytes": _suffix(registers, "flow_bytes"),
                              "phase": _suffix(registers, "tcp_phase")}
        self._regs_ok = {s: True for s in self.ports}
        self._port_status: dict[str, PortStatus | None] = {}
        self._probe_after: dict[str, float] = {}

    def close(self) -> None:
        """Close the port-status clients (their Thrift connections)."""
        for prov in self._port_status.values():
            if prov is not None:
                prov.close()
        self._port_status.clear()

    def _link_state(self, switch: str) -> dict[int, bool | None]:
        out: dict[int, bool | None] = {}
        missing = []
        for port, iface in self.ports[switch].items():
            p = Path(f"/sys/class/net/{iface}/operstate")
            try:
                # "lowerlayerdown": the interface is up but its peer is not (no carrier)
                out[port] = p.read_text().strip() not in ("down", "lowerlayerdown", "notpresent")
            except OSError:
                missing.append(port)
        if missing:
            out.update(self._runtime_link_state(switch, missing))
        return out

    def _runtime_link_state(self, switch: str, ports: list[int]) -> dict[int, bool | None]:
        """The state of ``ports`` from the switch's runtime API; None for each when it cannot be read."""
        prov = self._provider(switch)
        if prov is None:
            return {p: None for p in ports}
        try:
            state = prov.port_status()
        except PortStatusError as exc:
            log.debug("%s: link state unknown: %s", switch, exc)
            return {p: None for p in ports}
        return {p: state.get(p) for p in ports}

    def _provider(self, switch: str) -> PortStatus | None:
        """The switch's PortStatus, probed on first use (again every PROBE_RETRY_S while none answers)."""
        if self._port_status.get(switch) is not None or time.monotonic() < self._probe_after.get(switch, 0.0):
            return self._port_status.get(switch)
        sc = self.ctrl.config.switches.get(switch)
        if sc is None or not sc.thrift_port:
            self._probe_after[switch] = float("inf")       # no runtime port configured: nothing to ask
            return None
        regs = getattr(self.ctrl, "registers", {}).get(switch)
        thrift = regs.thrift if regs is not None else None
        host = sc.address.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
        prov = probe_port_status(host, int(sc.thrift_port), thrift,
                                 thrift_first=regs is not None and regs.via == "thrift")
        if prov is None:
            log.warning("%s: its runtime port %s:%s answers neither BMv2 Thrift nor the runtime CLI: link "
                        "state unknown", switch, host, sc.thrift_port)
            self._probe_after[switch] = time.monotonic() + PROBE_RETRY_S
        self._port_status[switch] = prov
        return prov

    def _one(self, switch: str) -> tuple[dict[int, PortCounters], dict[FlowKey, FlowCounters]]:
        conn = self.ctrl.fabric[switch]
        h = conn.helper
        names = self._names[switch]
        ports = sorted(self.ports[switch])
        pc = {p: PortCounters() for p in ports}
        ents: list[Any] = []
        for n in (names["rx"], names["tx"]):
            if n:
                ents += [h.counter_entry(n, p) for p in ports]
        use_regs = self._regs_ok[switch]
        if use_regs:
            ents += [h.register_entry(n, p) for n in (names["qsum"], names["qdepth"]) if n for p in ports]
        drv = self.ctrl.nics.get(switch)
        recs = self.ctrl.inventory.on_device(switch) if drv is not None else []
        flow_regs = drv is not None and drv.path == "registers" and use_regs and names["packets"] and names["bytes"]
        if flow_regs:
            ents += [h.register_entry(n, r.slot) for r in recs for n in (names["packets"], names["bytes"],
                                                                          names["phase"]) if n]
        ids = {h.get_id(k2, n): key for key, k2, n in
               [(k, "counter" if k in ("rx", "tx") else "register", names[k]) for k in names] if n}
        vals: dict[tuple[str, int], int] = {}
        try:
            got = list(conn.read(ents))
        except P4RuntimeError as exc:
            if not (use_regs and exc.is_unimplemented()):
                raise
            self._regs_ok[switch] = False       # a target without register reads: counters only
            return self._one(switch)
        for e in got:
            if e.HasField("counter_entry"):
                ce = e.counter_entry
                which = ids.get(ce.counter_id)
                if which == "rx" and ce.index.index in pc:
                    pc[ce.index.index].rx_packets, pc[ce.index.index].rx_bytes = ce.data.packet_count, \
                        ce.data.byte_count
                elif which == "tx" and ce.index.index in pc:
                    pc[ce.index.index].tx_packets, pc[ce.index.index].tx_bytes = ce.data.packet_count, \
                        ce.data.byte_count
            elif e.HasField("register_entry"):
                re_ = e.register_entry
                which = ids.get(re_.register_id)
                if which:
                    vals[(which, re_.index.index)] = codec.decode_int(re_.data.bitstring)
        if not use_regs:
            vals.update(self._registers_elsewhere(switch, ports))
        for p in ports:
            pc[p].queue_delay_sum_us = vals.get(("qsum", p), 0)
            pc[p].queue_depth = vals.get(("qdepth", p), 0)
        for p, up in self._link_state(switch).items():
            pc[p].up = up
        flows: dict[FlowKey, FlowCounters] = {}
        if flow_regs:
            for r in recs:
                flows[r.key] = FlowCounters(switch, vals.get(("packets", r.slot), 0), vals.get(("bytes", r.slot), 0),
                                            vals.get(("phase", r.slot), 0))
        elif recs:
            replies = drv.run(C.SAVE, [(r.key, r.slot) for r in recs])
            for r, rep in zip(recs, replies, strict=True):
                if rep.status == C.STATUS_OK:
                    flows[r.key] = FlowCounters(switch, rep.packets, rep.bytes, rep.tcp_phase)
        return pc, flows

    def _registers_elsewhere(self, switch: str, ports: list[int]) -> dict[tuple[str, int], int]:
        """The queue registers of ``ports`` where P4Runtime has no register reads: through the switch's
        other register path (BMv2 Thrift), if it has one."""
        regs = getattr(self.ctrl, "registers", {}).get(switch)
        names = self._names[switch]
        h = self.ctrl.fabric[switch].helper
        want = {h.get_id("register", names[k]): k for k in ("qsum", "qdepth") if names[k]}
        if regs is None or regs.via == "none" or not want or not ports:
            return {}
        try:
            cells = regs.read([(rid, p) for rid in want for p in ports])
        except (P4RuntimeError, ThriftError) as exc:
            log.debug("%s: queue registers unreadable: %s", switch, exc)
            return {}
        return {(want[rid], i): v for (rid, i), v in cells.items()}

    def sample(self) -> Sample:
        s = Sample(time.monotonic(), time.time())
        results = self.ctrl.fabric.parallel({sw: (lambda sw=sw: self._one(sw)) for sw in self.ports},
                                            raise_first=False)
        for sw, res in results.items():
            if isinstance(res, Exception):
                log.warning("sampling %s failed: %s", sw, res)
                continue
            pc, flows = res
            for p, c in pc.items():
                s.ports[(sw, p)] = c
            s.flows.update(flows)
        return s


@dataclass
class FlowRates:
    device: str
    bps: float
    pps: float
    phase: int


class Monitor:
    """Samples every ``interval`` in a thread; keeps rates, baselines and the list of events."""

    def __init__(self, ctrl: Controller, ports: dict[str, dict[int, str]], cfg: MonitorConfig | None = None,
                 on_event: Callable[[Event], None] | None = None, devices: list[str] | None = None,
                 sampler: Sampler | None = None, paths: dict[tuple[str, int], str] | None = None) -> None:
        self.ctrl = ctrl
        self.cfg = cfg or MonitorConfig()
        self.devices = list(devices) if devices is not None else sorted(ctrl.nics)
        self.sampler = sampler or Sampler(ctrl, ports)
        # a gateway port toward a NIC belongs to that NIC's path: its link and queue count for the NIC
        self.paths = dict(paths) if paths is not None else {
            (g, m.port): m.nic for g, sc in ctrl.config.switches.items() for m in sc.nic_group}
        self.on_event = on_event
        self.events: list[Event] = []
        self.history: list[dict[str, Any]] = []   # per sample: t, flows {ref: {device,bps,pps}}, ports {...}
        self.flow_rates: dict[FlowKey, FlowRates] = {}
        self.port_delay_us: dict[tuple[str, int], float] = {}
        self.port_tx_bps: dict[tuple[str, int], float] = {}
        self.port_up: dict[tuple[str, int], bool | None] = {}
        self._det: dict[tuple[Any, ...], Detector] = {}
        self._prev: Sample | None = None
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.sample_ms: list[float] = []
        self.full_nics: set[str] = set()   # NICs above NEAR_FULL of their slots (new references untracked)

    # ---- life cycle --------------------------------------------------------------------------------
    def start(self) -> Monitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="flowmig-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        nxt = time.monotonic()
        last_scan = 0.0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                if t0 - last_scan >= self.cfg.scan_interval:
                    self.ctrl.scan()      # references the digests may have missed (register path)
                    last_scan = time.monotonic()
                self.observe(self.sampler.sample())
                self.check_slots()
            except Exception:  # noqa: BLE001 - a failed sample must not kill the monitor
                log.exception("monitor sample failed")
            self.sample_ms.append((time.monotonic() - t0) * 1000)
            nxt += self.cfg.interval
            delay = nxt - time.monotonic()
            if delay < 0:                 # overran: keep the cadence, skip the missed ticks
                nxt = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def check_slots(self) -> list[Event]:
        """Flag NICs whose flow table is (near) full (``full_nics``): an Event kind "full" (signal
        "slots", value = used, baseline = total) when one crosses ``inventory.NEAR_FULL``, "freed" when it
        drops back below. Not a degradation: policies do not act on it."""
        new = []
        for dev in self.devices:
            use = self.ctrl.slot_use(dev)
            if use.near_full and dev not in self.full_nics:
                self.full_nics.add(dev)
                new.append(Event(time.time(), "full", dev, f"slots:{dev}", "slots", use.used, use.total,
                                 f"flow table {use.label().lower()}: new references run untracked"))
            elif not use.near_full and dev in self.full_nics:
                self.full_nics.discard(dev)
                new.append(Event(time.time(), "freed", dev, f"slots:{dev}", "slots", use.used, use.total,
                                 "flow table below the near-full mark"))
        for ev in new:
            self._emit(ev)
        return new

    # ---- state queries (policies) ------------------------------------------------------------------
    def degraded_devices(self) -> dict[str, list[str]]:
        """device -> the signals currently degraded on its ports (link, latency)."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for key, det in self._det.items():
                if det.degraded and key[0] == "port":
                    out.setdefault(key[1], []).append(f"{key[3]}@{key[2]}")
        return out

    def degraded_flows(self) -> dict[FlowKey, list[str]]:
        with self._lock:
            out: dict[FlowKey, list[str]] = {}
            for key, det in self._det.items():
                if det.degraded and key[0] == "flow":
                    out.setdefault(key[1], []).append(key[2])
            return out

    def flow_baseline_bps(self, key: FlowKey) -> float | None:
        with self._lock:
            det = self._det.get(("flow", key, "bandwidth"))
            return det.baseline if det is not None else None

    def forget_flow(self, key: FlowKey, keep_baseline: bool = True) -> None:
        """A reference moved: its rate detectors restart (new path); the old baseline may be kept."""
        with self._lock:
            for sig in ("bandwidth", "message_rate"):
                det = self._det.get(("flow", key, sig))
                if det is None:
                    continue
                if keep_baseline and det.baseline is not None:
                    det.bad = det.good = 0
                    det.degraded = False
                else:
                    det.reset()
                det.hold = self.cfg.settle

    def owner(self, switch: str, port: int) -> str | None:
        """The watched device whose path a switch port is part of (None: not watched)."""
        if switch in self.devices:
            return switch
        dev = self.paths.get((switch, port))
        return dev if dev in self.devices else None

    # ---- the logic (pure: fed by the thread or by tests) -------------------------------------------
    def _detector(self, key: tuple[Any, ...], direction: str, floor: float, severe: float | None = None) -> Detector:
        det = self._det.get(key)
        if det is None:
            det = self._det[key] = Detector(direction, self.cfg, floor, severe)
        return det

    def _emit(self, ev: Event) -> None:
        self.events.append(ev)
        log.info("%s %s %s %s: %.0f (baseline %.0f) %s", ev.kind, ev.device, ev.subject, ev.signal, ev.value,
                 ev.baseline, ev.reason)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001
                log.exception("event handler failed")

    def observe(self, s: Sample) -> list[Event]:
        """Turn one sample into rates, feed the detectors, return (and dispatch) the events raised."""
        new: list[Event] = []
        with self._lock:
            prev, self._prev = self._prev, s
            if prev is None:
                return new
            dt = s.t - prev.t
            if dt <= 0:
                return new
            # interface state: immediate, per port of a watched device
            for (sw, port), c in s.ports.items():
                self.port_up[(sw, port)] = c.up
                dev = self.owner(sw, port)
                if dev is None or c.up is None:      # unknown state: judges nothing
                    continue
                det = self._detector(("port", dev, f"{sw}:{port}", "link"), "rise", 0.5)
                if not c.up and not det.degraded:
                    det.degraded, det.good = True, 0
                    new.append(Event(s.wall, "degraded", dev, f"port:{sw}:{port}", "link", 0, 1, "interface down"))
                elif c.up and det.degraded:
                    det.good += 1
                    if det.good >= self.cfg.recover_k:
                        det.degraded, det.good = False, 0
                        new.append(Event(s.wall, "recovered", dev, f"port:{sw}:{port}", "link", 1, 1,
                                         "interface up"))
                elif not c.up:
                    det.good = 0
            # queue delay per egress port
            for (sw, port), c in s.ports.items():
                p = prev.ports.get((sw, port))
                if p is None:
                    continue
                dtx = c.tx_packets - p.tx_packets
                self.port_tx_bps[(sw, port)] = max(0, c.tx_bytes - p.tx_bytes) * 8 / dt
                # nothing dequeued in the interval: no measurement (idle, or a queue stuck solid)
                delay = max(0, c.queue_delay_sum_us - p.queue_delay_sum_us) / dtx if dtx > 0 else None
                if delay is not None:
                    self.port_delay_us[(sw, port)] = delay
                dev = self.owner(sw, port)
                if dev is None:
                    continue
                det = self._detector(("port", dev, f"{sw}:{port}", "latency"), "rise", self.cfg.latency_floor_us,
                                     self.cfg.latency_severe_us)
                base = det.baseline or 0.0
                tr = det.update(delay)
                if tr:
                    new.append(Event(s.wall, tr, dev, f"port:{sw}:{port}", "latency", delay or 0.0, base,
                                     "egress queue delay"))
            # per-reference rates
            rates: dict[FlowKey, FlowRates] = {}
            for key, f in s.flows.items():
                pf = prev.flows.get(key)
                if pf is None or f.packets < pf.packets:
                    continue          # first sample of the flow, or it moved and was re-counted
                bps = (f.bytes - pf.bytes) * 8 / dt
                pps = (f.packets - pf.packets) / dt
                rates[key] = FlowRates(f.device, bps, pps, f.phase)
                if key.kind == "tcp" and f.phase > TCP_PHASE_ESTABLISHED:
                    continue          # closing connections are not judged
                for sig, val, floor in (("bandwidth", bps, self.cfg.min_bps), ("message_rate", pps, self.cfg.min_pps)):
                    det = self._detector(("flow", key, sig), "drop", floor)
                    base = det.baseline or 0.0
                    tr = det.update(val)
                    if tr:
                        new.append(Event(s.wall, tr, f.device, f"flow:{key}", sig, val, base,
                                         "reference rate vs its baseline"))
            self.flow_rates = rates
            self.history.append({
                "t": s.wall,
                "flows": {str(k): {"device": r.device, "bps": round(r.bps, 1), "pps": round(r.pps, 1)}
                          for k, r in rates.items()},
                "ports": {f"{sw}:{p}": {"tx_bps": round(self.port_tx_bps.get((sw, p), 0.0), 1),
                                        "delay_us": round(self.port_delay_us.get((sw, p), 0.0), 1),
                                        "up": c.up}
                          for (sw, p), c in s.ports.items() if self.owner(sw, p) is not None}})
        for ev in new:
            self._emit(ev)
        return new
