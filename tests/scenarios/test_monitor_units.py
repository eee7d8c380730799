"""Unit tests of the monitor's logic (detectors, rates, events) on synthetic samples: no switches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from controller.flowstate import FlowKey
from controller.monitor import Detector, FlowCounters, Monitor, MonitorConfig, PortCounters, Sample

CFG = MonitorConfig(interval=0.1, k=3, warmup=5, recover_k=4)
KEY = FlowKey("tcp", 0x0A000001, 0x0A000002, 40000, 5001)


def test_drop_detector_needs_k_consecutive_bad_samples():
    d = Detector("drop", CFG, floor=100.0)
    for _ in range(5):
        assert d.update(1000.0) is None
    assert d.judged() and d.baseline == pytest.approx(1000.0)
    assert d.update(100.0) is None and d.update(100.0) is None
    assert d.update(900.0) is None              # one good sample resets the count
    assert d.update(100.0) is None and d.update(100.0) is None
    assert d.update(100.0) == "degraded"
    assert d.baseline == pytest.approx(980.0)   # healthy 900 joined the EWMA; bad samples did not


def test_hysteresis_no_flapping_at_the_threshold():
    d = Detector("drop", CFG, floor=100.0)
    for _ in range(5):
        d.update(1000.0)
    for _ in range(3):
        d.update(100.0)
    assert d.degraded
    # hovering between the trigger (500) and the recovery threshold (800) never clears it
    for v in [600.0, 700.0, 650.0, 790.0] * 5:
        assert d.update(v) is None
    assert d.degraded
    out = [d.update(850.0) for _ in range(4)]
    assert out == [None, None, None, "recovered"]


def test_idle_signals_are_not_judged():
    d = Detector("drop", CFG, floor=1000.0)
    for _ in range(20):
        assert d.update(10.0) is None
    assert not d.judged()
    assert d.update(0.0) is None


def test_rise_detector_uses_the_absolute_floor():
    d = Detector("rise", CFG, floor=5000.0)
    for _ in range(5):
        d.update(0.0)
    assert [d.update(4000.0) for _ in range(5)] == [None] * 5     # 4 ms: above 5 x 0 but under the floor
    assert [d.update(300000.0) for _ in range(3)] == [None, None, "degraded"]
    with pytest.raises(ValueError):
        Detector("sideways", CFG)


def test_a_severe_queue_delay_degrades_at_once():
    """One sample above ``severe`` (50 ms) degrades a rise signal without waiting for k samples; a
    delay above the floor but under ``severe`` still needs k in a row."""
    d = Detector("rise", CFG, floor=5000.0, severe=50_000.0)
    for _ in range(5):
        d.update(100.0)
    assert [d.update(20_000.0) for _ in range(2)] == [None, None]   # bad, not severe: counting
    assert d.update(60_000.0) == "degraded"
    d.reset()
    for _ in range(5):
        d.update(100.0)
    assert d.update(60_000.0) == "degraded"                         # the first sample, alone
    d = Detector("rise", CFG, floor=5000.0)                          # no severe threshold: k samples
    for _ in range(5):
        d.update(100.0)
    assert [d.update(60_000.0) for _ in range(3)] == [None, None, "degraded"]


def _monitor() -> Monitor:
    ctrl = SimpleNamespace(nics={"nic1": None, "nic2": None}, config=SimpleNamespace(switches={}))
    return Monitor(ctrl, {}, CFG, sampler=object(), devices=["nic1", "nic2"],
                   paths={("gwA", 3): "nic2"})


def _sample(t: float, n: int, *, flow_bytes: int, delay_sum: int, tx: int, up: bool = True) -> Sample:
    s = Sample(t, 1000.0 + t)
    s.ports[("nic2", 2)] = PortCounters(tx_packets=tx, tx_bytes=tx * 1500, queue_delay_sum_us=delay_sum)
    s.ports[("gwA", 3)] = PortCounters(tx_packets=tx, up=up)
    s.ports[("gwA", 1)] = PortCounters(up=False)           # not on any NIC's path: ignored
    s.flows[KEY] = FlowCounters("nic2", packets=n, bytes=flow_bytes, phase=3)
    return s


def test_monitor_rates_latency_and_link_events():
    m = _monitor()
    t, n, b, tx, dsum = 0.0, 0, 0, 0, 0
    for _ in range(10):                                    # healthy: 25 kB / 100 ms, no queueing
        t += 0.1
        n, b, tx = n + 20, b + 25000, tx + 20
        assert m.observe(_sample(t, n, flow_bytes=b, delay_sum=dsum, tx=tx)) == []
    assert m.flow_rates[KEY].bps == pytest.approx(2e6)
    assert m.degraded_devices() == {}
    events = []
    for _ in range(4):                                     # degraded: 10 % of the rate, 600 ms queue delay
        t += 0.1
        n, b, tx, dsum = n + 2, b + 2500, tx + 2, dsum + 2 * 600_000
        events += m.observe(_sample(t, n, flow_bytes=b, delay_sum=dsum, tx=tx))
    kinds = {(e.signal, e.device) for e in events}
    assert ("latency", "nic2") in kinds and ("bandwidth", "nic2") in kinds and ("message_rate", "nic2") in kinds
    assert all(e.kind == "degraded" for e in events)
    assert "latency@nic2:2" in m.degraded_devices()["nic2"]
    assert KEY in m.degraded_flows()
    assert m.flow_baseline_bps(KEY) == pytest.approx(2e6, rel=0.01)
    # link down on the gateway port toward nic2: immediate, attributed to nic2
    t += 0.1
    ev = m.observe(_sample(t, n, flow_bytes=b, delay_sum=dsum, tx=tx, up=False))
    link = [e for e in ev if e.signal == "link"]
    assert len(link) == 1 and link[0].device == "nic2" and link[0].subject == "port:gwA:3"
    assert m.history[-1]["flows"][str(KEY)]["device"] == "nic2"
    m.forget_flow(KEY)
    assert KEY not in m.degraded_flows()


def test_closing_connections_are_not_judged():
    m = _monitor()
    t, n, b = 0.0, 0, 0
    for i in range(12):
        t += 0.1
        n, b = n + (20 if i < 8 else 0), b + (25000 if i < 8 else 0)
        s = _sample(t, n, flow_bytes=b, delay_sum=0, tx=0)
        if i >= 8:
            s.flows[KEY].phase = 6                         # CLOSING: the stream ended
        assert not [e for e in m.observe(s) if e.subject.startswith("flow")]
