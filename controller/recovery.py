"""Finishing or undoing a migration whose controller died: run by ``Controller.start``.

What a dead controller can leave (docs/design.md "Crash consistency"): gateway entries still on
``suspend_flow`` (the flow's packets punted to nobody or dropped, until the data-plane lease expires) or
on ``forward_after_drain`` (flipped, its punts never replayed); drain cells holding its counts; the
references frozen (SUSPENDED) on their source NICs; states loaded on the target that no gateway sends
to; sources not released after the flip.

The decision per migration: rolled **forward** when the journal (``controller.journal``) shows it had
reached the commit point (``redirect``: every state was loaded on the target), else rolled **back**.
Entries no open journal record explains are judged by what they say: ``forward_after_drain(port)`` was
flipped (the target at ``port`` holds the state) → forward; ``suspend_flow(mode, port)`` → back to
``port``, the old NIC. Then, per gateway, one Write puts the entries right (``set_nic_port`` toward the
chosen NIC, or the entry as it was before the migration), the drain cells are reset, and on the NICs
each reference is resumed where the gateways now send it and cleared everywhere else (a CLEAR or RESUME
names its key: the NIC refuses it for a slot that holds another reference).

Nothing is done while another live controller holds the journal's lock (it is migrating), when this
controller is a backup on some switch (it cannot write), or without a journal (``--switch`` arguments
alone: no lock tells a live migration from a dead one; held entries are only reported). Every action is
reported (``Recovery``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from . import commands as C
from .flowstate import FlowKey, FlowStateError
from .gateway import MARKER, FiveTuple
from .journal import Journal, OpenMigration

__all__ = ["Recovery", "recover", "HELD"]

log = logging.getLogger(__name__)

HELD = ("suspend_flow", "forward_after_drain")   # the actions a migration leaves while it runs
PROTO_KIND = {6: "tcp", 17: "udp"}
ROCE_PORT = 4791


@dataclass
class Recovery:
    """What a recovery found and did."""

    skipped: str = ""                                            # why nothing was checked
    migrations: list[dict[str, Any]] = field(default_factory=list)   # journaled: id, pid, step, decision
    entries: dict[str, int] = field(default_factory=dict)       # gateway -> entries rewritten
    resumed: list[str] = field(default_factory=list)            # "nic: reference" made live again
    cleared: list[str] = field(default_factory=list)            # "nic: reference" stale copies removed
    problems: list[str] = field(default_factory=list)
    ms: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.migrations or any(self.entries.values()) or self.resumed or self.cleared)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """One line per finding, for the CLI (empty when there was nothing to recover)."""
        if not self:
            return [f"recovery skipped: {self.skipped}"] if self.skipped else []
        out = [f"recovered migration {m['id']} (controller pid {m['pid']} died before {m['step']}): "
               f"rolled {m['decision']}, {len(m['references'])} reference(s) on {m['home']}"
               for m in self.migrations]
        n = sum(self.entries.values())
        out.append(f"recovery: {n} gateway entr{'y' if n == 1 else 'ies'} put right "
                   f"({', '.join(f'{g} {c}' for g, c in sorted(self.entries.items()) if c) or 'none'}), "
                   f"{len(self.resumed)} reference(s) resumed, {len(self.cleared)} stale copies cleared "
                   f"in {self.ms:.1f} ms")
        out += [f"recovery problem: {p}" for p in self.problems]
        return out


def _key_of(t: FiveTuple) -> FlowKey | None:
    """The reference a gateway 5-tuple carries (TCP/UDP); None for RoCE (a 5-tuple may carry many QPs)."""
    if t.proto not in PROTO_KIND or (t.proto == 17 and ROCE_PORT in (t.sport, t.dport)):
        return None
    try:
        return FlowKey(PROTO_KIND[t.proto], t.src, t.dst, t.sport, t.dport).canonical()
    except FlowStateError:
        return None


def recover(ctrl: Any, journal: Journal | None) -> Recovery:
    """Put right what an interrupted migration left on ``ctrl``'s switches (see the module docstring).
    ``ctrl`` is a started ``Controller`` with every switch of its config."""
    t0 = time.perf_counter()
    if not all(c.is_primary for c in ctrl.fabric.switches.values()):
        return Recovery(skipped="not the primary controller of every switch")
    if journal is None:   # no lab config: no lock either, so a live migration cannot be told from a dead one
        held = sum(e[0] in HELD for drv in ctrl.gateways.values() for t, e in drv.entries.items() if t != MARKER)
        return Recovery(skipped="no journal (no --config): nothing touched",
                        problems=[f"{held} suspended gateway entr{'y' if held == 1 else 'ies'} left as they are: "
                                  "run with the lab's --config to recover them"] if held else [])
    if not journal.try_lock():
        return Recovery(skipped="another controller is migrating (journal locked)")
    try:
        out = Recovery()
        _recover(ctrl, journal, out)
        out.ms = round((time.perf_counter() - t0) * 1000, 3)
        if out:
            for line in out.lines():
                log.warning("%s", line)
        return out
    finally:
        journal.unlock()


def _recover(ctrl: Any, journal: Journal, out: Recovery) -> None:
    changes: dict[str, dict[FiveTuple, tuple[str, dict[str, int]] | None]] = defaultdict(dict)
    home: dict[FlowKey, str] = {}           # reference -> the NIC the gateways send it to now
    slots: dict[FlowKey, dict[str, int]] = defaultdict(dict)   # known slots: reference -> NIC -> slot
    readable = journal.key is not None
    if not readable and journal.path.exists() and journal.path.stat().st_size:
        out.problems.append(f"journal {journal.path} not read: no HMAC key (judging by the entries alone)")
    opened = journal.open_migrations() if readable else []
    for m in opened:
        _journaled(ctrl, m, changes, home, slots, out)
    # entries no open migration explains: judged by what they say
    for g, drv in ctrl.gateways.items():
        names = {p: n for n, p in drv.nic_ports.items()}
        for t, (action, params) in list(drv.entries.items()):
            if t == MARKER or t in changes[g] or action not in HELD:
                continue
            changes[g][t] = ("set_nic_port", {"port": params["port"]})
            key, nic = _key_of(t), names.get(params["port"])
            if key is None or nic is None:
                out.problems.append(f"{g}: {action} entry for {t} settled to port {params['port']}; its NIC "
                                    "slots are left to aging (not a TCP/UDP reference of a known NIC)")
            else:
                home[key] = nic
    for g, ch in changes.items():
        if not ch:
            continue
        drv = ctrl.gateway(g)
        try:
            drv.stop_pass_through(list(ch))
            drv.apply(ch)
            drv.free_drains(list(ch))
            out.entries[g] = len(ch)
        except Exception as exc:  # noqa: BLE001 - report, go on with the other switches
            out.problems.append(f"{g}: entries not rewritten: {exc}")
    _nics(ctrl, home, slots, out)
    if readable:
        for m, d in zip(opened, out.migrations, strict=True):
            journal.end(m.id, f"recovered: rolled {d['decision']}")
        journal.compact()


def _journaled(ctrl: Any, m: OpenMigration, changes: dict, home: dict[FlowKey, str],
               slots: dict[FlowKey, dict[str, int]], out: Recovery) -> None:
    b = m.begin
    forward = m.committed
    target = b.get("target", "")
    refs: list[str] = []
    for src, items in b.get("sources", {}).items():
        for kd, slot in items:
            try:
                k = FlowKey.from_dict(kd)
            except FlowStateError as exc:
                out.problems.append(f"journal {m.id}: {exc}")
                continue
            refs.append(str(k))
            slots[k][src] = slot
            home[k] = target if forward else src
    for g, rows in b.get("gateways", {}).items():
        if g not in ctrl.gateways:
            out.problems.append(f"journal {m.id}: unknown gateway {g}")
            continue
        for row in rows:
            t = FiveTuple(*row["tuple"])
            before = row.get("before")
            if forward:
                changes[g][t] = ("set_nic_port", {"port": row["new_port"]})
            elif before is None:
                changes[g][t] = None                     # it had no entry: hash placement again
            elif before[0] in HELD:                       # (never journaled so; be safe)
                changes[g][t] = ("set_nic_port", {"port": row["old_port"]})
            else:
                changes[g][t] = (before[0], dict(before[1]))
    out.migrations.append({"id": m.id, "pid": m.pid, "step": m.last_step, "references": refs,
                           "decision": "forward" if forward else "back",
                           "home": target if forward else ", ".join(sorted(b.get("sources", {})))})


def _nics(ctrl: Any, home: dict[FlowKey, str], slots: dict[FlowKey, dict[str, int]], out: Recovery) -> None:
    """Each reference resumed on its home NIC, cleared (and its lookup entry deleted) on the others.
    The slots tried: those the journal names, the lookup entry's, the reference's hash slots."""
    if not home:
        return
    for name, drv in ctrl.nics.items():
        resume: list[tuple[FlowKey, int]] = []
        clear: list[tuple[FlowKey, int]] = []
        for k, h in home.items():
            cand = {s for s in (slots[k].get(name), drv.placed.get(k)) if s is not None}
            cand.update(drv.hash_slots(k))
            (resume if h == name else clear).extend((k, s) for s in sorted(cand))
        try:
            if resume:   # frozen (SUSPENDED) ones only: SAVE reads without changing anything
                frozen = [it for it, r in zip(resume, drv.run(C.SAVE, resume), strict=True)
                          if r.status == C.STATUS_OK and r.flags & C.SLOT_SUSPENDED]
                if frozen:
                    replies = drv.run(C.RESUME, frozen)
                    out.resumed += [f"{name}: {k}" for (k, _), r in zip(frozen, replies, strict=True)
                                    if r.status == C.STATUS_OK]
            if clear:
                replies = drv.run(C.CLEAR, clear)
                out.cleared += [f"{name}: {k}" for (k, _), r in zip(clear, replies, strict=True)
                                if r.status == C.STATUS_OK]
            stale = [k for k, _ in clear if k in drv.placed]
            drv.unplace(sorted(set(stale), key=str))
        except Exception as exc:  # noqa: BLE001 - report, go on with the other NICs
            out.problems.append(f"{name}: references not resumed/cleared: {exc}")
