"""controller.connections: stalls and TCP_INFO windows from the stream apps' records."""

from controller.connections import connection_views, windows, wire_totals
from controller.report import build_report, summary_table


def _tcp(t, side, retrans=0, ooo=0, flow="10.0.0.1:40000"):
    return {"t": t, "event": "tcp", "flow": flow, "side": side, "total_retrans": retrans,
            "bytes_retrans": retrans * 1448, "rcv_ooopack": ooo, "reord_seen": 0, "dsack_dups": 0}


def _records():
    rx = [_tcp(100.0, "recv"), _tcp(106.02, "recv", ooo=2), _tcp(107.5, "recv", ooo=3),
          {"t": 110.0, "event": "end", "flow": "10.0.0.1:40000", "ok": True, "bytes": 1,
           "stalls": [[101.0, 30.0], [105.95, 120.0], [108.0, 10.0]]}]
    tx = [_tcp(100.0, "send"), _tcp(104.0, "send", retrans=1), _tcp(106.05, "send", retrans=4),
          _tcp(109.0, "send", retrans=5)]
    return rx, tx


def test_windows_cover_the_run_in_order():
    w = windows(100.0, 110.0, 105.0, (106.0, 106.1))
    assert list(w) == ["before_fault", "fault_to_migration", "migration", "after"]
    assert w["before_fault"] == (100.0, 105.0) and w["after"] == (106.1, 110.0)
    assert windows(100.0, 110.0, None, None) == {"before_fault": (100.0, 110.0)}
    assert list(windows(100.0, 110.0, 105.0, None)) == ["before_fault", "after"]


def test_counters_fall_into_their_windows():
    rx, tx = _records()
    (v,) = connection_views(rx, tx, (100.0, 110.0), 105.0, (106.0, 106.1))
    send, recv = v["tcp"]["send"], v["tcp"]["recv"]
    assert send["before_fault"]["total_retrans"] == 1           # the one at 104.0
    assert send["fault_to_migration"]["total_retrans"] == 0
    assert send["migration"]["total_retrans"] == 3             # 106.05: 1 -> 4
    assert send["after"]["total_retrans"] == 1
    assert recv["fault_to_migration"]["rcv_ooopack"] == 0 and recv["migration"]["rcv_ooopack"] == 2
    assert recv["after"]["rcv_ooopack"] == 1
    assert wire_totals([v])["migration"] == {"retransmitted": 3, "out_of_order": 2, "dsack_dups": 0}


def test_stall_over_the_run_and_after_the_fault():
    rx, tx = _records()
    (v,) = connection_views(rx, tx, (100.0, 110.0), 106.0, None)
    assert v["stall_ms"] == 120.0 and v["stall_at"] == 105.95
    assert v["stall_after_fault_ms"] == 70.0                  # the part of the 120 ms after t=106.0


def test_report_carries_per_connection_fields():
    rx, tx = _records()
    mig = {"outcome": "ok", "started": 106.0, "finished": 106.1, "downtime_ms": 5.0, "references": ["x"]}
    rep = build_report("degrade", "embedded", rx, tx, [], [mig], {"t": 105.0}, (100.0, 110.0))
    assert rep["per_connection"][0]["stall_ms"] == 120.0
    assert rep["stall_ms"]["max_after_fault"] == 120.0
    assert rep["tcp_wire"]["migration"]["retransmitted"] == 3
    text = summary_table(rep)
    assert "longest stall 120 ms" in text and "3 retransmitted, 2 out-of-order" in text
