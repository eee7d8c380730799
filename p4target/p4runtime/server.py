"""The P4Runtime gRPC service over a ``Switch``: pipeline config, Write, Read, StreamChannel, Capabilities.

Request handling order follows PI: wrong device id → NOT_FOUND; Write/SetForwardingPipelineConfig from a
client that is not the primary of its role → PERMISSION_DENIED; anything needing a pipeline before one
is set → FAILED_PRECONDITION. Every failed RPC is logged (method, peer, code, message); a request that
cannot be decoded is INVALID_ARGUMENT, and no handler lets an exception reach gRPC (which would answer
UNKNOWN "Exception calling application").

The server keeps serving under load: streams cannot take the workers unary RPCs need (stream.py); a Read
streams its results in ReadResponses of at most ``READ_CHUNK`` entities and a Write applies its updates
decoded ``batch.CHUNK_UPDATES`` at a time, both holding the switch lock in slices of ``batch.SLICE_S``
so packets are forwarded in between (batch.py). A DATAPLANE_ATOMIC batch holds the lock throughout, so
no packet sees part of it; with CONTINUE_ON_ERROR (PI's only mode) and ROLLBACK_ON_ERROR packets may see
a batch half applied, as the spec allows. CONTINUE_ON_ERROR Writes may run side by side; the others and
pipeline changes run alone (batch.SharedLock). Failures are reported as UNKNOWN with one p4.v1.Error
per update in ``grpc-status-details-bin`` (ABORTED for rolled-back updates). The port is bound exclusively (no SO_REUSEPORT), with TLS when asked
(tls.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.arbitration import Arbitrator
from p4target.p4runtime.batch import (
    BIG_BATCH,
    HANDOVER_S,
    SLICE_S,
    LockSlices,
    SharedLock,
    WriteBatch,
    trim_memory,
)
from p4target.p4runtime.devconfig import DeviceConfigError, unwrap_device_config
from p4target.p4runtime.entities import Digests, Entities
from p4target.p4runtime.errors import P4RTError, invalid, not_found, unimplemented, write_status
from p4target.p4runtime.p4info import P4InfoIndex
from p4target.p4runtime.rollback import undo_for
from p4target.p4runtime.stream import MAX_STREAMS, UNARY_WORKERS, StreamService, precondition
from p4target.p4runtime.tables import (
    TableCodec,
    read_direct_counters,
    read_direct_meters,
    set_direct_counter,
    set_direct_meter,
)
from p4target.p4runtime.tls import TLSOptions

log = logging.getLogger(__name__)

API_VERSION = "1.4.1"
READ_CHUNK = 5000     # entities per ReadResponse
MAX_MESSAGE = 256 << 20  # as PI (SetMaxReceiveMessageSize(256 MB))
SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest
GetReq = p4runtime_pb2.GetForwardingPipelineConfigRequest
Update = p4runtime_pb2.Update
_precondition = precondition


def _device_json_or_none(data: bytes) -> bytes | None:
    try:
        return unwrap_device_config(data)
    except DeviceConfigError:
        return None


class _Prepared:
    """A verified config: its P4Info index and a built (not yet installed) pipeline."""

    def __init__(self, config: Any, index: P4InfoIndex, pipeline: Any, device_json: bytes) -> None:
        self.config, self.index, self.pipeline = config, index, pipeline
        self.device_json = device_json      # the BMv2 JSON (unwrapped from a P4DeviceConfig if need be)


class _Refused(Exception):
    """Raised by a handler after it has set trailing metadata: abort with this code and message."""

    def __init__(self, err: P4RTError) -> None:
        super().__init__(str(err))
        self.err = err


class P4RuntimeServer(StreamService):
    """P4Runtime server for one device (one Switch)."""

    def __init__(self, switch: Any, device_id: int = 0, address: str = "127.0.0.1:9559",
                 tls: TLSOptions | None = None, max_streams: int = MAX_STREAMS) -> None:
        self.switch = switch
        self.device_id = device_id
        self.address = address
        self.tls = tls or TLSOptions()
        self.port: int | None = None
        self.arbitrator = Arbitrator(device_id)
        self.config_lock = threading.Lock()   # pipeline changes, one at a time
        self.write_lock = SharedLock()         # shared by CONTINUE_ON_ERROR Writes, else exclusive
        self.config: Any = None
        self.saved: _Prepared | None = None
        self.index: P4InfoIndex | None = None
        self.codec: TableCodec | None = None
        self.entities: Entities | None = None
        self.digests: Digests | None = None
        self._server: grpc.Server | None = None
        self.stats = {"packet_in_dropped": 0}
        self._init_streams(max_streams)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> P4RuntimeServer:
        """Bind and serve. OSError when the address cannot be bound (in use, even by another process
        with SO_REUSEPORT); TLSConfigError for unusable TLS options."""
        creds = self.tls.credentials()
        opts = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),                       # a second server on the port fails to bind
                ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.http2.max_pings_without_data", 0)]       # dead clients' streams are reaped
        pool = futures.ThreadPoolExecutor(max_workers=self.max_streams + UNARY_WORKERS, thread_name_prefix="p4rt")
        self._server = grpc.server(pool, options=opts)
        self._server.add_generic_rpc_handlers((self._handlers(),))
        try:
            if creds is None:
                port = self._server.add_insecure_port(self.address)
            else:
                port = self._server.add_secure_port(self.address, creds)
        except RuntimeError as exc:
            raise OSError(f"cannot bind {self.address}: {exc}") from None
        if not port:
            raise OSError(f"cannot bind {self.address} (address in use?)")
        self.port = port
        self._server.start()
        self.switch.packet_in_sink = self._on_packet_in
        log.info("P4Runtime server listening on %s (port %d, device id %d, %s)", self.address, port,
                 self.device_id, self.tls.describe())
        return self

    def _handlers(self) -> grpc.GenericRpcHandler:
        """The P4Runtime service. Every request arrives as bytes and is decoded by its handler, so that an
        undecodable one is INVALID_ARGUMENT (gRPC itself would answer INTERNAL)."""
        pb = p4runtime_pb2

        def parse(cls: Any, data: bytes) -> Any:
            if cls is None:
                return data
            try:
                return cls.FromString(data)
            except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                raise invalid(f"malformed {cls.__name__}: {exc}") from None

        def refuse(name: str, context: Any, err: P4RTError) -> None:
            log.info("%s from %s refused: %s: %s", name, context.peer(), err.code.name, err.message)
            context.abort(err.code, err.message)

        def unary(name: str, cls: Any, fn: Any, resp: Any) -> Any:
            def handler(data: bytes, context: Any) -> Any:
                try:
                    return fn(parse(cls, data), context)
                except P4RTError as err:
                    failure = err
                except _Refused as exc:
                    failure = exc.err
                except Exception as exc:  # a bug: log it with its traceback, answer INTERNAL
                    log.exception("%s failed unexpectedly", name)
                    failure = P4RTError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
                refuse(name, context, failure)
            return grpc.unary_unary_rpc_method_handler(handler, response_serializer=resp)

        def streamed(name: str, cls: Any, fn: Any, resp: Any) -> Any:
            def handler(data: bytes, context: Any) -> Any:
                try:
                    yield from fn(parse(cls, data), context)
                    return
                except P4RTError as err:
                    failure = err
                except Exception as exc:
                    log.exception("%s failed unexpectedly", name)
                    failure = P4RTError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
                refuse(name, context, failure)
            return grpc.unary_stream_rpc_method_handler(handler, response_serializer=resp)

        return grpc.method_handlers_generic_handler("p4.v1.P4Runtime", {
            "Write": unary("Write", None, self.WriteRaw, pb.WriteResponse.SerializeToString),
            "Read": streamed("Read", pb.ReadRequest, self.Read, pb.ReadResponse.SerializeToString),
            "SetForwardingPipelineConfig": unary("SetForwardingPipelineConfig", SetReq,
                                                 self.SetForwardingPipelineConfig,
                                                 pb.SetForwardingPipelineConfigResponse.SerializeToString),
            "GetForwardingPipelineConfig": unary("GetForwardingPipelineConfig", GetReq,
                                                 self.GetForwardingPipelineConfig,
                                                 pb.GetForwardingPipelineConfigResponse.SerializeToString),
            "StreamChannel": grpc.stream_stream_rpc_method_handler(
                self.StreamChannel, response_serializer=pb.StreamMessageResponse.SerializeToString),
            "Capabilities": unary("Capabilities", pb.CapabilitiesRequest, self.Capabilities,
                                  pb.CapabilitiesResponse.SerializeToString),
        })

    def stop(self, grace: float = 0.5) -> None:
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1)
        if self.digests is not None:
            self.digests.stop()

    # ------------------------------------------------------------------ helpers
    def _check_device(self, device_id: int) -> None:
        if device_id != self.device_id:
            raise not_found(f"unknown device id {device_id} (this is device {self.device_id})")

    def _need_pipeline(self) -> None:
        if self.config is None or self.codec is None:
            raise _precondition("no forwarding pipeline config set on the device")

    # ------------------------------------------------------------------ Capabilities
    def Capabilities(self, request: Any, context: Any) -> Any:
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=API_VERSION)

    # ------------------------------------------------------------------ pipeline config
    def _prepare(self, config: Any) -> _Prepared:
        if not config.HasField("p4info"):
            raise invalid("config has no p4info")
        if not config.p4_device_config:
            raise invalid("config has no p4_device_config (the BMv2 JSON)")
        index = P4InfoIndex.build(config.p4info)
        from p4target.pipeline import Pipeline, PipelineError

        try:
            device_json = unwrap_device_config(config.p4_device_config)
        except DeviceConfigError as exc:
            raise invalid(str(exc)) from None
        try:
            pipeline = Pipeline(device_json)
        except PipelineError as exc:
            raise invalid(f"device config rejected: {exc}") from None
        except ValueError as exc:  # JSON syntax
            raise invalid(f"device config is not a BMv2 JSON: {exc}") from None
        missing = []
        for kind, infos, objs in (("table", index.tables, pipeline.tables),
                                  ("register", index.registers, pipeline.registers),
                                  ("counter", index.counters, pipeline.counters),
                                  ("meter", index.meters, pipeline.meters)):
            missing += [f"{kind} {i.name}" for i in infos.values() if i.name not in objs]
        if missing:
            raise invalid("P4Info does not match the device config; missing in the JSON: " + ", ".join(missing))
        return _Prepared(config, index, pipeline, device_json)

    def _install(self, prep: _Prepared, keep_state: bool = False) -> None:
        with self.switch.lock:
            if not keep_state:
                self.switch.install_pipeline(prep.pipeline, prep.device_json)
            pipeline = self.switch.pipeline
            old_digests = self.digests
            self.index = prep.index
            self.codec = TableCodec(prep.index, pipeline)
            old_entities = self.entities
            self.entities = Entities(prep.index, pipeline)
            if keep_state and old_entities is not None:
                self.entities.mc_groups = old_entities.mc_groups
                self.entities.clone_sessions = old_entities.clone_sessions
                self.entities.meter_cfg = old_entities.meter_cfg
            self.digests = Digests(prep.index, self._send_to_primary)
            if keep_state and old_digests is not None:
                self.digests.config = old_digests.config
            self.switch.digest_sink = self.digests.on_digest
            self.config = p4runtime_pb2.ForwardingPipelineConfig()
            self.config.CopyFrom(prep.config)
        if old_digests is not None:
            old_digests.stop()

    def SetForwardingPipelineConfig(self, request: Any, context: Any) -> Any:
        self._check_device(request.device_id)
        self.arbitrator.check_writer(request.role, request.election_id, request.HasField("election_id"))
        with self.config_lock, self.write_lock.exclusive():
            action = request.action
            if action == SetReq.VERIFY:
                self._prepare(request.config)
            elif action == SetReq.VERIFY_AND_SAVE:
                self.saved = self._prepare(request.config)
            elif action == SetReq.VERIFY_AND_COMMIT:
                self._install(self._prepare(request.config))
                self.saved = None
            elif action == SetReq.COMMIT:
                if self.saved is None:
                    raise _precondition("COMMIT without a saved config (use VERIFY_AND_SAVE first)")
                self._install(self.saved)
                self.saved = None
            elif action == SetReq.RECONCILE_AND_COMMIT:
                installed = self.switch.json_bytes if self.config is not None else None
                if installed is not None and _device_json_or_none(request.config.p4_device_config) == installed:
                    if not request.config.HasField("p4info"):
                        raise invalid("config has no p4info")
                    index = P4InfoIndex.build(request.config.p4info)
                    self._install(_Prepared(request.config, index, self.switch.pipeline, installed),
                                  keep_state=True)
                else:
                    self._install(self._prepare(request.config))
            else:
                raise invalid(f"unsupported SetForwardingPipelineConfig action {action}")
        log.info("SetForwardingPipelineConfig %s done", SetReq.Action.Name(request.action))
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request: Any, context: Any) -> Any:
        self._check_device(request.device_id)
        self._need_pipeline()
        resp = p4runtime_pb2.GetForwardingPipelineConfigResponse()
        cfg, rt = self.config, request.response_type
        if cfg.HasField("cookie"):
            resp.config.cookie.CopyFrom(cfg.cookie)
        if rt in (GetReq.ALL, GetReq.P4INFO_AND_COOKIE):
            resp.config.p4info.CopyFrom(cfg.p4info)
        if rt in (GetReq.ALL, GetReq.DEVICE_CONFIG_AND_COOKIE):
            resp.config.p4_device_config = cfg.p4_device_config
        return resp

    # ------------------------------------------------------------------ Write
    def WriteRaw(self, data: bytes, context: Any) -> Any:
        """Write from the request bytes: header first, then the updates decoded chunk by chunk."""
        batch = WriteBatch.parse(data)
        eid = p4runtime_pb2.Uint128()
        if batch.election_id is not None:
            eid.high, eid.low = batch.election_id
        self._check_device(batch.device_id)
        self.arbitrator.check_writer(batch.role, eid, batch.election_id is not None)
        self._need_pipeline()
        W = p4runtime_pb2.WriteRequest
        if batch.atomicity not in (W.CONTINUE_ON_ERROR, W.ROLLBACK_ON_ERROR, W.DATAPLANE_ATOMIC):
            raise invalid(f"unknown atomicity {batch.atomicity}")
        mode = self.write_lock.shared if batch.atomicity == W.CONTINUE_ON_ERROR else self.write_lock.exclusive
        with mode():
            self._need_pipeline()
            results = self._write(batch)
        if len(batch) >= BIG_BATCH:
            trim_memory()
        if any(r is not None for r in results):
            for i, r in enumerate(results):
                if r is not None:
                    log.info("Write update %d failed: %s", i, r)
            status = write_status(results)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            raise _Refused(P4RTError(grpc.StatusCode.UNKNOWN, status.message))
        return p4runtime_pb2.WriteResponse()

    def _write(self, batch: WriteBatch) -> list[P4RTError | None]:
        """Apply the batch; one result per update. DATAPLANE_ATOMIC holds the switch lock throughout;
        the other modes hand it to the packet thread every SLICE_S. With ROLLBACK_ON_ERROR and
        DATAPLANE_ATOMIC a failure undoes the updates applied before it."""
        W = p4runtime_pb2.WriteRequest
        rollback = batch.atomicity != W.CONTINUE_ON_ERROR
        atomic = batch.atomicity == W.DATAPLANE_ATOMIC
        results: list[P4RTError | None] = []
        undos: list = []
        failed = False
        whole = LockSlices(self.switch.lock, None) if atomic else contextlib.nullcontext()
        with whole:
            for n, chunk in enumerate(batch.chunks()):  # decoded outside the lock, unless DATAPLANE_ATOMIC
                if n and not atomic:
                    time.sleep(HANDOVER_S)  # between chunks (none after the last: a 1-update Write waits for nothing)
                with LockSlices(self.switch.lock, None if atomic else SLICE_S) as slices:
                    for upd in chunk:
                        slices.tick()
                        results.append(self._apply_one(upd, undos if rollback else None))
                        if rollback and results[-1] is not None:
                            failed = True
                            break
                del chunk
                if failed:
                    break
            if failed:  # undo what was applied, newest first (under the lock throughout when atomic)
                with LockSlices(self.switch.lock, None if atomic else SLICE_S) as slices:
                    for undo in reversed(undos):
                        slices.tick()
                        try:
                            undo()
                        except Exception:  # noqa: BLE001 - keep undoing the rest
                            log.exception("rollback step failed")
                aborted = P4RTError(grpc.StatusCode.ABORTED, "rolled back: another update of the batch failed")
                results = [aborted if r is None else r for r in results]
                results += [aborted] * (len(batch) - len(results))
        return results

    def _apply_one(self, upd: Any, undos: list | None) -> P4RTError | None:
        if isinstance(upd, P4RTError):  # undecodable update
            return upd
        utype, which, obj = upd
        try:
            undo = undo_for(self, utype, which, obj) if undos is not None else None
            self._apply(utype, which, obj)
            if undos is not None:
                undos.append(undo)
            return None
        except P4RTError as err:
            return err
        except Exception as exc:  # a bug must not take the server down; report it per update
            log.exception("update failed unexpectedly")
            return P4RTError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _apply(self, utype: int, which: str | None, obj: Any) -> None:
        if utype not in (Update.INSERT, Update.MODIFY, Update.DELETE):
            raise invalid("update type must be INSERT, MODIFY or DELETE")
        if which == "table_entry":
            self.codec.write(utype, obj)
        elif which == "register_entry":
            self.entities.write_register(utype, obj)
        elif which == "counter_entry":
            self.entities.write_counter(utype, obj)
        elif which == "meter_entry":
            self.entities.write_meter(utype, obj)
        elif which == "direct_counter_entry":
            if utype != Update.MODIFY:
                raise invalid("direct counters can only be modified")
            set_direct_counter(self.codec, obj)
        elif which == "direct_meter_entry":
            if utype != Update.MODIFY:
                raise invalid("direct meters can only be modified")
            set_direct_meter(self.codec, obj)
        elif which == "packet_replication_engine_entry":
            self.entities.write_pre(utype, obj)
        elif which == "digest_entry":
            self.digests.write(utype, obj)
        elif which is None:
            raise invalid("update has no entity")
        else:
            raise unimplemented(f"{which} is not supported")

    # ------------------------------------------------------------------ Read
    def Read(self, request: Any, context: Any) -> Any:
        """ReadResponses of at most READ_CHUNK entities, filled in place in slices of the switch lock: the
        packet thread runs between slices and nothing is built ahead of what gRPC has sent."""
        self._check_device(request.device_id)
        self._need_pipeline()
        out = _Responses()
        items = (None for ent in request.entities for _ in self._read(ent, out.add))
        sent = total = 0
        done = False
        while not done:
            with LockSlices(self.switch.lock) as slices:
                for _ in items:
                    if out.n >= READ_CHUNK or (not out.n & 63 and time.monotonic() >= slices.until):
                        break
                else:
                    done = True
            if out.n >= READ_CHUNK or (done and (out.n or not sent)):
                sent += 1
                total += out.n
                yield out.take()  # empty: an empty ReadResponse, as PI sends
            if not done:
                time.sleep(HANDOVER_S)  # let the packet thread take the lock
        if total >= 10 * READ_CHUNK:
            trim_memory()

    def _read(self, ent: Any, add: Any) -> Any:
        """Fills the entities of one read request entity, one ``add()`` each, lazily: an iterator that
        yields after each (called under the switch lock)."""
        which = ent.WhichOneof("entity")
        if which == "table_entry":
            return self.codec.read(ent.table_entry, add)
        if which == "register_entry":
            return self.entities.read_register(ent.register_entry, add)
        if which == "counter_entry":
            return self.entities.read_counter(ent.counter_entry, add)
        if which == "meter_entry":
            return self.entities.read_meter(ent.meter_entry, add)
        if which == "direct_counter_entry":
            return read_direct_counters(self.codec, ent.direct_counter_entry, add)
        if which == "direct_meter_entry":
            return read_direct_meters(self.codec, ent.direct_meter_entry, add)
        if which == "packet_replication_engine_entry":
            pre = self.entities.read_pre(ent.packet_replication_engine_entry)
            return _copied(add, "packet_replication_engine_entry", pre)
        if which == "digest_entry":
            return _copied(add, "digest_entry", self.digests.read(ent.digest_entry))
        if which is None:
            raise invalid("read of an empty entity")
        raise unimplemented(f"{which} is not supported")


class _Responses:
    """The ReadResponse being built: ``add()`` appends an Entity to it (filled in place by the readers),
    ``take()`` hands it over and starts the next one."""

    def __init__(self) -> None:
        self.resp = p4runtime_pb2.ReadResponse()
        self.n = 0

    def add(self) -> Any:
        self.n += 1
        return self.resp.entities.add()

    def take(self) -> Any:
        resp = self.resp
        self.resp, self.n = p4runtime_pb2.ReadResponse(), 0
        return resp


def _copied(add: Any, field: str, msgs: list) -> Any:
    """Copy the (few) messages a PRE or digest read returns into new entities."""
    for m in msgs:
        getattr(add(), field).CopyFrom(m)
        yield
