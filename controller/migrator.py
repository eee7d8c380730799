"""The migration engine: suspend → quiesce → save → load → redirect → resume → release.

Owns ``Migrator`` (the public entry points; ``MigrationRecord`` is re-exported from
``controller.migration``). One call moves a batch of references (possibly from several source NICs)
to one target NIC, following docs/design.md "The migration protocol":

1. suspend  — every gateway carrying a reference gets ``suspend_flow(mode, old port, drain)``; in
              lossless mode its packets come to us (PacketIn), counted in the gateway's
              ``drain_punted[drain]``, and are buffered in arrival order;
2. quiesce  — a path save (up to 16 references) or a path marker behind the reference's packets is
              answered by each old NIC (else the source NICs' per-reference packet counters are
              sampled until stable, bounded);
3. save     — SUSPEND commands (or register reads) freeze and return each reference's state (path
              saves have read it already, freezing nothing); the FlowStates are checked for the target
              (``validate``); tagged with their HMAC when they leave memory (the trusted buffer: a VM
              file, ``last_states``);
4. load     — slots are allocated on the target, the states loaded (LOAD commands or one register
              Write) and the target's ``flow_slots`` lookup entries written (one Write);
5. redirect — lossless: the gateways' entries become ``forward_after_drain(target port, drain)``, the
              buffer is replayed in arrival order and later punts passed on as they arrive (strict
              order); drop mode: ``set_nic_port``;
6. resume   — lossless: once a flow's counts are equal its entry becomes ``set_nic_port(target)``; a
              flow not drained within ``drain_wait`` is settled in the background;
7. release  — the references are cleared from the source NICs (concurrently with 6).

Each step is a ``controller.migration.Step`` object run by a ``Plan``: a failure before redirect
completes undoes the failed step and the completed ones in reverse (the target cleaned, the sources
resumed, the buffered packets replayed toward the old NIC, the gateways' entries restored). Extra
steps (a VM's host move) go before ``load``; ``before_step`` hooks see each step before it runs (a
hook that raises fails that step: the failure-injection seam of the tests).

Crash consistency: every migration runs holding the lab's journal (``controller.journal``: one
migration at a time across the lab's controller processes), which records it before each step; each
suspension the gateways hold carries a data-plane lease (``lease`` s, plus ``old_path_wait``): a
controller that dies mid-migration costs the flow at most that, and the next controller's
``Controller.start`` finishes or undoes the migration (``controller.recovery``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

from . import commands as C
from .flowstate import FlowKey, FlowState, FlowStateError
from .gateway import FiveTuple
from .inventory import UnknownFlow
from .journal import JournalBusy
from .migration.plan import MigrationContext, MigrationRecord, Plan, Step, StepHook
from .migration.steps import PROGRAM, load_states, protocol_steps
from .nic import gateway_hash
from .runtime import Controller, ControllerError

__all__ = ["Migrator", "MigrationRecord", "MigrationError", "MODES"]

log = logging.getLogger(__name__)

MODES = ("lossless", "drop")


class MigrationError(ControllerError):
    """A migration request is invalid (unknown flow or NIC, bad mode) — nothing was changed."""


def _step_names() -> set[str]:
    out, todo = set(), list(Step.__subclasses__())
    while todo:
        cls = todo.pop()
        out.add(cls.name)
        todo += cls.__subclasses__()
    return out


class Migrator:
    _ids = itertools.count(1)

    def __init__(self, ctrl: Controller, quiesce_timeout: float = 0.2, quiesce_interval: float = 0.001,
                 barrier_timeout: float = 1.0, program_version: int = C.FLOWMIG_VERSION,
                 drain_wait: float = 1.0, settle_timeout: float = 30.0, hooks: Sequence[StepHook] = (),
                 old_path_wait: float = 0.0, lease: float = 1.0, path_saves: bool = True) -> None:
        self.ctrl = ctrl
        # small batches read the sources by path saves (a SAVE out of each gateway behind its traffic)
        # instead of path markers then SUSPEND: one round trip less while the flows are held
        self.path_saves = path_saves
        self.quiesce_timeout = quiesce_timeout
        self.quiesce_interval = quiesce_interval
        self.barrier_timeout = barrier_timeout
        self.drain_wait = drain_wait  # lossless: wait for punted == replayed before set_nic_port
        # > 0: the flip waits up to this long for the old paths to drain (no packet of the batch still
        # queued there can then arrive behind the new path's); 0: switch at once (docs/lab.md)
        self.old_path_wait = old_path_wait
        # how long a gateway holds a suspension by itself (the data-plane lease, docs/dataplane.md): a
        # migration's lease is this plus ``old_path_wait``; a dead controller costs a flow at most that
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        self.lease = lease
        # a flow still draining in the background after an earlier migration is waited for this long
        # before it may move again
        self.settle_timeout = settle_timeout
        self.program_version = program_version
        self.history: list[MigrationRecord] = []
        self._last: MigrationContext | None = None   # the last migration's (its trusted buffer: last_states)
        # called as hook(step, ctx) before each step runs (timed with it); raising fails that step
        self.before_step: list[StepHook] = list(hooks)
        self._lock = threading.RLock()

    def inject_failure(self, step: str, exc: Exception | None = None, times: int = 1) -> StepHook:
        """Fail the next ``times`` runs of the step named ``step`` with ``exc`` (default a
        RuntimeError), as if the step itself had failed. Returns the hook (in ``before_step`` until
        spent)."""
        if step not in _step_names():
            raise ValueError(f"unknown migration step {step!r} (steps: {', '.join(sorted(_step_names()))})")
        left = [times]

        def hook(s: Step, ctx: MigrationContext) -> None:
            if s.name != step or left[0] <= 0:
                return
            left[0] -= 1
            if left[0] <= 0 and hook in self.before_step:
                self.before_step.remove(hook)
            raise exc if exc is not None else RuntimeError(f"injected failure at {step}")
        self.before_step.append(hook)
        return hook

    def _wait_settled(self, drv: Any, tuples: Iterable[FiveTuple]) -> list[FiveTuple]:
        """Wait (up to settle_timeout) until none of ``tuples`` is still draining on gateway ``drv``
        after an earlier migration; returns those still draining then."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            busy = [t for t in tuples if t in drv.settling]
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.01)

    # ---- public entry points -------------------------------------------------------------------------
    def migrate_device(self, source: str, target: str, mode: str = "lossless") -> MigrationRecord:
        """Node-wide: every reference of ``source`` moves to ``target``."""
        self.ctrl.nic(source)
        keys = [r.key for r in self.ctrl.inventory.on_device(source)]
        return self.migrate(keys, target, mode)

    @property
    def last_states(self) -> list[dict[str, Any]]:
        """The trusted buffer of the last migration: its saved states, HMAC-tagged (made on first use)."""
        return self._last.tag() if self._last is not None else []

    def migrate(self, keys: Sequence[FlowKey], target: str, mode: str = "lossless",
                before_load: Sequence[Step] = ()) -> MigrationRecord:
        """Move ``keys`` to ``target`` as one batch (migrations are serialized: one at a time).

        ``before_load``: extra steps run after ``validate`` (the references saved, ``ctx.tag()``
        giving their tagged states) and before ``load``, rolled back with the rest; they run even
        when no reference needs to move."""
        with self._lock:
            return self._migrate(keys, target, mode, list(before_load))

    def _migrate(self, keys: Sequence[FlowKey], target: str, mode: str, extra: list[Step]) -> MigrationRecord:
        ctx = self.context(keys, target, mode)
        rec = ctx.rec
        if not ctx.by_src and not extra:
            rec.outcome, rec.reason = "ok", "nothing to move"
            self.history.append(rec)
            return rec
        if ctx.by_src:
            plan = Plan(protocol_steps(ctx.lossless, self.old_path_wait))
            plan.insert_before("load", extra)
        else:   # only the extra steps (e.g. a VM with no reference to move still moves)
            rec.reason = "nothing to move"
            plan = Plan(extra)
        self.run(plan, ctx)
        return rec

    def run(self, plan: Plan, ctx: MigrationContext) -> bool:
        """Run ``plan`` for ``ctx`` (from ``context``) with the ``before_step`` hooks; on success the
        loaded references are recorded as moved (inventory, ``ctx.rec.moved``). The record is
        finished and kept in ``history``. Returns whether the point of no return was passed."""
        rec = ctx.rec
        journal = self.ctrl.journal
        with self._lock, ExitStack() as held:
            if journal is not None:
                try:
                    held.enter_context(journal.hold(self.settle_timeout))
                except JournalBusy as exc:
                    raise MigrationError(str(exc)) from None
            mid = journal.begin(ctx) if journal is not None else ""
            # the journal's record of a step is written before anything else sees it (a hook that
            # kills the process still leaves it)
            hooks = (journal.hook(mid), *self.before_step) if journal is not None else tuple(self.before_step)
            ok = plan.run(ctx, hooks)   # (an exception out of it leaves the journal open: recovered later)
            if journal is not None:
                journal.end(mid, "ok" if ok else rec.outcome)
                self._hold_while_settling(journal)
        self._last = ctx
        if ok:
            for k, slot in ctx.loaded:
                rec.moved.append({"reference": str(k), "from": ctx.src_of[k], "to": ctx.target, "slot": slot})
                self.ctrl.inventory.moved(k, ctx.target, slot)
            rec.outcome = "ok"
        rec.finished = time.time()
        rec.total_ms = (rec.finished - rec.started) * 1000
        self.history.append(rec)
        log.info("%s", rec.summary())
        return ok

    def _hold_while_settling(self, journal: Any) -> None:
        """Flows left draining in the background are still this controller's: keep the journal's lock
        until they are settled (a recovery by another process would cut their replay short)."""
        def busy() -> bool:
            return any(d.settling for d in self.ctrl.gateways.values())
        if not busy() or not journal.try_lock():
            return

        def wait() -> None:
            try:
                while busy():
                    time.sleep(0.05)
            finally:
                journal.unlock()
        threading.Thread(target=wait, name="journal-settling", daemon=True).start()

    def context(self, keys: Sequence[FlowKey], target: str, mode: str = "lossless") -> MigrationContext:
        """Check a request and gather what moving ``keys`` to ``target`` involves (sources, the gateways'
        5-tuples; RoCE QPs sharing a 5-tuple with one of them are added): a MigrationContext with a
        fresh record (``by_src`` empty when nothing needs to move). Nothing is changed on the
        switches; MigrationError for a request that cannot be done."""
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
        use = self.ctrl.slot_use(target)
        if len(recs) > use.free:   # from the target's known slots: refuse before anything is suspended
            raise MigrationError(f"{target} has {use.free} free slot(s) of {use.total}, {len(recs)} needed "
                                 f"({use.used} used{', FULL' if use.full else ''})")
        by_src: dict[str, list[tuple[FlowKey, int]]] = defaultdict(list)
        for r in recs:
            self.ctrl.nic(r.device)
            by_src[r.device].append((r.key, r.slot))
        rec.sources = {s: len(v) for s, v in by_src.items()}
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
        return MigrationContext(self.ctrl, rec, target, dict(by_src), {r.key: r.device for r in recs}, gw_tuples,
                                program_version=self.program_version, quiesce_timeout=self.quiesce_timeout,
                                quiesce_interval=self.quiesce_interval, barrier_timeout=self.barrier_timeout,
                                drain_wait=self.drain_wait, old_path_wait=self.old_path_wait,
                                lease=self.lease + self.old_path_wait, path_save=self.path_saves)

    # ---- restoring saved state (VM moves) ---------------------------------------------------------------
    def sent_to(self, key: FlowKey, udp_ports: tuple[int, int] | None = None) -> dict[str, str]:
        """{gateway: NIC} where each gateway carrying ``key`` from its hosts sends its packets now: its
        ``flow_forwarding`` entry's port, else the ``nic_group`` hash (gateway_forwarding.p4)."""
        out: dict[str, str] = {}
        for g, drv in self.ctrl.gateways.items():
            try:
                tuples = drv.tuples_for(key, udp_ports)
            except ValueError as exc:
                raise MigrationError(f"cannot place {key}: {exc}") from None
            if not tuples:
                continue
            by_port = {p: n for n, p in drv.nic_ports.items()}
            entry = drv.entries.get(tuples[0])
            if entry is not None and "port" in entry[1]:
                out[g] = by_port.get(entry[1]["port"], f"port {entry[1]['port']}")
            elif drv.nic_ports:
                out[g] = list(drv.nic_ports)[gateway_hash(key) % len(drv.nic_ports)]
        return out

    def restore(self, records: Sequence[dict[str, Any]], target: str,
                routes_follow: bool = False) -> list[tuple[FlowKey, int]]:
        """Validate tagged FlowState records (all or nothing) and load them on ``target``.

        Refused (MigrationError, nothing loaded): a record that does not validate, a reference that
        appears twice, and a reference the gateways send to another NIC than ``target`` (its state
        would sit where none of its packets go) unless ``routes_follow`` — the caller rewrites the
        gateways' routes afterwards (a VM move)."""
        key = self.ctrl.config.hmac_key
        try:
            states = [FlowState.from_dict(d, key, program=PROGRAM, program_version=self.program_version)
                      for d in records]
        except FlowStateError as exc:
            raise MigrationError(f"refusing saved state: {exc}") from None
        tnic = self.ctrl.nic(target)
        seen: set[FlowKey] = set()
        for fs in states:
            k = fs.key.canonical()
            if k in seen:
                raise MigrationError(f"refusing saved state: {fs.key} appears more than once")
            seen.add(k)
        if not routes_follow:
            for fs in states:
                rec = self.ctrl.inventory.find(fs.key)
                wrong = {g: n for g, n in self.sent_to(fs.key, rec.udp_ports if rec else None).items()
                         if n != target}
                if wrong:
                    g, n = next(iter(wrong.items()))
                    raise MigrationError(f"refusing to restore {fs.key} on {target}: gateway {g} sends it to {n} "
                                         f"(restore it there, or migrate the flow to {target} instead)")
        items = load_states(self.ctrl, tnic, states)
        for k, s in items:
            self.ctrl.inventory.learn(k, target, s)
        return items
