"""The migration engine: suspend → quiesce → save → load → redirect → resume → release.

Owns ``Migrator`` and ``MigrationRecord``. One call moves a batch of references (possibly from several
source NICs) to one target NIC, following docs/design.md "The migration protocol":

1. suspend  — every gateway carrying a reference gets ``suspend_flow(mode, old port, drain)``; in
              lossless mode its packets come to us (PacketIn), counted in the gateway's
              ``drain_punted[drain]``, and are buffered in arrival order;
2. quiesce  — the source NICs' per-reference packet counters are sampled until stable (bounded);
3. save     — SUSPEND commands (or register reads) freeze and return each reference's state; the
              FlowStates are serialized with their HMAC and validated back (the trusted buffer);
4. load     — slots are allocated on the target, the states loaded (LOAD commands or one register
              Write) and the target's ``flow_slots`` lookup entries written (one Write);
5. redirect — lossless: the gateways' entries become ``forward_after_drain(target port, drain)`` (one
              Write per gateway, concurrently), then the buffer is replayed in arrival order
              (PacketOut FORWARD, counted in ``drain_replayed``) and later punts are passed on the
              same way as they arrive. The gateway punts the flow's new packets too while punted !=
              replayed, so none overtakes a punted one: strict order. Drop mode: ``set_nic_port``;
6. resume   — lossless: once a flow's counts are equal (final: nothing more is punted) its entry becomes
              ``set_nic_port(target)`` and the drain index is freed; a flow not drained within
              ``drain_wait`` stays on ``forward_after_drain`` and is settled in the background;
7. release  — the references are cleared from the source NICs and their lookup entries deleted
              (concurrently with 6: other switches).

A failure before redirect completes rolls back: the target is cleaned, the sources resumed, the
buffered packets replayed toward the old NIC and the gateways' entries restored. Every step is one
batched operation per switch, run concurrently across switches; commands are streamed.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import commands as C
from .flowstate import FlowKey, FlowState, FlowStateError
from .gateway import SUSPEND_DROP, SUSPEND_PUNT, FiveTuple
from .inventory import UnknownFlow
from .nic import NicError
from .p4rt.errors import ConnectionFailed, P4RuntimeError
from .runtime import Controller, ControllerError

__all__ = ["Migrator", "MigrationRecord", "MigrationError", "MODES"]

log = logging.getLogger(__name__)

MODES = ("lossless", "drop")
PROGRAM = "flow_nic"


class MigrationError(ControllerError):
    """A migration request is invalid (unknown flow or NIC, bad mode) — nothing was changed."""


@dataclass
class MigrationRecord:
    id: int
    references: list[str]
    target: str
    mode: str
    sources: dict[str, int] = field(default_factory=dict)
    path: str = ""
    outcome: str = "pending"      # ok | rolled_back | lost | failed
    reason: str = ""
    failed_step: str = ""
    started: float = 0.0
    finished: float = 0.0
    steps_ms: dict[str, float] = field(default_factory=dict)
    downtime_ms: float = 0.0
    total_ms: float = 0.0
    packets_buffered: int = 0
    packets_replayed: int = 0
    packets_late: int = 0         # punts that arrived after the flip (replayed behind new packets)
    moved: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        n = len(self.references)
        head = f"migration #{self.id}: {n} reference{'s' if n != 1 else ''} -> {self.target} ({self.mode}): " \
               f"{self.outcome}"
        if self.reason:
            head += f" ({self.reason})"
        steps = " ".join(f"{k}={v:.1f}" for k, v in self.steps_ms.items())
        return (f"{head}\n  downtime {self.downtime_ms:.1f} ms, total {self.total_ms:.1f} ms, buffered "
                f"{self.packets_buffered}, replayed {self.packets_replayed}, late {self.packets_late}, path "
                f"{self.path}\n  steps (ms): {steps}")


class _StepFailed(Exception):
    def __init__(self, step: str, exc: BaseException) -> None:
        super().__init__(f"{step}: {exc}")
        self.step = step
        self.exc = exc


class Migrator:
    _ids = itertools.count(1)

    def __init__(self, ctrl: Controller, quiesce_timeout: float = 0.2, quiesce_interval: float = 0.001,
                 barrier_timeout: float = 1.0, flip_wait: float = 0.03, program_version: int = C.FLOWMIG_VERSION,
                 drain_wait: float = 1.0, settle_timeout: float = 30.0,
                 fault: Callable[[str], None] | None = None) -> None:
        self.ctrl = ctrl
        self.quiesce_timeout = quiesce_timeout
        self.quiesce_interval = quiesce_interval
        self.barrier_timeout = barrier_timeout
        self.flip_wait = flip_wait  # unused since the data plane orders the flip (kept for callers)
        self.drain_wait = drain_wait  # lossless: wait for punted == replayed before set_nic_port
        # a flow still draining in the background after an earlier migration is waited for this long
        # before it may move again
        self.settle_timeout = settle_timeout
        self.program_version = program_version
        self.history: list[MigrationRecord] = []
        self.last_states: list[dict[str, Any]] = []  # the trusted buffer of the last migration
        self._lock = threading.Lock()
        self._fault = fault  # test hook: called with each step name; raising fails that step

    def _wait_settled(self, drv: Any, tuples: Iterable[FiveTuple]) -> list[FiveTuple]:
        """Wait (up to settle_timeout) until none of ``tuples`` is still draining on gateway ``drv``
        after an earlier migration; returns those still draining then."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            busy = [t for t in tuples if t in drv.settling]
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.01)

    @property
    def step_hook(self) -> Callable[[str], None] | None:
        """Called with each step's name before it runs (raising fails that step): fault injection in
        tests, and the VM move's hook (host moved while its references are frozen)."""
        return self._fault

    @step_hook.setter
    def step_hook(self, fn: Callable[[str], None] | None) -> None:
        self._fault = fn

    # ---- public entry points -------------------------------------------------------------------------
    def migrate_device(self, source: str, target: str, mode: str = "lossless") -> MigrationRecord:
        """Node-wide: every reference of ``source`` moves to ``target``."""
        self.ctrl.nic(source)
        keys = [r.key for r in self.ctrl.inventory.on_device(source)]
        return self.migrate(keys, target, mode)

    def migrate(self, keys: Sequence[FlowKey], target: str, mode: str = "lossless") -> MigrationRecord:
        """Move ``keys`` to ``target`` as one batch (migrations are serialized: one at a time)."""
        with self._lock:
            return self._migrate(keys, target, mode)

    def _migrate(self, keys: Sequence[FlowKey], target: str, mode: str) -> MigrationRecord:
        if mode not in MODES:
            raise MigrationError(f"unknown mode {mode!r} (lossless or drop)")
        tnic = self.ctrl.nic(target)
        inv = self.ctrl.inventory
        recs = []
        for k in keys:
            try:
                recs.append(inv.get(k))
            except UnknownFlow as exc:
                raise MigrationError(str(exc)) from None
        portless = [r for r in recs if r.key.kind == "roce" and r.udp_ports is None]
        for dev in {r.device for r in portless}:   # QPs whose learn digest we missed: ask their NIC
            ports = self.ctrl.nic(dev).roce_udp_ports([r.slot for r in portless if r.device == dev])
            for r in portless:
                if r.device == dev and r.slot in ports:
                    r.udp_ports = ports[r.slot]
        # RoCE QPs that share their 5-tuple with a QP of the batch (same IPs and UDP ports): a gateway
        # entry is exact on the 5-tuple, so it suspends and redirects all of them: they move together
        chosen = {r.key for r in recs}
        for r in list(recs):
            for sib in inv.sharing_tuple(r):
                if sib.key not in chosen:
                    log.info("%s shares its 5-tuple with %s: migrating them together", sib.key, r.key)
                    chosen.add(sib.key)
                    recs.append(sib)
        rec = MigrationRecord(next(self._ids), [str(r.key) for r in recs], target, mode,
                              path=tnic.path_for(len(recs)), started=time.time())
        recs = [r for r in recs if r.device != target]
        if not recs:
            rec.outcome, rec.reason = "ok", "nothing to move"
            self.history.append(rec)
            return rec
        by_src: dict[str, list[tuple[FlowKey, int]]] = defaultdict(list)
        for r in recs:
            self.ctrl.nic(r.device)
            by_src[r.device].append((r.key, r.slot))
        rec.sources = {s: len(v) for s, v in by_src.items()}
        src_of = {r.key: r.device for r in recs}
        # which gateway directions carry each reference (a 5-tuple may carry several RoCE QPs)
        gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]] = {}
        for g, drv in self.ctrl.gateways.items():
            ts: dict[FiveTuple, list[FlowKey]] = defaultdict(list)
            for r in recs:
                try:
                    for t in drv.tuples_for(r.key, r.udp_ports):
                        ts[t].append(r.key)
                except ValueError as exc:
                    raise MigrationError(f"cannot migrate {r.key}: {exc}") from None
            if ts:
                busy = self._wait_settled(drv, ts)
                if busy:
                    raise MigrationError(f"{ts[busy[0]][0]}: still draining through the controller on {g} "
                                         "after an earlier migration; retry later")
                gw_tuples[g] = dict(ts)
                for nic in {target, *by_src}:
                    drv.port_of(nic)  # KeyError -> clear error before anything is touched
        carried = {k for ts in gw_tuples.values() for ks in ts.values() for k in ks}
        orphans = [str(r.key) for r in recs if r.key not in carried]
        if orphans:
            raise MigrationError(f"no gateway carries {orphans[0]} (hosts of the config: "
                                 f"{', '.join(self.ctrl.hosts) or 'none'})")
        self._run(rec, by_src, src_of, gw_tuples, target)
        rec.finished = time.time()
        rec.total_ms = (rec.finished - rec.started) * 1000
        self.history.append(rec)
        log.info("%s", rec.summary())
        return rec

    # ---- the protocol --------------------------------------------------------------------------------
    def _step(self, rec: MigrationRecord, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            if self._fault is not None:
                self._fault(name)
            return fn()
        except (P4RuntimeError, NicError, C.CommandError, FlowStateError, KeyError, RuntimeError) as exc:
            raise _StepFailed(name, exc) from exc
        finally:
            rec.steps_ms[name] = rec.steps_ms.get(name, 0.0) + (time.perf_counter() - t0) * 1000

    def _gw_parallel(self, fn: Callable[[str, dict[FiveTuple, list[FlowKey]]], Any],
                     gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]]) -> dict[str, Any]:
        return self.ctrl.fabric.parallel({g: (lambda g=g, ts=ts: fn(g, ts)) for g, ts in gw_tuples.items()})

    def _run(self, rec: MigrationRecord, by_src: dict[str, list[tuple[FlowKey, int]]],
             src_of: dict[FlowKey, str], gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]], target: str) -> None:
        ctrl, fabric = self.ctrl, self.ctrl.fabric
        lossless = rec.mode == "lossless"
        susp_mode = SUSPEND_PUNT if lossless else SUSPEND_DROP
        snapshots = {g: ctrl.gateway(g).snapshot(ts) for g, ts in gw_tuples.items()}
        tnic = ctrl.nic(target)
        loaded: list[tuple[FlowKey, int]] = []
        suspended_src = False
        t_suspend = time.perf_counter()
        try:
            # 1. suspend. Each gateway sends its path markers (step 2) as soon as its own suspension
            #    is in place, without waiting for the other gateways.
            paths = self._marker_paths(gw_tuples, src_of)
            tokens: list[tuple[str, int]] = []

            def suspend(g: str, ts: dict[FiveTuple, list[FlowKey]]) -> None:
                drv = ctrl.gateway(g)
                drains = drv.alloc_drains(ts) if lossless else {}
                if lossless:
                    drv.start_buffering(ts)
                drv.apply({t: ("suspend_flow", {"mode": susp_mode, "port": drv.port_of(src_of[ks[0]]),
                                                "drain": drains.get(t, 0)})
                           for t, ks in ts.items()})
                for src in paths.get(g, ()):
                    tokens.append((src, drv.send_marker(drv.port_of(src))))
            t_suspend = time.perf_counter()
            self._step(rec, "suspend", lambda: self._gw_parallel(suspend, gw_tuples))

            # 2. quiesce: a marker sent down each old path behind the reference's packets is answered
            #    by the old NIC from its ingress; when all are back, every packet of R sent toward OLD
            #    has updated R's state there. On timeout: the source counters are sampled until stable.
            def quiesce() -> dict[str, list[int] | None]:
                if self._wait_markers(tokens):
                    return {s: None for s in by_src}
                return fabric.parallel({s: (lambda s=s, items=items: self._sample(s, items))
                                        for s, items in by_src.items()})
            counts = self._step(rec, "quiesce", quiesce)

            # 3. save: SUSPEND (freeze + read) once the counters are stable — usually one round trip
            def save(s: str, items: list[tuple[FlowKey, int]]) -> list[FlowState]:
                return ctrl.nic(s).save_when_quiet(items, counts[s], self.quiesce_interval,
                                                   self.quiesce_timeout, self.program_version)
            suspended_src = True
            saved = self._step(rec, "save", lambda: fabric.parallel(
                {s: (lambda s=s, items=items: save(s, items)) for s, items in by_src.items()}))
            states = self._step(rec, "validate", lambda: self._trusted([fs for v in saved.values() for fs in v]))

            # 4. load
            loaded = self._step(rec, "load", lambda: self._load(tnic, states, loaded))

            # 5. redirect: the gateways' entries point at the target. In lossless mode the entry is
            #    forward_after_drain(target, drain): the gateway keeps punting the flow while it has
            #    punted more than it has seen replayed. After the Write (so the replays meet the new
            #    entry) the buffer is replayed in arrival order (PacketOut FORWARD, counted) and the
            #    driver passes every later punt on the same way the moment it arrives. Punts after the
            #    flip are counted late; they are queued behind the earlier ones, not overtaken.
            def redirect(g: str, ts: dict[FiveTuple, list[FlowKey]]) -> None:
                drv = ctrl.gateway(g)
                port = drv.port_of(target)
                if lossless:
                    drains = drv.alloc_drains(ts)
                    at_flip[g] = drv.punts(ts)
                    drv.apply({t: ("forward_after_drain", {"port": port, "drain": drains[t]}) for t in ts})
                    drv.pass_through(list(ts), port, forward=True)
                else:
                    drv.apply({t: ("set_nic_port", {"port": port}) for t in ts})
            at_flip: dict[str, int] = {}
            self._step(rec, "redirect", lambda: self._gw_parallel(redirect, gw_tuples))
        except _StepFailed as failure:
            self._rollback(rec, failure, by_src, src_of, gw_tuples, snapshots, tnic, loaded, suspended_src)
            return

        # 6. resume: the suspension is lifted by the redirect's Write. Once a flow's punts are all
        #    replayed (punted == replayed: final, nothing more is punted) its entry becomes plain
        #    set_nic_port and its drain index is freed; the others are settled in the background.
        rec.downtime_ms = (time.perf_counter() - t_suspend) * 1000

        # 7. release, while the gateways settle (other switches): the references are cleared from the
        #    source NICs — nothing reaches them any more — and their lookup entries deleted
        def release(s: str, items: list[tuple[FlowKey, int]]) -> None:
            drv = ctrl.nic(s)
            drv.run(C.CLEAR, items)
            drv.unplace([k for k, _ in items if k in drv.placed])  # placed: synced from the device at start
        releasing = fabric.submit(self._step, rec, "release", lambda: fabric.parallel(
            {s: (lambda s=s, items=items: release(s, items)) for s, items in by_src.items()}))
        if lossless:
            settled: dict[str, list[FiveTuple]] = {g: [] for g in gw_tuples}

            def settle(g: str, ts: dict[FiveTuple, list[FlowKey]]) -> None:
                drv = ctrl.gateway(g)
                settled[g] = drv.settle_drains(list(ts), drv.port_of(target), self.drain_wait)
            try:
                self._step(rec, "resume", lambda: self._gw_parallel(settle, gw_tuples))
            except _StepFailed as failure:
                rec.reason = f"drain not settled: {failure.exc}"
            for g, ts in gw_tuples.items():
                drv = ctrl.gateway(g)
                done = settled.get(g, [])
                rest = [t for t in ts if t not in done]
                if rest:
                    log.warning("%s: %d flows still draining through the controller", g, len(rest))
                    rec.reason = rec.reason or f"{len(rest)} flows still draining on {g} (settled in background)"
                    drv.settle_drains_later(rest, drv.port_of(target))
                # punted after the flip: queued behind the earlier punts by forward_after_drain
                rec.packets_late += drv.punts(ts) - at_flip.get(g, 0)
                for buf in drv.stop_buffering(done).values():
                    rec.packets_buffered += buf.total
                    rec.packets_replayed += buf.replayed
                    rec.packets_late += buf.late

        try:
            releasing.result()
        except _StepFailed as failure:
            rec.reason = f"release failed (stale state left on the source): {failure.exc}"
        for k, slot in loaded:
            rec.moved.append({"reference": str(k), "from": src_of[k], "to": target, "slot": slot})
            ctrl.inventory.moved(k, target, slot)
        rec.outcome = "ok"

    def _marker_paths(self, gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]],
                      src_of: dict[FlowKey, str]) -> dict[str, set[str]]:
        """{ingress gateway: {old NICs its suspended directions went to}}: one marker on each link."""
        paths: dict[str, set[str]] = defaultdict(set)
        for g, ts in gw_tuples.items():
            for ks in ts.values():
                paths[g].update(src_of[k] for k in ks)
        return paths

    def _wait_markers(self, tokens: list[tuple[str, int]]) -> bool:
        deadline = time.monotonic() + self.quiesce_timeout
        ok = True
        for nic, token in tokens:
            ok = self.ctrl.nic(nic).wait_marker(token, max(0.0, deadline - time.monotonic())) and ok
        if not ok:
            log.warning("path markers not back within %.0f ms; sampling counters instead", self.quiesce_timeout * 1000)
        return ok

    def _sample(self, nic: str, items: list[tuple[FlowKey, int]]) -> list[int]:
        counts = self.ctrl.nic(nic).packet_counts(items)
        time.sleep(self.quiesce_interval)
        return counts

    def _trusted(self, states: list[FlowState]) -> list[FlowState]:
        """Serialize with the integrity tag and validate back: what gets loaded is what was saved."""
        key = self.ctrl.config.hmac_key
        self.last_states = [fs.to_dict(key) for fs in states]
        return [FlowState.from_dict(d, key, program=PROGRAM, program_version=self.program_version)
                for d in self.last_states]

    def _load(self, tnic: Any, states: list[FlowState],
              done: list[tuple[FlowKey, int]] | None = None) -> list[tuple[FlowKey, int]]:
        """Load ``states`` on ``tnic``; returns (key, slot) in order. Each reference goes to one of its
        hash slots not known to be taken (found by the data plane without a lookup entry), else to an
        allocated slot with a ``flow_slots`` entry: planned from the inventory, so usually one round of
        LOADs. A hash slot held by a reference we did not know of (SLOT_BUSY) falls back to an
        allocated slot. ``done`` collects what is loaded, for a rollback."""
        done = [] if done is None else done
        out: list[tuple[FlowKey, int] | None] = [None] * len(states)
        busy = self.ctrl.inventory.slots_on(tnic.name) | set(tnic.placed.values()) | {s for _, s in done}
        hashed: list[tuple[int, int]] = []
        rest: list[int] = []
        for i, fs in enumerate(states):
            slot = None if fs.key in tnic.placed else next((h for h in tnic.hash_slots(fs.key) if h not in busy), None)
            if slot is None:
                rest.append(i)
            else:
                busy.add(slot)
                hashed.append((i, slot))
        if hashed:
            replies = tnic.load([states[i] for i, _ in hashed], [s for _, s in hashed])
            for (i, slot), r in zip(hashed, replies, strict=True):
                if r.status == C.STATUS_OK:
                    out[i] = (states[i].key, slot)
                    done.append(out[i])
                elif r.status == C.STATUS_SLOT_BUSY:
                    rest.append(i)
                else:
                    tnic.check([r], [(states[i].key, slot)], "load")
        if rest:
            rest.sort()
            for i, item in zip(rest, self._load_placed(tnic, [states[i] for i in rest], done), strict=True):
                out[i] = item
        return [o for o in out if o is not None]

    def _load_placed(self, tnic: Any, states: list[FlowState],
                     done: list[tuple[FlowKey, int]]) -> list[tuple[FlowKey, int]]:
        # slots known taken: the target's inventory and what this batch just loaded at hash slots
        busy = self.ctrl.inventory.slots_on(tnic.name) | {s for _, s in done}
        slots = tnic.allocate(len(states), busy)
        allocated = list(slots)
        try:
            items0 = [(fs.key, s) for fs, s in zip(states, slots, strict=True)]
            placing = self.ctrl.fabric.submit(tnic.place, items0)  # lookup entries while loading
            replies = tnic.load(states, slots)
            placing.result()
            moved: list[int] = []
            for _ in range(3):  # slots taken by references the inventory does not know: pick others
                retry = [i for i, r in enumerate(replies) if r.status == C.STATUS_SLOT_BUSY]
                if not retry:
                    break
                busy |= set(slots)
                more = tnic.allocate(len(retry), busy)
                allocated += more
                again = tnic.load([states[i] for i in retry], more)
                for i, s, r in zip(retry, more, again, strict=True):
                    slots[i], replies[i] = s, r
                moved += retry
            items = [(fs.key, s) for fs, s in zip(states, slots, strict=True)]
            done.extend(it for it, r in zip(items, replies, strict=True) if r.status == C.STATUS_OK)
            tnic.check(replies, items, "load")
            if moved:
                tnic.place([items[i] for i in sorted(set(moved))])
            return items
        finally:
            tnic.unreserve(allocated)

    def _rollback(self, rec: MigrationRecord, failure: _StepFailed, by_src: dict[str, list[tuple[FlowKey, int]]],
                  src_of: dict[FlowKey, str], gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]],
                  snapshots: dict[str, dict], tnic: Any, loaded: list[tuple[FlowKey, int]],
                  suspended_src: bool) -> None:
        rec.failed_step, rec.reason = failure.step, str(failure.exc)
        dead = isinstance(failure.exc, ConnectionFailed) or (
            isinstance(failure.exc, P4RuntimeError) and failure.exc.is_unavailable()
            and failure.exc.switch in by_src)
        log.warning("migration #%d failed at %s (%s); rolling back", rec.id, failure.step, failure.exc)
        problems = []
        ctrl = self.ctrl
        # target: forget what was loaded (LOAD replies may have landed even if the step failed)
        items = loaded or []
        if failure.step == "load" or items:
            try:
                keys = [k for v in by_src.values() for k, _ in v]
                tnic.unplace([k for k in keys if k in tnic.placed])
                if items:
                    tnic.run(C.CLEAR, items)
            except Exception as exc:  # noqa: BLE001 - keep rolling back the rest
                problems.append(f"target cleanup: {exc}")
        # sources: lift the freeze
        if suspended_src or failure.step in ("save", "validate"):
            for s, its in by_src.items():
                try:
                    ctrl.nic(s).run(C.RESUME, its)
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"resume on {s}: {exc}")
        # gateways: replay toward the old NIC (entries still say suspend_flow(mode, old port)), restore
        for g, ts in gw_tuples.items():
            drv = ctrl.gateway(g)
            try:
                drv.stop_pass_through(ts)
                # an entry already flipped to forward_after_drain(target): suspend toward the old NIC again
                back = {t: ("suspend_flow", {"mode": SUSPEND_PUNT, "port": drv.port_of(src_of[ks[0]]),
                                             "drain": drv.drains.get(t, 0)})
                        for t, ks in ts.items() if drv.entries.get(t, ("",))[0] == "forward_after_drain"}
                if back:
                    drv.apply(back)
                while drv.replay(list(ts)):
                    drv.barrier(self.barrier_timeout)
                drv.apply(snapshots[g])
                if rec.mode == "lossless":
                    drv.barrier(self.barrier_timeout)
                    drv.replay(list(ts), late=True)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"restore on {g}: {exc}")
            drv.free_drains(ts)
            for buf in drv.stop_buffering(ts).values():
                rec.packets_buffered += buf.total
                rec.packets_replayed += buf.replayed
                rec.packets_late += buf.late
        if dead:
            rec.outcome = "lost"
            rec.reason = f"source NIC unreachable during {failure.step}: {failure.exc}"
        else:
            rec.outcome = "rolled_back" if not problems else "failed"
        if problems:
            rec.reason += "; rollback problems: " + "; ".join(problems)

    # ---- restoring saved state (VM moves) ---------------------------------------------------------------
    def restore(self, records: Sequence[dict[str, Any]], target: str) -> list[tuple[FlowKey, int]]:
        """Validate tagged FlowState records (all or nothing) and load them on ``target``."""
        key = self.ctrl.config.hmac_key
        try:
            states = [FlowState.from_dict(d, key, program=PROGRAM, program_version=self.program_version)
                      for d in records]
        except FlowStateError as exc:
            raise MigrationError(f"refusing saved state: {exc}") from None
        items = self._load(self.ctrl.nic(target), states)
        for k, s in items:
            self.ctrl.inventory.learn(k, target, s)
        return items
