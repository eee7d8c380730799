"""The hand encoder writes exactly what protobuf's SerializeToString writes."""

from p4.v1 import p4runtime_pb2 as pb

from controller.p4rt import wire


def test_varint():
    for n in (0, 1, 127, 128, 300, 1 << 35):
        from google.protobuf.internal.encoder import _VarintBytes
        assert wire.varint(n) == _VarintBytes(n)


def test_table_update_matches_protobuf():
    for utype, action in ((pb.Update.INSERT, True), (pb.Update.MODIFY, True), (pb.Update.DELETE, False)):
        up = pb.Update(type=utype)
        te = up.entity.table_entry
        te.table_id = 33554433
        for fid, v in ((1, b"\x0a\x00\x00\x01"), (2, b"\x0a\x00\x00\x02"), (3, b"\x11"), (4, b"\x00"), (5, b"\x23\x28")):
            te.match.add(field_id=fid).exact.value = v
        params = [(1, b"\x01"), (2, b"\x02")]
        if action:
            te.action.action.action_id = 16777217
            for pid, v in params:
                te.action.action.params.add(param_id=pid, value=v)
        mine = wire.table_update(utype, 33554433, [(m.field_id, m.exact.value) for m in te.match],
                                 16777217 if action else None, params if action else ())
        assert mine == up.SerializeToString()
        assert pb.Update.FromString(mine) == up


def test_register_update_and_write_request():
    up = pb.Update(type=pb.Update.MODIFY)
    up.entity.register_entry.register_id = 369098753
    up.entity.register_entry.index.index = 4095
    up.entity.register_entry.data.bitstring = b"\x01\x00"
    raw = wire.register_update(pb.Update.MODIFY, 369098753, 4095, b"\x01\x00")
    assert raw == up.SerializeToString()
    req = pb.WriteRequest(device_id=3, role="r1")
    req.election_id.high, req.election_id.low = 0, 100
    req.updates.extend([up, up])
    req.atomicity = req.ROLLBACK_ON_ERROR
    assert wire.write_request(3, (0, 100), [raw, raw], "r1", req.ROLLBACK_ON_ERROR) == req.SerializeToString()
    req0 = pb.WriteRequest()
    req0.election_id.low = 1
    req0.updates.append(up)
    assert wire.write_request(0, (0, 1), [raw]) == req0.SerializeToString()


def test_packet_out_and_in():
    req = pb.StreamMessageRequest()
    req.packet.payload = b"\x01" * 200
    req.packet.metadata.add(metadata_id=1, value=b"\x00")
    req.packet.metadata.add(metadata_id=5, value=b"\x01")
    md = wire.packet_metadata([(1, b"\x00"), (5, b"\x01")])
    assert wire.packet_out_request(b"\x01" * 200, md) == req.SerializeToString()
    rep = pb.StreamMessageResponse()
    rep.packet.payload = b"abc" * 50
    rep.packet.metadata.add(metadata_id=1, value=b"\x01\x02")
    rep.packet.metadata.add(metadata_id=3, value=b"\x02")
    assert wire.decode_packet_in(rep.SerializeToString()) == (b"abc" * 50, [(1, b"\x01\x02"), (3, b"\x02")])
    arb = pb.StreamMessageResponse()
    arb.arbitration.device_id = 1
    assert wire.decode_packet_in(arb.SerializeToString()) is None


def test_register_read_request_and_response():
    req = pb.ReadRequest(device_id=2, role="r1")
    a = req.entities.add().register_entry
    a.register_id, a.index.index = 369098753, 7
    req.entities.add().register_entry.register_id = 369098754   # index unset: every cell
    z = req.entities.add().register_entry
    z.register_id, z.index.index = 369098753, 0                 # index 0 is set (not the wildcard)
    raw = wire.register_read_request(2, [(369098753, 7), (369098754, None), (369098753, 0)], "r1")
    assert pb.ReadRequest.FromString(raw) == req
    rep = pb.ReadResponse()
    for rid, i, v in ((369098753, 0, b"\x00"), (369098753, 1023, b"\x00\x00\x01\x02"), (369098754, 5, b"")):
        e = rep.entities.add().register_entry
        e.register_id, e.index.index, e.data.bitstring = rid, i, v
    assert wire.decode_register_read(rep.SerializeToString()) == [
        (369098753, 0, 0), (369098753, 1023, 258), (369098754, 5, 0)]
    assert wire.decode_register_read(b"") == []
    other = pb.ReadResponse()
    other.entities.add().counter_entry.counter_id = 1
    import pytest
    with pytest.raises(wire.WireError):
        wire.decode_register_read(other.SerializeToString())
