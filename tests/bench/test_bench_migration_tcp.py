"""The migration_tcp benchmark's arithmetic and picture, on synthetic records (no lab)."""

from __future__ import annotations

from bench import bench_migration_tcp as B


def test_window_effects_take_the_overlapping_stall_and_the_counter_deltas():
    stalls = [[10.0, 30.0], [10.5, 12.0], [20.0, 80.0]]            # [start s, ms]
    retrans = {"a": [(9.0, 1), (10.02, 3), (11.0, 3)], "b": [(10.01, 0), (10.5, 1)]}
    ooo = {"a": [(10.0, 0), (10.2, 2)]}
    (w, quiet) = B._window_effects([(10.0, 10.3), (12.0, 12.3)], stalls, retrans, ooo)
    assert w == {"stall_ms": 30.0, "retransmitted": 2, "out_of_order": 2}   # b moved only after 10.3
    assert quiet == {"stall_ms": 0.0, "retransmitted": 0, "out_of_order": 0}
    s = B._summary([w, w], [quiet, quiet])
    assert s["caused_by_migration"] == {"retransmitted": 4, "out_of_order": 4}
    assert s["stall_ms"]["p50"] == 30.0 and s["noise_floor"]["stall_ms"]["max"] == 0.0


def test_plot_writes_a_png(tmp_path):
    eff = [{"stall_ms": 10.0 + i, "retransmitted": i % 2, "out_of_order": 0} for i in range(20)]
    noise = [{"stall_ms": 5.0, "retransmitted": 0, "out_of_order": 0}] * 20
    path = B.plot({"lossless": {"effects": eff, "noise": noise}, "drop": {"effects": eff, "noise": noise}},
                  "embedded", tmp_path / "m.png", light=("lossless, 2 streams", eff[:5]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_busy_share_from_two_readings():
    a = B._cpu_jiffies()
    assert 0 <= a[0] <= a[1]
    assert B._busy_pct((100, 1000), (400, 1600)) == 50.0
    assert B._busy_pct((100, 1000), (100, 1000)) is None    # no time passed: no figure
