"""The scenario runner's checks on what users feel and on the policy's choice (synthetic records)."""

from __future__ import annotations

from types import SimpleNamespace

from topologies.scenarios.runner import Scenario, ScenarioRun


def _run(sc: Scenario, history=(), records=()) -> ScenarioRun:
    run = ScenarioRun(sc, out=open("/dev/null", "w"))  # noqa: SIM115 - closed with the process
    run.ctrl = SimpleNamespace(nics={"nic1": None, "nic2": None, "nic3": None})
    run.monitor = SimpleNamespace(history=list(history))
    run.engine = SimpleNamespace(records=list(records))
    return run


def _rep(stalls, detection_ms=300.0):
    return {"expected_connections": 1, "connections": 1, "connections_survived": 1, "senders_ok": True,
            "packets_lost": 0, "bytes_lost": 0, "packets_reordered": 0, "bytes_corrupt": 0,
            "migrations": [], "detection_ms": detection_ms, "fault": {"t": 100.0},
            "throughput": {"before": 1.0, "after": 1.0}, "placement_end": {},
            "receivers": [{"event": "end", "flow": "10.0.0.1:1", "stalls": stalls}]}


def _sc(**kw) -> Scenario:
    return Scenario("t", "test", "fig2", [], **kw)


def test_stall_counts_only_after_detection():
    run = _run(_sc())
    # 250 ms stall from 100.2 s: 150 ms of it after detection at 100.3 s
    assert run._checks(_rep([[100.2, 250.0]]))["stall"][0]
    c = run._checks(_rep([[100.2, 250.0], [101.0, 201.0]]))["stall"]
    assert not c[0] and "201 ms after detection" in c[1]


def test_stall_from_the_fault_for_linkdown_like_scenarios():
    run = _run(_sc(max_stall_ms=1000.0, stall_from="fault"))
    assert run._checks(_rep([[100.1, 900.0]]))["stall"][0]
    assert not run._checks(_rep([[99.9, 1200.0]]))["stall"][0]      # 1100 ms of it after the fault


def _history(loads):
    flows = {f"r{i}": {"device": d, "bps": bps} for i, (d, bps) in enumerate(loads)}
    return [{"t": 10.0, "flows": flows}]


def _record(target):
    return SimpleNamespace(decided=11.0, migration={"target": target, "sources": {"nic2": 4}})


def test_choice_must_be_the_least_loaded_healthy_nic():
    hist = _history([("nic1", 4e6), ("nic2", 8e6)])
    good = _run(_sc(faulted="nic2"), hist, [_record("nic3")])._check_choice()
    assert good[0] and "nic3 (0.0 Mbit/s" in good[1]
    bad = _run(_sc(faulted="nic2"), hist, [_record("nic1")])._check_choice()
    assert not bad[0]
    back = _run(_sc(faulted="nic2"), hist, [_record("nic2")])._check_choice()    # onto the faulted NIC
    assert not back[0]
