"""The steps of docs/design.md "The migration protocol", as ``Step`` objects.

warm → suspend → quiesce → save → validate → load → redirect | resume, release (point of no return
before resume/release). Each step is one batched operation per switch, run concurrently across switches;
each records what it changed before changing it, and its ``undo`` reverses exactly that:

- ``Warm``     nothing (one concurrent round trip on every switch of the batch, before the suspension);
- ``Suspend``  gateways: suspend_flow entries (each with a data-plane lease of ``ctx.lease``), drain
               indexes (both modes: an index holds the lease), punt buffers (undo: replay the buffer
               toward the old NIC, restore the entries as they were, free the indexes);
- ``Quiesce``  nothing (path saves — up to PATH_SAVE_MAX references: a SAVE out of each gateway toward
               each old NIC, behind the gateway's packets, whose replies are the states — else path
               markers; source counters sampled when neither comes back);
- ``Save``     freezes the references on their source NICs (undo: RESUME them); with path saves it has
               read them already, and freezes nothing (nothing reaches them: the gateways hold the
               flows; Release's CLEAR replies show whether anything was counted since);
- ``Validate`` nothing on the switches (the trusted buffer: the states tagged with the HMAC);
- ``Load``     slots and lookup entries on the target (undo: clear them, unplace);
- ``OldPathWait`` (optional) the drain markers sent at the suspension are back: the old paths are empty;
- ``Redirect`` gateways' entries flipped to the target (lossless: leased, drop mode: the indexes
               freed), buffer replayed, punts passed through (undo: stop passing through, entries
               back to suspend_flow toward the old NIC);
- ``Resume``   (lossless) drained flows settled to set_nic_port, the rest settled in the background
               (their leases renewed every ``ctx.lease / 2`` meanwhile);
- ``Release``  references cleared from the sources (concurrently with ``Resume``); the drain markers of
               a flip that did not wait for them are sent here.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .. import commands as C
from ..flowstate import FlowKey, FlowState
from ..gateway import DRAIN_MARKERS, SUSPEND_DROP, SUSPEND_PUNT, FiveTuple
from .plan import MigrationContext, Step

__all__ = ["Warm", "Suspend", "Quiesce", "Save", "Validate", "Load", "OldPathWait", "Redirect", "Resume", "Release",
           "protocol_steps", "load_states", "PROGRAM"]

log = logging.getLogger(__name__)

PROGRAM = "flow_nic"


def _tuples(ts: dict[FiveTuple, Any]) -> list[list[int]]:
    return [[t.src, t.dst, t.proto, t.sport, t.dport] for t in ts]


GatewayCall = Callable[[str, dict[FiveTuple, list[FlowKey]]], Any]


def _on_gateways(ctx: MigrationContext, start: GatewayCall, then: GatewayCall) -> None:
    """On every gateway of the batch: ``start(g, ts)`` sends its Write (``GatewayDriver.apply_async``;
    returns the function that waits for it), all from this thread — the Writes are in flight on every
    gateway at once with no thread hop; then, as each is done (in order), ``then(g, ts)``. Every started
    Write is waited for; the first failure is raised at the end."""
    started: list[tuple[str, dict[FiveTuple, list[FlowKey]], Callable[[], None]]] = []
    first: Exception | None = None
    for g, ts in ctx.gw_tuples.items():
        try:
            started.append((g, ts, start(g, ts)))
        except Exception as exc:  # noqa: BLE001 - the other gateways' Writes go on; raised below
            first = first or exc
    for g, ts, finish in started:
        try:
            finish()
            then(g, ts)
        except Exception as exc:  # noqa: BLE001 - wait for the others; raised below
            first = first or exc
    if first is not None:
        raise first


class Warm(Step):
    """Before the suspension (not part of the downtime): one round trip on each switch the batch will
    use, all at once — a NOP command to each source and to the target, a barrier and a one-entry Read on
    each gateway — so the suspension's five serial round trips run on awake threads and warm channels
    (after an idle second each takes 1-1.5 ms, warm 0.4-0.6 ms; docs/internals.md "Where the time goes").
    Each NIC is also asked, once per channel, whether it executes command batches (the path saves go
    as batches). Changes nothing; a switch that does not answer here is left to the step that needs it."""

    name = "warm"
    TIMEOUT = 0.5

    def do(self, ctx: MigrationContext) -> None:
        calls: dict[str, Callable[[], Any]] = {
            f"gateway {g}": (lambda g=g, ts=ts: ctx.ctrl.gateway(g).warm(next(iter(ts)), self.TIMEOUT))
            for g, ts in ctx.gw_tuples.items()}
        for nic in {*ctx.by_src, ctx.target}:
            calls[f"nic {nic}"] = lambda nic=nic: self._nic(ctx.ctrl.nic(nic).channel)
        try:
            ctx.ctrl.fabric.parallel(calls)
        except Exception as exc:  # noqa: BLE001 - only warming: the real steps report a dead switch
            log.debug("migration #%d: warming: %s", ctx.rec.id, exc)

    def _nic(self, channel: Any) -> None:
        channel.ping(self.TIMEOUT)
        # whether the NIC executes command batches, asked once per channel: here, not by the first
        # batched path save during the suspension (a round trip, or the probe's timeout)
        channel.batches()


class Suspend(Step):
    """Gateways punt (lossless) or drop the batch's packets; path markers follow on each old path."""

    name = "suspend"

    def __init__(self) -> None:
        self.snapshots: dict[str, dict[FiveTuple, tuple[str, dict[str, int]] | None]] = {}

    def do(self, ctx: MigrationContext) -> None:
        # one marker on each link from an ingress gateway to an old NIC of its suspended directions
        paths: dict[str, set[str]] = defaultdict(set)
        for g, ts in ctx.gw_tuples.items():
            for ks in ts.values():
                paths[g].update(ctx.src_of[k] for k in ks)
        ctx.t_suspend = time.perf_counter()
        # each gateway sends its markers as soon as its own suspension is in place
        _on_gateways(ctx, lambda g, ts: self._start(ctx, g, ts),
                     lambda g, ts: self._markers(ctx, g, paths.get(g, set())))

    def _start(self, ctx: MigrationContext, g: str, ts: dict[FiveTuple, list[FlowKey]]) -> Callable[[], None]:
        drv = ctx.ctrl.gateway(g)
        self.snapshots[g] = drv.snapshot(ts)
        # a drain index in both modes: it holds the suspension's lease (drop mode counts nothing there)
        drains = drv.alloc_drains(ts)
        if ctx.lossless:
            drv.start_buffering(ts)
        mode = SUSPEND_PUNT if ctx.lossless else SUSPEND_DROP
        return drv.apply_async({t: drv.leased("suspend_flow", ctx.lease, mode=mode, drain=drains[t],
                                              port=drv.port_of(ctx.src_of[ks[0]]))
                                for t, ks in ts.items()})

    def _markers(self, ctx: MigrationContext, g: str, srcs: set[str]) -> None:
        drv = ctx.ctrl.gateway(g)
        saves = _path_save_items(ctx, g) if ctx.path_save else {}
        for src in srcs:
            port = drv.port_of(src)
            items = saves.get(src)
            if items:
                # a path save: the SAVEs follow this gateway's packets toward src; their replies are
                # the states after them (Quiesce), no marker needed
                pending = ctx.ctrl.nic(src).expect(C.SAVE, items, batch=True)
                ctx.path_saves.append((src, items, pending))
                try:
                    drv.send_frames(port, pending.frames)
                except BaseException:
                    pending.cancel()
                    raise
            else:
                ctx.tokens.append((src, drv.send_marker(port)))
            # when the old path is empty: now when the flip will wait for it, else after the flip
            # (Release: off the suspension's critical path, ~1 ms; R's packets stopped entering the old
            # path at the suspension either way, so a later marker only adds other flows' queueing)
            ctx.rec.drain_tokens.append([drv.send_drain_marker(port)] if ctx.old_path_wait > 0 else [])
            ctx.drain_paths.append((g, port))
        ctx.rec.t_suspend_pc = ctx.t_suspend

    def undo(self, ctx: MigrationContext) -> None:
        # the entries say suspend_flow(mode, old port) (Redirect's undo put back any it flipped): the
        # buffer is replayed toward the old NIC, then the entries restored as they were
        rec = ctx.rec
        for _, _, pending in ctx.path_saves:   # sent, never waited for
            pending.cancel()
        ctx.path_saves = []
        for g, snap in self.snapshots.items():
            drv = ctx.ctrl.gateway(g)
            ts = list(snap)
            try:
                drv.stop_pass_through(ts)
                while drv.replay(ts):
                    drv.barrier(ctx.barrier_timeout)
                drv.apply(snap)
                if ctx.lossless:
                    drv.barrier(ctx.barrier_timeout)
                    drv.replay(ts, late=True)
            except Exception as exc:  # noqa: BLE001 - keep restoring the other gateways
                ctx.problem(f"restore on {g}", exc)
            drv.free_drains(ts)
            for buf in drv.stop_buffering(ts).values():
                rec.packets_buffered += buf.total
                rec.packets_replayed += buf.replayed
                rec.packets_late += buf.late
        self.snapshots = {}

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "gateways": {g: {"tuples": _tuples(s), "before": list(s.values())}
                                                for g, s in self.snapshots.items()}}


# References per batch read by path saves (more: path markers, then batched SUSPENDs). The path saves
# toward one NIC go as command batches (docs/dataplane.md "Path saves"), so up to C.BATCH_MAX references
# they are one frame per path, like a marker, and save the SUSPEND round trip. Interleaved, embedded,
# downtime p50 by path saves / by markers: 1 UDP reference 4.7 / 6.3 ms, 8 live TCP streams 12.1 / 12.9
# (bmv2 10.3 / 12.3), 100 UDP references 29.5 / 30.1; 1,000: 378 / 233 ms (63 frames per path, sent
# during the suspension, and one pass per record on both gateways' paths for two-way flows).
PATH_SAVE_MAX = C.BATCH_MAX


def _path_save_items(ctx: MigrationContext, g: str) -> dict[str, list[tuple[FlowKey, int]]]:
    """Old NIC -> the (key, slot) pairs of the batch whose packets ``g`` sends toward it: what the path
    saves out of ``g`` read. Empty when the batch is too large for path saves."""
    if sum(len(v) for v in ctx.by_src.values()) > PATH_SAVE_MAX:
        return {}
    slot = {k: sl for items in ctx.by_src.values() for k, sl in items}
    out: dict[str, list[tuple[FlowKey, int]]] = defaultdict(list)
    for ks in ctx.gw_tuples.get(g, {}).values():
        for k in ks:
            if k in slot and (k, slot[k]) not in out[ctx.src_of[k]]:
                out[ctx.src_of[k]].append((k, slot[k]))
    return out


class Quiesce(Step):
    """Every packet sent toward an old NIC before the suspension has updated its state there: the
    path saves are answered (their replies, the latest per reference, are the states), or the path
    markers are back (else the source counters are sampled until stable, bounded)."""

    name = "quiesce"

    def do(self, ctx: MigrationContext) -> None:
        by_path = bool(ctx.path_saves)
        if by_path:
            ctx.path_saved = self._wait_path_saves(ctx)
        markers = self._wait_markers(ctx)   # the paths without path saves (none when every path has them)
        if markers and (not by_path or ctx.path_saved):
            ctx.rec.saved_by = "path" if by_path else "markers"
            ctx.counts = {s: None for s in ctx.by_src}
            return
        ctx.path_saved = {}
        ctx.rec.saved_by = "counters"
        ctx.counts = ctx.ctrl.fabric.parallel({s: (lambda s=s, items=items: self._sample(ctx, s, items))
                                               for s, items in ctx.by_src.items()})

    @staticmethod
    def _wait_path_saves(ctx: MigrationContext) -> dict[str, list[Any]]:
        """Source -> the SAVE replies in ``by_src`` order: per reference the latest of its path saves (a
        reference reached through two gateways is read on both paths; the later read has counted every
        packet of both, and the packet counter only grows). Empty when one is not answered in time
        (a dead old path: the counters decide, as without path saves)."""
        deadline = time.monotonic() + ctx.quiesce_timeout
        latest: dict[FlowKey, Any] = {}
        saves, ctx.path_saves = ctx.path_saves, []
        try:
            for src, items, pending in saves:
                try:
                    replies = pending.wait(max(0.0, deadline - time.monotonic()))
                except C.CommandError as exc:
                    log.warning("path saves toward %s not answered within %.0f ms (%s); sampling counters "
                                "instead", src, ctx.quiesce_timeout * 1000, exc)
                    return {}
                ctx.ctrl.nic(src).check(replies, items, "path save")
                for (k, _), r in zip(items, replies, strict=True):
                    if k not in latest or r.packets >= latest[k].packets:
                        latest[k] = r
        finally:
            for _, _, pending in saves:   # those not waited for (a timeout, a failed save)
                pending.cancel()
        return {s: [latest[k] for k, _ in items] for s, items in ctx.by_src.items()}

    @staticmethod
    def _wait_markers(ctx: MigrationContext) -> bool:
        deadline = time.monotonic() + ctx.quiesce_timeout
        ok = True
        for nic, token in ctx.tokens:
            ok = ctx.ctrl.nic(nic).wait_marker(token, max(0.0, deadline - time.monotonic())) and ok
        if not ok:
            log.warning("path markers not back within %.0f ms; sampling counters instead", ctx.quiesce_timeout * 1000)
        return ok

    @staticmethod
    def _sample(ctx: MigrationContext, nic: str, items: list[tuple[FlowKey, int]]) -> list[int]:
        counts = ctx.ctrl.nic(nic).packet_counts(items)
        time.sleep(ctx.quiesce_interval)
        return counts


class Save(Step):
    """SUSPEND (freeze + read) on the sources once their counters are stable: usually one round trip
    (nothing to do after path saves: Quiesce has read the states)."""

    name = "save"

    def __init__(self) -> None:
        self.frozen: dict[str, list[tuple[FlowKey, int]]] = {}

    def do(self, ctx: MigrationContext) -> None:
        if ctx.path_saved:
            # read already, behind the old paths' traffic (path saves), and nothing reaches the sources
            # any more (the gateways hold the flows): nothing to freeze. A rollback finds them as they
            # were; Release's CLEAR reply shows if anything was counted since.
            ctx.saved = {s: [r.flow_state(s, ctx.program_version) for r in ctx.path_saved[s]] for s in ctx.by_src}
            return
        self.frozen = dict(ctx.by_src)   # before: a SUSPEND may land although the step fails

        def save(s: str, items: list[tuple[FlowKey, int]]) -> list[FlowState]:
            return ctx.ctrl.nic(s).save_when_quiet(items, ctx.counts.get(s), ctx.quiesce_interval,
                                                   ctx.quiesce_timeout, ctx.program_version)
        ctx.saved = ctx.ctrl.fabric.parallel({s: (lambda s=s, items=items: save(s, items))
                                              for s, items in ctx.by_src.items()})

    def undo(self, ctx: MigrationContext) -> None:
        for s, items in self.frozen.items():
            try:
                ctx.ctrl.nic(s).run(C.RESUME, items)
            except Exception as exc:  # noqa: BLE001 - resume the other sources
                ctx.problem(f"resume on {s}", exc)
        self.frozen = {}

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "frozen": {s: [[str(k), slot] for k, slot in items]
                                              for s, items in self.frozen.items()}}


class Validate(Step):
    """What is loaded (``ctx.states``) is what was saved — the FlowState objects themselves, built from
    the device's replies (ranges and keys checked then), checked here for the target's program and
    version. No JSON round trip on this path (``FlowState.from_dict`` checks records that come back from
    outside: ``restore``, VM files). The trusted buffer, the states tagged with their HMAC
    (``ctx.tag()``), is made when they leave the controller's memory (a VM file) or are asked for
    (``Migrator.last_states``), not while the flows are held: ~30 us a state, 11-31 ms for 1,000."""

    name = "validate"

    def do(self, ctx: MigrationContext) -> None:
        ctx.tagged = []
        ctx.states = [fs.expect(PROGRAM, ctx.program_version) for v in ctx.saved.values() for fs in v]


class Load(Step):
    """Slots on the target, the states loaded, ``flow_slots`` entries where needed (``ctx.loaded``)."""

    name = "load"

    def __init__(self) -> None:
        self.loaded: list[tuple[FlowKey, int]] = []   # filled as LOAD replies come back
        self.placing: list[FlowKey] = []              # references whose lookup entries may be written

    def do(self, ctx: MigrationContext) -> None:
        self.placing = [k for items in ctx.by_src.values() for k, _ in items]
        ctx.loaded = load_states(ctx.ctrl, ctx.ctrl.nic(ctx.target), ctx.states, self.loaded)

    def undo(self, ctx: MigrationContext) -> None:
        if not self.placing and not self.loaded:
            return
        tnic = ctx.ctrl.nic(ctx.target)
        try:
            tnic.unplace([k for k in self.placing if k in tnic.placed])
            if self.loaded:
                tnic.run(C.CLEAR, self.loaded)
        except Exception as exc:  # noqa: BLE001
            ctx.problem("target cleanup", exc)
            return
        self.placing, self.loaded = [], []

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "loaded": [[str(k), slot] for k, slot in self.loaded]}


class OldPathWait(Step):
    """Optional (``old_path_wait`` > 0): before the flip, wait until the drain markers sent at the
    suspension are back from the far gateways — nothing of the batch is then still queued on an old
    path, so no packet of it can arrive behind the new path's (a slow old queue: the `degrade`
    scenario). Bounded: past ``old_path_wait`` the flip goes ahead. Changes nothing."""

    name = "old_path"

    RESEND_S = 0.025   # a marker tail-dropped by a full queue is followed by another (still behind R)

    def do(self, ctx: MigrationContext) -> None:
        t0 = time.perf_counter()
        deadline = t0 + ctx.old_path_wait
        tokens = ctx.rec.drain_tokens
        while True:
            pending = [i for i, ts in enumerate(tokens) if all(DRAIN_MARKERS.arrival(t) is None for t in ts)]
            left = deadline - time.perf_counter()
            if not pending or left <= 0:
                break
            if DRAIN_MARKERS.wait([tokens[i][-1] for i in pending], min(left, self.RESEND_S)):
                continue
            for i in pending:   # the suspension holds R back: a marker sent now is still behind all of it
                g, port = ctx.drain_paths[i]
                tokens[i].append(ctx.ctrl.gateway(g).send_drain_marker(port))
        if pending:
            log.info("old paths not drained within %.0f ms: switching anyway", ctx.old_path_wait * 1000)
        ctx.rec.old_path_wait_ms = round((time.perf_counter() - t0) * 1000, 3)

    def undo(self, ctx: MigrationContext) -> None:
        pass


class Redirect(Step):
    """The gateways' entries point at the target. Lossless: ``forward_after_drain(target, drain)`` (the
    gateway keeps punting the flow while it has punted more than it has seen replayed); after the
    Write (so the replays meet the new entry) the buffer is replayed in arrival order (PacketOut
    FORWARD) and every later punt passed on the same way as it arrives: none is overtaken. Drop mode:
    ``set_nic_port(target)``."""

    name = "redirect"

    def __init__(self) -> None:
        self.flipped: dict[str, list[FiveTuple]] = {}

    # a suspension older than this share of its lease is not flipped (rolled back instead): the gateways
    # would soon let the flow through to the old NIC by themselves, where its state is frozen
    LEASE_MARGIN = 0.8

    def do(self, ctx: MigrationContext) -> None:
        held = time.perf_counter() - ctx.t_suspend if ctx.t_suspend else 0.0
        if ctx.lease and held > self.LEASE_MARGIN * ctx.lease:
            raise RuntimeError(f"the suspension has lasted {held * 1000:.0f} ms, past {self.LEASE_MARGIN:.0%} of "
                               f"its {ctx.lease * 1000:.0f} ms lease: not flipped (raise --lease for such batches)")
        _on_gateways(ctx, lambda g, ts: self._start(ctx, g, ts), lambda g, ts: self._replay(ctx, g, ts))

    def _start(self, ctx: MigrationContext, g: str, ts: dict[FiveTuple, list[FlowKey]]) -> Callable[[], None]:
        drv = ctx.ctrl.gateway(g)
        port = drv.port_of(ctx.target)
        self.flipped[g] = list(ts)
        if ctx.lossless:
            drains = drv.alloc_drains(ts)
            ctx.at_flip[g] = drv.punts(ts)
            return drv.apply_async({t: drv.leased("forward_after_drain", ctx.lease, port=port, drain=drains[t])
                                    for t in ts})
        return drv.apply_async({t: ("set_nic_port", {"port": port}) for t in ts})

    @staticmethod
    def _replay(ctx: MigrationContext, g: str, ts: dict[FiveTuple, list[FlowKey]]) -> None:
        drv = ctx.ctrl.gateway(g)
        if ctx.lossless:   # after the flip's Write: the replays meet forward_after_drain
            drv.pass_through(list(ts), drv.port_of(ctx.target), forward=True)
        else:              # drop mode: the index only held the suspension's lease
            drv.free_drains(list(ts), background=True)

    def undo(self, ctx: MigrationContext) -> None:
        for g, ts in self.flipped.items():
            drv = ctx.ctrl.gateway(g)
            try:
                drv.stop_pass_through(ts)
                # an entry flipped to forward_after_drain(target): suspended toward the old NIC again,
                # so Suspend's undo replays the buffer there
                old = {t: drv.port_of(ctx.src_of[ctx.gw_tuples[g][t][0]]) for t in ts}
                back = {t: drv.leased("suspend_flow", ctx.lease, mode=SUSPEND_PUNT, port=old[t],
                                      drain=drv.drains.get(t, 0))
                        for t in ts if drv.entries.get(t, ("",))[0] == "forward_after_drain"}
                if back:
                    drv.apply(back)
            except Exception as exc:  # noqa: BLE001
                ctx.problem(f"restore on {g}", exc)
        self.flipped = {}

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "gateways": {g: _tuples(dict.fromkeys(ts)) for g, ts in self.flipped.items()}}


class Resume(Step):
    """Lossless: once a flow's punts are all replayed (punted == replayed: final) its entry becomes
    ``set_nic_port(target)`` and its drain index is freed; flows not drained within ``drain_wait`` stay
    on ``forward_after_drain`` and are settled in the background."""

    name = "resume"
    undoable = False

    def __init__(self) -> None:
        self.settled: dict[str, list[FiveTuple]] = {}
        self.finished = False

    def do(self, ctx: MigrationContext) -> None:
        self.settled = {g: [] for g in ctx.gw_tuples}

        def settle(g: str, ts: dict[FiveTuple, list[FlowKey]]) -> None:
            drv = ctx.ctrl.gateway(g)
            self.settled[g] = drv.settle_drains(list(ts), drv.port_of(ctx.target), ctx.drain_wait, counted=True,
                                                lease=ctx.lease)
        try:
            ctx.ctrl.fabric.parallel({g: (lambda g=g, ts=ts: settle(g, ts)) for g, ts in ctx.gw_tuples.items()})
        finally:
            self._finish(ctx)

    def _finish(self, ctx: MigrationContext) -> None:
        """The flows not settled go on in the background; the record gets the buffers' counts."""
        self.finished = True
        rec = ctx.rec
        for g, ts in ctx.gw_tuples.items():
            drv = ctx.ctrl.gateway(g)
            done = self.settled.get(g, [])
            settled = set(done)   # a set: a list made this O(n²), ~40 ms per gateway for 1,000 flows
            rest = [t for t in ts if t not in settled]
            if rest:
                log.warning("%s: %d flows still draining through the controller", g, len(rest))
                rec.reason = rec.reason or f"{len(rest)} flows still draining on {g} (settled in background)"
                drv.settle_drains_later(rest, drv.port_of(ctx.target), lease=ctx.lease)
            # punted after the flip: queued behind the earlier punts by forward_after_drain
            rec.packets_late += drv.punts(ts) - ctx.at_flip.get(g, 0)
            for buf in drv.stop_buffering(done).values():
                rec.packets_buffered += buf.total
                rec.packets_replayed += buf.replayed
                rec.packets_late += buf.late

    def failed(self, ctx: MigrationContext, exc: BaseException) -> None:
        if not self.finished:   # failed before settling began (e.g. a hook): all go to the background
            self._finish(ctx)
        ctx.rec.reason = f"drain not settled: {exc}"


class Release(Step):
    """The references are cleared from the source NICs — nothing reaches them any more — and their
    lookup entries deleted; runs while the gateways settle (other switches)."""

    name = "release"
    undoable = False
    concurrent = True

    def do(self, ctx: MigrationContext) -> None:
        for i, (g, port) in enumerate(ctx.drain_paths):   # the drain markers Suspend left for now
            if not ctx.rec.drain_tokens[i]:
                ctx.rec.drain_tokens[i].append(ctx.ctrl.gateway(g).send_drain_marker(port))

        def release(s: str, items: list[tuple[FlowKey, int]]) -> list[str]:
            drv = ctx.ctrl.nic(s)
            replies = drv.run(C.CLEAR, items)   # each answers with the state it cleared
            drv.unplace([k for k, _ in items if k in drv.placed])  # placed: synced from the device at start
            # path saves froze nothing: a reference that counted a packet since was reached past the
            # gateways' suspension, and its moved state misses that packet
            if s not in ctx.path_saved:
                return []
            return [f"{k} ({was.packets} -> {r.packets} packets)"
                    for (k, _), was, r in zip(items, ctx.path_saved[s], replies, strict=True)
                    if r.status == C.STATUS_OK and (r.packets, r.bytes) != (was.packets, was.bytes)]
        late = ctx.ctrl.fabric.parallel({s: (lambda s=s, items=items: release(s, items))
                                         for s, items in ctx.by_src.items()})
        stray = [f"{s}: {x}" for s, xs in late.items() for x in xs]
        if stray:
            log.error("migration #%d: %d reference(s) counted packets on their source after the path save: %s",
                      ctx.rec.id, len(stray), "; ".join(stray))
            ctx.rec.reason = (f"{len(stray)} reference(s) counted packets on their source after the path save, "
                              f"past the gateways' suspension (first: {stray[0]})")

    def failed(self, ctx: MigrationContext, exc: BaseException) -> None:
        ctx.rec.reason = f"release failed (stale state left on the source): {exc}"


def protocol_steps(lossless: bool, old_path_wait: float = 0.0) -> list[Step]:
    """The protocol's steps for one migration (fresh objects: they record what they change)."""
    steps: list[Step] = [Warm(), Suspend(), Quiesce(), Save(), Validate(), Load(), Redirect(), Release()]
    if old_path_wait > 0:
        steps.insert(6, OldPathWait())
    if lossless:
        steps.append(Resume())
    return steps


# ---- loading ---------------------------------------------------------------------------------------------
def load_states(ctrl: Any, tnic: Any, states: list[FlowState],
                done: list[tuple[FlowKey, int]] | None = None) -> list[tuple[FlowKey, int]]:
    """Load ``states`` on ``tnic``; returns (key, slot) in order. Each reference goes to one of its
    hash slots not known to be taken (found by the data plane without a lookup entry), else to an
    allocated slot with a ``flow_slots`` entry: planned from the inventory, so usually one round of
    LOADs. A hash slot held by a reference we did not know of (SLOT_BUSY) falls back to an
    allocated slot. ``done`` collects what is loaded as the replies come (for an undo)."""
    done = [] if done is None else done
    out: list[tuple[FlowKey, int] | None] = [None] * len(states)
    busy = ctrl.inventory.slots_on(tnic.name) | set(tnic.placed.values()) | {s for _, s in done}
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
                done.append((states[i].key, slot))
            elif r.status == C.STATUS_SLOT_BUSY:
                rest.append(i)
            else:
                tnic.check([r], [(states[i].key, slot)], "load")
    if rest:
        rest.sort()
        for i, item in zip(rest, _load_placed(ctrl, tnic, [states[i] for i in rest], done), strict=True):
            out[i] = item
    return [o for o in out if o is not None]


def _load_placed(ctrl: Any, tnic: Any, states: list[FlowState],
                 done: list[tuple[FlowKey, int]]) -> list[tuple[FlowKey, int]]:
    # slots known taken: the target's inventory and what this batch just loaded at hash slots
    busy = ctrl.inventory.slots_on(tnic.name) | {s for _, s in done}
    slots = tnic.allocate(len(states), busy)
    allocated = list(slots)
    try:
        items0 = [(fs.key, s) for fs, s in zip(states, slots, strict=True)]
        placing = ctrl.fabric.submit(tnic.place, items0)  # lookup entries while loading
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

