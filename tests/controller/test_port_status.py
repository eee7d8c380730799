"""Link state through ``controller.p4rt.ports`` on real switches: the embedded switch's runtime CLI
and BMv2's Thrift ``show_ports`` (simple_switch, marked bmv2), chosen by what the runtime port
answers; the monitor's Sampler reports a state it cannot read as unknown (None), not as up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from types import SimpleNamespace

import pytest

from controller.config import SwitchConfig
from controller.monitor import Sampler
from controller.p4rt.ports import RuntimeCliPorts, ThriftPorts, parse_show_ports, probe_port_status

pytestmark = pytest.mark.root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def veths():
    """Two veth pairs (switch side a, peer b); the peer of port 2 is down (no carrier on port 2)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for veth interfaces")
    tag = "ps" + uuid.uuid4().hex[:6]
    pairs = [(f"{tag}{i}a", f"{tag}{i}b") for i in (1, 2)]
    try:
        for a, b in pairs:
            subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
            for dev in (a, b):
                subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "link", "set", pairs[1][1], "down"], check=True)
        yield {1: pairs[0][0], 2: pairs[1][0]}
    finally:
        for a, _b in pairs:
            subprocess.run(["ip", "link", "del", a], capture_output=True)


def test_parse_show_ports_table():
    text = ("  port #      iface name        status  extra info\n" + "=" * 50 + "\n"
            "    1          s1-eth1             UP     \n    2          s1-eth2            DOWN    \n")
    assert parse_show_ports(text) == {1: True, 2: False}


def test_embedded_runtime_cli(veths):
    from p4target.switch.runtime import RuntimeServer
    from p4target.switch.switch import Switch
    sw = Switch(veths, cpu_port=255)
    server = RuntimeServer(sw, 0)
    server.start()
    try:
        t0 = time.monotonic()
        prov = probe_port_status("127.0.0.1", server.port)
        assert isinstance(prov, RuntimeCliPorts)
        assert time.monotonic() - t0 < 0.5          # the line protocol is asked first: no timeout waited
        assert prov.port_status() == {1: True, 2: False}
        sw.set_port_admin(1, False)
        assert prov.port_status() == {1: False, 2: False}
    finally:
        server.stop()
        sw.stop()


@pytest.mark.bmv2
def test_bmv2_thrift(veths, tmp_path):
    port = _free_port()
    argv = [shutil.which("simple_switch") or "simple_switch", "--no-p4", "--thrift-port", str(port),
            "--log-file", str(tmp_path / "ss"), *[a for p, i in veths.items() for a in ("-i", f"{p}@{i}")]]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        prov = None
        while prov is None and time.monotonic() < deadline:
            assert proc.poll() is None, "simple_switch exited"
            prov = probe_port_status("127.0.0.1", port, timeout=0.5)
        assert isinstance(prov, ThriftPorts)
        assert prov.port_status() == {1: True, 2: False}
        prov.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _sampler(thrift_port: int | None, ifaces: dict[int, str]) -> Sampler:
    sc = SwitchConfig("s1", "127.0.0.1:1", thrift_port=thrift_port)
    conn = SimpleNamespace(helper=None)
    ctrl = SimpleNamespace(fabric={"s1": conn}, nics={}, registers={},
                           config=SimpleNamespace(switches={"s1": sc}))
    return Sampler(ctrl, {"s1": ifaces})


def test_sampler_reads_remote_link_state_and_unknown_is_none(veths):
    from p4target.switch.runtime import RuntimeServer
    from p4target.switch.switch import Switch
    sw = Switch(veths, cpu_port=255)
    server = RuntimeServer(sw, 0)
    server.start()
    try:
        # interfaces not on this machine (names sysfs does not know): the switch's runtime CLI answers
        smp = _sampler(server.port, {1: "nosuch-eth1", 2: "nosuch-eth2", 9: "nosuch-eth9"})
        assert smp._link_state("s1") == {1: True, 2: False, 9: None}   # port 9: the switch has none
        smp.close()
        # local interfaces: sysfs
        assert _sampler(None, veths)._link_state("s1") == {1: True, 2: False}
    finally:
        server.stop()
        sw.stop()
    # nothing answers on the runtime port: unknown, not up
    dead = _sampler(_free_port(), {1: "nosuch-eth1"})
    assert dead._link_state("s1") == {1: None}
    # no runtime port configured: unknown too
    assert _sampler(None, {1: "nosuch-eth1"})._link_state("s1") == {1: None}
