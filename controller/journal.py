"""The migration journal: what a controller was doing, for the next one if it dies mid-migration.

A lab's controllers share one journal file (``ControllerConfig.journal``, beside the lab's config). It
is an append-only file of JSON lines, each tagged with an HMAC-SHA256 under the lab's FlowState key (a
line that does not verify is ignored: a forged journal cannot steer a recovery):

- ``begin``   before the first step: the batch (sources and slots, target, mode) and, per gateway, each
              5-tuple of the batch with its entry before the migration and the ports of its old NIC and
              of the target; fsync'd.
- ``step``    before each step, its name; the step called ``redirect`` (the first that points a gateway
              at the target: the commit point, everything is loaded there) is fsync'd, the others are
              only written (a write survives the death of the process, which is what the journal is for;
              the fsyncs protect the two records recovery decides by against a crash of the host).
- ``end``     the outcome; when no migration is left open the file is emptied.

A process migrating holds the journal's lock (``hold``: an ``flock`` on ``<journal>.lock``, which the
kernel drops when the process dies), so a recovery (``controller.recovery``) run by another
controller never touches a migration that is still alive; migrations of two processes are serialized
by it too (drain indexes are allocated per process). No import of the migration package or the
runtime: both use this module (``controller.recovery`` reads it at ``Controller.start``).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalBusy", "OpenMigration", "COMMIT_STEP"]

log = logging.getLogger(__name__)

COMMIT_STEP = "redirect"   # from here on a recovery rolls the migration forward
SYNCED = {"begin", COMMIT_STEP}


class JournalBusy(RuntimeError):
    """Another live controller process holds the journal (it is migrating)."""


@dataclass
class OpenMigration:
    """A migration the journal saw begin and not end."""

    id: str
    begin: dict[str, Any]
    steps: list[str] = field(default_factory=list)
    pid: int = 0

    @property
    def committed(self) -> bool:
        """The gateways were being pointed at the target (everything was loaded there)."""
        return COMMIT_STEP in self.steps

    @property
    def last_step(self) -> str:
        return self.steps[-1] if self.steps else "begin"


class Journal:
    def __init__(self, path: str | Path, key: bytes | None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.key = key
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._depth = 0
        self._open: set[str] = set()

    # ---- the lock ------------------------------------------------------------------------------------
    def try_lock(self) -> bool:
        """Take the lock if no other process holds it (re-entrant in this process); False if one does."""
        with self._mutex:
            if self._lock_fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
                self._lock_fd = fd
            self._depth += 1
            return True

    def unlock(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth <= 0 and self._lock_fd is not None:
                fd, self._lock_fd, self._depth = self._lock_fd, None, 0
                self._close()
                os.close(fd)   # drops the flock

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @contextmanager
    def hold(self, timeout: float = 30.0) -> Iterator[Journal]:
        """The lock for a migration: waits up to ``timeout`` s for another process's migration;
        JournalBusy when it is still held then."""
        deadline = time.monotonic() + timeout
        while not self.try_lock():
            if time.monotonic() >= deadline:
                raise JournalBusy(f"another controller is migrating in this lab (lock {self.lock_path} held "
                                  f"for {timeout:.0f} s)")
            time.sleep(0.01)
        try:
            yield self
        finally:
            self.unlock()

    # ---- records -------------------------------------------------------------------------------------
    def _tag(self, body: bytes) -> str:
        assert self.key is not None
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()

    def _append(self, rec: dict[str, Any], sync: bool) -> None:
        if self.key is None:
            return
        body = json.dumps(rec, separators=(",", ":"), sort_keys=True).encode()
        line = b'{"mac":"' + self._tag(body).encode() + b'","r":' + body + b"}\n"
        with self._mutex:
            if self._fd is None:   # kept open while the lock is held (closed by ``unlock``)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, line)
            if sync:
                os.fsync(self._fd)
            if self._lock_fd is None:
                self._close()

    def begin(self, ctx: Any) -> str:
        """The ``begin`` record of ``ctx`` (a ``MigrationContext``, before any step); returns the
        migration's journal id."""
        mid = uuid.uuid4().hex[:16]
        gateways: dict[str, list[dict[str, Any]]] = {}
        for g, ts in ctx.gw_tuples.items():
            drv = ctx.ctrl.gateway(g)
            gateways[g] = [{"tuple": [t.src, t.dst, t.proto, t.sport, t.dport],
                            "before": drv.entries.get(t),
                            "old_port": drv.port_of(ctx.src_of[ks[0]]),
                            "new_port": drv.port_of(ctx.target)} for t, ks in ts.items()]
        self._append({"m": mid, "t": "begin", "pid": os.getpid(), "time": time.time(), "rec": ctx.rec.id,
                      "mode": ctx.rec.mode, "target": ctx.target,
                      "sources": {s: [[k.to_dict(), slot] for k, slot in items] for s, items in ctx.by_src.items()},
                      "gateways": gateways}, sync=True)
        with self._mutex:
            self._open.add(mid)
        return mid

    def step(self, mid: str, step: Any) -> None:
        name = step if isinstance(step, str) else step.name
        self._append({"m": mid, "t": "step", "step": name}, sync=name in SYNCED)

    def end(self, mid: str, outcome: str, note: str = "") -> None:
        """The migration is over (``outcome``); when this process began it and none of its own is left
        open, the file is emptied (a recovery ending other processes' migrations compacts once, after
        the last)."""
        self._append({"m": mid, "t": "end", "outcome": outcome, "note": note}, sync=False)
        with self._mutex:
            mine = mid in self._open
            self._open.discard(mid)
            if mine and not self._open and self._lock_fd is not None:   # only the holder may empty it
                self.compact()

    def hook(self, mid: str) -> Any:
        """A ``before_step`` hook writing the ``step`` records of migration ``mid``."""
        def journal_step(step: Any, ctx: Any) -> None:
            self.step(mid, step)
        return journal_step

    def compact(self) -> None:
        """Keep only the records of migrations still open (all of them, when none is: an empty file)."""
        with self._mutex:
            if not self.path.exists():
                return
            keep = self.open_migrations()
            if not keep:
                with open(self.path, "r+b") as f:
                    f.truncate(0)
                    os.fsync(f.fileno())

    # ---- reading -------------------------------------------------------------------------------------
    def records(self, verify: bool = True) -> Iterator[dict[str, Any]]:
        """The journal's records in order; lines that do not verify (or parse) are logged and skipped."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    body = json.dumps(d["r"], separators=(",", ":"), sort_keys=True).encode()
                    if verify and (self.key is None or not hmac.compare_digest(self._tag(body), d["mac"])):
                        raise ValueError("bad tag")
                    yield d["r"]
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("%s:%d: journal line ignored (%s)", self.path, n, exc)

    def open_migrations(self, verify: bool = True) -> list[OpenMigration]:
        """The migrations with a ``begin`` and no ``end``, in order."""
        out: dict[str, OpenMigration] = {}
        for r in self.records(verify):
            mid = r.get("m", "")
            if r.get("t") == "begin":
                out[mid] = OpenMigration(mid, r, pid=r.get("pid", 0))
            elif r.get("t") == "step" and mid in out:
                out[mid].steps.append(r.get("step", ""))
            elif r.get("t") == "end":
                out.pop(mid, None)
        return list(out.values())
