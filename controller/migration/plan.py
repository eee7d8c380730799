"""Migration steps as objects, and the plan that runs them with rollback.

A ``Step`` does one thing to the switches (``do``), remembers on itself what it changed, and can
reverse exactly that (``undo``: idempotent, best effort — a part that cannot be undone is reported as
a problem and the rest is still undone). ``describe()`` says what it changed as JSON-able data (for a
journal written before and after each step).

A ``Plan`` runs its steps in order, each timed into the record's ``steps_ms``. The steps before the
first non-undoable one may be rolled back: when one fails (or a ``before_step`` hook raises for it),
that step and every completed one are undone in reverse order and the record says ``rolled_back``
(``lost`` when a source NIC is unreachable, ``failed`` when the undo had problems). The first
non-undoable step is the point of no return (the record's downtime ends there); a failure from then
on is only reported (``Step.failed``). A ``concurrent`` step (non-undoable only) runs alongside the
steps after it and is waited for at the end.

``MigrationContext`` carries the batch (sources, gateway 5-tuples, target) and what steps hand to
later ones (path-marker tokens, counts, saved and validated states, loaded slots).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .. import commands as C
from ..flowstate import FlowKey, FlowState, FlowStateError
from ..gateway import DRAIN_MARKERS, FiveTuple
from ..nic import NicError
from ..p4rt.errors import ConnectionFailed, P4RuntimeError

if TYPE_CHECKING:
    from ..runtime import Controller

__all__ = ["MigrationRecord", "MigrationContext", "Step", "StepHook", "Plan"]

log = logging.getLogger(__name__)

# failures a step is expected to meet (others are logged with their traceback; all are rolled back)
EXPECTED = (P4RuntimeError, NicError, C.CommandError, FlowStateError, KeyError, RuntimeError, OSError, ValueError)


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
    # the old paths: drain markers (at the suspension, or after the flip; DRAIN_MARKERS arrivals), and the
    # optional bounded wait for them before the flip (``old_path_wait``)
    old_path_wait_ms: float | None = None          # how long the flip waited (None: switched at once)
    # how the sources' states were read once their old paths were quiet: "path" (path saves: a SAVE
    # out of each gateway behind its traffic: nothing frozen), "markers" (path markers,
    # then SUSPEND) or "counters" (the markers did not come back: counters sampled until stable)
    saved_by: str = ""
    # per old path (gateway port toward an old NIC): the drain markers sent along it, first at the
    # suspension, then again while waiting (a marker can be tail-dropped by the full queue it follows)
    drain_tokens: list[list[int]] = field(default_factory=list, repr=False)
    t_suspend_pc: float = field(default=0.0, repr=False)   # perf_counter of the suspension / the flip
    t_flip_pc: float = field(default=0.0, repr=False)

    def old_path(self) -> dict[str, float | None]:
        """When the old paths were empty: ``drained_ms`` after the suspension (None: not all drain
        markers back yet), and ``after_flip_ms``, how long after the flip (0: before it) — the time
        during which packets queued on an old path could still arrive behind the new path's. Without
        ``old_path_wait`` the markers leave after the flip: both are then upper bounds."""
        arrivals = [min((a for a in map(DRAIN_MARKERS.arrival, tokens) if a is not None), default=None)
                    for tokens in self.drain_tokens]
        if not arrivals or any(a is None for a in arrivals) or not self.t_suspend_pc:
            return {"drained_ms": None, "after_flip_ms": None}   # no path, or a marker lost on the way
        last = max(a for a in arrivals if a is not None)
        after = max(0.0, last - self.t_flip_pc) * 1000 if self.t_flip_pc else None
        return {"drained_ms": round((last - self.t_suspend_pc) * 1000, 3),
                "after_flip_ms": None if after is None else round(after, 3)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("drain_tokens", "t_suspend_pc", "t_flip_pc"):
            d.pop(k)
        d["old_path"] = self.old_path()
        return d

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


@dataclass
class MigrationContext:
    """One batch being moved, and what the steps pass on to each other."""

    ctrl: Controller
    rec: MigrationRecord
    target: str
    by_src: dict[str, list[tuple[FlowKey, int]]]        # source NIC -> (key, slot) of its references
    src_of: dict[FlowKey, str]
    gw_tuples: dict[str, dict[FiveTuple, list[FlowKey]]]  # gateway -> its 5-tuples of the batch
    program_version: int = C.FLOWMIG_VERSION
    quiesce_timeout: float = 0.2
    quiesce_interval: float = 0.001
    barrier_timeout: float = 1.0
    drain_wait: float = 1.0
    old_path_wait: float = 0.0    # > 0: the flip waits (bounded) for the old paths to drain
    # the data-plane lease (s) of every suspend_flow / forward_after_drain entry the steps write: a
    # suspension nobody renews for that long resumes by itself (0: none; GatewayDriver.leased)
    lease: float = 1.0
    # handed on by the steps
    t_suspend: float = 0.0                                # perf_counter when the suspension began
    tokens: list[tuple[str, int]] = field(default_factory=list)   # (old NIC, path-marker token)
    # path saves: batches of up to PATH_SAVE_MAX references are read by SAVEs sent out of the gateways
    # behind their traffic (Suspend sends them, Quiesce waits: the (source, items, pending) of each path)
    path_save: bool = True
    path_saves: list[tuple[str, list[tuple[FlowKey, int]], Any]] = field(default_factory=list)
    path_saved: dict[str, list[Any]] = field(default_factory=dict)   # source -> replies, by_src order
    drain_paths: list[tuple[str, int]] = field(default_factory=list)   # (gateway, port) per rec.drain_tokens
    counts: dict[str, list[int] | None] = field(default_factory=dict)
    saved: dict[str, list[FlowState]] = field(default_factory=dict)
    tagged: list[dict[str, Any]] = field(default_factory=list)     # the trusted buffer (HMAC-tagged): tag()
    states: list[FlowState] = field(default_factory=list)          # validated back from ``tagged``
    loaded: list[tuple[FlowKey, int]] = field(default_factory=list)
    at_flip: dict[str, int] = field(default_factory=dict)          # gateway -> punts when flipped
    problems: list[str] = field(default_factory=list)              # what an undo could not do

    @property
    def lossless(self) -> bool:
        return self.rec.mode == "lossless"

    def tag(self) -> list[dict[str, Any]]:
        """The trusted buffer: ``states`` as records tagged with the lab's HMAC key (made once, when first
        needed: a VM file, ``Migrator.last_states``; the migration itself loads ``states``)."""
        if len(self.tagged) != len(self.states):
            key = self.ctrl.config.hmac_key
            self.tagged = [fs.to_dict(key) for fs in self.states]
        return self.tagged

    def problem(self, what: str, exc: BaseException) -> None:
        """An undo could not do ``what``: logged and reported in the record's reason."""
        log.warning("migration #%d rollback: %s: %s", self.rec.id, what, exc)
        self.problems.append(f"{what}: {exc}")

    def source_dead(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionFailed) or (
            isinstance(exc, P4RuntimeError) and exc.is_unavailable() and exc.switch in self.by_src)


class Step(ABC):
    """One step of a migration: ``do`` it, ``undo`` what it changed (recorded on the step)."""

    name: ClassVar[str] = "step"
    undoable: ClassVar[bool] = True     # False: after the point of no return (a failure is reported)
    concurrent: ClassVar[bool] = False  # non-undoable only: runs alongside the next steps

    @abstractmethod
    def do(self, ctx: MigrationContext) -> None:
        """Perform the step. Record what is changed *before* changing it (a failing RPC may still have
        landed), so ``undo`` can reverse a partial step too."""

    def undo(self, ctx: MigrationContext) -> None:  # noqa: B027 - a step changing nothing undoes nothing
        """Reverse what ``do`` changed. Idempotent; best effort: report what fails with
        ``ctx.problem`` and go on."""

    def failed(self, ctx: MigrationContext, exc: BaseException) -> None:
        """A non-undoable step failed: say so in the record (the migration itself stands)."""
        ctx.rec.reason = f"{self.name} failed: {exc}"

    def describe(self) -> dict[str, Any]:
        """What this step changed, as JSON-able data."""
        return {"step": self.name}


StepHook = Callable[[Step, MigrationContext], None]


class Plan:
    """Steps in order; ``run`` executes them with rollback (see the module docstring)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.completed: list[Step] = []
        seen_final = False
        for s in self.steps:
            if s.concurrent and s.undoable:
                raise ValueError(f"step {s.name!r}: only a non-undoable step may run concurrently")
            if s.undoable and seen_final:
                raise ValueError(f"step {s.name!r}: undoable step after the point of no return")
            seen_final = seen_final or not s.undoable

    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def insert_before(self, name: str, steps: Sequence[Step]) -> None:
        """Insert ``steps`` before the step called ``name`` (ValueError if there is none)."""
        i = self.names().index(name)
        self.steps[i:i] = list(steps)
        Plan(self.steps)  # re-check the order rules

    def _attempt(self, step: Step, ctx: MigrationContext, hooks: Sequence[StepHook]) -> Exception | None:
        t0 = time.perf_counter()
        try:
            for hook in hooks:
                hook(step, ctx)
            step.do(ctx)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure of a step is handled by the plan
            return exc
        finally:
            ms = (time.perf_counter() - t0) * 1000
            ctx.rec.steps_ms[step.name] = ctx.rec.steps_ms.get(step.name, 0.0) + ms

    def run(self, ctx: MigrationContext, hooks: Sequence[StepHook] = ()) -> bool:
        """Run every step; True when the point of no return was passed (the record's outcome is then
        the caller's to set), False after a rollback (outcome and reason set here)."""
        background: list[tuple[Step, Future[Exception | None]]] = []
        committed = False
        for step in self.steps:
            if not step.undoable and not committed:
                committed = True
                ctx.rec.t_flip_pc = time.perf_counter()
                ctx.rec.downtime_ms = (ctx.rec.t_flip_pc - ctx.t_suspend) * 1000 if ctx.t_suspend else 0.0
            if step.concurrent:
                background.append((step, ctx.ctrl.fabric.submit(self._attempt, step, ctx, hooks)))
                continue
            exc = self._attempt(step, ctx, hooks)
            if exc is None:
                self.completed.append(step)
            elif step.undoable:
                self._rollback(ctx, step, exc)
                return False
            else:
                log.warning("migration #%d: %s failed after the point of no return: %s", ctx.rec.id, step.name, exc)
                step.failed(ctx, exc)
        for step, fut in background:
            exc = fut.result()
            if exc is None:
                self.completed.append(step)
            else:
                log.warning("migration #%d: %s failed after the point of no return: %s", ctx.rec.id, step.name, exc)
                step.failed(ctx, exc)
        return True

    def _rollback(self, ctx: MigrationContext, failed: Step, exc: Exception) -> None:
        rec = ctx.rec
        rec.failed_step, rec.reason = failed.name, str(exc)
        log.warning("migration #%d failed at %s (%s); rolling back", rec.id, failed.name, exc,
                    exc_info=not isinstance(exc, EXPECTED))
        # the failed step too: part of it may have landed
        for step in reversed([*self.completed, failed]):
            try:
                step.undo(ctx)
            except Exception as uexc:  # noqa: BLE001 - keep undoing the others
                ctx.problem(f"undo {step.name}", uexc)
        if ctx.source_dead(exc):
            rec.outcome = "lost"
            rec.reason = f"source NIC unreachable during {failed.name}: {exc}"
        else:
            rec.outcome = "rolled_back" if not ctx.problems else "failed"
        if ctx.problems:
            rec.reason += "; rollback problems: " + "; ".join(ctx.problems)
