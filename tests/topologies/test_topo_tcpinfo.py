"""TCP_INFO sampling and client-visible stalls of the stream apps, over loopback with real sockets."""

import io
import json
import socket
import threading
import time

from topologies.apps.common import Reporter, StallTracker
from topologies.apps.tcp_stream import TcpStreamReceiver, stream_bytes
from topologies.apps.tcpinfo import COUNTERS, TcpInfoSampler, tcp_info


def _pair() -> tuple[socket.socket, socket.socket]:
    lst = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    lst.close()
    return cli, srv


def test_tcp_info_reads_this_kernels_counters():
    cli, srv = _pair()
    with cli, srv:
        cli.sendall(b"x" * 10_000)
        got = b""
        while len(got) < 10_000:
            got += srv.recv(65536)
        info = tcp_info(cli)
        assert info["state"] == 1                      # TCP_ESTABLISHED
        assert all(isinstance(info[k], int) for k in COUNTERS), info   # a 6.x kernel has them all
        assert info["total_retrans"] == 0 and info["rcv_ooopack"] == 0


def test_sampler_emits_first_and_last_and_only_changes():
    cli, srv = _pair()
    recs: list[dict] = []
    with cli, srv:
        s = TcpInfoSampler(cli, lambda **f: recs.append(f), period=0.002).start()
        time.sleep(0.05)                                # nothing changes on an idle loopback socket
        s.stop()
    assert len(recs) == 2
    assert recs[0] == recs[1] and set(COUNTERS) <= set(recs[0])


def test_stall_tracker_keeps_pauses_longer_than_the_threshold():
    st = StallTracker()
    for t in (100.0, 100.001, 100.002, 100.252, 100.253):
        st.delivered(t)
    rec = st.record()
    assert rec["stall_ms"] == 250.0
    assert rec["stalls"] == [[100.002, 250.0]]


def test_receiver_reports_a_senders_pause_as_a_stall():
    out = io.StringIO()
    rx = TcpStreamReceiver(0, "127.0.0.1", interval=0.05, reporter=Reporter(out, "tcp-recv"))
    t = threading.Thread(target=rx.serve, kwargs={"timeout": 5}, daemon=True)
    t.start()
    with socket.create_connection(("127.0.0.1", rx.port)) as s:
        s.sendall(stream_bytes(0, 8000))
        time.sleep(0.3)
        s.sendall(stream_bytes(8000, 8000))
    t.join(5)
    (end,) = rx.results
    assert end["ok"] and end["bytes"] == 16000
    assert 150 <= end["stall_ms"] <= 1000, end   # the 300 ms pause (a busy machine may deliver late on either side)
    tcp = [json.loads(line) for line in out.getvalue().splitlines() if '"tcp"' in line]
    assert tcp and all(r["side"] == "recv" and r["total_retrans"] == 0 for r in tcp)
