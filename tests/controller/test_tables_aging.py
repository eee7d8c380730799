"""Full NIC tables, aging, path-marker hygiene and safe restore, on a virtual fig2 (real switches,
pipelines and P4Runtime servers; wires in Python): issue #11, controller side."""

from __future__ import annotations

import json
import time

import pytest
from vfabric import udp_frame

from controller import commands as C
from controller.cli import main
from controller.flowstate import FlowKey, FlowState, UdpState, dump_many
from controller.gateway import marker_frame
from controller.migrator import MigrationError, Migrator

A, B = 0x0A000001, 0x0A000002   # hostA, hostB




def _wait(pred, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def _udp_key(sport: int, dport: int = 9000) -> FlowKey:
    return FlowKey("udp", A, B, sport, dport).canonical()


def _inject(vf, nic: str, sport: int) -> None:
    vf.switches[nic].inject(1, udp_frame("hostA", "hostB", sport, 9000, b"x" * 8))


def test_idle_reference_gives_its_slot_up_and_the_inventory_follows(vf, ctrl):
    drv = ctrl.nic("nic1")
    ctrl.set_idle_timeout(300)
    _inject(vf, "nic1", 41000)
    a = _wait(lambda: ctrl.inventory.find(_udp_key(41000)))
    assert a is not None and a.device == "nic1"
    same = [p for p in range(41001, 60000) if drv.hash_slots(_udp_key(p))[0] == a.slot][:2]
    assert len(same) == 2
    # not idle yet: the newcomer takes its second slot, the first reference stays
    _inject(vf, "nic1", same[0])
    b = _wait(lambda: ctrl.inventory.find(_udp_key(same[0])))
    assert b is not None and b.slot != a.slot and ctrl.inventory.find(_udp_key(41000)) is not None
    ctrl.set_idle_timeout(0.2)
    try:
        time.sleep(0.4)
        evicted = ctrl.inventory.evicted
        _inject(vf, "nic1", same[1])
        c = _wait(lambda: ctrl.inventory.find(_udp_key(same[1])))
        assert c is not None and (c.device, c.slot) == ("nic1", a.slot)
        assert ctrl.inventory.find(_udp_key(41000)) is None, "the aged-out reference is still listed"
        assert ctrl.inventory.evicted == evicted + 1
        assert [r.key for r in ctrl.inventory.on_device("nic1") if r.slot == a.slot] == [c.key]
    finally:
        ctrl.set_idle_timeout(300)
    with pytest.raises(ValueError):
        ctrl.set_idle_timeout(0)


def test_forged_path_markers_never_reach_a_nic(vf, ctrl):
    forged = marker_frame(0x5EED)
    for _ in range(50):
        vf.send("hostA", forged)
    time.sleep(0.5)
    for drv in ctrl.nics.values():
        assert drv.markers.arrival(0x5EED) is None
        assert not drv.wait_marker(0x5EED, 0.01)
    drops = vf.switches["gwA"].pipeline.counters["GatewayIngress.drop_accounting.drops"].read(9)[0]
    assert drops == 50
    board = ctrl.nic("nic1").markers
    for t in range(board.keep + 100):
        board.arrived(t)
    assert len(board._seen) == board.keep


def _learned(vf, ctrl, sports: list[int]) -> dict[int, str]:
    for p in sports:
        vf.send("hostA", udp_frame("hostA", "hostB", p, 9000, b"y" * 8))
    recs = _wait(lambda: all(ctrl.inventory.find(_udp_key(p)) for p in sports) and
                 {p: ctrl.inventory.find(_udp_key(p)).device for p in sports})
    assert recs, "flows not learned"
    return recs


def test_restore_refuses_duplicates_and_a_nic_the_gateways_do_not_send_to(vf, ctrl, cfg_path, tmp_path, capsys):
    m = Migrator(ctrl)
    sports = list(range(42000, 42006))
    where = _learned(vf, ctrl, sports)
    for p in sports:   # the controller's idea of the gateway hash is the data plane's
        assert m.sent_to(_udp_key(p)) == {"gwA": where[p], "gwB": where[p]}, p
    k = _udp_key(sports[0])
    rec = ctrl.inventory.get(k)
    state = ctrl.nic(rec.device).save([(k, rec.slot)], suspend=False)[0]
    key = ctrl.config.hmac_key
    with pytest.raises(MigrationError, match="more than once"):
        m.restore([state.to_dict(key)] * 3, rec.device)
    other = next(n for n in ("nic1", "nic2", "nic3") if n != rec.device)
    with pytest.raises(MigrationError, match=f"gateway gw[AB] sends it to {rec.device}"):
        m.restore([state.to_dict(key)], other)
    assert ctrl.inventory.get(k).device == rec.device
    f = tmp_path / "three.json"
    f.write_text(dump_many([state, state, state], key))
    capsys.readouterr()
    assert main(["--config", str(cfg_path), "restore", str(f), "--to", rec.device]) == 1
    assert "more than once" in capsys.readouterr().err
    f.write_text(dump_many([state], key))
    assert main(["--config", str(cfg_path), "restore", str(f), "--to", other]) == 1
    assert f"sends it to {rec.device}" in capsys.readouterr().err
    # a VM move rewrites the routes after: the caller says so
    items = m.restore([state.to_dict(key)], other, routes_follow=True)
    assert [i[0] for i in items] == [k] and ctrl.inventory.get(k).device == other


def _fill(ctrl, nic: str, n: int, net: int) -> None:
    """Load ``n`` UDP references on ``nic`` at its free slots (LOAD commands), then scan."""
    drv = ctrl.nic(nic)
    free = sorted(set(range(drv.slots)) - {c.slot for c in drv.scan()})[:n]
    assert len(free) == n
    states = [FlowState(FlowKey("udp", (net << 24) | i, (net << 24) | 0xFFFFFF, 1000, 2000).canonical(),
                        UdpState(packets=1, bytes=64)) for i in range(n)]
    replies = drv.load(states, free)
    assert all(r.status == C.STATUS_OK for r in replies)
    ctrl.scan([nic])


def test_full_tables_are_reported_refused_and_listed_fast(vf, ctrl, cfg_path, capsys):
    _fill(ctrl, "nic1", 3000, 11)
    _fill(ctrl, "nic2", 3000, 12)
    _fill(ctrl, "nic3", ctrl.nic("nic3").slots - len(ctrl.nic("nic3").scan()), 13)
    assert ctrl.slot_use("nic3").full and not ctrl.slot_use("nic1").near_full
    total = len(ctrl.inventory)
    assert total > 10_000
    # flows: slot use per NIC, FULL said, 200 references listed, quickly
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(["--config", str(cfg_path), "flows", "--interval", "0"]) == 0
    dt = time.monotonic() - t0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\nflowmig flows with {total} references: {dt:.2f} s")
    lines = out.splitlines()
    assert any(x.startswith("nic3: 4096/4096 slots used") and x.endswith("FULL") for x in lines), out[:500]
    assert any(x.startswith("nic1: ") and "FULL" not in x for x in lines)
    assert f"200 of {total} references shown" in out
    assert dt < 5.0, f"flows took {dt:.1f} s with {total} references"
    assert main(["--config", str(cfg_path), "flows", "--interval", "0", "--json", "--limit", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nics"]["nic3"] == {"used": 4096, "total": 4096, "free": 0, "full": True, "near_full": True}
    assert doc["total"] == total and doc["shown"] == 5 == len(doc["flows"])
    # the monitor flags the full NIC (once), not the others
    from controller.monitor import Monitor
    mon = Monitor(ctrl, {})
    try:
        evs = mon.check_slots()
        assert [(e.kind, e.device, e.value, e.baseline) for e in evs] == [("full", "nic3", 4096, 4096)]
        assert mon.full_nics == {"nic3"} and mon.check_slots() == [] and mon.events == evs
    finally:
        mon.stop()
    # migrating into the full NIC: refused before anything is suspended
    movers = [r.key for r in ctrl.inventory.on_device("nic1")[:2]]
    before = {g: dict(d.entries) for g, d in ctrl.gateways.items()}
    with pytest.raises(MigrationError, match="nic3 has 0 free slot"):
        Migrator(ctrl).migrate(movers, "nic3")
    assert {g: dict(d.entries) for g, d in ctrl.gateways.items()} == before
    for k in movers:
        rec = ctrl.inventory.get(k)
        (rep,) = ctrl.nic("nic1").run(C.SAVE, [(k, rec.slot)])
        assert rep.status == C.STATUS_OK and not rep.flags & C.SLOT_SUSPENDED
