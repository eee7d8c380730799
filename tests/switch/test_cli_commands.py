"""The runtime CLI on the embedded switch alone: what the differential test cannot see (the data path
behind the commands, state shared between connections, the client's cmd.Cmd behaviour, exit status)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from p4target.switch import Switch
from p4target.switch.runtime import RuntimeCommands, RuntimeServer, exchange, run_commands
from p4target.switch.runtime_state import UnorderedOrder

FILES = Path(__file__).resolve().parent / "cli_files"
CLI = Path(sys.executable).parent / "p4target-cli"


@pytest.fixture(scope="module")
def features_json() -> str:
    from p4target.compiler import compile_file

    return json.dumps(compile_file(str(FILES / "cli_features.p4")).bmv2_json)


@pytest.fixture
def sw(features_json) -> Switch:
    s = Switch({}, cpu_port=255)
    s.set_pipeline(features_json)
    return s


def run(cmds: RuntimeCommands, *lines: str) -> list[str]:
    return [cmds.execute(line) for line in lines]


def udp(src: str = "10.0.0.1", dst: str = "10.0.0.2", dport: int = 53) -> bytes:
    return bytes(Ether(dst="00:00:00:00:00:01") / IP(src=src, dst=dst) / UDP(sport=1000, dport=dport))


def raw(dst: str = "00:00:00:00:00:01") -> bytes:
    return bytes(Ether(dst=dst, type=0x88B5)) + bytes(50)


def test_handles_are_bmv2s(sw):
    cmds = RuntimeCommands(sw)
    outs = run(cmds, *(f"table_add dmac drop {i} =>" for i in range(3)))
    assert [o.splitlines()[-1] for o in outs] == [f"Entry has been added with handle {i}" for i in range(3)]
    assert cmds.execute("table_delete dmac 1") == "Deleting entry 1 from dmac\n"
    assert cmds.execute("table_add dmac drop 7 =>").endswith("handle 16777217\n")  # slot 1, version 1
    assert cmds.execute("table_dump_entry dmac 1") == "Invalid table operation (EXPIRED_HANDLE)\n"
    assert cmds.execute("table_dump_entry dmac 5") == "Invalid table operation (INVALID_HANDLE)\n"
    assert cmds.failed
    assert [e.handle for e in sw.pipeline.tables["MyIngress.dmac"].entries()] == [0, 16777217, 2]
    assert cmds.execute("table_clear dmac") == ""
    assert cmds.execute("table_add dmac drop 1 =>").endswith("handle 0\n") and not cmds.failed


def test_smaller_priority_wins_on_the_data_path(sw):
    cmds = RuntimeCommands(sw)
    run(cmds, "table_add ipv4_lpm set_nhop 10.0.0.0/24 => 00:00:00:00:00:02 10.0.0.254 2",
        "table_add acl acl_deny 10.0.0.1&&&0xffffffff 0&&&0 17 => 1",
        "table_add acl acl_permit 10.0.0.0&&&0xff000000 0&&&0 17 => 9 10")
    assert sw.pipeline.process(1, udp()) == []  # BMv2: priority 1 beats priority 10
    cmds.execute("table_delete acl 0")
    assert [port for port, _ in sw.pipeline.process(1, udp())] == [2]
    dump = cmds.execute("table_dump acl")
    assert "Priority: 10\nAction entry: MyIngress.acl_permit - 09\n" in dump
    assert cmds.execute("counter_read acl_counter 1").endswith("acl_counter[1]= (42 bytes, 1 packets)\n")


def test_multicast_and_mirroring_reach_the_pipeline(sw):
    cmds = RuntimeCommands(sw)
    run(cmds, "mc_mgrp_create 4", "mc_node_create 7 1 3", "mc_node_create 8 5", "mc_node_associate 4 0",
        "mc_node_associate 4 1", "table_add dmac set_mcast 00:00:00:00:00:01 => 4")
    assert sw.pipeline.mc_groups[4] == [(1, 7), (3, 7), (5, 8)]
    assert sorted(port for port, _ in sw.pipeline.process(2, raw())) == [1, 3, 5]
    cmds.execute("mc_node_dissociate 4 0")
    assert sw.pipeline.mc_groups[4] == [(5, 8)]
    run(cmds, "mirroring_add 5 6", "table_add by_port mirror 2 0x88b5 => 5")
    ports = sorted(port for port, _ in sw.pipeline.process(2, raw()))
    assert ports == [5, 6]  # the group's replica and the I2E clone
    assert cmds.execute("reset_state") == ""
    assert sw.pipeline.mc_groups == {} and 5 in sw.pipeline.clone_sessions  # BMv2 keeps mirroring
    assert cmds.execute("mirroring_get 5") == "MirroringSessionConfig(port=6, mgid=None)\n"


def test_groups_written_by_p4runtime_appear_as_nodes(sw):
    cmds = RuntimeCommands(sw)
    sw.pipeline.set_mc_group(9, [(1, 0), (2, 0), (4, 1)])
    dump = cmds.execute("mc_dump")
    assert "mgrp(9)\n  -> (L1h=0, rid=0) -> (ports=[1, 2], lags=[])\n  -> (L1h=1, rid=1) -> (ports=[4], lags=[])" in dump
    cmds.execute("mc_node_destroy 1")
    assert sw.pipeline.mc_groups[9] == [(1, 0), (2, 0)]


def test_register_counter_meter_on_the_pipeline(sw):
    cmds = RuntimeCommands(sw)
    sw.pipeline.process(3, udp())
    assert cmds.execute("counter_read port_counter 3") == "port_counter[3]= (42 bytes, 1 packets)\n"
    assert cmds.execute("register_read flag 1") == "flag[1]= 1\n"
    assert cmds.execute("register_write reg32 0 4294967297") == ""  # masked to 32 bits, as BMv2
    assert sw.pipeline.registers["MyIngress.reg32"].read(0) == 1
    cmds.execute("meter_set_rates port_meter 2 0.5:10 1:20")
    assert sw.pipeline.meters["MyIngress.port_meter"].get_rates(2) == [(0.5, 10), (1.0, 20)]
    out = cmds.execute("register_read flag")
    assert out == "\x01register index omitted, reading entire array\nflag= 0, 1\n"  # \x01: stderr


def test_mc_dump_order_is_simple_switchs():
    # observed on simple_switch 1.15.5: groups created in this order are dumped in the order below
    created = [5, 3, 9, 1, 100, 14, 2, 27, 8, 13, 6, 4, 11, 12, 7, 10, *range(15, 27), 30]
    order = UnorderedOrder()
    for g in created:
        order.insert(g)
    assert order.order == [*range(26, 14, -1), 10, 7, 12, 5, 3, 9, 30, 1, 14, 27, 2, 8, 100, 13, 6, 4, 11]
    order.erase(9)
    order.insert(9)
    assert order.order[:2] == [9, 26]


def test_state_is_shared_by_connections_and_failures_are_flagged(sw):
    server = RuntimeServer(sw, 0)
    server.start()
    try:
        assert run_commands(server.port, ["mc_mgrp_create 1", "mc_node_create 0 2"])[1].endswith("handle 0")
        (r,) = exchange(server.port, ["mc_node_associate 1 0"])
        assert r == type(r)("Associating node 0 to multicast group 1\n", "", False)
        (r,) = exchange(server.port, ["mc_node_associate 1 0"])
        assert r.failed and r.out.endswith("Invalid PRE operation (ERROR)\n")
        assert sw.pipeline.mc_groups == {1: [(2, 0)]}
        assert run_commands(server.port, ["switch_info"])[0].splitlines()[1].split() == [
            "thrift_port", ":", str(server.port)]
    finally:
        server.stop()


def test_p4target_cli_reads_stdin_like_simple_switch_cli(sw, tmp_path):
    server = RuntimeServer(sw, 0)
    server.start()
    try:
        text = "table_num_entries dmac\n\n# comment\n!echo hi\nregister_read flag\n"
        out = subprocess.run([str(CLI), "--thrift-port", str(server.port)], input=text, capture_output=True,
                             text=True, timeout=30)
        assert out.stdout == ("Obtaining JSON from switch...\nDone\nControl utility for runtime P4 table "
                              "manipulation\nRuntimeCmd: 0\nRuntimeCmd: 0\nRuntimeCmd: *** Unknown syntax: "
                              "# comment\nRuntimeCmd: hi\n\nRuntimeCmd: flag= 0, 0\nRuntimeCmd: \n")
        assert out.stderr == "register index omitted, reading entire array\n"
        assert out.returncode == 1  # the comment line is an unknown command
        ok = subprocess.run([str(CLI), "--thrift-port", str(server.port), "-c", "table_num_entries acl"],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout.endswith("RuntimeCmd: 0\nRuntimeCmd: \n")
    finally:
        server.stop()
    gone = subprocess.run([str(CLI), "--thrift-port", str(server.port), "-c", "show_ports"], capture_output=True,
                          text=True, timeout=30)
    assert gone.returncode == 1 and gone.stdout.startswith("Could not connect to thrift client on port")


def test_the_server_reads_a_new_program_when_it_is_installed_not_at_the_first_command(features_json):
    """The CLI's view of a program (its names, from the JSON) is made in the background as the
    pipeline is installed, outside the switch's lock: the first command does not parse the JSON under
    it (~30 ms with traffic, the packet loop waiting)."""
    import time

    s = Switch({}, cpu_port=255)
    server = RuntimeServer(s, 0)
    shadow = server._server.shadow
    try:
        assert shadow[0].program is None
        s.set_pipeline(features_json)
        deadline = time.monotonic() + 5
        while shadow[0].program is not s.pipeline and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shadow[0].program is s.pipeline and "MyIngress.dmac" in shadow[0].info.tables
        prepared = shadow[0]
        server.start()
        assert run_commands(server.port, ["table_num_entries dmac"]) == ["0"]
        assert shadow[0] is prepared                       # used as it was, not read again
    finally:
        server.stop()
    assert server._installed not in s.on_install
