"""The P4Runtime gRPC service over a ``Switch``: pipeline config, Write, Read, StreamChannel, Capabilities.

Request handling order follows PI: wrong device id → NOT_FOUND; Write/SetForwardingPipelineConfig from a
client that is not the primary of its role → PERMISSION_DENIED; anything needing a pipeline before one
is set → FAILED_PRECONDITION. A Write batch is applied under the switch lock (no packet sees half a
batch); with CONTINUE_ON_ERROR semantics every update is tried, with ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC a
failure undoes the batch (rollback.py); failures are reported as UNKNOWN with one p4.v1.Error per
update in ``grpc-status-details-bin`` (ABORTED for rolled-back updates).
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4target.p4runtime.arbitration import Arbitrator, Connection
from p4target.p4runtime.devconfig import DeviceConfigError, unwrap_device_config
from p4target.p4runtime.entities import Digests, Entities
from p4target.p4runtime.errors import P4RTError, invalid, not_found, unimplemented, write_status
from p4target.p4runtime.p4info import P4InfoIndex, decode, encode, pack_metadata, unpack_metadata
from p4target.p4runtime.rollback import undo_for
from p4target.p4runtime.tables import (
    TableCodec,
    read_direct_counters,
    read_direct_meters,
    set_direct_counter,
    set_direct_meter,
)

log = logging.getLogger(__name__)

API_VERSION = "1.4.1"
READ_CHUNK = 5000
STREAM_BACKLOG = 20000  # messages queued for one stream before PacketIns/digests are dropped
SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest
GetReq = p4runtime_pb2.GetForwardingPipelineConfigRequest
Update = p4runtime_pb2.Update


def _precondition(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.FAILED_PRECONDITION, msg)


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


class P4RuntimeServer(p4runtime_pb2_grpc.P4RuntimeServicer):
    """P4Runtime server for one device (one Switch)."""

    def __init__(self, switch: Any, device_id: int = 0, address: str = "127.0.0.1:9559") -> None:
        self.switch = switch
        self.device_id = device_id
        self.address = address
        self.port: int | None = None
        self.arbitrator = Arbitrator(device_id)
        self.config_lock = threading.Lock()
        self.config: Any = None
        self.saved: _Prepared | None = None
        self.index: P4InfoIndex | None = None
        self.codec: TableCodec | None = None
        self.entities: Entities | None = None
        self.digests: Digests | None = None
        self._server: grpc.Server | None = None
        self.stats = {"packet_in_dropped": 0}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> P4RuntimeServer:
        opts = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=24, thread_name_prefix="p4rt"),
                                   options=opts)
        self._server.add_generic_rpc_handlers((self._handlers(),))
        try:
            port = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"cannot bind {self.address}: {exc}") from None
        if not port:
            raise OSError(f"cannot bind {self.address}")
        self.port = port
        self._server.start()
        self.switch.packet_in_sink = self._on_packet_in
        log.info("P4Runtime server listening on %s (port %d, device id %d)", self.address, port, self.device_id)
        return self

    def _handlers(self) -> grpc.GenericRpcHandler:
        """The P4Runtime service; requests are parsed in the handlers (see ``parsed``)."""
        pb = p4runtime_pb2
        unary = grpc.unary_unary_rpc_method_handler

        def parsed(cls: Any, fn: Any) -> Any:
            """Parse the request in the handler: a malformed one is INVALID_ARGUMENT, not gRPC's INTERNAL."""
            def handler(data: bytes, context: Any) -> Any:
                try:
                    req = cls.FromString(data)
                except DecodeError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {cls.__name__}: {exc}")
                return fn(req, context)
            return handler

        def parsed_stream(cls: Any, fn: Any) -> Any:
            def handler(data: bytes, context: Any) -> Any:
                try:
                    req = cls.FromString(data)
                except DecodeError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {cls.__name__}: {exc}")
                yield from fn(req, context)
            return handler

        return grpc.method_handlers_generic_handler("p4.v1.P4Runtime", {
            "Write": unary(parsed(pb.WriteRequest, self.Write), response_serializer=pb.WriteResponse.SerializeToString),
            "Read": grpc.unary_stream_rpc_method_handler(parsed_stream(pb.ReadRequest, self.Read),
                                                         response_serializer=pb.ReadResponse.SerializeToString),
            "SetForwardingPipelineConfig": unary(
                parsed(pb.SetForwardingPipelineConfigRequest, self.SetForwardingPipelineConfig),
                response_serializer=pb.SetForwardingPipelineConfigResponse.SerializeToString),
            "GetForwardingPipelineConfig": unary(
                parsed(pb.GetForwardingPipelineConfigRequest, self.GetForwardingPipelineConfig),
                response_serializer=pb.GetForwardingPipelineConfigResponse.SerializeToString),
            "StreamChannel": grpc.stream_stream_rpc_method_handler(
                self.StreamChannel, request_deserializer=pb.StreamMessageRequest.FromString,
                response_serializer=pb.StreamMessageResponse.SerializeToString),
            "Capabilities": unary(parsed(pb.CapabilitiesRequest, self.Capabilities),
                                  response_serializer=pb.CapabilitiesResponse.SerializeToString),
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

    @staticmethod
    def _abort(context: Any, err: P4RTError) -> None:
        context.abort(err.code, err.message)

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
        try:
            self._check_device(request.device_id)
            self.arbitrator.check_writer(request.role, request.election_id, request.HasField("election_id"))
            with self.config_lock:
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
        except P4RTError as err:
            self._abort(context, err)
        log.info("SetForwardingPipelineConfig %s done", SetReq.Action.Name(request.action))
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request: Any, context: Any) -> Any:
        try:
            self._check_device(request.device_id)
            self._need_pipeline()
        except P4RTError as err:
            self._abort(context, err)
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
    def Write(self, request: Any, context: Any) -> Any:
        updates = []
        for upd in request.updates:
            which = upd.entity.WhichOneof("entity")
            updates.append((upd.type, which, getattr(upd.entity, which) if which else None))
        return self._write(context, request.device_id, request.role, request.election_id,
                           request.HasField("election_id"), request.atomicity, updates)

    def _write(self, context: Any, device_id: int, role: str, election_id: Any, has_eid: bool, atomicity: int,
               updates: list) -> Any:
        try:
            self._check_device(device_id)
            self.arbitrator.check_writer(role, election_id, has_eid)
            self._need_pipeline()
            W = p4runtime_pb2.WriteRequest
            if atomicity not in (W.CONTINUE_ON_ERROR, W.ROLLBACK_ON_ERROR, W.DATAPLANE_ATOMIC):
                raise invalid(f"unknown atomicity {atomicity}")
        except P4RTError as err:
            self._abort(context, err)
        # Every batch is applied under the switch lock, so packets never see part of it: with
        # ROLLBACK_ON_ERROR/DATAPLANE_ATOMIC a failure also undoes the updates applied before it.
        rollback = atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR
        results: list[P4RTError | None] = []
        undos: list = []
        with self.switch.lock:
            for utype, which, obj in updates:
                try:
                    if rollback:
                        undo = undo_for(self, utype, which, obj)
                    self._apply(utype, which, obj)
                    results.append(None)
                    if rollback:
                        undos.append(undo)
                except P4RTError as err:
                    results.append(err)
                except Exception as exc:  # a bug must not take the server down; report it per update
                    log.exception("update failed unexpectedly")
                    results.append(P4RTError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"))
                if rollback and results[-1] is not None:
                    break
            if rollback and any(r is not None for r in results):
                for undo in reversed(undos):
                    try:
                        undo()
                    except Exception:  # noqa: BLE001 - keep undoing the rest
                        log.exception("rollback step failed")
                aborted = P4RTError(grpc.StatusCode.ABORTED, "rolled back: another update of the batch failed")
                results = [aborted if r is None else r for r in results]
                results += [aborted] * (len(updates) - len(results))
        if any(r is not None for r in results):
            for i, r in enumerate(results):
                if r is not None:
                    log.info("Write update %d failed: %s", i, r)
            status = write_status(results)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(grpc.StatusCode.UNKNOWN, status.message)
        return p4runtime_pb2.WriteResponse()

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
        try:
            self._check_device(request.device_id)
            self._need_pipeline()
            out: list = []
            with self.switch.lock:
                for ent in request.entities:
                    out.extend(self._read(ent))
        except P4RTError as err:
            self._abort(context, err)
            return
        except Exception as exc:  # a bug: report it, keep serving
            log.exception("Read failed unexpectedly")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        if not out:
            yield p4runtime_pb2.ReadResponse()
            return
        for i in range(0, len(out), READ_CHUNK):
            resp = p4runtime_pb2.ReadResponse()
            resp.entities.extend(out[i:i + READ_CHUNK])
            yield resp

    def _read(self, ent: Any) -> list:
        """Entity messages for one read request entity."""
        which = ent.WhichOneof("entity")
        E = p4runtime_pb2.Entity
        if which == "table_entry":
            return self.codec.read(ent.table_entry, entities=True)
        if which == "register_entry":
            return self.entities.read_register(ent.register_entry)
        if which == "counter_entry":
            return self.entities.read_counter(ent.counter_entry)
        if which == "meter_entry":
            return [E(meter_entry=m) for m in self.entities.read_meter(ent.meter_entry)]
        if which == "direct_counter_entry":
            return read_direct_counters(self.codec, ent.direct_counter_entry)
        if which == "direct_meter_entry":
            return [E(direct_meter_entry=m) for m in read_direct_meters(self.codec, ent.direct_meter_entry)]
        if which == "packet_replication_engine_entry":
            pre = self.entities.read_pre(ent.packet_replication_engine_entry)
            return [E(packet_replication_engine_entry=m) for m in pre]
        if which == "digest_entry":
            return [E(digest_entry=m) for m in self.digests.read(ent.digest_entry)]
        if which is None:
            raise invalid("read of an empty entity")
        raise unimplemented(f"{which} is not supported")

    # ------------------------------------------------------------------ StreamChannel
    def StreamChannel(self, request_iterator: Any, context: Any) -> Any:
        conn = Connection(context.peer())
        context.add_callback(lambda: conn.close())
        reader = threading.Thread(target=self._stream_reader, args=(conn, request_iterator),
                                  name=f"p4rt-stream-{conn.id}", daemon=True)
        reader.start()
        try:
            while True:
                msg = conn.out.get()
                if msg is None:
                    break
                yield msg
        finally:
            self.arbitrator.remove(conn)
        if conn.error is not None:
            context.abort(conn.error.code, conn.error.message)

    def _stream_reader(self, conn: Connection, requests: Any) -> None:
        try:
            for req in requests:
                which = req.WhichOneof("update")
                try:
                    if which == "arbitration":
                        self.arbitrator.update(conn, req.arbitration)
                    elif conn.role is None:
                        raise _precondition("the first stream message must be a MasterArbitrationUpdate")
                    elif which == "packet":
                        self._packet_out(conn, req.packet)
                    elif which == "digest_ack":
                        if self.digests is not None:
                            self.digests.ack(req.digest_ack.digest_id, req.digest_ack.list_id)
                    else:
                        raise unimplemented(f"stream message {which} is not supported")
                except P4RTError as err:
                    if which == "arbitration":
                        conn.close(err)
                        return
                    self._stream_error(conn, err, req)
        except Exception as exc:  # cancelled RPC, client gone, or a request gRPC could not decode
            log.debug("stream %d ended: %s", conn.id, exc)
        finally:
            conn.close()

    @staticmethod
    def _stream_error(conn: Connection, err: P4RTError, req: Any) -> None:
        msg = p4runtime_pb2.StreamMessageResponse()
        msg.error.canonical_code = err.code.value[0]
        msg.error.message = err.message
        if req.WhichOneof("update") == "packet":
            msg.error.packet_out.packet_out.CopyFrom(req.packet)
        elif req.WhichOneof("update") == "digest_ack":
            msg.error.digest_list_ack.digest_list_ack.CopyFrom(req.digest_ack)
        conn.send(msg)

    def _packet_out(self, conn: Connection, pkt: Any) -> None:
        if self.arbitrator.primary(conn.role or "") is not conn:
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED, "PacketOut from a client that is not primary")
        index = self.index
        if index is None:
            raise _precondition("no forwarding pipeline config set on the device")
        fields = index.packet_out
        header = b""
        if fields:
            known = {fid: (name, width) for fid, name, width in fields}
            values: dict[int, int] = {}
            for md in pkt.metadata:
                mid, raw = md.metadata_id, md.value
                if mid not in known:
                    raise invalid(f"unknown packet_out metadata id {mid}")
                name, width = known[mid]
                values[mid] = decode(raw, width, f"packet_out metadata {name}")
            header = pack_metadata(fields, values)
        try:
            self.switch.packet_out(header + pkt.payload)
        except RuntimeError as exc:
            raise _precondition(str(exc)) from None

    def _send_to_primary(self, msg: Any) -> bool:
        """Queue a PacketIn/DigestList for the default role's primary; False (dropped) when there is none
        or its stream is STREAM_BACKLOG messages behind (a slow client must not exhaust memory)."""
        prim = self.arbitrator.primary("")
        if prim is None:
            return False
        if prim.out.qsize() >= STREAM_BACKLOG:
            self.stats["stream_backlog_drops"] = self.stats.get("stream_backlog_drops", 0) + 1
            return False
        prim.send(msg)
        return True

    def _on_packet_in(self, data: bytes) -> None:
        """Switch callback for packets sent to the CPU port (called under the switch lock)."""
        index = self.index
        if index is not None and index.packet_in:
            try:
                metadata, payload = unpack_metadata(index.packet_in, data)
            except P4RTError as err:
                log.warning("packet-in dropped: %s", err.message)
                self.stats["packet_in_dropped"] += 1
                return
        else:
            metadata, payload = [], data
        msg = p4runtime_pb2.StreamMessageResponse()
        pkt = msg.packet
        pkt.payload = payload
        for mid, value in metadata:
            md = pkt.metadata.add()
            md.metadata_id, md.value = mid, encode(value)
        if not self._send_to_primary(msg):
            self.stats["packet_in_dropped"] += 1
