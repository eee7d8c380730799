"""End-to-end scenarios on Mininet (root): every scenario of ``flowmig run``, checked from its report
and from the receivers' own records, and nothing of the lab left behind, pass or fail. ``degrade``
runs on both targets (bmv2 marked ``bmv2``); all five pass on bmv2 with ``flowmig run --target bmv2``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _mininet_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet is not installed"
    for tool in ("mnexec", "ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    return None


pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(_mininet_missing() is not None, reason=_mininet_missing() or "")]


@pytest.fixture
def no_leftovers():
    """Any lab run this test starts must be gone afterwards (swept and reported if not).

    Only runs owned by this process (run ids start with our pid) are looked at: other labs on the
    machine are none of our business."""
    from topologies import cleanup, registry
    mine = f"{os.getpid()}-"
    before = set(registry.runs())
    yield
    left = {}
    for run in {r for r in registry.runs() if r.startswith(mine)} - before:
        found = cleanup.leftovers(run)
        if any(found.values()) or run in registry.runs():
            left[run] = found
            cleanup.cleanup_run(run)
    assert not left, f"scenario left things behind: {left}"


def _run(name: str, tmp_path: Path, plot: bool = False, target: str = "embedded", tls: str | None = None) -> dict:
    from topologies.scenarios.catalog import scenarios
    from topologies.scenarios.runner import run_scenario
    out = open(tmp_path / "progress.txt", "w")  # noqa: SIM115 - closed below
    try:
        rep = run_scenario(scenarios()[name], target, tmp_path / "report.json",
                           tmp_path / "report.png" if plot else None, out=out, run_dir=tmp_path / "run", tls=tls)
    finally:
        out.close()
    written = json.loads((tmp_path / "report.json").read_text())
    assert (written["scenario"], written["target"]) == (name, target)
    return rep


def _receivers(tmp_path: Path) -> tuple[list[dict], list[dict]]:
    from topologies.apps import parse_report
    rx = [r for f in sorted((tmp_path / "run").glob("rx-*.jsonl")) for r in parse_report(f) if r["event"] == "end"]
    tx = [r for f in sorted((tmp_path / "run").glob("tx-*.jsonl")) for r in parse_report(f) if r["event"] == "end"]
    return rx, tx


def _check_common(rep: dict, tmp_path: Path, detection: bool = True) -> None:
    n = rep["expected_connections"]
    assert rep["connections"] == n and rep["connections_survived"] == n, rep["receivers"]
    assert rep["packets_lost"] == 0 and rep["bytes_lost"] == 0 and rep["bytes_corrupt"] == 0
    migs = [m["migration"] for m in rep["migrations"]]
    assert migs and all(m["outcome"] == "ok" for m in migs), migs
    if detection:
        assert rep["detection_ms"] is not None and rep["detection_ms"] < 1000, rep["events"][:3]
        assert rep["monitor"]["interval_ms"] == 100
    tp = rep["throughput"]
    assert tp["before"] and tp["after"] >= 0.8 * tp["before"], tp
    # the receivers' own word
    rx, tx = _receivers(tmp_path)
    assert len(rx) == n
    tcp_rx = [r for r in rx if "qpn" not in r]
    for r in tcp_rx:
        assert r["ok"] and r["gaps"] == 0 and r["corrupt"] == 0 and not r["reset"] and r["error"] is None, r
    tcp_tx = [r for r in tx if "qpn" not in r]
    assert sorted(r["bytes"] for r in tcp_rx) == sorted(r["bytes"] for r in tcp_tx)
    assert all(r["ok"] for r in tx)


def _check_tcp_moved(rep: dict, source: str, target: str | None) -> None:
    assert rep["placement_end"][source] == []
    if target is not None:
        assert len(rep["placement_end"][target]) == rep["expected_connections"]
    failed = {name: detail for name, (ok, detail) in rep["checks"].items() if not ok}
    assert not failed, failed
    assert rep["passed"]


@pytest.mark.parametrize("target", ["embedded", pytest.param("bmv2", marks=pytest.mark.bmv2)])
def test_degrade(tmp_path, no_leftovers, target):
    """On both targets: on bmv2 the gateways' drain registers go through BMv2 Thrift, the fault through
    its queue API, the NIC state through in-band commands."""
    rep = _run("degrade", tmp_path, plot=True, target=target)
    _check_common(rep, tmp_path)
    _check_tcp_moved(rep, "nic2", None)
    # the policy chose by itself: nic3, the healthy NIC with no load (nic1 carries the two pinned streams)
    assert len(rep["placement_end"]["nic3"]) == 4 and len(rep["placement_end"]["nic1"]) == 2
    assert rep["checks"]["choice"][0] and rep["checks"]["stall"][0], rep["checks"]   # < 200 ms after detection
    assert rep["late_old_path_packets"] >= 0 and all(m["migration"]["old_path"] for m in rep["migrations"])
    conns = rep["per_connection"]
    assert len(conns) == 6 and all(c["stall_ms"] > 0 and set(c["tcp"]) == {"send", "recv"} for c in conns)
    assert set(rep["tcp_wire"]) >= {"before_fault", "migration", "after"}
    assert any(e["signal"] == "latency" and e["device"] == "nic2" for e in rep["events"])
    assert rep["throughput"]["during"] < rep["throughput"]["before"]
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    progress = (tmp_path / "progress.txt").read_text()
    assert "FAULT queue_rate" in progress and "MIGRATION (resiliency)" in progress and "RESULT: PASS" in progress
    assert all(not drops for drops in rep["nic_drops"].values()), rep["nic_drops"]


def test_linkdown(tmp_path, no_leftovers):
    rep = _run("linkdown", tmp_path)
    _check_common(rep, tmp_path)
    _check_tcp_moved(rep, "nic2", None)
    link = [e for e in rep["events"] if e["signal"] == "link"]
    assert link and link[0]["device"] == "nic2"
    assert rep["detection_ms"] < 300          # link state is read every sample: no K-sample wait


def test_roce(tmp_path, no_leftovers):
    rep = _run("roce", tmp_path)
    _check_common(rep, tmp_path, detection=False)
    rx, tx = _receivers(tmp_path)
    sent = {r["qpn"]: r["packets"] for r in tx}
    assert {r["qpn"]: r["packets"] for r in rx} == sent          # every PSN of every QP arrived
    assert all(r["complete"] for r in rx)
    assert rep["placement_end"]["nic2"] == [] and len(rep["placement_end"]["nic3"]) == 4
    assert all(m["migration"]["packets_buffered"] > 0 for m in rep["migrations"])   # QPs really suspended
    # Strict order across the flip: the gateway's forward_after_drain punts newer packets while punts of
    # the flow are still outstanding (docs/dataplane.md), so no PSN may arrive behind a newer one.
    assert rep["packets_reordered"] == 0, rep["checks"]["in_order"]
    assert rep["passed"], rep["checks"]


def test_a_scenario_over_mutual_tls(tmp_path, no_leftovers):
    """``flowmig run --tls mtls``: the switches serve P4Runtime over mutual TLS only, and the whole run
    (tables, monitor, commands, migration) goes through it; the run's certificates leave with the lab."""
    rep = _run("roce", tmp_path, tls="mtls")
    assert rep["p4runtime"] == "mtls"
    assert rep["passed"], rep["checks"]
    assert rep["placement_end"]["nic2"] == [] and len(rep["placement_end"]["nic3"]) == 4
    assert not list((tmp_path / "run").glob("tls-*"))


def test_loadbalance(tmp_path, no_leftovers):
    rep = _run("loadbalance", tmp_path)
    _check_common(rep, tmp_path)
    place = rep["placement_end"]
    assert place["nicB"] and place["nicA"] is not None
    assert len(place["nicA"]) + len(place["nicB"]) == 4
    assert all(m["policy"] == "load_balance" and m["migration"]["target"] == "nicB" for m in rep["migrations"])
    # the policy sheds at the detection (nicA's queue found growing), not samples later when the
    # streams stuck behind it have stalled enough to drag their own rates down
    first = rep["migrations"][0]["trigger"]
    assert (first["subject"], first["signal"]) == ("port:nicA:2", "latency"), first
    # every stream, the one nicA keeps behind its queue too: < 200 ms without new data after detection
    assert rep["checks"]["stall"][0], rep["checks"]
    assert rep["passed"], rep["checks"]


def test_vm(tmp_path, no_leftovers):
    rep = _run("vm", tmp_path)
    _check_common(rep, tmp_path, detection=False)
    _check_tcp_moved(rep, "nic1", "nic3")
    vm = json.loads((tmp_path / "run" / "vm-hostB.json").read_text())
    assert vm["host"] == "hostB" and vm["to"] == {"switch": "gwB", "port": 5, "nic": "nic3"}
    assert len(vm["flows"]) == 3 and all(f["state"] for f in vm["flows"])
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["hosts"]["hostB"]["switch"], cfg["hosts"]["hostB"]["port"]) == ("gwB", 5)


def test_cli_rejects_unknown_scenario():
    p = subprocess.run([sys.executable, "-m", "topologies.cli", "run", "--scenario", "nope"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown scenario 'nope'" in p.stderr and "degrade" in p.stderr


def test_cli_rejects_an_unknown_tls_mode():
    p = subprocess.run([sys.executable, "-m", "topologies.cli", "run", "--scenario", "roce", "--tls", "ssl"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--tls: invalid choice: 'ssl'" in p.stderr, p.stderr
