"""The migrator end to end on a virtual fig2 (real switches, pipelines and P4Runtime servers; wires in
Python): sequence-numbered UDP flows hostA -> hostB are moved between NICs in batches; the receiver
side checks loss and order. No root, no Mininet."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from vfabric import udp_frame

from controller.config import load_config
from controller.migrator import Migrator
from controller.runtime import Controller

BASE = 30000




class Traffic:
    """Round-robin UDP flows (source ports BASE+i) with a per-flow sequence number."""

    def __init__(self, vf, flows: list[int], pps: float) -> None:
        self.vf, self.flows, self.gap = vf, flows, 1.0 / pps
        self.sent = {f: 0 for f in flows}
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            f = self.flows[i % len(self.flows)]
            self.vf.send("hostA", udp_frame("hostA", "hostB", f, 9000, struct.pack("!I", self.sent[f])))
            self.sent[f] += 1
            i += 1
            time.sleep(self.gap)

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self.t.join()
        return self.sent


def received(vf, flows: list[int], sent: dict[int, int], timeout: float = 5.0) -> dict[int, list[int]]:
    deadline = time.monotonic() + timeout
    want = sum(sent[f] for f in flows)
    while time.monotonic() < deadline:
        got = _parse(vf, flows)
        if sum(len(v) for v in got.values()) >= want:
            break
        time.sleep(0.05)
    return _parse(vf, flows)


def _parse(vf, flows):
    out: dict[int, list[int]] = {f: [] for f in flows}
    with vf.inbox_cv:
        frames = list(vf.inboxes["hostB"])
    for fr in frames:
        sport = struct.unpack("!H", fr[34:36])[0]
        if sport in out:
            out[sport].append(struct.unpack("!I", fr[42:46])[0])
    return out


def wait_learned(ctrl, flows: list[int], timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = {r.key.src_port: r for r in ctrl.inventory.all() if r.key.kind == "udp"}
        if all(f in recs for f in flows):
            return [recs[f] for f in flows]
        time.sleep(0.05)
    raise AssertionError(f"not learned: {sorted(set(flows) - set(recs))}")


def test_batch_lossless_no_loss_in_order(vf, ctrl):
    flows = list(range(BASE, BASE + 60))
    tr = Traffic(vf, flows, pps=600)
    recs = wait_learned(ctrl, flows)
    m = Migrator(ctrl)
    target = "nic3"
    before = {r.key: r.device for r in recs}
    record = m.migrate([r.key for r in recs], target)
    assert record.outcome == "ok", record.summary()
    assert sum(record.sources.values()) == sum(d != target for d in before.values())
    time.sleep(0.3)
    back = m.migrate([r.key for r in recs], "nic1")
    assert back.outcome == "ok", back.summary()
    time.sleep(0.3)
    sent = tr.stop()
    got = received(vf, flows, sent)
    lost = sum(sent[f] - len(set(got[f])) for f in flows)
    reordered = sum(1 for f in flows for a, b in zip(got[f], got[f][1:], strict=False) if b < a)
    dups = sum(len(got[f]) - len(set(got[f])) for f in flows)
    assert lost == 0 and dups == 0
    assert reordered <= record.packets_late + back.packets_late
    assert all(ctrl.inventory.get(r.key).device == "nic1" for r in recs)
    assert record.packets_buffered >= record.packets_replayed - record.packets_late >= 0
    assert {"suspend", "quiesce", "save", "validate", "load", "redirect", "resume", "release"} <= \
        set(record.steps_ms)


def test_drop_mode_moves_and_forwarding_resumes(vf, ctrl):
    flows = list(range(BASE + 100, BASE + 110))
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    record = Migrator(ctrl).migrate([r.key for r in recs], "nic2", mode="drop")
    assert record.outcome == "ok" and record.packets_buffered == 0, record.summary()
    for g in ("gwA", "gwB"):   # the drain indexes that held the suspensions' leases are free again
        drv = ctrl.gateway(g)
        assert not [t for r in recs for t in drv.tuples_for(r.key) if t in drv.drains], g
    before = {f: len(v) for f, v in _parse(vf, flows).items()}
    time.sleep(0.4)
    sent = tr.stop()
    after = received(vf, flows, sent)
    assert all(len(after[f]) > before[f] for f in flows), "forwarding did not resume after a drop-mode move"


@pytest.mark.parametrize("fault,step", [("load", "load"), ("version", "validate")])
def test_failure_before_redirect_rolls_back(vf, ctrl, fault, step):
    from controller.nic import NicError
    flows = list(range(BASE + 200 + (10 if fault == "version" else 0), BASE + 205 + (10 if fault == "version" else 0)))
    tr = Traffic(vf, flows, pps=200)
    recs = wait_learned(ctrl, flows)
    where = {r.key: r.device for r in recs}

    m = Migrator(ctrl)
    if fault == "load":
        m.inject_failure("load", NicError("injected load failure"))
    else:
        # the NICs answer with program version 1 records; a controller expecting 2 refuses them
        def expect_v2(step, ctx) -> None:
            if step.name == "validate":
                ctx.program_version = 2
        m.before_step.append(expect_v2)
    target = next(n for n in ("nic1", "nic2", "nic3") if n not in where.values()) \
        if len(set(where.values())) < 3 else "nic3"
    movers = [k for k, d in where.items() if d != target]
    record = m.migrate(movers, target)
    assert record.outcome == "rolled_back", record.summary()
    assert record.failed_step == step
    for k in movers:
        assert ctrl.inventory.get(k).device == where[k]
    assert not [k for k in ctrl.nic(target).placed if k in movers]
    time.sleep(0.3)
    sent = tr.stop()
    got = received(vf, flows, sent)
    assert sum(sent[f] - len(set(got[f])) for f in flows) == 0, "packets lost across the rollback"
    from controller import commands as C
    for k in movers:
        r = ctrl.inventory.get(k)
        rep = ctrl.nic(r.device).run(C.SAVE, [(k, r.slot)])[0]
        assert rep.status == C.STATUS_OK and not rep.flags & C.SLOT_SUSPENDED


def test_unknown_flow_and_nic_are_clear_errors(ctrl):
    from controller.flowstate import parse_reference
    from controller.migrator import MigrationError
    from controller.runtime import ControllerError
    with pytest.raises(MigrationError, match="unknown flow"):
        Migrator(ctrl).migrate([parse_reference("udp:10.9.9.9:1-10.9.9.8:2")], "nic1")
    with pytest.raises(ControllerError, match="unknown NIC 'nic9'"):
        Migrator(ctrl).migrate([], "nic9")
    with pytest.raises(MigrationError, match="unknown mode"):
        Migrator(ctrl).migrate([], "nic1", mode="teleport")


def test_a_new_controller_process_sees_pinned_entries(vf, ctrl, tmp_path):
    """Entries written by one controller (gateway pins, NIC placements) are read back by the next."""
    pinned = {t: e for t, e in ctrl.gateway("gwA").entries.items() if e[0] == "set_nic_port"}
    placed = {n: dict(ctrl.nic(n).placed) for n in ctrl.nics}
    assert pinned  # (placements exist only for references that found both hash slots taken)
    cfg = load_config(vf.write_config(tmp_path / "config.json"))
    cfg.log_dir = None
    cfg.election_id = (0, 50)  # a backup: reads only
    other = Controller(cfg, hosts=cfg.hosts).start()
    try:
        got = other.gateway("gwA").entries
        assert all(got.get(t) == e for t, e in pinned.items())
        for n, p in placed.items():
            assert other.nic(n).placed == p
    finally:
        other.close()


def test_cli_flows_monitor_migrate(vf, ctrl, tmp_path, capsys):
    import json as _json

    from controller.cli import main
    cfg = str(vf.write_config(tmp_path / "config.json"))
    flows = list(range(BASE + 300, BASE + 303))
    tr = Traffic(vf, flows, pps=150)
    recs = wait_learned(ctrl, flows)
    capsys.readouterr()
    assert main(["--config", cfg, "flows", "--interval", "0.3", "--json"]) == 0
    listed = {r["reference"]: r for r in _json.loads(capsys.readouterr().out)["flows"]}
    ref = str(recs[0].key)
    assert ref in listed and listed[ref]["device"] in ("nic1", "nic2", "nic3")
    assert listed[ref]["pps"] > 0
    target = next(n for n in ("nic1", "nic2", "nic3") if n != listed[ref]["device"])
    assert main(["--config", cfg, "migrate", ref, "--to", target, "--json"]) == 0
    out = _json.loads(capsys.readouterr().out)
    assert out["outcome"] == "ok" and out["target"] == target
    assert main(["--config", cfg, "monitor", "--count", "1", "--interval", "0.2", "--no-clear"]) == 0
    text = capsys.readouterr().out
    assert "RX_PPS" in text and ref in text
    # --count 1 still shows real rates (the first sample only primes the rate tracker)
    row = next(line.split() for line in text.splitlines() if line.startswith(ref))
    assert float(row[2]) > 0, row
    assert main(["--config", cfg, "migrate", "udp:10.9.9.9:1-10.9.9.8:2", "--to", "nic1"]) == 1
    assert "unknown flow" in capsys.readouterr().err
    assert main(["--config", cfg, "flows", "--device", "nic7"]) == 1
    assert "unknown NIC 'nic7'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--config", cfg, "migrate", ref])  # --to missing
    assert e.value.code == 2
    tr.stop()
    # the fixture controller is primary again once the CLI's sessions are gone
    time.sleep(0.3)
    assert all(c.is_primary for c in ctrl.fabric.switches.values())


def roce_frame(sport: int, qpn: int, psn: int) -> bytes:
    bth = struct.pack("!BBHB", 0x04, 0x40, 0xFFFF, 0) + qpn.to_bytes(3, "big") + b"\x80" + psn.to_bytes(3, "big")
    return udp_frame("hostA", "hostB", sport, 4791, bth + b"\x00" * 16)


def test_roce_qps_move_with_their_udp_ports_and_shared_tuples_together(vf, ctrl):
    # QPs 0x101 and 0x102 share the UDP source port (one gateway 5-tuple); 0x103 has its own
    qps = {0x101: 50001, 0x102: 50001, 0x103: 50003}
    sent = {q: 0 for q in qps}
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for q, sp in qps.items():
                vf.send("hostA", roce_frame(sp, q, sent[q]))
                sent[q] += 1
            time.sleep(0.006)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            recs = {r.key.qpn: r for r in ctrl.inventory.all() if r.key.kind == "roce"}
            if all(q in recs and recs[q].udp_ports for q in qps):
                break
            time.sleep(0.05)
        assert {q: recs[q].udp_ports for q in qps} == {q: (sp, 4791) for q, sp in qps.items()}
        assert all(recs[q].key.src_port == recs[q].key.dst_port == 0 for q in qps)   # the NIC's key
        target = next(n for n in ("nic3", "nic1", "nic2") if n != recs[0x101].device)
        m = Migrator(ctrl)
        rec = m.migrate([recs[0x101].key], target)
        assert rec.outcome == "ok", rec.summary()
        assert sorted(x["reference"] for x in rec.moved) == sorted(str(recs[q].key) for q in (0x101, 0x102))
        assert ctrl.inventory.get(recs[0x102].key).device == target
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = _roce_psns(vf)
        if all(len(got.get(q, [])) >= sent[q] for q in qps):
            break
        time.sleep(0.05)
    for q in qps:
        psns = got[q]
        assert sorted(set(psns)) == list(range(sent[q])), f"qp {q:#x}: lost or duplicated PSNs"
        assert psns == sorted(psns), f"qp {q:#x}: PSNs reordered"


def _roce_psns(vf) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    with vf.inbox_cv:
        frames = list(vf.inboxes["hostB"])
    for fr in frames:
        if len(fr) >= 54 and fr[36:38] == b"\x12\xb7":
            out.setdefault(int.from_bytes(fr[47:50], "big"), []).append(int.from_bytes(fr[51:54], "big"))
    return out


def test_a_roce_qp_learned_before_the_controller_gets_its_ports_from_the_nic(vf, ctrl, tmp_path):
    """A controller that missed a QP's learn digest (the NIC key has no UDP ports) reads the QP's port
    from the NIC's roce_udp_sport register when scanning, and can move it."""
    qpn, sport = 0x1F1, 50111
    sent = 0
    for _ in range(5):
        vf.send("hostA", roce_frame(sport, qpn, sent))
        sent += 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r.key.qpn == qpn for r in ctrl.inventory.all()):
        time.sleep(0.05)
    cfg = load_config(vf.write_config(tmp_path / "config.json"))
    cfg.log_dir = None
    cfg.election_id = (1, 7)                  # a later controller process, primary while it runs
    later = Controller(cfg, hosts=cfg.hosts).start()
    try:
        assert later.scan() > 0
        rec = next(r for r in later.inventory.all() if r.key.kind == "roce" and r.key.qpn == qpn)
        assert rec.udp_ports == (sport, 4791)
        rec.udp_ports = None                  # as if the scan had not filled it: the migrator asks too
        target = next(n for n in ("nic1", "nic2", "nic3") if n != rec.device)
        moved = Migrator(later).migrate([rec.key], target)
        assert moved.outcome == "ok", moved.summary()
        assert later.inventory.get(rec.key).device == target
        for _ in range(5):
            vf.send("hostA", roce_frame(sport, qpn, sent))
            sent += 1
    finally:
        later.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(_roce_psns(vf).get(qpn, [])) < sent:
        time.sleep(0.05)
    assert _roce_psns(vf).get(qpn) == list(range(sent))


def test_sync_resets_only_the_drain_cells_an_earlier_controller_left(vf, ctrl):
    from controller.gateway import PUNTED, REPLAYED
    gw = ctrl.gateway("gwA")
    deadline = time.monotonic() + 10
    while gw.settling and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.conn.write_raw([gw.helper.register_update_raw(PUNTED, 900, 5), gw.helper.register_update_raw(REPLAYED, 901, 2)])
    written = []
    real = gw.conn.write_raw
    gw.conn.write_raw = lambda ups, *a, **k: (written.append(len(ups)), real(ups, *a, **k))[1]
    try:
        gw.sync()
    finally:
        gw.conn.write_raw = real
    assert written == [4]                       # one Write: both cells of the two dirty indexes
    pid, rid = gw.helper.get_id("register", PUNTED), gw.helper.get_id("register", REPLAYED)
    cells = gw.conn.read_registers([(pid, 900), (rid, 901)])
    assert cells == {(pid, 900): 0, (rid, 901): 0}
    assert {900, 901} <= set(gw._drain_free) and not gw._drain_dirty
    assert set(gw.drains.values()).isdisjoint(gw._drain_free)
