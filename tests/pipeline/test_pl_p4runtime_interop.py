"""The real pipeline under the real switch and P4Runtime server: entries written over gRPC land in
the pipeline's tables and forward packets; registers and counters read back over gRPC."""

import json
import queue
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from scapy.all import IP, TCP, Ether, raw

import p4target.compiler as compiler
import p4target.p4runtime as server_mod
import p4target.switch as switch_mod

ROOT = Path(__file__).resolve().parents[2]


def compiled(path):
    return compiler.compile_file(str(ROOT / path), include_dirs=[str(ROOT / "p4src/include")])


@pytest.fixture
def rt():
    sw = switch_mod.Switch({}, cpu_port=255)
    srv = server_mod.P4RuntimeServer(sw, 0, "127.0.0.1:0").start()
    sw.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    yield sw, stub
    channel.close()
    srv.stop(0)
    sw.stop()


def arbitrate(stub):
    """Become primary (election id 1); returns the request queue and the stream call."""
    q = queue.Queue()
    req = p4runtime_pb2.StreamMessageRequest()
    req.arbitration.device_id = 0
    req.arbitration.election_id.low = 1
    q.put(req)
    call = stub.StreamChannel(iter(q.get, None))
    next(iter(call))                       # the arbitration answer
    return q, call


def set_pipeline(stub, res):
    req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
        device_id=0, action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
    req.election_id.low = 1
    req.config.p4info.CopyFrom(res.p4info)
    req.config.p4_device_config = json.dumps(res.bmv2_json).encode()
    stub.SetForwardingPipelineConfig(req)


def ids(p4info):
    out = {}
    for kind in ("tables", "actions", "registers", "counters"):
        for obj in getattr(p4info, kind):
            out[obj.preamble.name] = obj
    return out


def test_lpm_entry_written_over_p4runtime_forwards(rt):
    sw, stub = rt
    q, call = arbitrate(stub)
    res = compiled("tests/compiler/corpus/basic.p4")
    set_pipeline(stub, res)
    info = ids(res.p4info)
    table, action = info["MyIngress.ipv4_lpm"], info["MyIngress.ipv4_forward"]
    update = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
    te = update.entity.table_entry
    te.table_id = table.preamble.id
    fm = te.match.add()
    fm.field_id = table.match_fields[0].id
    fm.lpm.value, fm.lpm.prefix_len = bytes([10, 0, 1, 0]), 24
    te.action.action.action_id = action.preamble.id
    for pid, value in ((1, bytes.fromhex("080000000111")), (2, b"\x02")):
        p = te.action.action.params.add()
        p.param_id, p.value = pid, value
    wreq = p4runtime_pb2.WriteRequest(device_id=0)
    wreq.election_id.low = 1
    wreq.updates.append(update)
    stub.Write(wreq)

    with sw.lock:
        pipe = sw.pipeline
        (entry,) = pipe.tables["MyIngress.ipv4_lpm"].entries()
        assert entry.match[0].value == 0x0A000100 and entry.match[0].prefix_len == 24
        sent = raw(Ether(dst="08:00:00:00:01:00", src="08:00:00:00:00:01") /
                   IP(src="10.0.0.1", dst="10.0.1.1", ttl=64) / TCP(sport=5, dport=80))
        expected = raw(Ether(dst="08:00:00:00:01:11", src="08:00:00:00:01:00") /
                       IP(src="10.0.0.1", dst="10.0.1.1", ttl=63) / TCP(sport=5, dport=80))
        assert pipe.process(1, sent) == [(2, expected)]

    rreq = p4runtime_pb2.ReadRequest(device_id=0)
    rreq.entities.add().table_entry.table_id = table.preamble.id
    got = [e for resp in stub.Read(rreq) for e in resp.entities]
    assert len(got) == 1 and got[0].table_entry.match[0].lpm.prefix_len == 24
    q.put(None)
    call.cancel()


def test_registers_and_counters_read_over_p4runtime(rt):
    sw, stub = rt
    q, call = arbitrate(stub)
    res = compiled("p4src/flow_nic.p4")
    set_pipeline(stub, res)
    info = ids(res.p4info)
    with sw.lock:
        pipe = sw.pipeline
        pipe.registers["FlowNicIngress.flow_state.tcp_phase"].write(7, 3)
        pipe.process(1, raw(Ether() / IP() / TCP()))          # no nic_ports entry: dropped, counted
    rreq = p4runtime_pb2.ReadRequest(device_id=0)
    reg = rreq.entities.add().register_entry
    reg.register_id = info["FlowNicIngress.flow_state.tcp_phase"].preamble.id
    reg.index.index = 7
    ctr = rreq.entities.add().counter_entry
    ctr.counter_id = info["FlowNicIngress.drop_accounting.drops"].preamble.id
    ctr.index.index = 1
    got = [e for resp in stub.Read(rreq) for e in resp.entities]
    values = {e.WhichOneof("entity"): getattr(e, e.WhichOneof("entity")) for e in got}
    assert int.from_bytes(values["register_entry"].data.bitstring, "big") == 3
    assert values["counter_entry"].data.packet_count == 1
    q.put(None)
    call.cancel()
