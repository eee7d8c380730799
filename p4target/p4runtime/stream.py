"""The StreamChannel side of the P4Runtime server: admission, arbitration, PacketOut/PacketIn, digests.

A sync gRPC server spends one worker thread per open stream, so streams are admitted only up to
``max_streams`` (the excess is refused at once with RESOURCE_EXHAUSTED) and the worker pool is that many
plus ``UNARY_WORKERS``: idle streams can never take the workers that Write, Read and the other unary
RPCs need. As PI does, at most ``MAX_CONNECTIONS`` streams per device may take part in arbitration;
the next one's arbitration closes its stream with RESOURCE_EXHAUSTED ("Too many connections").
Stream messages arrive as bytes and are decoded here: an undecodable one closes the stream with
INVALID_ARGUMENT (simple_switch_grpc's gRPC layer ends the stream; we say why).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.arbitration import Arbitrator, Connection
from p4target.p4runtime.errors import P4RTError, invalid, unimplemented
from p4target.p4runtime.p4info import P4InfoIndex, decode, encode, pack_metadata, unpack_metadata

log = logging.getLogger(__name__)

MAX_STREAMS = 64          # open StreamChannel RPCs (arbitrated or not)
MAX_CONNECTIONS = 16      # arbitrated streams per device (PI's DeviceState::max_connections)
UNARY_WORKERS = 16        # workers left for Write/Read/... whatever the streams do
STREAM_BACKLOG = 20000    # messages queued for one stream before PacketIns/digests are dropped


def precondition(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.FAILED_PRECONDITION, msg)


class StreamService:
    """Mixin of P4RuntimeServer (uses its switch, arbitrator, index, digests and stats)."""

    switch: Any
    arbitrator: Arbitrator
    index: P4InfoIndex | None
    digests: Any
    stats: dict
    max_streams: int

    def _init_streams(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self._streams_open = 0
        self._streams_lock = threading.Lock()
        self._arb_lock = threading.Lock()

    # ------------------------------------------------------------------ admission
    def _admit_stream(self) -> bool:
        with self._streams_lock:
            if self._streams_open >= self.max_streams:
                self.stats["streams_refused"] = self.stats.get("streams_refused", 0) + 1
                return False
            self._streams_open += 1
            return True

    def _leave_stream(self) -> None:
        with self._streams_lock:
            self._streams_open -= 1

    @property
    def open_streams(self) -> int:
        return self._streams_open

    def _arbitrate(self, conn: Connection, upd: Any) -> None:
        with self._arb_lock:
            if conn.role is None:
                with self.arbitrator.lock:
                    count = sum(len(conns) for conns in self.arbitrator.roles.values())
                if count >= MAX_CONNECTIONS:
                    raise P4RTError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"Too many connections (at most {MAX_CONNECTIONS} per device)")
            self.arbitrator.update(conn, upd)

    # ------------------------------------------------------------------ the RPC
    def StreamChannel(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        if not self._admit_stream():
            log.warning("StreamChannel from %s refused: %d streams open", context.peer(), self.max_streams)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"too many open StreamChannels (at most {self.max_streams})")
        try:
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
        finally:
            self._leave_stream()
        if conn.error is not None:
            context.abort(conn.error.code, conn.error.message)

    def _stream_reader(self, conn: Connection, requests: Any) -> None:
        try:
            for data in requests:
                try:
                    req = p4runtime_pb2.StreamMessageRequest.FromString(data)
                except Exception as exc:  # noqa: BLE001 - DecodeError and friends: the client's fault
                    log.warning("stream %d (%s): undecodable StreamMessageRequest (%d bytes): %s", conn.id,
                                conn.peer, len(data), exc)
                    conn.close(invalid(f"undecodable StreamMessageRequest: {exc}"))
                    return
                if not self._stream_message(conn, req):
                    return
        except Exception as exc:  # noqa: BLE001 - cancelled RPC or client gone
            log.debug("stream %d ended: %s", conn.id, exc)
        finally:
            conn.close()

    def _stream_message(self, conn: Connection, req: Any) -> bool:
        """Handle one request; False when the stream must end."""
        which = req.WhichOneof("update")
        try:
            if which == "arbitration":
                self._arbitrate(conn, req.arbitration)
            elif conn.role is None:
                raise precondition("the first stream message must be a MasterArbitrationUpdate")
            elif which == "packet":
                self._packet_out(conn, req.packet)
            elif which == "digest_ack":
                if self.digests is not None:
                    self.digests.ack(req.digest_ack.digest_id, req.digest_ack.list_id)
            else:
                raise unimplemented(f"stream message {which} is not supported")
            return True
        except P4RTError as err:
            err_ = err
        except Exception as exc:  # a bug: say so on the stream, keep serving
            log.exception("stream %d: %s message failed unexpectedly", conn.id, which)
            err_ = P4RTError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        log.info("stream %d (%s): %s message refused: %s", conn.id, conn.peer, which, err_)
        if which == "arbitration":
            conn.close(err_)
            return False
        self._stream_error(conn, err_, req)
        return True

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
            raise precondition("no forwarding pipeline config set on the device")
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
            raise precondition(str(exc)) from None

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
        """Switch callback for packets sent to the CPU port (called under the switch lock; the message is
        serialized later, by the stream's gRPC thread)."""
        index = self.index
        msg = p4runtime_pb2.StreamMessageResponse()
        pkt = msg.packet
        if index is not None and index.packet_in:
            try:
                metadata, pkt.payload = unpack_metadata(index.packet_in, data)
            except P4RTError as err:
                log.warning("packet-in dropped: %s", err.message)
                self.stats["packet_in_dropped"] += 1
                return
            add = pkt.metadata.add
            for mid, value in metadata:
                md = add()
                md.metadata_id, md.value = mid, encode(value)
        else:
            pkt.payload = data
        if not self._send_to_primary(msg):
            self.stats["packet_in_dropped"] += 1
