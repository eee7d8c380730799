"""flow_nic.p4 and gateway.p4 with real Linux TCP stacks (Mininet fig2, embedded target, root).

The window and validity rules must never drop real traffic: several MB of TCP in each direction run
hostA <-> gwA <-> NIC <-> gwB <-> hostB, the receivers verify every byte, and every NIC's
INVALID_UNKNOWN / INVALID_WINDOW drop counters stay at zero while the NICs learned the connections.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "topologies"))

from topo_helpers import REPO, mininet_missing, programs_missing  # noqa: E402

pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(mininet_missing() is not None, reason=mininet_missing() or ""),
              pytest.mark.skipif(programs_missing() is not None, reason=programs_missing() or "")]

DROPS = "FlowNicIngress.drop_accounting.drops"
EVENTS = "FlowNicIngress.flow_state.flow_events"
DROP_INVALID_UNKNOWN, DROP_INVALID_WINDOW, EVENT_LEARNED = 2, 3, 0
STREAM_BYTES = 3 * 1024 * 1024


def _app(host, module: str, *args: str, out: Path) -> subprocess.Popen:
    return host.popen([sys.executable, "-m", f"topologies.apps.{module}", *args, "--out", str(out)],
                      cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _counter(sw, name: str, index: int) -> int:
    from topologies.degrade import switch_cli

    out = switch_cli(sw.thrift_port, f"counter_read {name} {index}", sw.target)
    m = re.search(r"\((\d+) bytes, (\d+) packets\)", out)   # simple_switch_CLI: name[i]= (B bytes, P packets)
    assert m, f"unexpected counter_read output: {out!r}"
    return int(m.group(2))


def test_real_tcp_streams_cross_the_nics_without_invalid_drops(tmp_path):
    from topologies.apps import parse_report
    from topologies.description import load
    from topologies.network import Lab, LabOptions

    lab = Lab(load("fig2"), LabOptions(run_dir=tmp_path / "run", log_dir=tmp_path / "logs", lock_timeout=600))
    with lab:                      # starts the lab; stops it and removes everything on the way out
        a, b = lab.host("hostA"), lab.host("hostB")
        nics = [lab.switch(n) for n in ("nic1", "nic2", "nic3")]
        streams = []
        for i, (src, dst, dst_ip) in enumerate(((a, b, "10.0.0.2"), (b, a, "10.0.0.1"))):
            port = str(5101 + i)
            rx_out, tx_out = tmp_path / f"rx{i}.jsonl", tmp_path / f"tx{i}.jsonl"
            rx = _app(dst, "tcp_stream", "recv", "--port", port, "--timeout", "90", out=rx_out)
            streams.append((rx, rx_out, tx_out, src, dst_ip, port))
        time.sleep(0.5)
        txs = [_app(src, "tcp_stream", "send", "--dst", dst_ip, "--port", port, "--bytes", str(STREAM_BYTES),
                    out=tx_out)
               for _, _, tx_out, src, dst_ip, port in streams]
        for tx in txs:
            out = tx.communicate(timeout=120)[0]
            assert tx.returncode == 0, out
        for rx, rx_out, tx_out, *_ in streams:
            out = rx.communicate(timeout=60)[0]
            assert rx.returncode == 0, out
            (rx_end,) = [r for r in parse_report(rx_out) if r["event"] == "end"]
            (tx_end,) = [r for r in parse_report(tx_out) if r["event"] == "end"]
            assert rx_end["ok"] and rx_end["gaps"] == 0 and rx_end["corrupt"] == 0 and not rx_end["reset"], rx_end
            assert rx_end["bytes"] == tx_end["bytes"] >= STREAM_BYTES
        for sw in nics:
            assert _counter(sw, DROPS, DROP_INVALID_UNKNOWN) == 0, sw.name
            assert _counter(sw, DROPS, DROP_INVALID_WINDOW) == 0, sw.name
        assert sum(_counter(sw, EVENTS, EVENT_LEARNED) for sw in nics) >= 2
