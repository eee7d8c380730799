"""StreamChannel connections and primary election (P4Runtime 1.x §5, "Client Arbitration").

Per (device, role) the client with the highest election_id is the primary; every change of primary is
announced to all clients of the role (OK to the primary, ALREADY_EXISTS to backups). A client that sends
no election_id is a permanent backup. Two live clients may not share an election_id.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from typing import Any

import grpc
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.errors import P4RTError, invalid, not_found

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class Connection:
    """One StreamChannel: its outbound queue and its arbitration state."""

    def __init__(self, peer: str = "") -> None:
        self.id = next(_ids)
        self.peer = peer
        self.out: queue.Queue = queue.Queue()
        self.role: str | None = None  # set by the first arbitration message
        self.election_id: tuple[int, int] | None = None
        self.error: P4RTError | None = None

    def send(self, msg: Any) -> None:
        self.out.put(msg)

    def close(self, error: P4RTError | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.out.put(None)


class Arbitrator:
    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.lock = threading.Lock()
        self.roles: dict[str, list[Connection]] = {}
        self._primary: dict[str, Connection | None] = {}

    def _elect(self, role: str) -> Connection | None:
        conns = [c for c in self.roles.get(role, []) if c.election_id is not None]
        return max(conns, key=lambda c: c.election_id) if conns else None  # type: ignore[arg-type,return-value]

    def _notice(self, role: str, conn: Connection, primary: Connection | None) -> Any:
        msg = p4runtime_pb2.StreamMessageResponse()
        a = msg.arbitration
        a.device_id = self.device_id
        if role:
            a.role.name = role
        if primary is not None:
            a.election_id.high, a.election_id.low = primary.election_id  # type: ignore[misc]
        if primary is conn:
            a.status.code, a.status.message = code_pb2.OK, "Is primary"
        elif primary is not None:
            a.status.code, a.status.message = code_pb2.ALREADY_EXISTS, "Not primary"
        else:
            a.status.code, a.status.message = code_pb2.NOT_FOUND, "No primary"
        return msg

    def update(self, conn: Connection, upd: Any) -> None:
        """Handle a MasterArbitrationUpdate; raises P4RTError when the stream must be closed."""
        if upd.device_id != self.device_id:
            raise not_found(f"unknown device id {upd.device_id}")
        role = upd.role.name if upd.HasField("role") else ""
        eid = (upd.election_id.high, upd.election_id.low) if upd.HasField("election_id") else None
        with self.lock:
            if conn.role is not None and conn.role != role:
                raise invalid("a stream cannot change its role")
            conns = self.roles.setdefault(role, [])
            if eid is not None and any(c is not conn and c.election_id == eid for c in conns):
                raise invalid(f"election id {eid} is already used by another client of this role")
            if conn not in conns:
                conns.append(conn)
            conn.role, conn.election_id = role, eid
            old = self._primary.get(role)
            new = self._elect(role)
            self._primary[role] = new
            targets = conns if new is not old else [conn]
            for c in targets:
                c.send(self._notice(role, c, new))
        log.info("stream %d (%s): role %r election id %s, primary is stream %s", conn.id, conn.peer, role,
                 eid, new.id if new else None)

    def remove(self, conn: Connection) -> None:
        with self.lock:
            if conn.role is None:
                return
            conns = self.roles.get(conn.role, [])
            if conn in conns:
                conns.remove(conn)
            if self._primary.get(conn.role) is conn:
                new = self._elect(conn.role)
                self._primary[conn.role] = new
                for c in conns:
                    c.send(self._notice(conn.role, c, new))

    def primary(self, role: str = "") -> Connection | None:
        with self.lock:
            return self._primary.get(role)

    def check_writer(self, role: str, election_id: Any, has_eid: bool) -> None:
        """A Write/SetForwardingPipelineConfig must come with the primary's election id."""
        with self.lock:
            prim = self._primary.get(role)
            eid = (election_id.high, election_id.low) if has_eid else None
            if prim is None or eid is None or prim.election_id != eid:
                raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                                f"not the primary client (election id {eid}) for role {role!r}")
