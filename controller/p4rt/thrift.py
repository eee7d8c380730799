"""A small typed client for BMv2's Thrift runtime API (what ``simple_switch_CLI`` talks to).

BMv2 serves its runtime API over Thrift (binary protocol, buffered transport, services multiplexed
by name: ``standard`` for registers/counters/ports, ``simple_switch`` for the egress queues) on
``--thrift-port`` (9090 by default; ``simple_switch_grpc`` serves it too). Its P4Runtime server has no
RegisterEntry Read/Write (UNIMPLEMENTED), so register access on BMv2 goes through here
(``controller.p4rt.registers`` picks the path); queue faults (``topologies.degrade``) too.

``BmThrift`` encodes the few calls it needs by hand with the ``thrift`` library's protocol objects
(method names and field ids as BMv2's ``standard.thrift`` / ``simple_switch.thrift`` define them), so
no generated code is needed. One socket per client, calls serialized by a lock, reconnected after a
transport error. Failures raise ``ThriftError`` (``.code`` holds BMv2's error code when the switch
answered with one; ``.unreachable`` when nothing answered).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thrift.protocol import TBinaryProtocol, TMultiplexedProtocol
from thrift.Thrift import TApplicationException, TException, TMessageType, TType
from thrift.transport import TSocket, TTransport

__all__ = ["BmThrift", "ThriftError", "PortInfo"]

log = logging.getLogger(__name__)

CXT = 0                     # BMv2 context id (one context per simple_switch)
_I64 = 1 << 64
REGISTER_ERRORS = {1: "INVALID_REGISTER_NAME", 2: "INVALID_INDEX", 3: "ERROR"}


class ThriftError(RuntimeError):
    """A BMv2 Thrift call failed: the switch answered with an error, or could not be reached."""

    def __init__(self, message: str, code: int | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.unreachable = unreachable


@dataclass(frozen=True)
class PortInfo:
    port: int
    iface: str
    up: bool


def _write_value(proto: Any, ttype: int, value: Any) -> None:
    if ttype == TType.I32:
        proto.writeI32(int(value))
    elif ttype == TType.I64:
        proto.writeI64(int(value))
    elif ttype == TType.STRING:
        proto.writeString(str(value))
    elif ttype == TType.BOOL:
        proto.writeBool(bool(value))
    else:
        raise TypeError(f"thrift argument type {ttype} not supported")


def _read_value(proto: Any, ttype: int) -> Any:
    """Any Thrift value, structs as {field id: value} (the calls here only need ids)."""
    if ttype == TType.BOOL:
        return proto.readBool()
    if ttype == TType.BYTE:
        return proto.readByte()
    if ttype == TType.I16:
        return proto.readI16()
    if ttype == TType.I32:
        return proto.readI32()
    if ttype == TType.I64:
        return proto.readI64()
    if ttype == TType.DOUBLE:
        return proto.readDouble()
    if ttype == TType.STRING:
        return proto.readBinary()
    if ttype == TType.STRUCT:
        return _read_struct(proto)
    if ttype in (TType.LIST, TType.SET):
        etype, size = proto.readListBegin() if ttype == TType.LIST else proto.readSetBegin()
        out = [_read_value(proto, etype) for _ in range(size)]
        proto.readListEnd() if ttype == TType.LIST else proto.readSetEnd()
        return out
    if ttype == TType.MAP:
        ktype, vtype, size = proto.readMapBegin()
        out_map = {}
        for _ in range(size):
            k = _read_value(proto, ktype)
            out_map[k] = _read_value(proto, vtype)
        proto.readMapEnd()
        return out_map
    proto.skip(ttype)
    return None


def _read_struct(proto: Any) -> dict[int, Any]:
    out: dict[int, Any] = {}
    proto.readStructBegin()
    while True:
        _, ftype, fid = proto.readFieldBegin()
        if ftype == TType.STOP:
            break
        out[fid] = _read_value(proto, ftype)
        proto.readFieldEnd()
    proto.readStructEnd()
    return out


class BmThrift:
    """BMv2's runtime API on ``host:port``. Connects on first use; thread-safe (one call at a time)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9090, timeout: float = 5.0, name: str = "") -> None:
        self.host, self.port, self.timeout = host, int(port), timeout
        self.name = name or f"{host}:{port}"
        self._lock = threading.Lock()
        self._transport: TTransport.TTransportBase | None = None
        self._base: TBinaryProtocol.TBinaryProtocol | None = None
        self._services: dict[str, TMultiplexedProtocol.TMultiplexedProtocol] = {}
        self._seq = 0

    def __enter__(self) -> BmThrift:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._transport is not None:
            try:
                self._transport.close()
            except (TException, OSError):
                pass
        self._transport, self._base, self._services = None, None, {}

    def _connect(self) -> None:
        sock = TSocket.TSocket(self.host, self.port)
        sock.setTimeout(self.timeout * 1000)
        transport = TTransport.TBufferedTransport(sock)
        try:
            transport.open()
        except TException as exc:
            raise ThriftError(f"{self.name}: cannot reach the BMv2 Thrift server at {self.host}:{self.port}: "
                              f"{exc}", unreachable=True) from None
        self._transport = transport
        self._base = TBinaryProtocol.TBinaryProtocol(transport)

    def _call(self, service: str, method: str, args: Sequence[tuple[int, int, Any]] = ()) -> dict[int, Any]:
        """One call; returns the result struct ({0: success, n: exception n})."""
        with self._lock:
            if self._transport is None:
                self._connect()
            assert self._base is not None
            proto = self._services.get(service)
            if proto is None:
                proto = self._services[service] = TMultiplexedProtocol.TMultiplexedProtocol(self._base, service)
            self._seq += 1
            try:
                proto.writeMessageBegin(method, TMessageType.CALL, self._seq)
                proto.writeStructBegin(f"{method}_args")
                for fid, ttype, value in args:
                    proto.writeFieldBegin(f"f{fid}", ttype, fid)
                    _write_value(proto, ttype, value)
                    proto.writeFieldEnd()
                proto.writeFieldStop()
                proto.writeStructEnd()
                proto.writeMessageEnd()
                proto.trans.flush()
                _, mtype, _ = self._base.readMessageBegin()
                if mtype == TMessageType.EXCEPTION:
                    app = TApplicationException()
                    app.read(self._base)
                    self._base.readMessageEnd()
                    raise ThriftError(f"{self.name}: {service}.{method}: {app.message or app}")
                result = _read_struct(self._base)
                self._base.readMessageEnd()
            except (TException, OSError, EOFError) as exc:
                if isinstance(exc, ThriftError):
                    raise
                self._drop()
                raise ThriftError(f"{self.name}: {service}.{method} failed: {exc}",
                                  unreachable=True) from None
        return result

    @staticmethod
    def _ouch(result: dict[int, Any], what: str, names: dict[int, str] | None = None) -> None:
        for fid, value in result.items():
            if fid != 0 and isinstance(value, dict):
                code = value.get(1)
                raise ThriftError(f"{what}: {(names or {}).get(code, f'error code {code}')}", code=code)

    # ---- registers -------------------------------------------------------------------------------
    def register_read(self, name: str, index: int) -> int:
        r = self._call("standard", "bm_register_read", [(1, TType.I32, CXT), (2, TType.STRING, name),
                                                        (3, TType.I32, index)])
        self._ouch(r, f"{self.name}: register_read {name}[{index}]", REGISTER_ERRORS)
        return r.get(0, 0) % _I64

    def register_read_all(self, name: str) -> list[int]:
        r = self._call("standard", "bm_register_read_all", [(1, TType.I32, CXT), (2, TType.STRING, name)])
        self._ouch(r, f"{self.name}: register_read {name}", REGISTER_ERRORS)
        return [v % _I64 for v in r.get(0) or []]

    def register_write(self, name: str, index: int, value: int) -> None:
        r = self._call("standard", "bm_register_write", [(1, TType.I32, CXT), (2, TType.STRING, name),
                                                         (3, TType.I32, index), (4, TType.I64, _signed(value))])
        self._ouch(r, f"{self.name}: register_write {name}[{index}]", REGISTER_ERRORS)

    def register_write_range(self, name: str, start: int, end: int, value: int) -> None:
        """Cells ``start`` up to (not including) ``end`` set to ``value``."""
        r = self._call("standard", "bm_register_write_range",
                       [(1, TType.I32, CXT), (2, TType.STRING, name), (3, TType.I32, start), (4, TType.I32, end),
                        (5, TType.I64, _signed(value))])
        self._ouch(r, f"{self.name}: register_write {name}[{start}:{end}]", REGISTER_ERRORS)

    def register_reset(self, name: str) -> None:
        r = self._call("standard", "bm_register_reset", [(1, TType.I32, CXT), (2, TType.STRING, name)])
        self._ouch(r, f"{self.name}: register_reset {name}", REGISTER_ERRORS)

    # ---- counters and ports ----------------------------------------------------------------------
    def counter_read(self, name: str, index: int) -> tuple[int, int]:
        """(packets, bytes) of an indirect counter cell."""
        r = self._call("standard", "bm_counter_read", [(1, TType.I32, CXT), (2, TType.STRING, name),
                                                       (3, TType.I32, index)])
        self._ouch(r, f"{self.name}: counter_read {name}[{index}]")
        value = r.get(0) or {}
        return value.get(2, 0), value.get(1, 0)

    def show_ports(self) -> list[PortInfo]:
        r = self._call("standard", "bm_dev_mgr_show_ports")
        self._ouch(r, f"{self.name}: show_ports")
        return [PortInfo(p.get(1, 0), (p.get(2) or b"").decode(errors="replace"), bool(p.get(3)))
                for p in r.get(0) or []]

    # ---- egress queues (simple_switch) -------------------------------------------------------------
    def set_queue_rate(self, pps: int, port: int | None = None) -> None:
        """Egress queue rate in packets/s of ``port`` (every port when None); 0 removes the limit."""
        if port is None:
            self._call("simple_switch", "set_all_egress_queue_rates", [(1, TType.I64, pps)])
        else:
            self._call("simple_switch", "set_egress_queue_rate", [(1, TType.I32, port), (2, TType.I64, pps)])

    def set_queue_depth(self, packets: int, port: int | None = None) -> None:
        """Egress queue depth in packets of ``port`` (every port when None)."""
        if port is None:
            self._call("simple_switch", "set_all_egress_queue_depths", [(1, TType.I32, packets)])
        else:
            self._call("simple_switch", "set_egress_queue_depth", [(1, TType.I32, port), (2, TType.I32, packets)])


def _signed(value: int) -> int:
    """A register value as BMv2's i64 argument. BMv2 keeps cells of 64-bit registers at or below
    2^63 - 1 when written or read through Thrift (its API is signed): counters never get there."""
    value = int(value) % _I64
    return value - _I64 if value >= 1 << 63 else value
