"""The server's WriteRequest decoding (p4target/p4runtime/batch.py: a framing splitter, then protobuf a
chunk at a time) gives what protobuf gives for the whole request; broken framing is INVALID_ARGUMENT for
the request, an undecodable update is that update's INVALID_ARGUMENT only."""

from __future__ import annotations

import random

import grpc
import pytest
from p4.v1 import p4runtime_pb2 as pb

from p4target.p4runtime.batch import WriteBatch
from p4target.p4runtime.errors import P4RTError


def _random_entry(rng: random.Random) -> pb.TableEntry:
    te = pb.TableEntry(table_id=rng.randrange(1, 1 << 32), priority=rng.choice([0, 1, 7, 1 << 30, -5]))
    for fid in range(1, rng.randrange(1, 5)):
        fm = te.match.add(field_id=fid)
        v = rng.randbytes(rng.randrange(1, 9))
        kind = rng.choice(["exact", "lpm", "ternary", "range", "optional"])
        if kind == "exact":
            fm.exact.value = v
        elif kind == "lpm":
            fm.lpm.value, fm.lpm.prefix_len = v, rng.randrange(0, 300)
        elif kind == "ternary":
            fm.ternary.value, fm.ternary.mask = v, rng.randbytes(3)
        elif kind == "range":
            fm.range.low, fm.range.high = v, rng.randbytes(2)
        else:
            fm.optional.value = v
    r = rng.random()
    if r < 0.8:
        te.action.action.action_id = rng.randrange(1, 1 << 32)
        for pid in range(rng.randrange(0, 4)):   # values up to 200 bytes: 2-byte lengths
            te.action.action.params.add(param_id=pid + 1, value=rng.randbytes(rng.randrange(0, 200)))
    elif r < 0.9:
        te.action.action_profile_member_id = rng.randrange(1, 100)
    if rng.random() < 0.1:
        te.counter_data.packet_count, te.counter_data.byte_count = rng.randrange(1 << 40), 7
    te.is_default_action = rng.random() < 0.1
    return te


def _request(n: int, seed: int = 7) -> pb.WriteRequest:
    rng = random.Random(seed)
    req = pb.WriteRequest(device_id=1 << 40, role="r1", atomicity=pb.WriteRequest.ROLLBACK_ON_ERROR)
    req.election_id.high, req.election_id.low = 2, 1 << 40
    for i in range(n):
        upd = req.updates.add(type=1 + i % 3)
        if i % 10 == 9:
            r = upd.entity.register_entry
            r.register_id, r.index.index, r.data.bitstring = 369098753, i, rng.randbytes(4)
        else:
            upd.entity.table_entry.CopyFrom(_random_entry(rng))
    return req


@pytest.mark.parametrize("chunk", [1, 7, 512])
def test_chunks_decode_as_protobuf_decodes_the_whole_request(chunk):
    req = _request(300)
    data = req.SerializeToString()
    data += b"\x98\x06\x05"    # an unknown varint field 99 (two-byte key): skipped, as protobuf skips it
    batch = WriteBatch.parse(data)
    assert (batch.device_id, batch.role, batch.election_id, batch.atomicity) == \
        (1 << 40, "r1", (2, 1 << 40), pb.WriteRequest.ROLLBACK_ON_ERROR)
    assert len(batch) == 300
    chunks = list(batch.chunks(chunk))
    assert [len(c) for c in chunks[:-1]] == [chunk] * (len(chunks) - 1)
    decoded = [u for c in chunks for u in c]
    assert len(decoded) == 300
    for (utype, which, obj), upd in zip(decoded, req.updates, strict=True):
        assert (utype, which) == (upd.type, upd.entity.WhichOneof("entity"))
        assert obj == getattr(upd.entity, which)


def test_an_update_without_entity_decodes_as_none():
    req = pb.WriteRequest()
    req.updates.add(type=pb.Update.INSERT)
    ((utype, which, obj),) = next(WriteBatch.parse(req.SerializeToString()).chunks())
    assert (utype, which, obj) == (pb.Update.INSERT, None, None)


@pytest.mark.parametrize("data", [b"\x22\x05\x12\x03", b"\x08", b"\x22\xff", b"\x0f\x00", b"\x00\x00",
                                  b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x32\x02\xff\xfe"])
def test_broken_request_is_invalid_argument(data):
    with pytest.raises(P4RTError) as ei:
        WriteBatch.parse(data)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed WriteRequest" in ei.value.message


def test_undecodable_update_is_that_updates_error_only():
    req = _request(20, seed=3)
    good = [u.SerializeToString() for u in req.updates]
    bad = b"\x08\x02\x12\x05\x5a\x03\x08\xff"   # register_entry with a truncated varint inside
    updates = good[:11] + [bad] + good[11:]
    data = b"".join(b"\x22" + bytes([len(u)]) + u if len(u) < 128 else
                    b"\x22" + bytes([len(u) & 0x7F | 0x80, len(u) >> 7]) + u for u in updates)
    decoded = [u for c in WriteBatch.parse(data).chunks(8) for u in c]
    assert len(decoded) == 21
    errors = [i for i, u in enumerate(decoded) if isinstance(u, P4RTError)]
    assert errors == [11]
    assert decoded[11].code == grpc.StatusCode.INVALID_ARGUMENT
    rest = [u for i, u in enumerate(decoded) if i != 11]
    for (utype, which, obj), upd in zip(rest, req.updates, strict=True):
        assert (utype, obj) == (upd.type, getattr(upd.entity, which))
