"""P4Runtime server behaviour against the toy stand-in pipeline: entities, errors, arbitration, stream."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2
from p4rt_testutil import write_errors

U = p4runtime_pb2.Update
FWD, ACL = 33554433, 33554434
SET_EGRESS, DROP, NOACTION = 16777217, 16777218, 16777219
SEEN, PKTS, LEARN = 369098753, 302011001, 385875969


def fwd_entry(in_port: bytes, out_port: bytes, *, padded=False) -> p4runtime_pb2.Entity:
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = FWD
    te.match.add(field_id=1).exact.value = in_port
    te.action.action.action_id = SET_EGRESS
    te.action.action.params.add(param_id=1, value=out_port)
    return ent


def upd(kind, ent):
    return U(type=kind, entity=ent)


def test_capabilities(env):
    assert env.stub.Capabilities(p4runtime_pb2.CapabilitiesRequest()).p4runtime_api_version.startswith("1.")


def test_requests_before_pipeline_fail_precondition(env):
    s = env.stream()
    assert s.arbitrate().arbitration.status.code == code_pb2.OK
    with pytest.raises(grpc.RpcError) as ei:
        env.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as ei:
        env.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as ei:
        env.stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=0))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_pipeline_config_get_and_response_types(primed):
    G = p4runtime_pb2.GetForwardingPipelineConfigRequest
    r = primed.stub.GetForwardingPipelineConfig(G(device_id=0, response_type=G.ALL))
    assert r.config.cookie.cookie == 42 and r.config.p4_device_config and r.config.p4info.tables
    r = primed.stub.GetForwardingPipelineConfig(G(device_id=0, response_type=G.COOKIE_ONLY))
    assert r.config.cookie.cookie == 42 and not r.config.p4_device_config and not r.config.p4info.tables
    r = primed.stub.GetForwardingPipelineConfig(G(device_id=0, response_type=G.P4INFO_AND_COOKIE))
    assert r.config.p4info.tables and not r.config.p4_device_config
    r = primed.stub.GetForwardingPipelineConfig(G(device_id=0, response_type=G.DEVICE_CONFIG_AND_COOKIE))
    assert r.config.p4_device_config and not r.config.p4info.tables
    with pytest.raises(grpc.RpcError) as ei:
        primed.stub.GetForwardingPipelineConfig(G(device_id=7))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_set_pipeline_actions_and_bad_config(primed):
    S = p4runtime_pb2.SetForwardingPipelineConfigRequest
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.set_pipeline(action=S.VERIFY)  # no change to state
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1
    with pytest.raises(grpc.RpcError) as ei:
        primed.set_pipeline(action=S.COMMIT)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    primed.set_pipeline(action=S.VERIFY_AND_SAVE)
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1
    primed.set_pipeline(action=S.COMMIT)
    assert primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())) == []
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.set_pipeline(action=S.RECONCILE_AND_COMMIT)  # same config: state kept
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1
    with pytest.raises(grpc.RpcError) as ei:
        primed.set_pipeline(json_bytes=b"{not json")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = primed.p4info.__class__()
    bad.CopyFrom(primed.p4info)
    bad.tables[0].preamble.name = "MyIngress.nope"
    with pytest.raises(grpc.RpcError) as ei:
        primed.set_pipeline(p4info=bad)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "MyIngress.nope" in ei.value.details()
    # the switch still runs the old pipeline with its entry
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1


def test_table_insert_read_modify_delete_canonical_and_padded(primed):
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.write(upd(U.INSERT, fwd_entry(b"\x00\x03", b"\x00\x04")))  # zero-padded (tutorials)
    ents = primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=FWD)))
    got = sorted((e.table_entry.match[0].exact.value, e.table_entry.action.action.params[0].value) for e in ents)
    assert got == [(b"\x01", b"\x02"), (b"\x03", b"\x04")]  # read back canonical
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, fwd_entry(b"\x00\x01", b"\x05")))
    assert write_errors(ei.value) == [(code_pb2.ALREADY_EXISTS, "entry exists")]
    primed.write(upd(U.MODIFY, fwd_entry(b"\x01", b"\x07")))
    one = p4runtime_pb2.Entity()
    one.table_entry.table_id = FWD
    one.table_entry.match.add(field_id=1).exact.value = b"\x01"
    (e,) = primed.read(one)
    assert e.table_entry.action.action.params[0].value == b"\x07"
    primed.write(upd(U.DELETE, fwd_entry(b"\x01", b"\x07")))
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.DELETE, fwd_entry(b"\x01", b"\x07")))
    assert write_errors(ei.value)[0][0] == code_pb2.NOT_FOUND


def test_batch_continue_on_error_reports_each_update(primed):
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")),
                     upd(U.INSERT, fwd_entry(b"\x02\x00", b"\x02")),  # 512 does not fit in 9 bits
                     upd(U.INSERT, fwd_entry(b"\x03", b"\x02")))
    errs = write_errors(ei.value)
    assert [c for c, _m in errs] == [code_pb2.OK, code_pb2.OUT_OF_RANGE, code_pb2.OK]
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 2


@pytest.mark.parametrize("mutate, code", [
    (lambda te: te.ClearField("match"), code_pb2.INVALID_ARGUMENT),  # exact field missing
    (lambda te: setattr(te, "table_id", 1234), code_pb2.NOT_FOUND),
    (lambda te: setattr(te.action.action, "action_id", 999), code_pb2.NOT_FOUND),
    (lambda te: setattr(te.action.action, "action_id", NOACTION), code_pb2.INVALID_ARGUMENT),  # not in table
    (lambda te: te.action.action.params.add(param_id=9, value=b"\x01"), code_pb2.INVALID_ARGUMENT),
    (lambda te: te.action.action.ClearField("params"), code_pb2.INVALID_ARGUMENT),
    (lambda te: setattr(te, "priority", 5), code_pb2.INVALID_ARGUMENT),  # exact table takes no priority
    (lambda te: te.match.add(field_id=1).exact.SetInParent(), code_pb2.INVALID_ARGUMENT),  # duplicate
    (lambda te: setattr(te.match[0].exact, "value", b""), code_pb2.INVALID_ARGUMENT),
    (lambda te: te.ClearField("action"), code_pb2.INVALID_ARGUMENT),
])
def test_malformed_table_entries(primed, mutate, code):
    ent = fwd_entry(b"\x01", b"\x02")
    mutate(ent.table_entry)
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, ent))
    assert write_errors(ei.value)[0][0] == code
    assert primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())) == []


def test_ternary_priority_and_validation(primed):
    def acl(value, mask, prio):
        ent = p4runtime_pb2.Entity()
        te = ent.table_entry
        te.table_id, te.priority = ACL, prio
        fm = te.match.add(field_id=1)
        fm.ternary.value, fm.ternary.mask = value, mask
        te.action.action.action_id = DROP
        return ent

    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, acl(b"\x10", b"\xf0", 0)))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT  # priority required
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, acl(b"\x11", b"\xf0", 3)))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT  # value outside mask
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, acl(b"\x00", b"\x00", 3)))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT  # don't care must be omitted
    primed.write(upd(U.INSERT, acl(b"\x10", b"\xf0", 3)), upd(U.INSERT, acl(b"\x10", b"\xf0", 4)))
    got = primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=ACL)))
    assert sorted(e.table_entry.priority for e in got) == [3, 4]
    # wildcard entry: field omitted
    ent = p4runtime_pb2.Entity()
    ent.table_entry.table_id, ent.table_entry.priority = ACL, 1
    ent.table_entry.action.action.action_id = DROP
    primed.write(upd(U.INSERT, ent))
    got = primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=ACL, priority=1)))
    assert len(got) == 1 and len(got[0].table_entry.match) == 0


def test_default_entry_read_modify_reset(primed):
    d = p4runtime_pb2.Entity()
    d.table_entry.table_id, d.table_entry.is_default_action = FWD, True
    (e,) = primed.read(d)
    assert e.table_entry.is_default_action and e.table_entry.action.action.action_id == DROP
    m = p4runtime_pb2.Entity()
    m.CopyFrom(d)
    m.table_entry.action.action.action_id = SET_EGRESS
    m.table_entry.action.action.params.add(param_id=1, value=b"\x09")
    primed.write(upd(U.MODIFY, m))
    (e,) = primed.read(d)
    assert e.table_entry.action.action.action_id == SET_EGRESS
    assert e.table_entry.action.action.params[0].value == b"\x09"
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, m))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT
    primed.write(upd(U.MODIFY, d))  # no action: reset to the program's default
    (e,) = primed.read(d)
    assert e.table_entry.action.action.action_id == DROP
    # wildcard reads never return default entries
    assert primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())) == []


def test_direct_counter_via_table_read_and_direct_counter_entry(primed):
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.switch.inject(1, b"\x00" * 60)
    primed.switch.inject(1, b"\x00" * 60)
    q = p4runtime_pb2.Entity()
    q.table_entry.table_id = FWD
    q.table_entry.counter_data.SetInParent()
    (e,) = primed.read(q)
    assert e.table_entry.counter_data.packet_count == 2
    (plain,) = primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=FWD)))
    assert not plain.table_entry.HasField("counter_data")
    dce = p4runtime_pb2.Entity()
    dce.direct_counter_entry.table_entry.CopyFrom(fwd_entry(b"\x01", b"\x02").table_entry)
    dce.direct_counter_entry.table_entry.ClearField("action")
    dce.direct_counter_entry.data.packet_count = 100
    primed.write(upd(U.MODIFY, dce))
    got = primed.read(p4runtime_pb2.Entity(direct_counter_entry=p4runtime_pb2.DirectCounterEntry(
        table_entry=p4runtime_pb2.TableEntry(table_id=FWD))))
    assert [g.direct_counter_entry.data.packet_count for g in got] == [100]


def test_registers_and_counters(primed):
    for _ in range(3):
        primed.switch.inject(5, b"\x00" * 64)
    r = p4runtime_pb2.Entity()
    r.register_entry.register_id = SEEN
    r.register_entry.index.index = 5
    (e,) = primed.read(r)
    assert e.register_entry.data.bitstring == b"\x03"
    w = p4runtime_pb2.Entity()
    w.CopyFrom(r)
    w.register_entry.data.bitstring = b"\x00\x00\x01\x00"
    primed.write(upd(U.MODIFY, w))
    assert primed.switch.pipeline.registers["MyIngress.seen"].read(5) == 256
    allcells = primed.read(p4runtime_pb2.Entity(register_entry=p4runtime_pb2.RegisterEntry(register_id=SEEN)))
    assert len(allcells) == 512
    wildcard = primed.read(p4runtime_pb2.Entity(register_entry=p4runtime_pb2.RegisterEntry()))
    assert len(wildcard) == 512
    bad = p4runtime_pb2.Entity()
    bad.CopyFrom(w)
    bad.register_entry.index.index = 512
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.MODIFY, bad))
    assert write_errors(ei.value)[0][0] == code_pb2.OUT_OF_RANGE
    bad.register_entry.index.index = 1
    bad.register_entry.data.bitstring = b"\x01\x00\x00\x00\x00"
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.MODIFY, bad))
    assert write_errors(ei.value)[0][0] == code_pb2.OUT_OF_RANGE
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, w))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT
    c = p4runtime_pb2.Entity()
    c.counter_entry.counter_id = PKTS
    c.counter_entry.index.index = 5
    (e,) = primed.read(c)
    assert (e.counter_entry.data.packet_count, e.counter_entry.data.byte_count) == (3, 192)
    c.counter_entry.data.packet_count = 0
    c.counter_entry.data.byte_count = 0
    primed.write(upd(U.MODIFY, c))
    assert primed.switch.pipeline.counters["MyIngress.pkts"].read(5) == (0, 0)
    with pytest.raises(grpc.RpcError) as ei:
        primed.read(p4runtime_pb2.Entity(register_entry=p4runtime_pb2.RegisterEntry(register_id=77)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_multicast_and_clone_sessions(primed):
    pre = p4runtime_pb2.Entity()
    g = pre.packet_replication_engine_entry.multicast_group_entry
    g.multicast_group_id = 9
    g.replicas.add(egress_port=1, instance=1)
    g.replicas.add(port=b"\x02", instance=1)
    primed.write(upd(U.INSERT, pre))
    assert primed.switch.pipeline.mc_groups[9] == [(1, 1), (2, 1)]
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, pre))
    assert write_errors(ei.value)[0][0] == code_pb2.ALREADY_EXISTS
    q = p4runtime_pb2.Entity()
    q.packet_replication_engine_entry.multicast_group_entry.SetInParent()
    (got,) = primed.read(q)
    assert len(got.packet_replication_engine_entry.multicast_group_entry.replicas) == 2
    primed.write(upd(U.DELETE, pre))
    assert 9 not in primed.switch.pipeline.mc_groups
    cs = p4runtime_pb2.Entity()
    c = cs.packet_replication_engine_entry.clone_session_entry
    c.session_id, c.packet_length_bytes = 100, 128
    c.replicas.add(egress_port=255, instance=0)
    primed.write(upd(U.INSERT, cs))
    assert primed.switch.pipeline.clone_sessions[100] == ([(255, 0)], 128)
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.MODIFY, p4runtime_pb2.Entity(packet_replication_engine_entry=p4runtime_pb2.
                     PacketReplicationEngineEntry(clone_session_entry=p4runtime_pb2.CloneSessionEntry(
                         session_id=5)))))
    assert write_errors(ei.value)[0][0] == code_pb2.NOT_FOUND


def test_wrong_device_id(primed):
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")), device_id=3)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as ei:
        primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()), device_id=3)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_arbitration_two_clients(primed):
    backup = primed.stream()
    ans = backup.arbitrate((0, 0x0))
    # election id (0,0) < (0,1): backup
    assert ans.arbitration.status.code == code_pb2.ALREADY_EXISTS
    assert (ans.arbitration.election_id.high, ans.arbitration.election_id.low) == (0, 1)
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")), election_id=(0, 0))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # a third client with a higher id takes over; everybody is told
    new = primed.stream()
    assert new.arbitrate((0, 5)).arbitration.status.code == code_pb2.OK
    assert primed.primary.get("arbitration").arbitration.status.code == code_pb2.ALREADY_EXISTS
    assert backup.get("arbitration").arbitration.election_id.low == 5
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")), election_id=(0, 1))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")), election_id=(0, 5))
    # reads are allowed for anybody
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1
    # the primary leaves: (0,1) becomes primary again
    new.close()
    ans = primed.primary.get("arbitration")
    assert ans.arbitration.status.code == code_pb2.OK
    primed.write(upd(U.DELETE, fwd_entry(b"\x01", b"\x02")), election_id=(0, 1))


def test_duplicate_election_id_closes_stream(primed):
    dup = primed.stream()
    assert dup.arbitrate((0, 1)) is None
    assert dup.error is not None and dup.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the original primary still works
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))


def test_packet_out_and_packet_in(primed):
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x00\xff")))  # port 1 -> CPU
    primed.switch.inject(1, b"hello-world")
    pin = primed.primary.get("packet").packet
    assert pin.payload == b"hello-world"
    md = {m.metadata_id: m.value for m in pin.metadata}
    assert md == {1: b"\x01", 2: b"\x00"}
    # PacketOut to port 255 loops back as a PacketIn (the toy pipeline sends it to the header's port)
    req = p4runtime_pb2.StreamMessageRequest()
    req.packet.payload = b"from-controller"
    req.packet.metadata.add(metadata_id=1, value=b"\x00\xff")
    primed.primary.send(req)
    pin = primed.primary.get("packet").packet
    assert pin.payload == b"from-controller"
    assert {m.metadata_id: m.value for m in pin.metadata}[1] == b"\xff"  # it entered on the CPU port
    bad = p4runtime_pb2.StreamMessageRequest()
    bad.packet.payload = b"x"
    bad.packet.metadata.add(metadata_id=9, value=b"\x01")
    primed.primary.send(bad)
    err = primed.primary.get("error").error
    assert err.canonical_code == code_pb2.INVALID_ARGUMENT and err.packet_out.packet_out.payload == b"x"


def test_digests_batched_acked_and_deduplicated(primed):
    d = p4runtime_pb2.Entity()
    d.digest_entry.digest_id = LEARN
    d.digest_entry.config.max_timeout_ns = 50_000_000
    d.digest_entry.config.max_list_size = 2
    d.digest_entry.config.ack_timeout_ns = 10_000_000_000
    primed.write(upd(U.INSERT, d))
    (got,) = primed.read(p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry()))
    assert got.digest_entry.config.max_list_size == 2
    primed.switch.inject(3, b"\x00" * 10)
    primed.switch.inject(4, b"\x00" * 10)
    dl = primed.primary.get("digest").digest
    assert dl.digest_id == LEARN and len(dl.data) == 2
    assert [m.bitstring for m in dl.data[0].struct.members] == [b"\x03", b"\x0a"]
    # same sample again before ack: suppressed; a new one goes out after max_timeout
    primed.switch.inject(3, b"\x00" * 10)
    primed.switch.inject(6, b"\x00" * 10)
    t0 = time.monotonic()
    dl2 = primed.primary.get("digest").digest
    assert [m.bitstring for m in dl2.data[0].struct.members] == [b"\x06", b"\x0a"] and len(dl2.data) == 1
    assert time.monotonic() - t0 < 1.0
    ack = p4runtime_pb2.StreamMessageRequest()
    ack.digest_ack.digest_id, ack.digest_ack.list_id = LEARN, dl.list_id
    primed.primary.send(ack)
    time.sleep(0.1)
    primed.switch.inject(3, b"\x00" * 10)
    dl3 = primed.primary.get("digest").digest
    assert [m.bitstring for m in dl3.data[0].struct.members] == [b"\x03", b"\x0a"]


def test_non_primary_packet_out_refused(primed):
    backup = primed.stream()
    backup.arbitrate((0, 0))
    req = p4runtime_pb2.StreamMessageRequest()
    req.packet.payload = b"x"
    backup.send(req)
    err = backup.get("error").error
    assert err.canonical_code == code_pb2.PERMISSION_DENIED


def _write_atomic(env, atomicity, *updates):
    req = p4runtime_pb2.WriteRequest(device_id=0, atomicity=atomicity)
    req.election_id.low = 1
    req.updates.extend(updates)
    return env.stub.Write(req)


@pytest.mark.parametrize("atomicity", [p4runtime_pb2.WriteRequest.ROLLBACK_ON_ERROR,
                                       p4runtime_pb2.WriteRequest.DATAPLANE_ATOMIC])
def test_rollback_on_error_restores_everything(primed, atomicity):
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")), upd(U.INSERT, fwd_entry(b"\x05", b"\x06")))
    primed.switch.inject(5, b"\x00" * 60)  # entry 5 has a direct counter value of 1
    reg = p4runtime_pb2.Entity()
    reg.register_entry.register_id = SEEN
    reg.register_entry.index.index = 9
    reg.register_entry.data.bitstring = b"\x2a"
    d = p4runtime_pb2.Entity()
    d.table_entry.table_id, d.table_entry.is_default_action = FWD, True
    d.table_entry.action.action.action_id = SET_EGRESS
    d.table_entry.action.action.params.add(param_id=1, value=b"\x03")
    mc = p4runtime_pb2.Entity()
    mc.packet_replication_engine_entry.multicast_group_entry.multicast_group_id = 4
    mc.packet_replication_engine_entry.multicast_group_entry.replicas.add(egress_port=1)
    with pytest.raises(grpc.RpcError) as ei:
        _write_atomic(primed, atomicity,
                      upd(U.INSERT, fwd_entry(b"\x07", b"\x02")),
                      upd(U.MODIFY, fwd_entry(b"\x01", b"\x09")),
                      upd(U.DELETE, fwd_entry(b"\x05", b"\x06")),
                      upd(U.MODIFY, reg), upd(U.MODIFY, d), upd(U.INSERT, mc),
                      upd(U.INSERT, fwd_entry(b"\x01", b"\x02")),  # ALREADY_EXISTS: the batch fails
                      upd(U.INSERT, fwd_entry(b"\x08", b"\x02")))
    codes = [c for c, _m in write_errors(ei.value)]
    assert codes == [code_pb2.ABORTED] * 6 + [code_pb2.ALREADY_EXISTS, code_pb2.ABORTED]
    q = p4runtime_pb2.Entity()
    q.table_entry.table_id = FWD
    q.table_entry.counter_data.SetInParent()
    got = {e.table_entry.match[0].exact.value: (e.table_entry.action.action.params[0].value,
                                                 e.table_entry.counter_data.packet_count)
           for e in primed.read(q)}
    assert got == {b"\x01": (b"\x02", 0), b"\x05": (b"\x06", 1)}  # deleted entry back with its counter
    assert primed.switch.pipeline.registers["MyIngress.seen"].read(9) == 0
    assert primed.switch.pipeline.tables["MyIngress.fwd"].get_default()[0] == "MyIngress.drop"
    assert 4 not in primed.switch.pipeline.mc_groups
    # a batch that succeeds is applied in full
    _write_atomic(primed, atomicity, upd(U.INSERT, fwd_entry(b"\x07", b"\x02")), upd(U.MODIFY, reg))
    assert primed.switch.pipeline.registers["MyIngress.seen"].read(9) == 42


def test_write_without_election_id_or_arbitration_is_refused(env):
    env.stream().arbitrate((0, 1))
    env.set_pipeline()
    req = p4runtime_pb2.WriteRequest(device_id=0)
    req.updates.append(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    with pytest.raises(grpc.RpcError) as ei:
        env.stub.Write(req)
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
    req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=0)
    req.election_id.low = 99
    with pytest.raises(grpc.RpcError) as ei:
        env.stub.SetForwardingPipelineConfig(req)
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_malformed_bytes_and_unknown_entities(primed):
    raw = primed.channel.unary_unary("/p4.v1.P4Runtime/Write")
    with pytest.raises(grpc.RpcError) as ei:
        raw(b"\x22\xff\xff\xff")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=77)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as ei:
        primed.read(p4runtime_pb2.Entity())
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(upd(U.INSERT, p4runtime_pb2.Entity(action_profile_member=p4runtime_pb2.ActionProfileMember())))
    assert write_errors(ei.value)[0][0] == code_pb2.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as ei:
        primed.write(U(type=U.UNSPECIFIED, entity=fwd_entry(b"\x01", b"\x02")))
    assert write_errors(ei.value)[0][0] == code_pb2.INVALID_ARGUMENT
    # the switch still works after all that
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1


def test_arbitration_wrong_device_closes_stream(primed):
    s = primed.stream()
    assert s.arbitrate((0, 9), device_id=4) is None
    assert s.error.code() == grpc.StatusCode.NOT_FOUND


def test_roles_are_separate(primed):
    other = primed.stream()
    ans = other.arbitrate((0, 1), role="monitor")  # same election id, different role: fine
    assert ans.arbitration.status.code == code_pb2.OK and ans.arbitration.role.name == "monitor"
    req = p4runtime_pb2.WriteRequest(device_id=0, role="monitor")
    req.election_id.low = 1
    req.updates.append(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.stub.Write(req)
    assert len(primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))) == 1


def test_fuzzed_requests_never_break_the_server(primed, caplog):
    """Random mutations of valid requests: every RPC ends with a status, and the switch keeps working."""
    import random

    rng = random.Random(1234)
    good = [fwd_entry(bytes([i]), b"\x02") for i in range(1, 6)]
    base = p4runtime_pb2.WriteRequest(device_id=0)
    base.election_id.low = 1
    base.updates.extend(upd(U.INSERT, e) for e in good)
    data = base.SerializeToString()
    raw_write = primed.channel.unary_unary("/p4.v1.P4Runtime/Write")
    raw_read = primed.channel.unary_stream("/p4.v1.P4Runtime/Read")
    rq = p4runtime_pb2.ReadRequest(device_id=0)
    rq.entities.add().table_entry.table_id = FWD
    rq.entities.add().register_entry.register_id = SEEN
    rdata = rq.SerializeToString()
    codes = set()
    for _ in range(300):
        buf = bytearray(data if rng.random() < 0.7 else rdata)
        for _ in range(rng.randrange(1, 4)):
            op = rng.random()
            i = rng.randrange(len(buf))
            if op < 0.5:
                buf[i] = rng.randrange(256)
            elif op < 0.75:
                del buf[i:i + rng.randrange(1, 4)]
            else:
                buf[i:i] = rng.randbytes(rng.randrange(1, 4))
        try:
            if rng.random() < 0.5:
                raw_write(bytes(buf), timeout=5)
            else:
                list(raw_read(bytes(buf), timeout=5))
            codes.add("OK")
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED
            codes.add(exc.code().name)
    assert len(codes) > 1 and "INTERNAL" not in codes
    assert not [r for r in caplog.records if "unexpectedly" in r.getMessage() or "deserializ" in r.getMessage()]
    # the server answers sanely and the table holds only well-formed entries
    primed.write(*[upd(U.DELETE, p4runtime_pb2.Entity(table_entry=e.table_entry))
                   for e in primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=FWD)))])
    primed.write(upd(U.INSERT, fwd_entry(b"\x01", b"\x02")))
    primed.switch.inject(1, b"\x00" * 60)
    (e,) = primed.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(table_id=FWD)))
    assert e.table_entry.action.action.params[0].value == b"\x02"
