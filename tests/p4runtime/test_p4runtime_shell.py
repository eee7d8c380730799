"""Unmodified p4runtime-shell drives a real p4target-switch process running tests/ptf/p4/l3_switch.p4.

p4runtime-shell keeps one global client, so each scenario runs in a child Python process that prints a
JSON result; the test asserts on it. The child is the Python of p4runtime-shell's own venv (.venv-shell,
made by `make install`: the shell pins protobuf<3.21 and p4runtime 1.4.1), as `flowmig shell` runs it. Packet-out to the CPU port loops back as a packet-in (the program
sends packet_out.egress_port = 255 to the CPU with packet_in.ingress_port = 255), so no interfaces are
needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.shellenv import shell_python

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "ptf"))
from harness import compile_program, free_port, start_switch, stop_process  # noqa: E402

PROLOGUE = r"""
import json, sys
import p4runtime_sh.shell as sh
from p4runtime_sh.p4runtime import P4RuntimeWriteException
from p4.v1 import p4runtime_pb2
addr, p4info, config = sys.argv[1:4]
sh.setup(device_id=0, grpc_addr=addr, election_id=(0, 1), config=sh.FwdPipeConfig(p4info, config))
out = {}
try:
"""

EPILOGUE = r"""
finally:
    sh.teardown()
print("RESULT " + json.dumps(out))
"""

TABLES = r"""
    te = sh.TableEntry("MyIngress.ipv4_lpm")(action="MyIngress.ipv4_forward")
    te.match["hdr.ipv4.dstAddr"] = "10.0.1.0/24"
    te.action["dstAddr"] = "00:00:00:00:01:01"
    te.action["port"] = "1"
    te.insert()
    te2 = sh.TableEntry("MyIngress.ipv4_lpm")(action="MyIngress.send_to_cpu")
    te2.match["hdr.ipv4.dstAddr"] = "10.0.2.2/32"
    te2.insert()
    acl = sh.TableEntry("MyIngress.acl")(action="MyIngress.drop")
    acl.match["hdr.ipv4.protocol"] = "6&&&0xff"
    acl.priority = 5
    acl.insert()
    def snapshot():
        rows = []
        for e in sh.TableEntry("MyIngress.ipv4_lpm").read():
            m = e.msg()
            rows.append([m.match[0].lpm.value.hex(), m.match[0].lpm.prefix_len,
                         sh.context.get_name_from_id(m.action.action.action_id),
                         [p.value.hex() for p in m.action.action.params]])
        return sorted(rows)
    out["after_insert"] = snapshot()
    out["acl_priority"] = [e.msg().priority for e in sh.TableEntry("MyIngress.acl").read()]
    try:
        te.insert()
    except P4RuntimeWriteException as exc:
        out["duplicate"] = str(exc)
    te.action["port"] = "3"
    te.modify()
    out["after_modify"] = snapshot()
    te2.delete()
    out["after_delete"] = snapshot()
    d = sh.TableEntry("MyIngress.ipv4_lpm")
    d.is_default = True
    out["default"] = [sh.context.get_name_from_id(e.msg().action.action.action_id) for e in d.read()]
    out["wildcard_count"] = len(list(sh.TableEntry("MyIngress.smac").read())) + len(snapshot())
"""

STATE = r"""
    # p4runtime-shell 0.0.6 has no RegisterEntry class: registers go through its client with raw protobufs
    rid = [r.preamble.id for r in sh.context.p4info.registers if r.preamble.name == "MyIngress.port_pkts"][0]
    w = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY)
    w.entity.register_entry.register_id = rid
    w.entity.register_entry.index.index = 7
    w.entity.register_entry.data.bitstring = (123456).to_bytes(3, "big")
    sh.client.write_update(w)
    q = p4runtime_pb2.Entity()
    q.register_entry.register_id = rid
    q.register_entry.index.index = 7
    vals = [e.register_entry.data.bitstring for r in sh.client.read_one(q) for e in r.entities]
    out["register"] = [int.from_bytes(v, "big") for v in vals]
    q.register_entry.ClearField("index")
    out["register_cells"] = sum(len(r.entities) for r in sh.client.read_one(q))
    c = sh.CounterEntry("MyIngress.port_counter")
    c.index = 4
    c.packet_count = 10
    c.byte_count = 640
    c.modify()
    got = list(sh.CounterEntry("MyIngress.port_counter").read())
    out["counter_cells"] = len(got)
    out["counter_4"] = [(e.msg().data.packet_count, e.msg().data.byte_count) for e in got if e.msg().index.index == 4]
    mc = sh.MulticastGroupEntry(5).add(1, 1).add(2, 1)
    mc.insert()
    out["mc"] = [[r.egress_port for r in e.msg().multicast_group_entry.replicas]
                 for e in sh.MulticastGroupEntry(5).read()]
    cs = sh.CloneSessionEntry(100).add(255, 0)
    cs.insert()
    out["clone"] = [e.msg().clone_session_entry.session_id for e in sh.CloneSessionEntry().read()]
    out["api"] = sh.APIVersion()
"""

DIRECT = r"""
    te = sh.TableEntry("MyIngress.ipv4_lpm")(action="MyIngress.send_to_cpu")
    te.match["hdr.ipv4.dstAddr"] = "10.9.0.0/16"
    te.insert()
    dc = sh.DirectCounterEntry("MyIngress.ipv4_lpm_counter")
    dc.table_entry = te
    dc.packet_count = 7
    dc.byte_count = 700
    dc.modify()
    out["direct"] = [(e.msg().data.packet_count, e.msg().data.byte_count)
                     for e in sh.DirectCounterEntry("MyIngress.ipv4_lpm_counter").read()]
    msg = sh.TableEntry("MyIngress.ipv4_lpm").msg()  # a read asking for direct counter data
    msg.counter_data.SetInParent()
    ent = p4runtime_pb2.Entity(table_entry=msg)
    out["with_counters"] = [e.table_entry.counter_data.packet_count for r in sh.client.read_one(ent)
                            for e in r.entities]
    d = sh.DigestEntry("learn_t")
    d.max_timeout_ns, d.max_list_size, d.ack_timeout_ns = 1000000, 4, 1000000000
    d.insert()
    out["digest"] = [(e.msg().config.max_list_size, e.msg().config.max_timeout_ns)
                     for e in sh.DigestEntry("learn_t").read()]
"""

PACKETS = r"""
    import time
    pin = sh.PacketIn()
    frame = bytes.fromhex("ffffffffffff00000000000188b5") + bytes(20) + b"payload"  # not IPv4: untouched
    p = sh.PacketOut(frame, egress_port="255")
    p.send()
    got = list(pin.sniff(timeout=2))
    out["packet_in"] = [[m.packet.payload.hex(), {md.metadata_id: md.value.hex() for md in m.packet.metadata}]
                        for m in got]
    out["frame"] = frame.hex()
"""


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    work = tmp_path_factory.mktemp("p4rtsh")
    json_path, p4info_path = compile_program(HERE.parent / "ptf" / "p4" / "l3_switch.p4", work)
    gport = free_port()
    proc = start_switch([], gport, free_port(), work / "switch.log", 255)
    yield f"127.0.0.1:{gport}", str(p4info_path), str(json_path), work
    stop_process(proc)


def run_shell(switch, body: str) -> dict:
    addr, p4info, config, _work = switch
    res = subprocess.run([str(shell_python()), "-c", PROLOGUE + body + EPILOGUE, addr, p4info, config],
                         capture_output=True, text=True, timeout=30)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


def test_shell_table_entries(switch):
    out = run_shell(switch, TABLES)
    assert out["after_insert"] == [["0a000100", 24, "MyIngress.ipv4_forward", ["0101", "01"]],
                                   ["0a000202", 32, "MyIngress.send_to_cpu", []]]
    assert out["acl_priority"] == [5]
    assert "ALREADY_EXISTS" in out["duplicate"]
    assert out["after_modify"][0][3] == ["0101", "03"]
    assert out["after_delete"] == [["0a000100", 24, "MyIngress.ipv4_forward", ["0101", "03"]]]
    assert out["default"] == ["MyIngress.drop"]
    assert out["wildcard_count"] == 1


def test_shell_registers_counters_pre(switch):
    out = run_shell(switch, STATE)
    assert out["register"] == [123456]
    assert out["register_cells"] == 512
    assert out["counter_cells"] == 512 and out["counter_4"] == [[10, 640]]
    assert out["mc"] == [[1, 2]]
    assert out["clone"] == [100]
    assert out["api"].startswith("1.")


def test_shell_packet_out_loops_back_as_packet_in(switch):
    out = run_shell(switch, PACKETS)
    assert len(out["packet_in"]) == 1
    payload, md = out["packet_in"][0]
    assert payload == out["frame"]
    assert md == {"1": "ff", "2": "00"}  # ingress_port 255, _pad 0


def test_shell_direct_counters_and_digest_config(switch):
    out = run_shell(switch, DIRECT)
    assert out["direct"] == [[7, 700]]
    assert out["with_counters"] == [7]
    assert out["digest"] == [[4, 1000000]]
