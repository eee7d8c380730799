"""Many switches at once.

Owns ``Fabric``: a set of ``SwitchConnection`` objects (one per switch, no shared client state) and
``parallel``, which runs one call per switch concurrently on a thread pool — so a migration step
issues its one Write per switch at the same time on every switch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .connection import SwitchConnection, SwitchOptions
from .errors import P4RuntimeError

__all__ = ["Fabric"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Fabric:
    """Connections to a set of switches, addressed by switch name."""

    def __init__(self, max_workers: int = 16) -> None:
        self.switches: dict[str, SwitchConnection] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fabric")

    def __getitem__(self, name: str) -> SwitchConnection:
        try:
            return self.switches[name]
        except KeyError:
            raise KeyError(f"unknown switch {name!r} (known: {', '.join(sorted(self.switches))})") from None

    def __contains__(self, name: str) -> bool:
        return name in self.switches

    def add(self, conn: SwitchConnection) -> SwitchConnection:
        self.switches[conn.name] = conn
        return conn

    def connect(self, options: Iterable[SwitchOptions], timeout: float | None = None) -> None:
        """Connect to every switch concurrently; raises the first failure after all attempts end."""
        conns = [SwitchConnection(o) for o in options]
        results = self.parallel({c.name: (lambda c=c: c.connect(timeout)) for c in conns},
                                raise_first=False)
        errors = [r for r in results.values() if isinstance(r, Exception)]
        for c in conns:
            if not isinstance(results[c.name], Exception):
                self.add(c)
        if errors:
            raise errors[0]

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on the fabric's pool (one call alongside others on other switches)."""
        return self._pool.submit(fn, *args)

    def parallel(self, calls: dict[str, Callable[[], T]], raise_first: bool = True) -> dict[str, Any]:
        """Run ``calls[name]()`` for every name concurrently; return {name: result or exception}."""
        if len(calls) == 1:
            (name, fn), = calls.items()
            try:
                return {name: fn()}
            except Exception as exc:
                if raise_first:
                    raise
                return {name: exc}
        futures = {name: self._pool.submit(fn) for name, fn in calls.items()}
        out: dict[str, Any] = {}
        first: Exception | None = None
        for name, fut in futures.items():
            try:
                out[name] = fut.result()
            except Exception as exc:  # noqa: BLE001 - collected and re-raised below
                out[name] = exc
                first = first or exc
        if raise_first and first is not None:
            raise first
        return out

    def close(self) -> None:
        for c in self.switches.values():
            try:
                c.close()
            except P4RuntimeError:
                log.debug("close %s failed", c.name, exc_info=True)
        self._pool.shutdown(wait=False)
