"""Hand-written protobuf wire codec for the P4Runtime hot paths.

The ``protobuf`` package here is the pure-Python implementation (3.20, no C++ extension for this
Python), which costs ~100 µs per table-entry update to parse and ~100 µs per register cell to build and
serialize. Batched table writes and bulk register/counter reads are the controller's hot paths, so the
server decodes WriteRequests and encodes register/counter ReadResponses itself:

* ``decode_write`` splits a WriteRequest into its header and updates; a table-entry update becomes a
  ``FastTableEntry`` (duck-typed like ``p4.v1.TableEntry`` for what ``TableCodec.write`` reads) unless
  it uses a rare field (counter data, meter config, metadata, idle timeout, action profiles), in which
  case that update alone is parsed by protobuf. Anything malformed raises ``WireError``; the caller then
  lets protobuf parse the whole request so errors stay protobuf's.
* ``entity_register`` / ``entity_counter`` / ``read_response`` build the response bytes directly.
"""

from __future__ import annotations

from typing import Any

from p4.v1 import p4runtime_pb2


class WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _fields(buf: bytes, pos: int = 0, end: int | None = None) -> list[tuple[int, int, Any]]:
    """[(field number, wire type, value)]: ints for varints, (start, end) for length-delimited fields.
    Single-byte varints (nearly all tags, ids and lengths) take the fast path."""
    end = len(buf) if end is None else end
    out = []
    append = out.append
    while pos < end:
        key = buf[pos]
        if key & 0x80:
            key, pos = _varint(buf, pos)
        else:
            pos += 1
        wt = key & 7
        if wt == 0:
            b = buf[pos]
            if b & 0x80:
                val, pos = _varint(buf, pos)
            else:
                val = b
                pos += 1
            append((key >> 3, 0, val))
        elif wt == 2:
            n = buf[pos]
            if n & 0x80:
                n, pos = _varint(buf, pos)
            else:
                pos += 1
            if pos + n > end:
                raise WireError("truncated field")
            append((key >> 3, 2, (pos, pos + n)))
            pos += n
        elif wt == 1:
            pos += 8
            append((key >> 3, 1, None))
        elif wt == 5:
            pos += 4
            append((key >> 3, 5, None))
        else:
            raise WireError(f"unsupported wire type {wt}")
    if pos != end:
        raise WireError("field overruns its message")
    return out


class _Obj:
    """A plain attribute holder (FieldMatch.Exact/LPM/..., Action.Param)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class FastFieldMatch:
    __slots__ = ("field_id", "_kind", "exact", "lpm", "ternary", "range", "optional")

    def __init__(self) -> None:
        self.field_id = 0
        self._kind: str | None = None

    def WhichOneof(self, _name: str) -> str | None:  # noqa: N802 - protobuf API
        return self._kind


class FastAction:
    __slots__ = ("action_id", "params")

    def __init__(self) -> None:
        self.action_id = 0
        self.params: list[_Obj] = []


class FastTableAction:
    __slots__ = ("action",)

    def __init__(self) -> None:
        self.action = FastAction()

    def WhichOneof(self, _name: str) -> str:  # noqa: N802 - protobuf API
        return "action"


class FastTableEntry:
    """The subset of p4.v1.TableEntry that TableCodec.write uses, decoded from wire bytes."""

    __slots__ = ("table_id", "match", "action", "priority", "is_default_action", "idle_timeout_ns", "_raw")

    def __init__(self, raw: bytes) -> None:
        self.table_id = 0
        self.match: list[FastFieldMatch] = []
        self.action: FastTableAction | None = None
        self.priority = 0
        self.is_default_action = False
        self.idle_timeout_ns = 0
        self._raw = raw

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf API
        return name == "action" and self.action is not None

    def to_proto(self) -> p4runtime_pb2.TableEntry:
        return p4runtime_pb2.TableEntry.FromString(self._raw)


_MATCH_KINDS = {2: "exact", 3: "ternary", 4: "lpm", 6: "range", 7: "optional"}


def _id_and_bytes(buf: bytes, span: tuple[int, int], id_num: int, bytes_num: int, what: str) -> tuple[int, bytes]:
    """(id, value) of a message made of a varint id and a bytes value (an action Param, a
    PacketMetadata), given their field numbers; WireError for any other field."""
    ident, value = 0, b""
    for num, wt, v in _fields(buf, *span):
        if num == id_num and wt == 0:
            ident = v
        elif num == bytes_num and wt == 2:
            value = buf[v[0]:v[1]]
        else:
            raise WireError(f"unexpected field in {what}")
    return ident, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _field_match(buf: bytes, start: int, end: int) -> FastFieldMatch:
    fm = FastFieldMatch()
    for num, wt, val in _fields(buf, start, end):
        if num == 1 and wt == 0:
            fm.field_id = val
        elif num in _MATCH_KINDS and wt == 2:
            kind = _MATCH_KINDS[num]
            if fm._kind is not None:
                raise WireError("two match kinds in one field match")
            fm._kind = kind
            a = b = b""
            plen = 0
            for n2, w2, v2 in _fields(buf, val[0], val[1]):
                if w2 == 2 and n2 == 1:
                    a = buf[v2[0]:v2[1]]
                elif w2 == 2 and n2 == 2:
                    b = buf[v2[0]:v2[1]]
                elif w2 == 0 and n2 == 2 and kind == "lpm":
                    plen = _signed64(v2)  # int32: negatives are sign-extended to 64 bits
                else:
                    raise WireError("unexpected field in a field match")
            if kind == "lpm":
                fm.lpm = _Obj(value=a, prefix_len=plen)
            elif kind == "ternary":
                fm.ternary = _Obj(value=a, mask=b)
            elif kind == "range":
                fm.range = _Obj(low=a, high=b)
            elif kind == "exact":
                fm.exact = _Obj(value=a)
            else:
                fm.optional = _Obj(value=a)
        else:
            raise WireError("unsupported field-match field")
    return fm


def _table_entry(buf: bytes, start: int, end: int) -> FastTableEntry | None:
    te = FastTableEntry(buf[start:end])
    for num, wt, val in _fields(buf, start, end):
        if num == 1 and wt == 0:
            te.table_id = val
        elif num == 2 and wt == 2:
            te.match.append(_field_match(buf, *val))
        elif num == 3 and wt == 2:
            ta = FastTableAction()
            for n2, w2, v2 in _fields(buf, *val):
                if n2 != 1 or w2 != 2:
                    return None  # action profile member/group/set: let protobuf parse it
                for n3, w3, v3 in _fields(buf, *v2):
                    if n3 == 1 and w3 == 0:
                        ta.action.action_id = v3
                    elif n3 == 4 and w3 == 2:
                        pid, value = _id_and_bytes(buf, v3, 2, 3, "an action param")
                        ta.action.params.append(_Obj(param_id=pid, value=value))
                    else:
                        raise WireError("unexpected field in an action")
            te.action = ta
        elif num == 4 and wt == 0:
            te.priority = _signed64(val)
        elif num == 8 and wt == 0:
            te.is_default_action = bool(val)
        elif num == 13 and wt == 0:
            pass  # is_const: ignored on writes
        else:
            return None  # counter data, meter config, metadata, idle timeout...: protobuf parses it
    return te


class Header:
    __slots__ = ("device_id", "role", "election_id", "atomicity")

    def __init__(self) -> None:
        self.device_id = 0
        self.role = ""
        self.election_id: tuple[int, int] | None = None
        self.atomicity = 0


def decode_write(data: bytes) -> tuple[Header, list[tuple[int, str | None, Any]]]:
    """WriteRequest bytes → (header, [(update type, entity kind, entity object)])."""
    try:
        return _decode_write(data)
    except IndexError:
        raise WireError("truncated message") from None


def _decode_write(data: bytes) -> tuple[Header, list[tuple[int, str | None, Any]]]:
    hdr = Header()
    updates: list[tuple[int, str | None, Any]] = []
    for num, wt, val in _fields(data):
        if num == 1 and wt == 0:
            hdr.device_id = val
        elif num == 6 and wt == 2:
            hdr.role = data[val[0]:val[1]].decode("utf-8")
        elif num == 3 and wt == 2:
            high = low = 0
            for n2, w2, v2 in _fields(data, *val):
                if n2 == 1 and w2 == 0:
                    high = v2
                elif n2 == 2 and w2 == 0:
                    low = v2
            hdr.election_id = (high, low)
        elif num == 4 and wt == 2:
            utype, kind, obj = 0, None, None
            for n2, w2, v2 in _fields(data, *val):
                if n2 == 1 and w2 == 0:
                    utype = v2
                elif n2 == 2 and w2 == 2:
                    kind, obj = _entity(data, *v2)
                else:
                    raise WireError("unexpected field in an update")
            updates.append((utype, kind, obj))
        elif num == 5 and wt == 0:
            hdr.atomicity = val
        elif num == 2:
            pass  # role_id (deprecated)
        else:
            raise WireError("unexpected field in a write request")
    return hdr, updates


def _entity(buf: bytes, start: int, end: int) -> tuple[str | None, Any]:
    kinds = []
    for num, wt, val in _fields(buf, start, end):
        if wt != 2:
            raise WireError("unexpected field in an entity")
        kinds.append((num, val))
    if len(kinds) != 1:
        ent = p4runtime_pb2.Entity.FromString(buf[start:end])  # empty or odd: protobuf's reading wins
        which = ent.WhichOneof("entity")
        return which, getattr(ent, which) if which else None
    num, (s, e) = kinds[0]
    if num == 2:
        te = _table_entry(buf, s, e)
        if te is not None:
            return "table_entry", te
    ent = p4runtime_pb2.Entity.FromString(buf[start:end])
    which = ent.WhichOneof("entity")
    return which, getattr(ent, which) if which else None


# ---------------------------------------------------------------------------- encoding
def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _enc_varint(len(payload)) + payload


def _bitstring(v: int) -> bytes:
    return v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")


def entity_register(register_id: int, index: int, value: int) -> bytes:
    """Encoded Entity{register_entry{register_id, index{index}, data{bitstring}}}."""
    body = (b"\x08" + _enc_varint(register_id) + _ld(0x12, b"\x08" + _enc_varint(index))
            + _ld(0x1A, _ld(0x0A, _bitstring(value))))
    return _ld(0x5A, body)  # field 11, wire type 2


def entity_counter(counter_id: int, index: int, packets: int, nbytes: int) -> bytes:
    """Encoded Entity{counter_entry{counter_id, index{index}, data{byte_count, packet_count}}}."""
    data = b""
    if nbytes:
        data += b"\x08" + _enc_varint(nbytes)
    if packets:
        data += b"\x10" + _enc_varint(packets)
    body = b"\x08" + _enc_varint(counter_id) + _ld(0x12, b"\x08" + _enc_varint(index)) + _ld(0x1A, data)
    return _ld(0x3A, body)  # field 7, wire type 2


def read_response(entities: list[bytes]) -> bytes:
    """Encoded ReadResponse{entities} from encoded Entity messages."""
    return b"".join(b"\x0a" + _enc_varint(len(e)) + e for e in entities)


def _uvarint_field(tag: int, v: int) -> bytes:
    return bytes([tag]) + _enc_varint(v & 0xFFFFFFFFFFFFFFFF)  # negatives: 64-bit two's complement


_FM_TAGS = {"exact": 0x12, "ternary": 0x1A, "lpm": 0x22, "range": 0x32, "optional": 0x3A}


def table_entry(table_id: int, priority: int, matches: list[tuple[int, str, int, int]], action_id: int,
                params: list[tuple[int, int]], is_const: bool = False,
                counter: tuple[int, int] | None = None, meter: tuple[int, int, int, int] | None = None) -> bytes:
    """Encoded TableEntry. matches: (field_id, kind, a, b) with a = value/low and b = prefix_len, mask or
    high (ignored for exact/optional); params: (param_id, value)."""
    out = [b"\x08" + _enc_varint(table_id)]
    for fid, kind, a, b in matches:
        if kind in ("exact", "optional"):
            sub = _ld(0x0A, _bitstring(a))
        elif kind == "lpm":
            sub = _ld(0x0A, _bitstring(a)) + b"\x10" + _enc_varint(b)
        else:  # ternary (value, mask), range (low, high)
            sub = _ld(0x0A, _bitstring(a)) + _ld(0x12, _bitstring(b))
        out.append(_ld(0x12, b"\x08" + _enc_varint(fid) + _ld(_FM_TAGS[kind], sub)))
    if action_id:
        act = b"\x08" + _enc_varint(action_id) + b"".join(
            _ld(0x22, b"\x10" + _enc_varint(pid) + _ld(0x1A, _bitstring(v))) for pid, v in params)
        out.append(_ld(0x1A, _ld(0x0A, act)))
    if priority:
        out.append(_uvarint_field(0x20, priority))
    if meter is not None:
        out.append(_ld(0x32, b"".join(_uvarint_field(tag, v) for tag, v in zip((0x08, 0x10, 0x18, 0x20), meter,
                                                                                  strict=True) if v)))
    if counter is not None:
        out.append(_ld(0x3A, counter_data(*counter)))
    if is_const:
        out.append(b"\x68\x01")
    return b"".join(out)


def counter_data(packets: int, nbytes: int) -> bytes:
    return (b"\x08" + _enc_varint(nbytes) if nbytes else b"") + (b"\x10" + _enc_varint(packets) if packets else b"")


def entity_table(encoded_table_entry: bytes) -> bytes:
    return _ld(0x12, encoded_table_entry)  # Entity.table_entry = 2


def entity_direct_counter(encoded_table_entry: bytes, packets: int, nbytes: int) -> bytes:
    body = _ld(0x0A, encoded_table_entry) + _ld(0x12, counter_data(packets, nbytes))
    return _ld(0x42, body)  # Entity.direct_counter_entry = 8


# ---------------------------------------------------------------------------- stream: packet in / out
def packet_in(payload: bytes, metadata: list[tuple[int, int]]) -> bytes:
    """Encoded StreamMessageResponse{packet{payload, metadata[(id, value)]}}."""
    body = _ld(0x0A, payload) + b"".join(
        _ld(0x12, b"\x08" + _enc_varint(mid) + _ld(0x12, _bitstring(v))) for mid, v in metadata)
    return _ld(0x12, body)


class FastPacketOut:
    """The PacketOut of a StreamMessageRequest: .payload bytes, .metadata [(id, value bytes)]."""

    __slots__ = ("payload", "metadata", "_raw")

    def __init__(self, payload: bytes, metadata: list[tuple[int, bytes]], raw: bytes) -> None:
        self.payload, self.metadata, self._raw = payload, metadata, raw

    def to_proto(self) -> p4runtime_pb2.PacketOut:
        return p4runtime_pb2.PacketOut.FromString(self._raw)


def decode_stream_request(data: bytes) -> Any:
    """StreamMessageRequest bytes → FastPacketOut for packets, else the protobuf message."""
    try:
        fields = _fields(data)
        if len(fields) == 1 and fields[0][0] == 2 and fields[0][1] == 2:
            s, e = fields[0][2]
            payload, md = b"", []
            for num, wt, val in _fields(data, s, e):
                if num == 1 and wt == 2:
                    payload = data[val[0]:val[1]]
                elif num == 2 and wt == 2:
                    md.append(_id_and_bytes(data, val, 1, 2, "packet metadata"))
                else:
                    raise WireError("unexpected field in a packet out")
            return FastPacketOut(payload, md, data[s:e])
    except (WireError, IndexError):
        pass
    return p4runtime_pb2.StreamMessageRequest.FromString(data)
