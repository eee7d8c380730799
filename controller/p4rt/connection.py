"""One P4Runtime session with one switch.

Owns ``SwitchConnection``: the gRPC channel (TLS when certificate paths are given), the StreamChannel
with primary arbitration (bounded waits — never blocks forever), Get/SetForwardingPipelineConfig
(pushed only when the cookie differs), batched Write and streamed Read, PacketOut, and a background
receiver thread that dispatches PacketIn / DigestList (acknowledged) / stream errors to subscribers.
A broken stream is re-established in the background with throttled retries. Every request is logged
to ``logs/<switch>-p4runtime-requests.txt`` like the tutorials' p4runtime_lib.

There is no global client: make one object per switch; ``controller.p4rt.fabric`` drives many.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from .errors import ConnectionFailed, P4RuntimeError, from_rpc_error
from .p4info import P4InfoHelper

__all__ = ["SwitchConnection", "SwitchOptions", "PacketIn", "DigestList", "DEFAULT_ELECTION_ID"]

log = logging.getLogger(__name__)

DEFAULT_ELECTION_ID = (0, 100)
_SENTINEL = object()
_LOG_MAX_UPDATES = 20  # big batches are logged as a summary plus their first updates


@dataclass(frozen=True)
class SwitchOptions:
    """How to reach and talk to one switch (frozen, like finsy's SwitchOptions)."""

    name: str
    address: str
    device_id: int = 0
    election_id: tuple[int, int] = DEFAULT_ELECTION_ID
    role_name: str = ""
    connect_timeout: float = 5.0
    rpc_timeout: float = 10.0
    cpu_port: int = 255
    cacert: str | None = None
    cert: str | None = None
    private_key: str | None = None
    log_dir: str | None = "logs"
    reconnect: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tls(self) -> bool:
        return bool(self.cacert or self.cert or self.private_key)


@dataclass
class PacketIn:
    payload: bytes
    metadata: dict[str, int]
    switch: str
    received: float  # time.monotonic()


@dataclass
class DigestList:
    digest: str
    list_id: int
    members: list[dict[str, int]]
    switch: str


class SwitchConnection:
    """A P4Runtime client for one switch (device id + gRPC address)."""

    def __init__(self, options: SwitchOptions, p4info: p4info_pb2.P4Info | None = None) -> None:
        self.options = options
        self.name = options.name
        self.helper: P4InfoHelper | None = P4InfoHelper(p4info) if p4info is not None else None
        self.is_primary = False
        self.connected = threading.Event()
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._out_q: queue.Queue = queue.Queue()
        self._arb_q: queue.Queue = queue.Queue()
        self._stream: Any = None
        self._rx_thread: threading.Thread | None = None
        self._closing = False
        self._lock = threading.RLock()
        self._packet_subs: list[Callable[[PacketIn], None]] = []
        self._digest_subs: list[Callable[[DigestList], None]] = []
        self._log_file: RequestLog | None = None
        self._generation = 0
        self.reconnects = 0
        self._pin_names: dict[int, str] | None = None
        self._po_templates: dict[tuple, p4runtime_pb2.StreamMessageRequest] = {}

    # ---- session ---------------------------------------------------------------------------------
    def __enter__(self) -> SwitchConnection:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_channel(self) -> grpc.Channel:
        # big batches fail with one error detail per update: allow large status trailers
        opts = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20),
                ("grpc.max_metadata_size", 64 << 20)]
        if self.options.tls:
            def read(path: str | None) -> bytes | None:
                return Path(path).read_bytes() if path else None
            creds = grpc.ssl_channel_credentials(read(self.options.cacert), read(self.options.private_key),
                                                 read(self.options.cert))
            return grpc.secure_channel(self.options.address, creds, options=opts)
        return grpc.insecure_channel(self.options.address, options=opts)

    def connect(self, timeout: float | None = None) -> SwitchConnection:
        """Open the channel and the stream, then win (or lose) the primary election, within ``timeout``."""
        timeout = self.options.connect_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._closing = False
        if self.options.log_dir and self._log_file is None:
            Path(self.options.log_dir).mkdir(parents=True, exist_ok=True)
            self._log_file = RequestLog(Path(self.options.log_dir) / f"{self.name}-p4runtime-requests.txt")
        channel = self._make_channel()
        try:
            grpc.channel_ready_future(channel).result(timeout=max(0.05, deadline - time.monotonic()))
        except grpc.FutureTimeoutError:
            channel.close()
            raise ConnectionFailed(self.name, f"no P4Runtime server at {self.options.address} "
                                   f"(not reachable within {timeout:.1f}s)") from None
        self._channel = channel
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        self._open_stream(deadline)
        if self.helper is None:
            self._fetch_p4info()
        return self

    def _open_stream(self, deadline: float) -> None:
        self._generation += 1
        gen = self._generation
        self._out_q = queue.Queue()
        self._arb_q = queue.Queue()
        out_q = self._out_q

        def requests() -> Iterator[p4runtime_pb2.StreamMessageRequest]:
            while True:
                item = out_q.get()
                if item is _SENTINEL:
                    return
                yield item

        self._stream = self._stub.StreamChannel(requests())
        self._rx_thread = threading.Thread(target=self._receive, args=(self._stream, gen),
                                           name=f"p4rt-rx-{self.name}", daemon=True)
        self._rx_thread.start()
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.options.device_id
        req.arbitration.election_id.high, req.arbitration.election_id.low = self.options.election_id
        if self.options.role_name:
            req.arbitration.role.name = self.options.role_name
        self._log("StreamChannel arbitration", req)
        out_q.put(req)
        try:
            rep = self._arb_q.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            self._teardown_stream()
            raise ConnectionFailed(self.name, "no arbitration response from the switch "
                                   f"(device id {self.options.device_id})",
                                   grpc.StatusCode.DEADLINE_EXCEEDED) from None
        if isinstance(rep, P4RuntimeError):
            self._teardown_stream()
            raise ConnectionFailed(self.name, f"stream refused: {rep.message}", rep.code)
        self.is_primary = rep.status.code == 0
        self.connected.set()
        log.info("%s: session up at %s (device %d), %s", self.name, self.options.address,
                 self.options.device_id, "primary" if self.is_primary else "backup")

    def _fetch_p4info(self) -> None:
        try:
            cfg = self.get_pipeline(with_p4info=True)
        except P4RuntimeError as exc:
            if exc.is_pipeline_missing():
                return
            raise
        if cfg is not None and cfg.p4info.tables:
            self.helper = P4InfoHelper(cfg.p4info)

    def _teardown_stream(self) -> None:
        self.connected.clear()
        self._out_q.put(_SENTINEL)
        if self._stream is not None:
            self._stream.cancel()

    def close(self) -> None:
        self._closing = True
        self._teardown_stream()
        if self._rx_thread is not None and self._rx_thread is not threading.current_thread():
            self._rx_thread.join(timeout=2)
        if self._channel is not None:
            self._channel.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ---- receiver thread ---------------------------------------------------------------------------
    def _receive(self, stream: Any, gen: int) -> None:
        try:
            for msg in stream:
                kind = msg.WhichOneof("update")
                if kind == "packet":
                    self._dispatch_packet(msg.packet)
                elif kind == "arbitration":
                    if self.connected.is_set():
                        self.is_primary = msg.arbitration.status.code == 0
                    else:
                        self._arb_q.put(msg.arbitration)
                elif kind == "digest":
                    self._dispatch_digest(msg.digest)
                elif kind == "error":
                    log.warning("%s: stream error %s: %s", self.name, msg.error.canonical_code,
                                msg.error.message)
        except grpc.RpcError as exc:
            if self._closing or gen != self._generation:
                return
            err = from_rpc_error(exc, "StreamChannel", self.name)
            if not self.connected.is_set():
                self._arb_q.put(err)
                return
            log.warning("%s: stream broke: %s", self.name, err)
        except Exception:  # noqa: BLE001 - a subscriber bug must not kill the session silently
            log.exception("%s: stream receiver failed", self.name)
        finally:
            if gen == self._generation:
                self.connected.clear()
        if not self._closing and self.options.reconnect and gen == self._generation:
            threading.Thread(target=self._reconnect_loop, name=f"p4rt-reconnect-{self.name}",
                             daemon=True).start()

    def _reconnect_loop(self) -> None:
        delay = 0.1
        while not self._closing:
            time.sleep(delay)
            try:
                self._teardown_stream()
                self._open_stream(time.monotonic() + self.options.connect_timeout)
                self.reconnects += 1
                return
            except P4RuntimeError as exc:
                log.info("%s: reconnect failed (%s), retrying in %.1fs", self.name, exc.message, delay)
                delay = min(delay * 2, 5.0)  # throttle after fast failures

    def _dispatch_packet(self, pkt: p4runtime_pb2.PacketIn) -> None:
        md: dict[str, int] = {}
        if self.helper is not None and self._pin_names is None:
            if self.helper.has("controller_packet_metadata", "packet_in"):
                cpm = self.helper.get("controller_packet_metadata", "packet_in")
                self._pin_names = {f.id: f.name for f in cpm.fields.values()}
        names = self._pin_names or {}
        for m in pkt.metadata:
            md[names.get(m.metadata_id, str(m.metadata_id))] = int.from_bytes(m.value, "big")
        item = PacketIn(pkt.payload, md, self.name, time.monotonic())
        for cb in list(self._packet_subs):
            cb(item)

    def _dispatch_digest(self, dl: p4runtime_pb2.DigestList) -> None:
        ack = p4runtime_pb2.StreamMessageRequest()
        ack.digest_ack.digest_id = dl.digest_id
        ack.digest_ack.list_id = dl.list_id
        self._out_q.put(ack)
        if self.helper is None:
            return
        name = self.helper.get_name(dl.digest_id)
        item = DigestList(name, dl.list_id, [self.helper.digest_members(dl.digest_id, d) for d in dl.data],
                          self.name)
        for cb in list(self._digest_subs):
            cb(item)

    def subscribe_packets(self, cb: Callable[[PacketIn], None]) -> Callable[[], None]:
        """Call ``cb`` on the receiver thread for every PacketIn. Returns an unsubscribe function."""
        self._packet_subs.append(cb)
        return lambda: self._packet_subs.remove(cb) if cb in self._packet_subs else None

    def subscribe_digests(self, cb: Callable[[DigestList], None]) -> Callable[[], None]:
        self._digest_subs.append(cb)
        return lambda: self._digest_subs.remove(cb) if cb in self._digest_subs else None


    # ---- stream output -----------------------------------------------------------------------------
    def _need_helper(self) -> P4InfoHelper:
        if self.helper is None:
            raise P4RuntimeError("lookup", grpc.StatusCode.FAILED_PRECONDITION,
                                 "no P4Info known for this switch (no pipeline set)", switch=self.name)
        return self.helper

    def packet_out(self, payload: bytes, **metadata: Any) -> None:
        """Send one PacketOut with controller metadata given by name."""
        self.packet_out_many([(payload, metadata)])

    def packet_out_many(self, packets: Iterable[tuple[bytes, dict[str, Any]]]) -> int:
        """Queue many PacketOuts on the stream back to back (no round-trip between them)."""
        helper = self._need_helper()
        if not self.connected.is_set():
            raise ConnectionFailed(self.name, "stream is down")
        n = 0
        cache = self._po_templates
        put = self._out_q.put
        Request = p4runtime_pb2.StreamMessageRequest
        for payload, md in packets:
            ck = tuple(sorted(md.items()))
            template = cache.get(ck)
            if template is None:  # validates names and widths once per distinct metadata
                template = cache[ck] = Request(packet=helper.packet_out(b"", md))
            req = Request()
            req.CopyFrom(template)  # cheaper than building the metadata again (bench/bench_wire.py)
            req.packet.payload = payload
            put(req)
            n += 1
        return n

    # ---- unary RPCs -------------------------------------------------------------------------------
    def _log(self, what: str, msg: Any) -> None:
        """Record a request in the request log (``msg``: a message, or a callable making it — parsed
        and formatted later by the log's writer thread, off the request's path)."""
        if self._log_file is not None:
            self._log_file.record(what, msg)

    def _call(self, op: str, fn: Callable[..., Any], req: Any, timeout: float | None = None) -> Any:
        if self._stub is None:
            raise ConnectionFailed(self.name, "not connected")
        self._log(op, req)
        try:
            return fn(req, timeout=self.options.rpc_timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, op, self.name) from None

    def _stamp(self, req: Any) -> None:
        req.device_id = self.options.device_id
        req.election_id.high, req.election_id.low = self.options.election_id
        if self.options.role_name:
            req.role = self.options.role_name

    def capabilities(self) -> str:
        rep = self._call("Capabilities", self._stub.Capabilities, p4runtime_pb2.CapabilitiesRequest())
        return rep.p4runtime_api_version

    def get_pipeline(self, with_p4info: bool = False) -> p4runtime_pb2.ForwardingPipelineConfig | None:
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=self.options.device_id)
        req.response_type = (req.P4INFO_AND_COOKIE if with_p4info else req.COOKIE_ONLY)
        rep = self._call("GetForwardingPipelineConfig", self._stub.GetForwardingPipelineConfig, req)
        return rep.config

    def pipeline_cookie(self) -> int | None:
        """The cookie of the pipeline on the device, or None when it has none."""
        try:
            cfg = self.get_pipeline()
        except P4RuntimeError as exc:
            if exc.is_pipeline_missing():
                return None
            raise
        return cfg.cookie.cookie if cfg is not None and cfg.HasField("cookie") else None

    def set_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, cookie: int | None = None) -> None:
        helper = P4InfoHelper(p4info)
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest()
        self._stamp(req)
        req.action = req.VERIFY_AND_COMMIT
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = device_config
        req.config.cookie.cookie = helper.cookie(device_config) if cookie is None else cookie
        self._call("SetForwardingPipelineConfig", self._stub.SetForwardingPipelineConfig, req, timeout=60)
        self.helper = helper

    def ensure_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> bool:
        """Push the pipeline only when the device's cookie differs. Returns True when pushed."""
        helper = P4InfoHelper(p4info)
        want = helper.cookie(device_config)
        if self.pipeline_cookie() == want:
            self.helper = helper
            return False
        self.set_pipeline(p4info, device_config, want)
        return True

    def write(self, updates: Sequence[p4runtime_pb2.Update], atomic: bool = False) -> None:
        """One Write RPC carrying all ``updates`` (P4Runtime batch); the request log shows a batch of more
        than _LOG_MAX_UPDATES as a one-line summary."""
        if not updates:
            return
        req = self._write_request(updates, atomic)
        try:
            self._stub.Write(req, timeout=self.options.rpc_timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, "Write", self.name) from None

    def write_async(self, updates: Sequence[p4runtime_pb2.Update], atomic: bool = False) -> Callable[[], None]:
        """``write`` in two halves: the Write RPC is sent now; the returned function waits for its answer
        (raising as ``write`` does). One thread can so have Writes in flight on several switches at once
        (a migration's suspend and flip) with no thread hop to start them."""
        if not updates:
            return lambda: None
        req = self._write_request(updates, atomic)   # first: ConnectionFailed when not connected
        fut = self._stub.Write.future(req, timeout=self.options.rpc_timeout)

        def wait() -> None:
            try:
                fut.result()
            except grpc.RpcError as exc:
                raise from_rpc_error(exc, "Write", self.name) from None
        return wait

    def _write_request(self, updates: Sequence[p4runtime_pb2.Update], atomic: bool) -> p4runtime_pb2.WriteRequest:
        if self._stub is None:
            raise ConnectionFailed(self.name, "not connected")
        req = p4runtime_pb2.WriteRequest()
        self._stamp(req)
        if atomic:
            req.atomicity = req.DATAPLANE_ATOMIC
        req.updates.extend(updates)
        if len(updates) <= _LOG_MAX_UPDATES:
            self._log("Write", req)
        else:
            self._log(f"Write ({len(updates)} updates, not shown)",
                      lambda: p4runtime_pb2.WriteRequest(device_id=self.options.device_id))
        return req

    write_raw = write  # the batch writers' name (controller.nic, controller.gateway) from the hand-encoded days

    def _updates(self, kind: int, entities: Iterable[Any]) -> list[p4runtime_pb2.Update]:
        out = []
        for ent in entities:
            up = p4runtime_pb2.Update(type=kind)
            if isinstance(ent, p4runtime_pb2.Entity):
                up.entity.CopyFrom(ent)
            else:
                getattr(up.entity, _entity_field(ent)).CopyFrom(ent)
            out.append(up)
        return out

    def insert(self, entities: Iterable[Any]) -> None:
        self.write(self._updates(p4runtime_pb2.Update.INSERT, entities))

    def modify(self, entities: Iterable[Any]) -> None:
        self.write(self._updates(p4runtime_pb2.Update.MODIFY, entities))

    def delete(self, entities: Iterable[Any]) -> None:
        self.write(self._updates(p4runtime_pb2.Update.DELETE, entities))

    def read(self, entities: Iterable[Any]) -> Iterator[p4runtime_pb2.Entity]:
        """One Read RPC for all ``entities``; yields entities as the server streams them."""
        req = p4runtime_pb2.ReadRequest(device_id=self.options.device_id)
        if self.options.role_name:
            req.role = self.options.role_name
        for ent in entities:
            if isinstance(ent, p4runtime_pb2.Entity):
                req.entities.append(ent)
            else:
                getattr(req.entities.add(), _entity_field(ent)).CopyFrom(ent)
        if self._stub is None:
            raise ConnectionFailed(self.name, "not connected")
        self._log("Read", req)
        try:
            for rep in self._stub.Read(req, timeout=self.options.rpc_timeout):
                yield from rep.entities
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, "Read", self.name) from None

    def read_all(self, entities: Iterable[Any]) -> list[p4runtime_pb2.Entity]:
        return list(self.read(entities))

    def read_registers(self, cells: Sequence[tuple[int, int | None]]) -> dict[tuple[int, int], int]:
        """One Read of register cells, (register_id, index or None for all) → {(register_id, index):
        value}, for polls of many cells (the request log shows a summary above _LOG_MAX_UPDATES cells)."""
        if self._stub is None:
            raise ConnectionFailed(self.name, "not connected")
        req = p4runtime_pb2.ReadRequest(device_id=self.options.device_id)
        if self.options.role_name:
            req.role = self.options.role_name
        add = req.entities.add
        for rid, index in cells:
            r = add().register_entry
            r.register_id = rid
            if index is not None:
                r.index.index = index  # set even when 0: an unset index means every cell
        if len(cells) <= _LOG_MAX_UPDATES:
            self._log("Read", req)
        else:
            self._log(f"Read ({len(cells)} register cells)", lambda: p4runtime_pb2.ReadRequest(
                device_id=self.options.device_id))
        out: dict[tuple[int, int], int] = {}
        try:
            for rep in self._stub.Read(req, timeout=self.options.rpc_timeout):
                for ent in rep.entities:
                    r = ent.register_entry
                    out[(r.register_id, r.index.index)] = int.from_bytes(r.data.bitstring, "big")
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, "Read", self.name) from None
        return out


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queues the record as it is: nothing is formatted on the request path (the listener does it)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _RequestFileHandler(logging.FileHandler):
    """Writes a request ``[time] WHAT`` + its text format; a record younger than ``delay`` is held
    back until it is that old (a migration's burst of RPCs is over by then)."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.hold = delay

    def emit(self, record: logging.LogRecord) -> None:
        wait = record.created + self.hold - time.time()
        if wait > 0:
            time.sleep(wait)
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        what, msg = record.args  # type: ignore[misc]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        return f"[{stamp}] {what}\n{_format(msg() if callable(msg) else msg)}---"


class RequestLog:
    """The per-switch request log (``<switch>-p4runtime-requests.txt``, like the tutorials'
    p4runtime_lib), written off the request path: ``record`` only queues (``logging.handlers.QueueHandler``);
    a ``QueueListener`` thread formats and writes, in order, each request at least ``delay`` after it
    was made. ``close`` writes what is left."""

    def __init__(self, path: Path, delay: float = 0.2) -> None:
        self.path = path
        self._handler = _RequestFileHandler(path, delay)
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._log = logging.Logger(f"flowmig.p4rt.requests.{path.stem}")   # not in the logging tree
        self._log.addHandler(_DeferredQueueHandler(self._q))
        self._listener: logging.handlers.QueueListener | None = logging.handlers.QueueListener(
            self._q, self._handler)
        self._listener.start()

    def record(self, what: str, msg: Any) -> None:
        """Queue one request (``msg`` a message, or a callable making it: built only when written)."""
        self._log.handle(logging.LogRecord(self._log.name, logging.INFO, __file__, 0, "%s %s", (what, msg), None))

    def close(self) -> None:
        if self._listener is not None:
            self._handler.hold = 0.0         # no more bursts to wait out
            self._listener.stop()            # writes everything queued before it returns
            self._listener = None
            self._handler.close()


def _format(msg: Any) -> str:
    if isinstance(msg, p4runtime_pb2.WriteRequest) and len(msg.updates) > _LOG_MAX_UPDATES:
        head = p4runtime_pb2.WriteRequest()
        head.CopyFrom(msg)
        del head.updates[_LOG_MAX_UPDATES:]
        return text_format.MessageToString(head) + f"... {len(msg.updates) - _LOG_MAX_UPDATES} more updates\n"
    if isinstance(msg, p4runtime_pb2.SetForwardingPipelineConfigRequest):
        return f"device_id: {msg.device_id} action: {msg.action} cookie: {msg.config.cookie.cookie} " \
               f"p4info: {len(msg.config.p4info.tables)} tables, device_config: " \
               f"{len(msg.config.p4_device_config)} bytes\n"
    return text_format.MessageToString(msg)


_ENTITY_FIELDS = {
    p4runtime_pb2.TableEntry: "table_entry",
    p4runtime_pb2.RegisterEntry: "register_entry",
    p4runtime_pb2.CounterEntry: "counter_entry",
    p4runtime_pb2.DirectCounterEntry: "direct_counter_entry",
    p4runtime_pb2.MeterEntry: "meter_entry",
    p4runtime_pb2.DirectMeterEntry: "direct_meter_entry",
    p4runtime_pb2.DigestEntry: "digest_entry",
    p4runtime_pb2.PacketReplicationEngineEntry: "packet_replication_engine_entry",
}


def _entity_field(ent: Any) -> str:
    try:
        return _ENTITY_FIELDS[type(ent)]
    except KeyError:
        raise TypeError(f"not a P4Runtime entity: {type(ent).__name__}") from None
