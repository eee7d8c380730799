"""Hand-encoded P4Runtime messages for the hot paths of batched migrations.

The installed protobuf runtime is the pure-Python one, where building a message costs tens of
microseconds per field; a 1,000-reference batch builds tens of thousands. This module writes the
exact bytes ``SerializeToString`` would produce (field-number order, proto3 defaults omitted — the unit
tests compare byte for byte) for the few shapes the migrator sends in bulk: table updates with exact
matches, register updates, PacketOut stream messages; and decodes PacketIn stream messages. Anything
else goes through the protobuf classes. Field numbers are those of p4/v1/p4runtime.proto (1.3/1.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["varint", "table_update", "register_update", "write_request", "packet_out_request",
           "packet_metadata", "decode_packet_in", "register_read_request", "decode_register_read", "WireError"]


class WireError(ValueError):
    """Bytes that are not the expected message (the caller falls back to protobuf)."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, data: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(data)) + data


def _vi(num: int, n: int) -> bytes:
    return varint(num << 3) + varint(n) if n else b""


def table_update(utype: int, table_id: int, exact: Sequence[tuple[int, bytes]], action_id: int | None = None,
                 params: Sequence[tuple[int, bytes]] = (), priority: int = 0) -> bytes:
    """A serialized ``Update`` carrying a TableEntry with exact matches (and an action, unless DELETE)."""
    te = _vi(1, table_id)
    for fid, value in exact:
        te += _ld(2, _vi(1, fid) + _ld(2, _ld(1, value)))
    if action_id is not None:
        act = _vi(1, action_id) + b"".join(_ld(4, _vi(2, pid) + _ld(3, v)) for pid, v in params)
        te += _ld(3, _ld(1, act))
    te += _vi(4, priority)
    return _vi(1, utype) + _ld(2, _ld(2, te))


def register_update(utype: int, register_id: int, index: int, value: bytes) -> bytes:
    re_ = _vi(1, register_id) + _ld(2, _vi(1, index)) + _ld(3, _ld(1, value))
    return _vi(1, utype) + _ld(2, _ld(11, re_))


def write_request(device_id: int, election_id: tuple[int, int], updates: Iterable[bytes], role: str = "",
                  atomicity: int = 0) -> bytes:
    eid = _vi(1, election_id[0]) + _vi(2, election_id[1])
    out = bytearray(_vi(1, device_id))
    out += _ld(3, eid)
    for u in updates:
        out += _ld(4, u)
    out += _vi(5, atomicity)
    if role:
        out += _ld(6, role.encode())
    return bytes(out)


def packet_metadata(items: Sequence[tuple[int, bytes]]) -> bytes:
    """The serialized ``repeated PacketMetadata metadata = 2`` part of a PacketOut (cache it)."""
    return b"".join(_ld(2, _vi(1, mid) + _ld(2, v)) for mid, v in items)


def packet_out_request(payload: bytes, metadata: bytes) -> bytes:
    """A serialized ``StreamMessageRequest{packet: PacketOut{payload, metadata}}``."""
    return _ld(2, _ld(1, payload) + metadata)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, int, int | bytes]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _read_varint(buf, pos)
            yield num, wt, val
        elif wt == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > len(buf):
                raise WireError("truncated field")
            yield num, wt, buf[pos:pos + n]
            pos += n
        else:
            raise WireError(f"unexpected wire type {wt}")


def decode_packet_in(data: bytes) -> tuple[bytes, list[tuple[int, bytes]]] | None:
    """(payload, [(metadata_id, value)]) when ``data`` is a StreamMessageResponse with a PacketIn;
    None for any other kind of stream message."""
    fields = list(_fields(data))
    if len(fields) != 1 or fields[0][0] != 2 or fields[0][1] != 2:
        return None
    payload = b""
    md: list[tuple[int, bytes]] = []
    for num, wt, val in _fields(fields[0][2]):  # type: ignore[arg-type]
        if num == 1 and wt == 2:
            payload = val  # type: ignore[assignment]
        elif num == 2 and wt == 2:
            mid, value = 0, b""
            for n2, w2, v2 in _fields(val):  # type: ignore[arg-type]
                if n2 == 1 and w2 == 0:
                    mid = v2  # type: ignore[assignment]
                elif n2 == 2 and w2 == 2:
                    value = v2  # type: ignore[assignment]
            md.append((mid, value))
    return payload, md


def register_read_request(device_id: int, cells: Iterable[tuple[int, int | None]], role: str = "") -> bytes:
    """A serialized ``ReadRequest`` for register cells: (register_id, index), index None = every cell."""
    out = bytearray(_vi(1, device_id))
    for rid, index in cells:
        re_ = _vi(1, rid) + (_ld(2, _vi(1, index)) if index is not None else b"")
        out += _ld(2, _ld(11, re_))
    if role:
        out += _ld(3, role.encode())
    return bytes(out)


def decode_register_read(data: bytes) -> list[tuple[int, int, int]]:
    """(register_id, index, value) of every RegisterEntry in a serialized ``ReadResponse`` (value: the
    bitstring as an unsigned integer). WireError on anything else."""
    out = []
    for num, wt, ent in _fields(data):
        if num != 1 or wt != 2:
            raise WireError(f"unexpected ReadResponse field {num}")
        (enum_, ewt, reg), = _fields(ent)  # type: ignore[arg-type]
        if enum_ != 11 or ewt != 2:
            raise WireError("not a register entry")
        rid = index = value = 0
        for n, w, v in _fields(reg):  # type: ignore[arg-type]
            if n == 1 and w == 0:
                rid = v  # type: ignore[assignment]
            elif n == 2 and w == 2:
                for n2, w2, v2 in _fields(v):  # type: ignore[arg-type]
                    if n2 == 1 and w2 == 0:
                        index = v2  # type: ignore[assignment]
            elif n == 3 and w == 2:
                for n2, w2, v2 in _fields(v):  # type: ignore[arg-type]
                    if n2 == 1 and w2 == 2:
                        value = int.from_bytes(v2, "big")  # type: ignore[arg-type]
        out.append((rid, index, value))
    return out
