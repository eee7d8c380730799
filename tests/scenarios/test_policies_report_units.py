"""Unit tests of the policies' decisions and of the report on synthetic inputs (no switches)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from controller.flowstate import FlowKey
from controller.inventory import Inventory
from controller.monitor import Event, FlowRates
from controller.policies import LoadBalance, PolicyEngine, Resiliency
from controller.report import build_report, percentile, plot, summary_table


def _key(i: int) -> FlowKey:
    return FlowKey("tcp", 0x0A000001, 0x0A000002, 40000 + i, 5001)


class FakeMonitor:
    def __init__(self, devices, inv, rates, bad_devices=None, bad_flows=None, baselines=None):
        self.devices = devices
        self.flow_rates = {k: FlowRates(inv.get(k).device, bps, bps / 1000, 3) for k, bps in rates.items()}
        self._bad_devices = bad_devices or {}
        self._bad_flows = bad_flows or {}
        self._base = baselines or {}
        self.history = []
        self.on_event = None
        self.forgotten = []

    def degraded_devices(self):
        return dict(self._bad_devices)

    def degraded_flows(self):
        return dict(self._bad_flows)

    def flow_baseline_bps(self, key):
        return self._base.get(key)

    def forget_flow(self, key):
        self.forgotten.append(key)


def _ctrl(placement: dict[str, list[int]]):
    inv = Inventory()
    for dev, ids in placement.items():
        for i in ids:
            inv.learn(_key(i), dev, 100 + i)
    return SimpleNamespace(inventory=inv, nics={d: object() for d in placement})


def never(_k):
    return False


def test_resiliency_moves_every_reference_off_a_degraded_device_to_the_least_loaded():
    ctrl = _ctrl({"nic1": [1], "nic2": [2, 3, 4], "nic3": []})
    mon = FakeMonitor(["nic1", "nic2", "nic3"], ctrl.inventory, {_key(1): 2e6, _key(2): 1e5, _key(3): 1e5, _key(4): 1e5},
                      bad_devices={"nic2": ["latency@nic2:2"]})
    (d,) = Resiliency().decide(ctrl, mon, 0.0, never)
    assert d.target == "nic3" and sorted(k.src_port for k in d.keys) == [40002, 40003, 40004]
    assert "latency" in d.reason
    # a fixed target is honoured unless it is degraded itself
    (d,) = Resiliency(target="nic1").decide(ctrl, mon, 0.0, never)
    assert d.target == "nic1"
    mon._bad_devices["nic1"] = ["link@nic1:1"]
    ds = Resiliency(target="nic1").decide(ctrl, mon, 0.0, never)
    assert {x.target for x in ds} == {"nic3"}
    # references moved recently are left alone
    assert all(not x.keys or _key(2) not in x.keys for x in Resiliency().decide(ctrl, mon, 0.0, lambda k: k == _key(2)))


def test_resiliency_single_flow_vs_most_flows_of_a_device():
    ctrl = _ctrl({"nic1": [1, 2, 3, 4], "nic2": []})
    rates = {_key(i): 1e6 for i in range(1, 5)}
    mon = FakeMonitor(["nic1", "nic2"], ctrl.inventory, rates, bad_flows={_key(1): ["bandwidth"]})
    (d,) = Resiliency().decide(ctrl, mon, 0.0, never)
    assert d.keys == [_key(1)] and d.target == "nic2"
    mon._bad_flows = {_key(i): ["bandwidth"] for i in (1, 2)}           # half the device: the device moves
    (d,) = Resiliency().decide(ctrl, mon, 0.0, never)
    assert len(d.keys) == 4 and "bandwidth of 2/4" in d.reason


def test_no_healthy_target_means_no_decision():
    ctrl = _ctrl({"nic1": [1], "nic2": []})
    mon = FakeMonitor(["nic1", "nic2"], ctrl.inventory, {_key(1): 1e6},
                      bad_devices={"nic1": ["link"], "nic2": ["link"]})
    assert Resiliency().decide(ctrl, mon, 0.0, never) == []


def test_load_balance_sheds_until_the_rest_fits_the_measured_capacity():
    ctrl = _ctrl({"nicA": [1, 2, 3, 4], "nicB": []})
    base = {_key(i): 2e6 for i in range(1, 5)}
    carried = {_key(i): 0.9e6 for i in range(1, 5)}                    # 3.6 Mbit/s of 8 demanded
    mon = FakeMonitor(["nicA", "nicB"], ctrl.inventory, carried, baselines=base)
    mon.history = [{"flows": {str(k): {"device": "nicA", "bps": v} for k, v in carried.items()}}] * 5
    lb = LoadBalance(tolerance=0.2, k=2, window=5)
    assert lb.decide(ctrl, mon, 0.0, never) == []                       # failing once: not yet
    (d,) = lb.decide(ctrl, mon, 0.0, never)
    assert d.target == "nicB" and len(d.keys) == 3                      # keeps 2 of 3.6*0.8 Mbit/s
    assert lb.capacity["nicA"] == pytest.approx(3.6e6)
    # a device that carries what it is given is left alone
    mon.history = [{"flows": {str(k): {"device": "nicA", "bps": 2e6} for k in base}}] * 5
    assert lb.decide(ctrl, mon, 0.0, never) == [] and lb.decide(ctrl, mon, 0.0, never) == []


def test_load_balance_acts_at_once_on_a_device_the_monitor_found_degraded():
    ctrl = _ctrl({"nicA": [1, 2, 3, 4], "nicB": []})
    base = {_key(i): 2e6 for i in range(1, 5)}
    carried = {_key(i): 0.9e6 for i in range(1, 5)}
    mon = FakeMonitor(["nicA", "nicB"], ctrl.inventory, carried, baselines=base,
                      bad_devices={"nicA": ["latency@nicA:2"]})
    mon.history = [{"flows": {str(k): {"device": "nicA", "bps": v} for k, v in carried.items()}}] * 5
    (d,) = LoadBalance(tolerance=0.2, k=3, window=5).decide(ctrl, mon, 0.0, never)   # first evaluation
    assert d.target == "nicB" and len(d.keys) == 3


def test_load_balance_judges_a_degraded_device_on_the_samples_since_it_degraded():
    # the window straddles the fault: two healthy samples, then the monitor's k=3 bad ones. Averaged,
    # nicA carries 5.76 of 8 Mbit/s (72 %, inside the tolerance only just); the degradation's own
    # samples show 3.6 of 8 (45 %): shed now, not ~2 samples later while streams stall behind nicA
    ctrl = _ctrl({"nicA": [1, 2, 3, 4], "nicB": []})
    base = {_key(i): 2e6 for i in range(1, 5)}
    healthy = {"flows": {str(_key(i)): {"device": "nicA", "bps": 2e6} for i in range(1, 5)}}
    bad = {"flows": {str(_key(i)): {"device": "nicA", "bps": 0.9e6} for i in range(1, 5)}}
    mon = FakeMonitor(["nicA", "nicB"], ctrl.inventory, {k: 0.9e6 for k in base}, baselines=base)
    mon.cfg = SimpleNamespace(k=3)
    mon.history = [healthy, healthy, bad, bad, bad]
    lb = LoadBalance(tolerance=0.3, k=3, window=5)
    assert lb.decide(ctrl, mon, 0.0, never) == []                       # not degraded: the window average fits
    mon._bad_devices = {"nicA": ["latency@nicA:2"]}
    (d,) = lb.decide(ctrl, mon, 0.0, never)
    assert d.target == "nicB" and len(d.keys) == 3 and "carries 3.60 of 8.00" in d.reason


def test_load_balance_judges_a_device_degraded_at_once_on_that_sample_alone():
    # a queue delay over the monitor's severe threshold degrades nicA on one sample: its k=3 last samples
    # would hold two healthy ones (nicA carrying 6.5 of 8 Mbit/s, inside the tolerance); the samples whose
    # delay is over the floor are the degradation's: one, carrying 3.6 of 8
    ctrl = _ctrl({"nicA": [1, 2, 3, 4], "nicB": []})
    base = {_key(i): 2e6 for i in range(1, 5)}

    def sample(bps: float, delay_us: float) -> dict:
        return {"flows": {str(_key(i)): {"device": "nicA", "bps": bps} for i in range(1, 5)},
                "ports": {"nicA:2": {"tx_bps": 4 * bps, "delay_us": delay_us}}}
    mon = FakeMonitor(["nicA", "nicB"], ctrl.inventory, {k: 0.9e6 for k in base}, baselines=base,
                      bad_devices={"nicA": ["latency@nicA:2"]})
    mon.cfg = SimpleNamespace(k=3, latency_floor_us=5000.0)
    mon.history = [sample(2e6, 100.0)] * 4 + [sample(0.9e6, 60_000.0)]
    (d,) = LoadBalance(tolerance=0.2, k=3, window=5).decide(ctrl, mon, 0.0, never)
    assert d.target == "nicB" and len(d.keys) == 3 and "carries 3.60 of 8.00" in d.reason
    mon.history = [sample(2e6, 100.0)] * 2 + [sample(0.9e6, 20_000.0)] * 3    # k bad samples: all three
    (d,) = LoadBalance(tolerance=0.2, k=3, window=5).decide(ctrl, mon, 0.0, never)
    assert "carries 3.60 of 8.00" in d.reason


def test_load_balance_takes_a_growing_queue_egress_rate_as_what_the_device_carries():
    # TCP still offers nicA its 8 Mbit/s (the references' rates are counted as they enter the NIC) but
    # the latency-degraded port sends 3.6: that is what nicA carries, and what it keeps must fit it
    ctrl = _ctrl({"nicA": [1, 2, 3, 4], "nicB": []})
    base = {_key(i): 2e6 for i in range(1, 5)}
    sample = {"flows": {str(_key(i)): {"device": "nicA", "bps": 2e6} for i in range(1, 5)},
              "ports": {"nicA:2": {"tx_bps": 3.6e6}, "nicA:1": {"tx_bps": 0.2e6}}}
    mon = FakeMonitor(["nicA", "nicB"], ctrl.inventory, base, baselines=base)
    mon.cfg = SimpleNamespace(k=3)
    mon.history = [sample] * 5
    lb = LoadBalance(tolerance=0.2, k=3, window=5)
    assert lb.decide(ctrl, mon, 0.0, never) == []                       # no queue growing: it fits
    mon._bad_devices = {"nicA": ["latency@nicA:2"]}
    (d,) = lb.decide(ctrl, mon, 0.0, never)
    assert d.target == "nicB" and len(d.keys) == 3 and lb.capacity["nicA"] == pytest.approx(3.6e6)


def test_engine_runs_decisions_and_observes_the_cooldown():
    ctrl = _ctrl({"nic1": [], "nic2": [2, 3]})
    mon = FakeMonitor(["nic1", "nic2"], ctrl.inventory, {_key(2): 1e6, _key(3): 1e6},
                      bad_devices={"nic2": ["link@nic2:1"]})
    calls = []

    class FakeMigrator:
        def migrate(self, keys, target, mode):
            calls.append((list(keys), target, mode))
            for k in keys:
                ctrl.inventory.moved(k, target, 7)
            return SimpleNamespace(to_dict=lambda: {"outcome": "ok", "references": [str(k) for k in keys],
                                                    "target": target, "downtime_ms": 5.0})

    eng = PolicyEngine(ctrl, FakeMigrator(), mon, [Resiliency()], cooldown=60)
    ev = Event(1.0, "degraded", "nic2", "port:nic2:1", "link", 0, 1)
    (rec,) = eng.evaluate(ev)
    assert calls == [([_key(2), _key(3)], "nic1", "lossless")]
    assert rec.trigger["signal"] == "link" and rec.migration["outcome"] == "ok"
    assert set(mon.forgotten) == {_key(2), _key(3)}
    # the references are on nic1 now; even if nic1 degrades they stay put during the cooldown
    mon._bad_devices = {"nic1": ["latency"]}
    assert eng.evaluate(ev) == []


def test_engine_tries_the_next_target_when_a_migration_is_rolled_back():
    ctrl = _ctrl({"nic1": [], "nic2": [2, 3], "nic3": [9]})
    mon = FakeMonitor(["nic1", "nic2", "nic3"], ctrl.inventory, {_key(2): 1e6, _key(3): 1e6, _key(9): 3e6},
                      bad_devices={"nic2": ["latency@nic2:2"]})
    calls = []
    refuse = {"nic1"}                       # loads fail there: the migration is rolled back

    class FakeMigrator:
        def migrate(self, keys, target, mode):
            calls.append(target)
            if target in refuse:
                return SimpleNamespace(to_dict=lambda: {"outcome": "rolled_back", "reason": "load failed",
                                                        "target": target})
            for k in keys:
                ctrl.inventory.moved(k, target, 7)
            return SimpleNamespace(to_dict=lambda: {"outcome": "ok", "target": target})

    eng = PolicyEngine(ctrl, FakeMigrator(), mon, [Resiliency()], cooldown=60)
    recs = eng.evaluate(Event(1.0, "degraded", "nic2", "port:nic2:2", "latency", 0, 1))
    # nic1 (least loaded) first; rolled back, so at once the next choice: nic3
    assert calls == ["nic1", "nic3"]
    assert [r.migration["outcome"] for r in recs] == ["rolled_back", "ok"]
    assert {r.device for r in ctrl.inventory.all()} == {"nic3"}
    assert eng.avoided() == {"nic1"} and set(mon.forgotten) == {_key(2), _key(3)}   # only the moved ones
    # nic1 stays avoided for the cooldown, even as the only healthy target left
    mon._bad_devices = {"nic2": ["latency@nic2:2"], "nic3": ["latency@nic3:2"]}
    eng.moved_at.clear()
    calls.clear()
    assert eng.evaluate() == [] and calls == []
    # every target refusing: one attempt per NIC at most, and the references stay where they are
    refuse.update({"nic2", "nic3"})
    eng.failed_at.clear()
    mon._bad_devices = {"nic3": ["latency@nic3:2"]}
    recs = eng.evaluate()
    assert calls == ["nic1", "nic2"] and all(r.migration["outcome"] == "rolled_back" for r in recs)
    assert {r.device for r in ctrl.inventory.all()} == {"nic3"} and eng.avoided() == {"nic1", "nic2"}


def test_engine_runs_a_policy_written_without_avoid():
    """A policy whose ``decide`` predates ``avoid`` still runs; its decisions for an avoided target are
    left out."""
    from controller.policies import Decision, Policy
    ctrl = _ctrl({"nic1": [], "nic2": [2]})
    mon = FakeMonitor(["nic1", "nic2"], ctrl.inventory, {_key(2): 1e6})

    class Old(Policy):
        name = "old"

        def decide(self, ctrl, mon, now, recent):
            return [Decision(self.name, [_key(2)], "nic1", "always")]

    calls = []

    class FakeMigrator:
        def migrate(self, keys, target, mode):
            calls.append(target)
            return SimpleNamespace(to_dict=lambda: {"outcome": "rolled_back", "target": target})

    eng = PolicyEngine(ctrl, FakeMigrator(), mon, [Old()], cooldown=60)
    recs = eng.evaluate()
    assert calls == ["nic1"] and len(recs) == 1           # tried once, then nic1 is avoided
    assert eng.evaluate() == [] and calls == ["nic1"]


def _records():
    rx = [{"t": 10.0, "event": "connected", "flow": "10.0.0.1:1"}, {"t": 10.0, "event": "connected", "flow": "10.0.0.1:2"}]
    for i in range(100):
        t = 10.0 + i * 0.1
        bps = 2e6 if not 14.0 <= t < 14.5 else 2e5
        rx += [{"t": t, "event": "sample", "flow": f"10.0.0.1:{f}", "bps": bps} for f in (1, 2)]
    rx += [{"t": 20.1, "event": "end", "flow": f"10.0.0.1:{f}", "bytes": 5, "gaps": 0, "gap_bytes": 0,
            "corrupt": 0, "reset": False, "error": None, "ok": True} for f in (1, 2)]
    return rx


def test_report_fields_and_summary(tmp_path):
    rx = _records()
    migs = [{"policy": "resiliency", "reason": "r", "trigger": None,
             "migration": {"id": 1, "outcome": "ok", "references": ["a", "b"], "target": "nic3", "started": 14.3,
                           "finished": 14.4, "downtime_ms": 30.0, "moved": [{"from": "nic2"}]}}]
    events = [{"t": 14.25, "kind": "degraded", "device": "nic2"}, {"t": 13.0, "kind": "degraded", "device": "x"}]
    rep = build_report("degrade", "embedded", rx, [], events, migs, {"t": 14.0, "what": "rate"}, (10.0, 20.0))
    assert rep["connections"] == 2 and rep["connections_survived"] == 2
    assert rep["packets_lost"] == 0 and rep["packets_reordered"] == 0
    assert rep["detection_ms"] == pytest.approx(250.0)
    assert rep["downtime_ms"] == {"p50": 30.0, "p99": 30.0, "max": 30.0}
    tp = rep["throughput"]
    assert tp["before"] == pytest.approx(4e6) and tp["after"] == pytest.approx(4e6) and tp["during"] < 4e6
    json.dumps(rep)
    text = summary_table(rep)
    assert "2/2" in text and "250 ms" in text and "nic2 -> nic3" in text
    out = plot(rep, rx, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_counts_failures():
    rx = _records()
    rx[-1] = dict(rx[-1], ok=False, gaps=1, gap_bytes=800, reset=True)
    rx.append({"t": 20.0, "event": "end", "qpn": 17, "src": "10.0.0.1", "missing": 3, "duplicates": 2, "ok": False})
    rep = build_report("x", "embedded", rx, [], [], [], None, (10.0, 20.0))
    # TCP: one gap; RoCE without the sender's count: 3 skipped PSNs, 2 of them arrived late
    assert rep["connections_survived"] == 1 and rep["packets_lost"] == 2 and rep["bytes_lost"] == 800
    assert rep["packets_reordered"] == 2 and rep["detection_ms"] is None
    assert rep["throughput"]["before"] is None
    # with the sender's count, a QP that got every packet (late ones included) lost nothing
    rx[-1] = dict(rx[-1], packets=100, complete=True)
    tx = [{"event": "end", "qpn": 17, "packets": 100, "ok": True}]
    rep = build_report("x", "embedded", rx, tx, [], [], None, (10.0, 20.0))
    assert rep["packets_lost"] == 1 and rep["packets_reordered"] == 2 and rep["connections_survived"] == 2


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
