"""The hand-written wire codec agrees with protobuf, and falls back to it for what it does not decode."""

from __future__ import annotations

import random

import pytest
from p4.v1 import p4runtime_pb2 as pb

from p4target.p4runtime import wire


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
    if rng.random() < 0.9:
        te.action.action.action_id = rng.randrange(1, 1 << 32)
        for pid in range(rng.randrange(0, 4)):
            te.action.action.params.add(param_id=pid + 1, value=rng.randbytes(rng.randrange(0, 20)))
    te.is_default_action = rng.random() < 0.1
    return te


def _as_dict(te) -> dict:
    matches = []
    for fm in te.match:
        kind = fm.WhichOneof("field_match_type")
        sub = getattr(fm, kind)
        matches.append((fm.field_id, kind, tuple(getattr(sub, a, None) for a in
                                                 ("value", "prefix_len", "mask", "low", "high"))))
    action = None
    if te.HasField("action"):
        a = te.action.action
        action = (a.action_id, [(p.param_id, p.value) for p in a.params])
    return {"table_id": te.table_id, "priority": te.priority, "default": te.is_default_action,
            "match": matches, "action": action}


def test_decode_write_matches_protobuf():
    rng = random.Random(7)
    req = pb.WriteRequest(device_id=3, role="r1", atomicity=pb.WriteRequest.CONTINUE_ON_ERROR)
    req.election_id.high, req.election_id.low = 2, 1 << 40
    entries = [_random_entry(rng) for _ in range(200)]
    for i, te in enumerate(entries):
        req.updates.add(type=1 + i % 3).entity.table_entry.CopyFrom(te)
    req.updates.add(type=2).entity.register_entry.register_id = 9
    hdr, ups = wire.decode_write(req.SerializeToString())
    assert (hdr.device_id, hdr.role, hdr.election_id, hdr.atomicity) == (3, "r1", (2, 1 << 40), 0)
    assert len(ups) == 201
    for (utype, kind, obj), te, upd in zip(ups, entries, req.updates, strict=False):
        assert kind == "table_entry" and utype == upd.type
        assert isinstance(obj, wire.FastTableEntry)
        assert _as_dict(obj) == _as_dict(te)
    assert ups[-1][1] == "register_entry" and ups[-1][2].register_id == 9


def test_rare_fields_fall_back_to_protobuf():
    req = pb.WriteRequest()
    te = req.updates.add(type=1).entity.table_entry
    te.table_id = 5
    te.counter_data.packet_count = 3
    te.action.action_profile_member_id = 4
    (_t, kind, obj), = wire.decode_write(req.SerializeToString())[1]
    assert kind == "table_entry" and isinstance(obj, pb.TableEntry) and obj.counter_data.packet_count == 3


@pytest.mark.parametrize("data", [b"\x22\x05\x12\x03", b"\x08", b"\x22\xff", b"\x0f\x00"])
def test_malformed_raises_wire_error(data):
    with pytest.raises(wire.WireError):
        wire.decode_write(data)


def test_encoders_parse_back():
    ents = [wire.entity_register(369098753, i, v) for i, v in ((0, 0), (1, 255), (9999, 1 << 40))]
    ents.append(wire.entity_counter(302011001, 7, 3, 1 << 33))
    ents.append(wire.entity_counter(302011001, 8, 0, 0))
    resp = pb.ReadResponse.FromString(wire.read_response(ents))
    r = [(e.register_entry.register_id, e.register_entry.index.index, e.register_entry.data.bitstring)
         for e in resp.entities[:3]]
    assert r == [(369098753, 0, b"\x00"), (369098753, 1, b"\xff"), (369098753, 9999, (1 << 40).to_bytes(6, "big"))]
    c = resp.entities[3].counter_entry
    assert (c.counter_id, c.index.index, c.data.packet_count, c.data.byte_count) == (302011001, 7, 3, 1 << 33)
    assert resp.entities[4].counter_entry.HasField("data")


def test_packet_in_encoding_and_packet_out_decoding():
    enc = wire.packet_in(b"\x00payload", [(1, 255), (2, 0)])
    ref = pb.StreamMessageResponse()
    ref.packet.payload = b"\x00payload"
    ref.packet.metadata.add(metadata_id=1, value=b"\xff")
    ref.packet.metadata.add(metadata_id=2, value=b"\x00")
    assert enc == ref.SerializeToString()
    req = pb.StreamMessageRequest()
    req.packet.payload = b"frame"
    req.packet.metadata.add(metadata_id=1, value=b"\x01\x02")
    got = wire.decode_stream_request(req.SerializeToString())
    assert isinstance(got, wire.FastPacketOut)
    assert (got.payload, got.metadata) == (b"frame", [(1, b"\x01\x02")])
    assert got.to_proto() == req.packet
    arb = pb.StreamMessageRequest()
    arb.arbitration.device_id = 3
    assert wire.decode_stream_request(arb.SerializeToString()) == arb
