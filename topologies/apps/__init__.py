"""Traffic applications run on lab hosts: a verified TCP byte stream and a RoCEv2 QP stream.

Each is a module runnable as ``python -m topologies.apps.<name> send|recv ...`` that reports JSON
lines (one object per line: periodic ``sample`` records and a final ``end`` record), and a small
Python API for in-process use. :func:`parse_report` reads such a report back.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def parse_report(path: str | Path) -> list[dict]:
    """The JSON-lines records of an app's report; a torn last line (app killed mid-write) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def start_tcp_streams(lab: Any, count: int, rate: str, chunk: int, stop: Path, out: Path, src: str = "hostA",
                      dst: str = "hostB", dst_ip: str = "10.0.0.2", port: int = 5001) -> list[Any]:
    """``count`` verified TCP streams ``src`` -> ``dst`` on a running lab, paced to ``rate`` each in
    ``chunk``-byte writes, until the file ``stop`` appears: one receiver (report ``out/rx.jsonl``) and a
    sender per stream (``out/tx<i>.jsonl``). Returns the processes (receiver first)."""
    py = sys.executable
    procs = []
    with open(out / "rx.jsonl", "w") as f:
        procs.append(lab.host(dst).popen(
            [py, "-m", "topologies.apps.tcp_stream", "recv", "--port", str(port), "--count", str(count),
             "--timeout", "30"], cwd=str(REPO), stdout=f))
    time.sleep(0.5)
    for i in range(count):
        with open(out / f"tx{i}.jsonl", "w") as f:
            procs.append(lab.host(src).popen(
                [py, "-m", "topologies.apps.tcp_stream", "send", "--dst", dst_ip, "--port", str(port),
                 "--duration", "900", "--rate", rate, "--chunk", str(chunk), "--stop", str(stop)],
                cwd=str(REPO), stdout=f))
    return procs
