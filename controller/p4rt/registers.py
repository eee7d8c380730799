"""Register access for one switch, by what the switch serves.

Owns ``RegisterAccess``: reads and writes register cells through P4Runtime RegisterEntry when the
server implements it (the embedded target), else — the server answered UNIMPLEMENTED, as BMv2's
does — through BMv2's Thrift runtime API (``controller.p4rt.thrift``) on the switch's Thrift port
(config ``thrift_port``; ``SwitchOptions.extra["thrift_port"]``). The choice is made on the first
call by capability, never by target name, and kept (``via``). Both paths return the same values:
cells as {(register_id, index): value}, values unsigned.

Where neither works (UNIMPLEMENTED and no Thrift answers) the P4Runtime UNIMPLEMENTED error is raised
as is, so callers keep their ``is_unimplemented()`` fallbacks (in-band commands on the NICs).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence

from .connection import SwitchConnection
from .errors import P4RuntimeError
from .thrift import BmThrift, ThriftError

__all__ = ["RegisterAccess", "RegisterError", "thrift_client"]

log = logging.getLogger(__name__)

# what callers catch for a failed register operation, whichever path served it
RegisterError = (P4RuntimeError, ThriftError)
READ_ALL_FROM = 32       # Thrift: more cells of one register than this -> one read_all (≈ 40 cell reads)


def thrift_client(conn: SwitchConnection, timeout: float = 5.0) -> BmThrift | None:
    """A Thrift client for the switch behind ``conn`` (same host as its gRPC address, the port from
    ``SwitchOptions.extra["thrift_port"]``); None when no Thrift port is known."""
    port = (getattr(conn.options, "extra", None) or {}).get("thrift_port")
    if not port:
        return None
    host = str(getattr(conn.options, "address", "")).rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
    return BmThrift(host, int(port), timeout, name=f"{conn.name} (thrift)")


class RegisterAccess:
    """Register cells of one switch through P4Runtime, or BMv2 Thrift where P4Runtime has none."""

    def __init__(self, conn: SwitchConnection, thrift: BmThrift | None = None) -> None:
        self.conn = conn
        self.name = conn.name
        self.thrift = thrift if thrift is not None else thrift_client(conn)
        self.via: str | None = None          # "p4runtime" | "thrift" | "none" (neither) | None: not tried
        self._lock = threading.Lock()

    def close(self) -> None:
        if self.thrift is not None:
            self.thrift.close()

    @property
    def helper(self):
        if self.conn.helper is None:
            raise RuntimeError(f"{self.name}: no P4Info (is the pipeline set?)")
        return self.conn.helper

    # ---- capability -------------------------------------------------------------------------------
    def available(self) -> bool:
        """True when some path serves registers (probes once: one cell of the first register)."""
        if self.via is None:
            names = self.helper.names("register")
            if not names:
                return False
            try:
                self.read([(self.helper.get_id("register", names[0]), 0)])
            except P4RuntimeError as exc:
                if not exc.is_unimplemented():
                    raise
        return self.via in ("p4runtime", "thrift")

    def _fall_back(self, exc: P4RuntimeError) -> bool:
        """P4Runtime said UNIMPLEMENTED: use Thrift if it answers (decided once)."""
        with self._lock:
            if self.via is None:
                if self.thrift is None:
                    self.via = "none"
                else:
                    try:
                        self.thrift.show_ports()
                        self.via = "thrift"
                    except ThriftError as terr:
                        log.info("%s: no BMv2 Thrift either (%s)", self.name, terr)
                        self.via = "none"
                log.info("%s: P4Runtime register access UNIMPLEMENTED; %s", self.name,
                         "using BMv2 Thrift" if self.via == "thrift" else "no register access")
        return self.via == "thrift"

    # ---- cells ------------------------------------------------------------------------------------
    def read(self, cells: Sequence[tuple[int, int | None]]) -> dict[tuple[int, int], int]:
        """Register cells (register_id, index, or None for every cell) -> {(register_id, index): value}."""
        if self.via != "thrift":
            try:
                out = self.conn.read_registers(cells)
            except P4RuntimeError as exc:
                if not (exc.is_unimplemented() and self._fall_back(exc)):
                    raise
            else:
                self.via = "p4runtime"
                return out
        return self._thrift_read(cells)

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        """Set cells (register name, index, value), one batched Write on P4Runtime."""
        if not cells:
            return
        if self.via != "thrift":
            h = self.helper
            try:
                self.conn.write_raw([h.register_update_raw(n, i, v) for n, i, v in cells])
            except P4RuntimeError as exc:
                if not (exc.is_unimplemented() and self._fall_back(exc)):
                    raise
            else:
                self.via = "p4runtime"
                return
        self._thrift_write(cells)

    def _thrift_read(self, cells: Sequence[tuple[int, int | None]]) -> dict[tuple[int, int], int]:
        assert self.thrift is not None
        h = self.helper
        wanted: dict[int, set[int] | None] = {}      # register id -> indexes (None: every cell)
        for rid, index in cells:
            cur = wanted.setdefault(rid, set())
            if index is None:
                wanted[rid] = None
            elif cur is not None:
                cur.add(index)
        out: dict[tuple[int, int], int] = {}
        for rid, indexes in wanted.items():
            info = h.get("register", h.get_name(rid))
            name, mask = info.name, (1 << info.bitwidth) - 1 if info.bitwidth else -1
            if indexes is None or len(indexes) > READ_ALL_FROM:
                values = self.thrift.register_read_all(name)
                keep = range(len(values)) if indexes is None else sorted(i for i in indexes if i < len(values))
                out.update({(rid, i): values[i] & mask for i in keep})
            else:
                out.update({(rid, i): self.thrift.register_read(name, i) & mask for i in sorted(indexes)})
        return out

    def _thrift_write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        """Per register, runs of consecutive cells with one value in one write_range call."""
        assert self.thrift is not None
        by_reg: dict[str, dict[int, int]] = defaultdict(dict)
        for name, index, value in cells:
            by_reg[self.helper.get("register", name).name][index] = value
        for name, cellmap in by_reg.items():
            run: list[int] = []
            for index in sorted(cellmap):
                if run and (index != run[-1] + 1 or cellmap[index] != cellmap[run[0]]):
                    self._write_run(name, run, cellmap[run[0]])
                    run = []
                run.append(index)
            if run:
                self._write_run(name, run, cellmap[run[0]])

    def _write_run(self, name: str, run: list[int], value: int) -> None:
        assert self.thrift is not None
        if len(run) == 1:
            self.thrift.register_write(name, run[0], value)
        else:
            self.thrift.register_write_range(name, run[0], run[-1] + 1, value)
