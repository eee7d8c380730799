"""Non-table P4Runtime entities: registers, counters, meters, the packet replication engine, digests.

Each ``write_*`` applies one update or raises ``P4RTError``. The register, counter and meter reads fill
``p4.v1.Entity`` messages in place, one per ``add()`` (``add`` appends an Entity to the ReadResponse being
built: under protobuf's upb runtime filling in place is the cheapest way to build one), and yield after
each so the server can read big objects in slices of the switch lock; ``read_pre`` and ``Digests.read``
return their (few) messages. Multicast groups and clone sessions are also kept here as the protobufs last
written (what a Read returns), while the pipeline holds the replicas it executes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.errors import P4RTError, invalid, not_found, unimplemented
from p4target.p4runtime.p4info import P4InfoIndex, SizedInfo, decode, encode
from p4target.p4runtime.tables import Add, fill_meter_config, meter_rates

log = logging.getLogger(__name__)
Update = p4runtime_pb2.Update


def _obj(kind: str, table: dict, info: SizedInfo) -> Any:
    try:
        return table[info.name]
    except KeyError:
        raise not_found(f"{kind} {info.name} is not in the device config") from None


def _indices(info: SizedInfo, size: int, msg: Any) -> range:
    if msg.HasField("index"):
        i = msg.index.index
        if not 0 <= i < size:
            raise out_of_range_idx(info, i, size)
        return range(i, i + 1)
    return range(size)


def out_of_range_idx(info: SizedInfo, i: int, size: int) -> P4RTError:
    return P4RTError(grpc.StatusCode.OUT_OF_RANGE, f"{info.name}: index {i} out of range 0..{size - 1}")


class Entities:
    """Reads and writes of the non-table entities of one installed pipeline."""

    def __init__(self, index: P4InfoIndex, pipeline: Any) -> None:
        self.index = index
        self.pipeline = pipeline
        self.mc_groups: dict[int, Any] = {}
        self.clone_sessions: dict[int, Any] = {}
        self.meter_cfg: dict[tuple[str, int], list] = {}

    # ------------------------------------------------------------ registers
    def write_register(self, utype: int, e: Any) -> None:
        if utype != Update.MODIFY:
            raise invalid("registers can only be modified")
        info = P4InfoIndex.lookup("register", self.index.registers, e.register_id)
        reg = _obj("register", self.pipeline.registers, info)
        if e.data.WhichOneof("data") != "bitstring":
            raise unimplemented(f"{info.name}: only bitstring register data is supported")
        value = decode(e.data.bitstring, info.bitwidth or reg.bitwidth, info.name)
        for i in _indices(info, reg.size, e):
            reg.write(i, value)

    def read_register(self, e: Any, add: Add) -> Iterator[None]:
        """One RegisterEntry per cell, filled in place (lazily)."""
        infos = ([P4InfoIndex.lookup("register", self.index.registers, e.register_id)] if e.register_id
                 else list(self.index.registers.values()))
        for info in infos:
            reg = _obj("register", self.pipeline.registers, info)
            rid, read = info.id, reg.read
            for i in _indices(info, reg.size, e):
                r = add().register_entry
                r.register_id, r.index.index, r.data.bitstring = rid, i, encode(read(i))
                yield

    # ------------------------------------------------------------ counters
    def write_counter(self, utype: int, e: Any) -> None:
        if utype != Update.MODIFY:
            raise invalid("counters can only be modified")
        info = P4InfoIndex.lookup("counter", self.index.counters, e.counter_id)
        ctr = _obj("counter", self.pipeline.counters, info)
        for i in _indices(info, ctr.size, e):
            ctr.write(i, e.data.packet_count, e.data.byte_count)

    def read_counter(self, e: Any, add: Add) -> Iterator[None]:
        """One CounterEntry per cell, filled in place (lazily)."""
        infos = ([P4InfoIndex.lookup("counter", self.index.counters, e.counter_id)] if e.counter_id
                 else list(self.index.counters.values()))
        for info in infos:
            ctr = _obj("counter", self.pipeline.counters, info)
            cid, read = info.id, ctr.read
            for i in _indices(info, ctr.size, e):
                c = add().counter_entry
                c.counter_id, c.index.index = cid, i
                d = c.data
                d.packet_count, d.byte_count = read(i)
                yield

    # ------------------------------------------------------------ meters
    def write_meter(self, utype: int, e: Any) -> None:
        if utype != Update.MODIFY:
            raise invalid("meters can only be modified")
        info = P4InfoIndex.lookup("meter", self.index.meters, e.meter_id)
        meter = _obj("meter", self.pipeline.meters, info)
        rates = meter_rates(e.config) if e.HasField("config") else None
        for i in _indices(info, meter.size, e):
            try:
                meter.set_rates(i, rates)
            except Exception as exc:
                if type(exc).__name__ == "TableError":
                    from p4target.p4runtime.errors import from_table_error

                    raise from_table_error(exc) from None
                raise
            self.meter_cfg[(info.name, i)] = rates

    def read_meter(self, e: Any, add: Add) -> Iterator[None]:
        """One MeterEntry per cell, filled in place (lazily)."""
        infos = ([P4InfoIndex.lookup("meter", self.index.meters, e.meter_id)] if e.meter_id
                 else list(self.index.meters.values()))
        for info in infos:
            meter = _obj("meter", self.pipeline.meters, info)
            for i in _indices(info, meter.size, e):
                msg = add().meter_entry
                msg.meter_id, msg.index.index = info.id, i
                get = getattr(meter, "get_rates", None)
                rates = get(i) if get is not None else self.meter_cfg.get((info.name, i))
                if rates:
                    fill_meter_config(msg.config, rates)
                yield

    # ------------------------------------------------------------ packet replication engine
    @staticmethod
    def _replicas(reps: Any, what: str) -> list[tuple[int, int]]:
        out = []
        for r in reps:
            if r.WhichOneof("port_kind") == "port":
                port = decode(r.port, 32, f"{what} replica port")
            else:
                port = r.egress_port
            if (port, r.instance) in out:
                raise invalid(f"{what}: duplicate replica (port {port}, instance {r.instance})")
            out.append((port, r.instance))
        return out

    def write_pre(self, utype: int, e: Any) -> None:
        which = e.WhichOneof("type")
        if which == "multicast_group_entry":
            g = e.multicast_group_entry
            gid = g.multicast_group_id
            if gid == 0:
                raise invalid("multicast group id 0 is reserved")
            self._check_exists(utype, gid in self.mc_groups, f"multicast group {gid}")
            replicas = [] if utype == Update.DELETE else self._replicas(g.replicas, f"multicast group {gid}")
            self._pre_call(self.pipeline.set_mc_group, gid, replicas)
            if utype == Update.DELETE:
                del self.mc_groups[gid]
            else:
                self.mc_groups[gid] = p4runtime_pb2.MulticastGroupEntry()
                self.mc_groups[gid].CopyFrom(g)
        elif which == "clone_session_entry":
            c = e.clone_session_entry
            sid = c.session_id
            self._check_exists(utype, sid in self.clone_sessions, f"clone session {sid}")
            if c.packet_length_bytes < 0:
                raise invalid("packet_length_bytes must be >= 0")
            replicas = [] if utype == Update.DELETE else self._replicas(c.replicas, f"clone session {sid}")
            self._pre_call(self.pipeline.set_clone_session, sid, replicas, c.packet_length_bytes)
            if utype == Update.DELETE:
                del self.clone_sessions[sid]
            else:
                self.clone_sessions[sid] = p4runtime_pb2.CloneSessionEntry()
                self.clone_sessions[sid].CopyFrom(c)
        else:
            raise invalid("empty packet replication engine entry")

    @staticmethod
    def _check_exists(utype: int, exists: bool, what: str) -> None:
        if utype == Update.INSERT and exists:
            raise P4RTError(grpc.StatusCode.ALREADY_EXISTS, f"{what} already exists")
        if utype in (Update.MODIFY, Update.DELETE) and not exists:
            raise not_found(f"{what} does not exist")
        if utype not in (Update.INSERT, Update.MODIFY, Update.DELETE):
            raise invalid(f"unsupported update type {utype}")

    @staticmethod
    def _pre_call(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (ValueError, KeyError) as exc:
            raise invalid(str(exc)) from None
        except Exception as exc:
            if type(exc).__name__ == "TableError":
                from p4target.p4runtime.errors import from_table_error

                raise from_table_error(exc) from None
            raise

    def read_pre(self, e: Any) -> list:
        which = e.WhichOneof("type")
        out = []
        if which == "multicast_group_entry":
            gid = e.multicast_group_entry.multicast_group_id
            gids = [gid] if gid else sorted(self.mc_groups)
            for g in gids:
                if g in self.mc_groups:
                    msg = p4runtime_pb2.PacketReplicationEngineEntry()
                    msg.multicast_group_entry.CopyFrom(self.mc_groups[g])
                    out.append(msg)
        elif which == "clone_session_entry":
            sid = e.clone_session_entry.session_id
            sids = [sid] if sid else sorted(self.clone_sessions)
            for s in sids:
                if s in self.clone_sessions:
                    msg = p4runtime_pb2.PacketReplicationEngineEntry()
                    msg.clone_session_entry.CopyFrom(self.clone_sessions[s])
                    out.append(msg)
        else:
            raise invalid("empty packet replication engine entry in read")
        return out


class Digests:
    """Digest configuration, batching into DigestLists, and ack/duplicate suppression.

    Samples from the pipeline are queued by the packet thread (cheap) and turned into DigestLists by a
    background thread: a list goes out when it holds ``max_list_size`` samples or its oldest sample is
    ``max_timeout_ns`` old. Until a list is acked (or ``ack_timeout_ns`` passes) its samples are not sent
    again, as PI does for BMv2.
    """

    def __init__(self, index: P4InfoIndex, send: Any) -> None:
        self.index = index
        self.send = send  # callable(StreamMessageResponse) -> None (to the primary client)
        self.config: dict[int, Any] = {}
        self._incoming: deque = deque()
        self._pending: dict[int, list] = {}
        self._pending_since: dict[int, float] = {}
        self._inflight: dict[int, dict[int, tuple[set, float]]] = {}
        self._next_list_id = 1
        self._cond = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="p4rt-digests", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()

    def write(self, utype: int, e: Any) -> None:
        info = P4InfoIndex.lookup("digest", self.index.digests, e.digest_id)
        with self._cond:
            exists = info.id in self.config
            Entities._check_exists(utype, exists, f"digest {info.name} config")
            if utype == Update.DELETE:
                del self.config[info.id]
                self._pending.pop(info.id, None)
            else:
                self.config[info.id] = p4runtime_pb2.DigestEntry.Config()
                self.config[info.id].CopyFrom(e.config)

    def read(self, e: Any) -> list:
        ids = [P4InfoIndex.lookup("digest", self.index.digests, e.digest_id).id] if e.digest_id else \
            sorted(self.config)
        out = []
        for i in ids:
            if i in self.config:
                msg = p4runtime_pb2.DigestEntry(digest_id=i)
                msg.config.CopyFrom(self.config[i])
                out.append(msg)
        return out

    def on_digest(self, list_id: int, name: str, values: tuple) -> None:
        """Pipeline callback (packet thread)."""
        self._incoming.append((name, tuple(values), time.monotonic()))
        with self._cond:
            self._cond.notify()

    def ack(self, digest_id: int, list_id: int) -> None:
        with self._cond:
            self._inflight.get(digest_id, {}).pop(list_id, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                self._cond.wait(timeout=self._wait_time())
                if not self._running:
                    return
                out = self._collect()
            for msg in out:
                try:
                    self.send(msg)
                except Exception:
                    log.exception("cannot deliver digest list")

    def _wait_time(self) -> float:
        if self._incoming:
            return 0
        waits = [0.5]
        now = time.monotonic()
        for did, since in self._pending_since.items():
            cfg = self.config.get(did)
            if cfg is not None:
                waits.append(max(0.0, since + cfg.max_timeout_ns / 1e9 - now))
        return min(waits)

    def _collect(self) -> list:
        now = time.monotonic()
        while self._incoming:
            name, values, ts = self._incoming.popleft()
            info = self.index.digest_by_name.get(name) or self.index.digest_by_name.get(name.split(".")[-1])
            if info is None or info.id not in self.config:
                continue
            inflight = self._inflight.setdefault(info.id, {})
            ack_timeout = self.config[info.id].ack_timeout_ns / 1e9
            for lid in [lid for lid, (_s, sent) in inflight.items() if ack_timeout and now - sent > ack_timeout]:
                del inflight[lid]
            if any(values in samples for samples, _sent in inflight.values()):
                continue
            pending = self._pending.setdefault(info.id, [])
            if values in pending:
                continue
            if not pending:
                self._pending_since[info.id] = ts
            pending.append(values)
        out = []
        for did in list(self._pending):
            cfg = self.config.get(did)
            pending = self._pending[did]
            if cfg is None or not pending:
                self._pending.pop(did, None)
                self._pending_since.pop(did, None)
                continue
            full = cfg.max_list_size <= 1 or len(pending) >= cfg.max_list_size
            if full or now - self._pending_since[did] >= cfg.max_timeout_ns / 1e9:
                out.append(self._make_list(did, pending))
                del self._pending[did]
                self._pending_since.pop(did, None)
        return out

    def _make_list(self, did: int, samples: list) -> Any:
        lid = self._next_list_id
        self._next_list_id += 1
        self._inflight.setdefault(did, {})[lid] = (set(samples), time.monotonic())
        msg = p4runtime_pb2.StreamMessageResponse()
        dl = msg.digest
        dl.digest_id, dl.list_id, dl.timestamp = did, lid, time.time_ns()
        spec = None
        for d in self.index.p4info.digests:
            if d.preamble.id == did:
                spec = d.type_spec
        is_struct = spec is None or spec.WhichOneof("type_spec") in ("struct", "tuple", None)
        for values in samples:
            data = dl.data.add()
            if is_struct:
                for v in values:
                    data.struct.members.add().bitstring = encode(v)
            else:
                data.bitstring = encode(values[0])
        return msg
