"""Switch daemon core on real veth interfaces, with the toy stand-in pipeline (tests/p4runtime)."""

from __future__ import annotations

import struct
import time

import pytest
from switch_testutil import Wire

from p4target.switch import Switch
from p4target.switch.runtime import RuntimeCommands, RuntimeServer, run_commands

pytestmark = pytest.mark.root  # veth interfaces


@pytest.fixture(params=[True, False], ids=["rx_ring", "recvfrom"])
def rig(request, veths, fake_pipeline_module, tmp_path):
    v = veths(3)
    sw = Switch({i + 1: a for i, (a, _b) in enumerate(v.pairs)}, cpu_port=255, pcap_dir=str(tmp_path),
                rx_ring=request.param)
    sw.set_pipeline(fake_pipeline_module.TOY_JSON)
    fwd = sw.pipeline.tables["MyIngress.fwd"]
    M = fake_pipeline_module.Match
    fwd.add([M("exact", 1)], "MyIngress.set_egress", [2])
    fwd.add([M("exact", 2)], "MyIngress.set_egress", [1])
    wires = {i + 1: Wire(b) for i, (_a, b) in enumerate(v.pairs)}
    sw.start()
    yield sw, wires, tmp_path, v
    sw.stop()
    for w in wires.values():
        w.close()


def tags(frames: list[bytes]) -> list[int]:
    return [int.from_bytes(f[14:18], "big") for f in frames]


def test_forwarding_between_veths(rig):
    sw, wires, _tmp, _v = rig
    for i in range(20):
        wires[1].send(Wire.frame(i))
    wires[2].send(Wire.frame(1000, size=1514))  # MTU-size frame
    assert tags(wires[2].recv_all()) == list(range(20))
    back = wires[1].recv_all()
    assert tags(back) == [1000] and len(back[0]) == 1514
    assert wires[3].recv_all(0.1) == []
    assert sw.pipeline.registers["MyIngress.seen"].read(1) == 20  # own transmissions were not re-read


def test_pcap_files_per_port(rig):
    sw, wires, tmp, v = rig
    wires[1].send(Wire.frame(7))
    assert tags(wires[2].recv_all()) == [7]
    sw.stop()
    a1, a2 = v.pairs[0][0], v.pairs[1][0]
    inp = (tmp / f"{a1}_in.pcap").read_bytes()
    out = (tmp / f"{a2}_out.pcap").read_bytes()
    assert struct.unpack("<I", inp[:4])[0] == 0xA1B2C3D4
    assert inp[24 + 16:] == Wire.frame(7) and out[24 + 16:] == Wire.frame(7)
    assert len((tmp / f"{a2}_in.pcap").read_bytes()) == 24  # header only


def test_queue_rate_and_depth(rig):
    sw, wires, _tmp, _v = rig
    sw.set_queue_rate(200, 2)
    sw.set_queue_depth(10, 2)
    t0 = time.monotonic()
    for i in range(30):
        wires[1].send(Wire.frame(i))
    got = []
    while time.monotonic() - t0 < 1.0 and len(got) < 11:
        got += wires[2].recv_all(0.05)
    elapsed = time.monotonic() - t0
    assert 9 <= len(got) <= 12  # depth 10 (+1 in service): the rest dropped
    assert tags(got) == sorted(tags(got))
    assert elapsed > 0.03  # paced, not a burst
    assert sw.queues[2].drops >= 18
    enq, deq, enq_depth, _deq_depth = sw.pipeline.last_queueing
    assert deq > enq and enq_depth > 0  # queueing visible to egress
    sw.set_queue_rate(0, 2)  # unlimited again: immediate
    wires[1].send(Wire.frame(99))
    assert tags(wires[2].recv_all(0.2)) == [99]


def test_port_down_and_status(rig):
    sw, wires, _tmp, _v = rig
    assert sw.port_status() == {1: True, 2: True, 3: True}
    sw.set_port_admin(2, False)
    wires[1].send(Wire.frame(1))
    assert wires[2].recv_all(0.2) == []
    assert sw.port_status()[2] is False
    sw.set_port_admin(2, True)
    wires[1].send(Wire.frame(2))
    assert tags(wires[2].recv_all()) == [2]


def test_packet_out_and_packet_in(rig):
    sw, wires, _tmp, _v = rig
    got = []
    sw.packet_in_sink = got.append
    sw.packet_out((3 << 7).to_bytes(2, "big") + Wire.frame(5))
    assert tags(wires[3].recv_all()) == [5]
    sw.pipeline.tables["MyIngress.fwd"].modify([sw.pipeline.tables["MyIngress.fwd"].keys and
                                                 type(sw.pipeline.tables["MyIngress.fwd"].entries()[0].match[0])(
                                                     "exact", 1)], 0, "MyIngress.set_egress", [255])
    wires[1].send(Wire.frame(6))
    deadline = time.monotonic() + 1
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got and got[0][:2] == (1 << 7).to_bytes(2, "big") and got[0][2:] == Wire.frame(6)


def test_runtime_commands(rig):
    """Queue/port commands on the toy pipeline (program-level commands: tests/switch/test_cli_*.py)."""
    sw, _wires, _tmp, _v = rig
    cmds = RuntimeCommands(sw)
    assert cmds.execute("set_queue_rate 1000 2") == "" and sw.queues[2].rate_pps == 1000
    assert cmds.execute("set_queue_depth 7") == "" and sw.queues[1].depth == 7
    assert cmds.execute("set_queue_rate 1.5 2") == "Error: Bad format for rate_pps, expected integer\n"
    assert cmds.execute("port_down 3") == "" and sw.ports[3].admin_up is False
    assert "DOWN" in cmds.execute("show_ports")
    assert cmds.execute("port_up 3") == "" and sw.ports[3].admin_up is True
    assert cmds.execute("port_down 42").startswith("Error")
    assert cmds.execute("bogus").startswith("*** Unknown syntax")
    assert "register_read" in cmds.execute("help")
    assert cmds.execute("register_read MyIngress.seen 1") == "Error: Invalid register name (MyIngress.seen)\n"


def test_runtime_server_over_tcp(rig):
    sw, _wires, _tmp, _v = rig
    server = RuntimeServer(sw, 0)
    server.start()
    try:
        outs = run_commands(server.port, ["set_queue_rate 500 1", "set_queue_depth x", "show_ports"])
        assert outs[:2] == ["", "Error: Bad format for nb_pkts, expected integer"]
        assert outs[2].splitlines()[2].split() == ["1", sw.ports[1].iface, "UP"]
        assert sw.queues[1].rate_pps == 500
    finally:
        server.stop()


def test_vlan_tag_reaches_the_pipeline(rig):
    """The kernel may strip 802.1Q tags into packet metadata; the port puts them back (seen in pcap_in)."""
    sw, wires, tmp, v = rig
    tagged = Wire.frame(0)[:12] + b"\x81\x00\x00\x07" + Wire.frame(77)[12:]
    wires[1].send(tagged)
    wires[2].recv_all(0.3)
    sw.stop()
    inp = (tmp / f"{v.pairs[0][0]}_in.pcap").read_bytes()
    assert inp[24 + 16:] == tagged


def test_rx_ring_in_use(rig, request):
    sw, _wires, _tmp, _v = rig
    want = "[rx_ring]" in request.node.name
    assert all((p._ring is not None) == want for p in sw.ports.values())


def test_link_down_up_no_busy_loop_and_recovery(rig):
    """ENETDOWN on a port socket is consumed (no poll() spin) and forwarding resumes after link up."""
    import subprocess

    sw, wires, _tmp, v = rig
    iface = v.pairs[1][0]
    subprocess.run(["ip", "link", "set", iface, "down"], check=True)
    c0 = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - c0 < 0.2
    assert sw.port_status()[2] is False
    subprocess.run(["ip", "link", "set", iface, "up"], check=True)
    time.sleep(0.1)
    wires[1].send(Wire.frame(3))
    assert tags(wires[2].recv_all()) == [3]


def test_burst_larger_than_the_tx_ring_is_delivered_in_order(rig):
    sw, wires, _tmp, _v = rig
    n = 1500  # TX ring holds 512 frames: the switch must flush and wrap around
    for i in range(n):
        wires[1].send(Wire.frame(i))
    got = []
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        got += tags(wires[2].recv_all(0.2))
    info = (len(got), sw.ports[1].rx_packets, sw.ports[2].tx_packets, dict(sw.stats))
    assert got == list(range(n)), info
    assert sum(p.tx_dropped for p in sw.ports.values()) == 0
