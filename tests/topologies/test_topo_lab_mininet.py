"""Mininet tests (root): fig2 on the embedded target, traffic through the NICs, and no leftovers."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import pytest
from topo_helpers import REPO, assert_no_leftovers, mininet_missing, programs_missing

from topologies.apps import parse_report
from topologies.description import load

pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(mininet_missing() is not None, reason=mininet_missing() or "")]


def _app(host, module: str, *args: str, out) -> subprocess.Popen:
    return host.popen([sys.executable, "-m", f"topologies.apps.{module}", *args, "--out", str(out)],
                      cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_failed_start_leaves_nothing(lab_options):
    """A switch that cannot start raises with its log tail, and the partial network is removed."""
    from topologies.network import Lab
    from topologies.p4switch import P4SwitchError

    lab_options.no_p4 = True
    lab_options.switch_args = ["--no-such-option"]
    lab = Lab(load("fig2"), lab_options)
    with pytest.raises(P4SwitchError) as err:
        with lab:
            pass
    assert "exited with code" in str(err.value) and "no-such-option" in str(err.value)
    assert_no_leftovers(lab)


def test_failure_inside_a_lab_still_cleans_up(lab_options):
    """An exception while the lab runs (with an app left running in a host) leaves nothing behind."""
    from topologies.network import Lab

    lab_options.no_p4 = True
    lab = Lab(load("fig2"), lab_options)
    with pytest.raises(RuntimeError, match="boom"):
        with lab:
            lab.host("hostB").popen(["sleep", "300"])
            assert all(sw.connected() for sw in lab.switches())
            raise RuntimeError("boom")
    assert_no_leftovers(lab)


@pytest.mark.skipif(programs_missing() is not None, reason=programs_missing() or "")
def test_fig2_ping_and_tcp_stream(lab_options, tmp_path, clean_lab):
    from topologies.network import Lab

    lab = Lab(load("fig2"), lab_options)
    clean_lab(lab)
    lab.start()
    cfg = lab.config()
    assert set(cfg.switches) == {"gwA", "gwB", "nic1", "nic2", "nic3"}
    assert lab.config_path.is_file()
    # the run's own FlowState key: a 0600 file of 32 random bytes (hex), named by the config file
    from controller.config import load_config
    assert stat.S_IMODE(lab.key_path.stat().st_mode) == 0o600
    assert json.loads(lab.config_path.read_text())["hmac_key_file"] == str(lab.key_path.resolve())
    assert load_config(lab.config_path, env={}).hmac_key == bytes.fromhex(lab.key_path.read_text())
    assert len(bytes.fromhex(lab.key_path.read_text())) == 32
    a, b = lab.host("hostA"), lab.host("hostB")

    out = a.cmd("ping -c 3 -W 2 -i 0.2 10.0.0.2")
    assert " 0% packet loss" in out, out
    out = b.cmd("ping -c 2 -W 2 -i 0.2 10.0.0.1")
    assert " 0% packet loss" in out, out

    def nic_rx() -> int:
        return sum(int(open(f"/sys/class/net/{n}-eth1/statistics/rx_packets").read())
                   for n in ("nic1", "nic2", "nic3"))

    before = nic_rx()
    rx_out, tx_out = tmp_path / "rx.jsonl", tmp_path / "tx.jsonl"
    rx = _app(b, "tcp_stream", "recv", "--port", "5001", "--timeout", "20", out=rx_out)
    time.sleep(0.5)
    tx = _app(a, "tcp_stream", "send", "--dst", "10.0.0.2", "--port", "5001", "--duration", "2",
              "--rate", "100k", out=tx_out)
    tx_log = tx.communicate(timeout=40)[0]
    rx_log = rx.communicate(timeout=20)[0]
    assert tx.returncode == 0, tx_log
    assert rx.returncode == 0, rx_log
    (rx_end,) = [r for r in parse_report(rx_out) if r["event"] == "end"]
    (tx_end,) = [r for r in parse_report(tx_out) if r["event"] == "end"]
    assert rx_end["ok"] and rx_end["gaps"] == 0 and rx_end["corrupt"] == 0 and not rx_end["reset"]
    assert rx_end["bytes"] == tx_end["bytes"] > 100_000
    assert nic_rx() - before > 50        # the stream went through the NICs

    # Degradation: limiting the NICs' egress queues mid-stream cuts the receiver's throughput
    from topologies import degrade
    drx_out = tmp_path / "drx.jsonl"
    rx = _app(b, "tcp_stream", "recv", "--port", "5002", "--timeout", "20", "--interval", "0.2", out=drx_out)
    time.sleep(0.5)
    tx = _app(a, "tcp_stream", "send", "--dst", "10.0.0.2", "--port", "5002", "--duration", "3", "--rate", "2M",
              out=tmp_path / "dtx.jsonl")
    time.sleep(1.5)
    t_fault = time.time()
    for nic in ("nic1", "nic2", "nic3"):
        degrade.set_queue_rate(lab.switch(nic).thrift_port, 50, 2)
    time.sleep(1.6)
    t_restore = time.time()
    for nic in ("nic1", "nic2", "nic3"):                 # lift it so the backlog drains quickly
        degrade.set_queue_rate(lab.switch(nic).thrift_port, 0)
    assert tx.wait(timeout=60) == 0 and rx.wait(timeout=60) == 0
    samples = [r for r in parse_report(drx_out) if r["event"] == "sample"]
    before = [r["bps"] for r in samples if r["t"] < t_fault - 0.3]
    during = [r["bps"] for r in samples if t_fault + 0.5 < r["t"] < t_restore]
    assert before and during, samples
    assert max(during) < 0.5 * (sum(before) / len(before)), (before, during)
    (dend,) = [r for r in parse_report(drx_out) if r["event"] == "end"]
    assert dend["ok"], dend                              # slowed down, but not a byte lost

    # RoCEv2: two QPs through the NICs keep their PSN sequence
    rrx_out, rtx_out = tmp_path / "rrx.jsonl", tmp_path / "rtx.jsonl"
    rrx = _app(b, "roce_stream", "recv", "--count", "2", "--idle", "5", out=rrx_out)
    time.sleep(0.5)
    rtx = _app(a, "roce_stream", "send", "--dst", "10.0.0.2", "--qps", "2", "--pps", "400", "--packets", "200",
               out=rtx_out)
    assert rtx.wait(timeout=30) == 0, rtx.communicate()[0]
    assert rrx.wait(timeout=30) == 0, rrx.communicate()[0]
    ends = [r for r in parse_report(rrx_out) if r["event"] == "end"]
    assert sorted(r["qpn"] for r in ends) == [0x11, 0x12]
    assert all(r["ok"] and r["packets"] == 101 and r["missing"] == 0 for r in ends), ends


def test_degradation_helpers(lab_options, clean_lab):
    """Queue rate via the runtime CLI, tbf, link down/up and the netem probe on a running fig2."""
    from topologies import degrade
    from topologies.network import Lab

    lab_options.no_p4 = True
    lab = Lab(load("fig2"), lab_options)
    clean_lab(lab)
    lab.start()
    nic2 = lab.switch("nic2")
    degrade.set_queue_rate(nic2.thrift_port, 100, 2)
    degrade.set_queue_rate(nic2.thrift_port, 0)
    with pytest.raises(degrade.DegradeError, match="Bad format for rate_pps"):   # simple_switch_CLI's words
        degrade.switch_cli(nic2.thrift_port, "set_queue_rate lots")

    degrade.tbf(nic2, "nic2-eth2", "1mbit")
    assert "tbf" in nic2.cmd("tc qdisc show dev nic2-eth2")
    degrade.clear_qdisc(nic2, "nic2-eth2")
    assert "tbf" not in nic2.cmd("tc qdisc show dev nic2-eth2")
    with pytest.raises(degrade.DegradeError, match="failed"):
        degrade.tbf(nic2, "nic2-eth2", "not-a-rate")

    assert degrade.interface_up(nic2, "nic2-eth2")
    degrade.link_status(lab.net, "nic2", "gwB", up=False)
    assert not degrade.interface_up(nic2, "nic2-eth2")
    assert not degrade.interface_up(lab.switch("gwB"), "gwB-eth3")
    degrade.link_status(lab.net, "nic2", "gwB", up=True)
    assert degrade.interface_up(nic2, "nic2-eth2")
    with pytest.raises(degrade.DegradeError, match="not connected"):
        degrade.link_status(lab.net, "nic1", "nic2", up=False)

    if degrade.netem_available(nic2, "nic2-eth1"):
        degrade.netem(nic2, "nic2-eth1", delay_ms=5)
        assert "netem" in nic2.cmd("tc qdisc show dev nic2-eth1")
    else:
        with pytest.raises(degrade.NetemUnavailable):
            degrade.netem(nic2, "nic2-eth1", delay_ms=5)


def test_move_host_to_a_standby_attachment(lab_options, clean_lab):
    """A VM-style host keeps its IP and MAC on its standby interface; the config follows it."""
    import json

    from topologies.description import TOPOLOGY_DIR, from_dict
    from topologies.network import Lab

    data = json.loads((TOPOLOGY_DIR / "fig2.json").read_text())
    data["links"].append(["hostB", "gwA:5"])
    lab_options.no_p4 = True
    lab = Lab(from_dict(data), lab_options)
    clean_lab(lab)
    lab.start()
    b = lab.host("hostB")
    assert "10.0.0.2/24" in b.cmd("ip -4 addr show dev hostB-eth0")
    assert "10.0.0.2" not in b.cmd("ip -4 addr show dev hostB-eth1")
    assert b.cmd("cat /sys/class/net/hostB-eth1/operstate").strip() == "down"

    with pytest.raises(ValueError, match="no attachment on nic1"):
        lab.move_host("hostB", "nic1")
    assert lab.move_host("hostB", "gwA") == lab.topo.host_attachment("hostA").__class__("gwA", 5)
    assert "10.0.0.2/24" in b.cmd("ip -4 addr show dev hostB-eth1")
    assert "10.0.0.2" not in b.cmd("ip -4 addr show dev hostB-eth0")
    assert "02:00:0a:00:00:02" in b.cmd("cat /sys/class/net/hostB-eth1/address")
    assert "hostB-eth1" in b.cmd("ip route get 10.0.0.1")
    assert "PERMANENT" in b.cmd("ip neigh show 10.0.0.1 dev hostB-eth1")
    cfg = json.loads(lab.config_path.read_text())
    assert (cfg["hosts"]["hostB"]["switch"], cfg["hosts"]["hostB"]["port"]) == ("gwA", 5)
    assert cfg["hosts"]["hostB"]["intf"] == "hostB-eth1"


def test_lab_command_line(tmp_path):
    """``python -m topologies.lab`` runs CLI commands against a live topology and leaves nothing behind."""
    import os

    from topologies import cleanup

    env = dict(os.environ, FLOWMIG_LAB_DIR=str(tmp_path / "registry"))
    env.pop("FLOWMIG_LAB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "topologies.lab", "fig2", "--no-p4", "--wait", "600", "--run-dir", str(tmp_path / "run"),
         "--log-dir", str(tmp_path / "logs"), "--cmd", "switches", "--cmd", "degrade nic2 50 2",
         "--cmd", "linkdown nic2 gwB", "--cmd", "nic2 cat /sys/class/net/nic2-eth2/operstate",
         "--cmd", "linkup nic2 gwB", "--cmd", "degrade nosuch 1", "--cmd", "config"],
        cwd=str(REPO), env=env, capture_output=True, text=True, timeout=700)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "nic2   flow_nic  nic      grpc 127.0.0.1:" in out
    # linkdown cuts the far end (gwB's, as a cable pulled there): nic2's end has lost its carrier
    assert "\nlowerlayerdown\n" in out
    assert "error: no switch 'nosuch'" in out
    assert str(tmp_path / "run" / "config.json") in out
    assert not list((tmp_path / "registry").glob("*.json"))           # run unregistered: fully swept
    # the switch daemons had tmp_path in their argv (--log-file): none may survive
    assert not [p for p in cleanup._all_pids() if str(tmp_path / "logs") in cleanup._cmdline(p)]


@pytest.mark.skipif(programs_missing() is not None, reason=programs_missing() or "")
def test_fig3_every_host_reaches_every_host(lab_options, clean_lab):
    from topologies.network import Lab

    lab = Lab(load("fig3"), lab_options)
    clean_lab(lab)
    lab.start()
    assert lab.net.ping(timeout="1") == 0.0
    nic_rx = {n: int(open(f"/sys/class/net/{n}-eth1/statistics/rx_packets").read()) for n in ("nicA", "nicB")}
    assert sum(nic_rx.values()) > 0        # client <-> server pings crossed the nodes
