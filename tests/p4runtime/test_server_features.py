"""The P4Runtime server over the real compiler + pipeline, on the corpus's language-coverage program
(features.p4: lpm/ternary/range/optional keys, const entries, const/@defaultonly/@tableonly actions,
meters and direct meters)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4rt_testutil import StreamClient, write_errors

from p4target.p4runtime import P4RuntimeServer
from p4target.switch import Switch

U = p4runtime_pb2.Update
FEATURES = Path(__file__).resolve().parents[1] / "compiler" / "corpus" / "features.p4"


@pytest.fixture(scope="module")
def compiled():
    if not FEATURES.exists():
        pytest.skip("features.p4 not in the corpus")
    import json

    from p4target.compiler import compile_file

    res = compile_file(str(FEATURES))
    return json.dumps(res.bmv2_json).encode(), res.p4info


@pytest.fixture
def rt(compiled):
    json_bytes, p4info = compiled
    switch = Switch({}, cpu_port=255)
    server = P4RuntimeServer(switch, 0, "127.0.0.1:0").start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    stream = StreamClient(stub)
    stream.arbitrate((0, 1))
    req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=0, action=3)
    req.election_id.low = 1
    req.config.p4info.CopyFrom(p4info)
    req.config.p4_device_config = json_bytes
    stub.SetForwardingPipelineConfig(req)
    ids = {o.preamble.name: o for kind in ("tables", "actions", "meters", "direct_meters")
           for o in getattr(p4info, kind)}

    class RT:
        pass

    r = RT()
    r.stub, r.ids, r.switch = stub, ids, switch

    def write(*updates):
        w = p4runtime_pb2.WriteRequest(device_id=0)
        w.election_id.low = 1
        w.updates.extend(updates)
        stub.Write(w)

    def read(ent):
        q = p4runtime_pb2.ReadRequest(device_id=0)
        q.entities.append(ent)
        return [e for resp in stub.Read(q) for e in resp.entities]

    r.write, r.read = write, read
    yield r
    stream.close()
    channel.close()
    server.stop(0)
    switch.stop()


def classify_entry(rt, priority=10, with_meter=False):
    t = rt.ids["MyIngress.classifier"]
    f = {m.name: m.id for m in t.match_fields}
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id, te.priority = t.preamble.id, priority
    fm = te.match.add(field_id=f["src"])
    fm.lpm.value, fm.lpm.prefix_len = bytes([10, 0, 0, 0]), 8
    fm = te.match.add(field_id=f["hdr.ipv4.protocol"])
    fm.ternary.value, fm.ternary.mask = b"\x11", b"\xff"
    fm = te.match.add(field_id=f["hdr.udp.dstPort"])
    fm.range.low, fm.range.high = b"\x10\x00", b"\x1f\xff"
    te.match.add(field_id=f["has_vlan"]).optional.value = b"\x01"
    a = rt.ids["MyIngress.set_class"]
    te.action.action.action_id = a.preamble.id
    te.action.action.params.add(param_id=a.params[0].id, value=b"\x07")
    if with_meter:
        te.meter_config.cir, te.meter_config.cburst = 1000, 100
        te.meter_config.pir, te.meter_config.pburst = 2000, 200
    return ent


def test_all_match_kinds_roundtrip(rt):
    ent = classify_entry(rt)
    rt.write(U(type=U.INSERT, entity=ent))
    (got,) = rt.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=ent.table_entry.table_id)))
    assert got.table_entry.priority == 10
    assert sorted(m.SerializeToString() for m in got.table_entry.match) == \
        sorted(m.SerializeToString() for m in ent.table_entry.match)
    assert got.table_entry.action == ent.table_entry.action


def test_direct_meter_via_table_entry_and_direct_meter_entry(rt):
    ent = classify_entry(rt, with_meter=True)
    rt.write(U(type=U.INSERT, entity=ent))
    q = p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=ent.table_entry.table_id))
    q.table_entry.meter_config.SetInParent()
    (got,) = rt.read(q)
    mc = got.table_entry.meter_config
    assert (mc.cir, mc.cburst, mc.pir, mc.pburst) == (1000, 100, 2000, 200)
    dme = p4runtime_pb2.Entity()
    dme.direct_meter_entry.table_entry.CopyFrom(ent.table_entry)
    dme.direct_meter_entry.table_entry.ClearField("action")
    dme.direct_meter_entry.table_entry.ClearField("meter_config")
    dme.direct_meter_entry.config.cir, dme.direct_meter_entry.config.pir = 50, 60
    dme.direct_meter_entry.config.cburst, dme.direct_meter_entry.config.pburst = 5, 6
    rt.write(U(type=U.MODIFY, entity=dme))
    (got,) = rt.read(p4runtime_pb2.Entity(direct_meter_entry=p4runtime_pb2.DirectMeterEntry(
        table_entry=p4runtime_pb2.TableEntry(table_id=ent.table_entry.table_id))))
    c = got.direct_meter_entry.config
    assert (c.cir, c.cburst, c.pir, c.pburst) == (50, 5, 60, 6)
    entry = rt.switch.pipeline.tables["MyIngress.classifier"].entries()[0]
    assert entry.meter_config == [(50 / 1e6, 5), (60 / 1e6, 6)]  # per microsecond inside


def test_indirect_meter(rt):
    m = rt.ids["MyIngress.port_meter"]
    ent = p4runtime_pb2.Entity()
    ent.meter_entry.meter_id = m.preamble.id
    ent.meter_entry.index.index = 3
    cfg = ent.meter_entry.config
    cfg.cir, cfg.cburst, cfg.pir, cfg.pburst = 100, 10, 200, 20
    rt.write(U(type=U.MODIFY, entity=ent))
    q = p4runtime_pb2.Entity()
    q.meter_entry.meter_id = m.preamble.id
    cells = rt.read(q)
    assert len(cells) == 64
    c = cells[3].meter_entry.config
    assert (c.cir, c.cburst, c.pir, c.pburst) == (100, 10, 200, 20)
    assert not cells[4].meter_entry.HasField("config")
    cfg.pir = 50  # PIR < CIR
    with pytest.raises(grpc.RpcError) as ei:
        rt.write(U(type=U.MODIFY, entity=ent))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT


def test_const_entries_and_action_scopes(rt):
    fwd = rt.ids["MyIngress.forward"]
    got = rt.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=fwd.preamble.id)))
    # as PI: const entries read back without is_const, priorities 2^31 - 1 - JSON priority
    assert len(got) == 3 and not any(e.table_entry.is_const for e in got)
    with pytest.raises(grpc.RpcError) as ei:
        rt.write(U(type=U.DELETE, entity=p4runtime_pb2.Entity(table_entry=got[0].table_entry)))
    assert write_errors(ei.value)[0][0] == code_pb2.PERMISSION_DENIED
    # const default action of the classifier
    d = p4runtime_pb2.Entity()
    d.table_entry.table_id, d.table_entry.is_default_action = rt.ids["MyIngress.classifier"].preamble.id, True
    d.table_entry.action.action.action_id = rt.ids["NoAction"].preamble.id
    with pytest.raises(grpc.RpcError) as ei:
        rt.write(U(type=U.MODIFY, entity=d))
    assert write_errors(ei.value)[0][0] == code_pb2.PERMISSION_DENIED
    # @defaultonly NoAction in an entry, @tableonly NoAction as a default
    ent = classify_entry(rt)
    ent.table_entry.action.action.action_id = rt.ids["NoAction"].preamble.id
    ent.table_entry.action.action.ClearField("params")
    with pytest.raises(grpc.RpcError) as ei:
        rt.write(U(type=U.INSERT, entity=ent))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT
    d.table_entry.table_id = fwd.preamble.id
    with pytest.raises(grpc.RpcError) as ei:
        rt.write(U(type=U.MODIFY, entity=d))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT

