"""Integration (root, Mininet, embedded switch): live migrations on fig2 with real TCP sockets.

A sequence-numbered TCP byte stream (topologies.apps.tcp_stream) runs hostA -> hostB through one of
the three NICs; the controller moves it to another NIC while it runs. The receiver must see every byte
in order (no gap, no corruption, no reset). A failing load is rolled back and the flow keeps running
on its NIC.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet is not installed"
    for mod in ("p4target.switch.cli", "p4target.compiler", "topologies.network"):
        try:
            __import__(mod)
        except ImportError as exc:
            return f"{mod} not importable yet: {exc}"
    return None


pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.skipif(_missing() is not None,
                                                                         reason=_missing() or "")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from topologies.description import load
    from topologies.network import Lab, LabOptions
    tmp = tmp_path_factory.mktemp("ctl-lab")
    lab = Lab(load("fig2"), LabOptions(run_dir=tmp / "run", log_dir=tmp / "logs", lock_timeout=900))
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def ctrl(lab):
    from controller.config import load_config
    from controller.runtime import Controller
    cfg = load_config(lab.config_path)
    # above any stray CLI (0,110) that might reach these loopback ports from another lab's stale config
    cfg.election_id = (1, os.getpid() & 0xFFFF)
    c = Controller(cfg, hosts=cfg.hosts).start()
    yield c
    c.close()


class Stream:
    """A tcp_stream sender on hostA and receiver on hostB, with their JSON-line reports."""

    def __init__(self, lab, tmp: Path, port: int, duration: float, rate: str = "2M") -> None:
        self.rx_out, self.tx_out = tmp / f"rx{port}.jsonl", tmp / f"tx{port}.jsonl"
        py = sys.executable
        self.rx = lab.host("hostB").popen([py, "-m", "topologies.apps.tcp_stream", "recv", "--port", str(port),
                                           "--timeout", str(duration + 30), "--out", str(self.rx_out)],
                                          cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        self.tx = lab.host("hostA").popen([py, "-m", "topologies.apps.tcp_stream", "send", "--dst", "10.0.0.2",
                                           "--port", str(port), "--duration", str(duration), "--rate", rate,
                                           "--out", str(self.tx_out)],
                                          cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def finish(self) -> tuple[dict, dict]:
        from topologies.apps import parse_report
        tx_log = self.tx.communicate(timeout=60)[0].decode(errors="replace")
        rx_log = self.rx.communicate(timeout=60)[0].decode(errors="replace")
        rx_end = [r for r in parse_report(self.rx_out) if r["event"] == "end"]
        tx_end = [r for r in parse_report(self.tx_out) if r["event"] == "end"]
        assert rx_end and tx_end, f"sender:\n{tx_log}\nreceiver:\n{rx_log}"
        return rx_end[-1], tx_end[-1]


def _flow_for(ctrl, port: int, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in ctrl.inventory.all():
            if r.key.kind == "tcp" and port in (r.key.src_port, r.key.dst_port):
                return r
        time.sleep(0.05)
    raise AssertionError(f"no digest for the TCP connection on port {port}: {ctrl.inventory.all()}")


def _assert_intact(rx_end: dict, tx_end: dict) -> None:
    assert rx_end["ok"] and not rx_end["reset"] and rx_end["error"] is None, rx_end
    assert rx_end["gaps"] == 0 and rx_end["corrupt"] == 0, rx_end
    assert tx_end["ok"] and not tx_end["reset"], tx_end
    assert rx_end["bytes"] == tx_end["bytes"] > 200_000, (rx_end, tx_end)


def _invalid_drops(ctrl, nic: str) -> int:
    d = ctrl.nic(nic).drops()
    return d.get(2, 0) + d.get(3, 0)  # DROP_INVALID_UNKNOWN, DROP_INVALID_WINDOW


@pytest.mark.parametrize("path", ["registers", "inband"])
def test_live_tcp_stream_moves_nic_to_nic(lab, ctrl, tmp_path, path):
    from controller.migrator import Migrator
    for d in ctrl.nics.values():
        d.path = path
    port = 5001 if path == "registers" else 5002
    stream = Stream(lab, tmp_path, port, duration=3.0)
    rec0 = _flow_for(ctrl, port)
    old, old_slot = rec0.device, rec0.slot   # rec0 is the live inventory record: it follows the flow
    new = next(n for n in sorted(ctrl.nics) if n != old)
    time.sleep(0.8)
    before_invalid = _invalid_drops(ctrl, new)
    record = Migrator(ctrl).migrate([rec0.key], new, "lossless")
    assert record.outcome == "ok", record.summary()
    assert record.path == path
    assert set(record.steps_ms) >= {"suspend", "quiesce", "save", "load", "redirect", "resume", "release"}
    assert ctrl.inventory.get(rec0.key).device == new
    slot = ctrl.inventory.get(rec0.key).slot
    # the old NIC released the slot; the new one tracks the connection and keeps counting
    from controller import commands as C
    assert ctrl.nic(old).run(C.SAVE, [(rec0.key, old_slot)])[0].status == C.STATUS_NOT_FOUND
    p1 = ctrl.nic(new).packet_counts([(rec0.key, slot)])[0]
    time.sleep(0.5)
    p2 = ctrl.nic(new).packet_counts([(rec0.key, slot)])[0]
    assert p2 > p1, "the new NIC does not see the connection"
    rx_end, tx_end = stream.finish()
    _assert_intact(rx_end, tx_end)
    assert _invalid_drops(ctrl, new) == before_invalid, "the new NIC dropped packets as invalid"


def test_failing_load_rolls_back_and_flow_stays(lab, ctrl, tmp_path):
    from controller.migrator import Migrator
    from controller.nic import NicError

    stream = Stream(lab, tmp_path, 5003, duration=2.5)
    rec0 = _flow_for(ctrl, 5003)
    old, slot = rec0.device, rec0.slot
    new = next(n for n in sorted(ctrl.nics) if n != old)
    time.sleep(0.5)
    m = Migrator(ctrl)
    m.inject_failure("load", NicError("injected: target refused the load"))
    record = m.migrate([rec0.key], new)
    assert record.outcome == "rolled_back", record.summary()
    assert record.failed_step == "load" and "injected" in record.reason
    assert ctrl.inventory.get(rec0.key).device == old
    # still tracked and counting on the old NIC, not suspended; nothing left on the target
    from controller import commands as C
    c1 = ctrl.nic(old).run(C.SAVE, [(rec0.key, slot)])[0]
    assert c1.status == C.STATUS_OK and not c1.flags & C.SLOT_SUSPENDED
    time.sleep(0.4)
    assert ctrl.nic(old).packet_counts([(rec0.key, slot)])[0] > c1.packets
    assert not [k for k in ctrl.nic(new).placed if k == rec0.key]
    from controller.gateway import MARKER
    assert all(a != "suspend_flow" for t, (a, _) in ctrl.gateway("gwA").entries.items() if t != MARKER)
    rx_end, tx_end = stream.finish()
    _assert_intact(rx_end, tx_end)


def test_node_wide_migration_in_drop_mode(lab, ctrl, tmp_path):
    """Every reference of one NIC moves (drop mode: TCP retransmits what was dropped)."""
    from controller.migrator import Migrator
    streams = [Stream(lab, tmp_path, p, duration=2.5, rate="1M") for p in (5004, 5005)]
    recs = [_flow_for(ctrl, p) for p in (5004, 5005)]
    m = Migrator(ctrl)
    src = recs[0].device
    if recs[1].device != src:  # put both on one NIC first
        assert m.migrate([recs[1].key], src).outcome == "ok"
    target = next(n for n in sorted(ctrl.nics) if n != src)
    time.sleep(0.3)
    record = m.migrate_device(src, target, mode="drop")
    assert record.outcome == "ok", record.summary()
    assert {str(r.key) for r in recs} <= set(record.references)
    assert not ctrl.inventory.on_device(src)
    for s in streams:
        _assert_intact(*s.finish())


def test_roce_qp_stream_keeps_its_psn_on_the_new_nic(lab, ctrl, tmp_path):
    """A RoCEv2 QP (BTH over UDP 4791, incrementing PSN) moves mid-stream: the new NIC expects the
    next PSN (no out-of-sequence count) and the receiver sees no gap or duplicate."""
    from controller import commands as C
    from controller.migrator import Migrator
    from topologies.apps import parse_report
    py = sys.executable
    rx_out, tx_out = tmp_path / "roce-rx.jsonl", tmp_path / "roce-tx.jsonl"
    rx = lab.host("hostB").popen([py, "-m", "topologies.apps.roce_stream", "recv", "--count", "1", "--idle", "10",
                                  "--out", str(rx_out)], cwd=str(REPO), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
    time.sleep(0.5)
    tx = lab.host("hostA").popen([py, "-m", "topologies.apps.roce_stream", "send", "--dst", "10.0.0.2", "--qpn",
                                  "0x33", "--pps", "400", "--duration", "2.5", "--out", str(tx_out)],
                                 cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 5
    rec0 = None
    while rec0 is None and time.monotonic() < deadline:
        rec0 = next((r for r in ctrl.inventory.all() if r.key.kind == "roce" and r.key.qpn == 0x33), None)
        time.sleep(0.05)
    assert rec0 is not None, "no digest for the QP"
    old = rec0.device
    new = next(n for n in sorted(ctrl.nics) if n != old)
    time.sleep(0.7)
    record = Migrator(ctrl).migrate([rec0.key], new)
    assert record.outcome == "ok", record.summary()
    slot = ctrl.inventory.get(rec0.key).slot
    time.sleep(0.4)
    st = ctrl.nic(new).run(C.SAVE, [(rec0.key, slot)])[0]
    assert st.status == C.STATUS_OK and st.roce_oos_count == 0 and st.roce_expected_psn > 0
    tx_log = tx.communicate(timeout=60)[0].decode(errors="replace")
    rx_log = rx.communicate(timeout=60)[0].decode(errors="replace")
    ends = [r for r in parse_report(rx_out) if r["event"] == "end"]
    assert ends, f"sender:\n{tx_log}\nreceiver:\n{rx_log}"
    end = ends[-1]
    assert end["gaps"] == 0 and end["missing"] == 0 and end["duplicates"] == 0 and end["complete"], end
    final = ctrl.nic(new).run(C.SAVE, [(rec0.key, slot)])[0]
    assert final.roce_oos_count == 0, "the new NIC saw a PSN gap"


def test_cli_flows_and_errors(lab, ctrl):
    from controller.cli import main
    base = ["--config", str(lab.config_path), "--election-id", f"2,{os.getpid() & 0xFFFF}"]
    assert main([*base, "flows", "--interval", "0"]) == 0
    assert main([*base, "migrate", "tcp:10.9.9.9:1-10.9.9.8:2", "--to", "nic1"]) == 1
    assert main([*base, "migrate", "--device", "nic9", "--to", "nic1"]) == 1
    assert main([*base, "--switch", "nic1=127.0.0.1:1", "--timeout", "0.5", "flows"]) == 1
    with pytest.raises(SystemExit) as e:
        main([*base, "migrate", "--mode", "bogus", "--to", "nic1"])
    assert e.value.code == 2
