"""Traffic applications run on lab hosts: a verified TCP byte stream and a RoCEv2 QP stream.

Each is a module runnable as ``python -m topologies.apps.<name> send|recv ...`` that reports JSON
lines (one object per line: periodic ``sample`` records and a final ``end`` record), and a small
Python API for in-process use. :func:`parse_report` reads such a report back; :func:`tcp_streams`
runs verified TCP streams across a lab for a ``with`` block (the benches and the crash drill).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def tcp_streams(lab: Any, count: int, rate: str, chunk: int, out: Path, src: str = "hostA", dst: str = "hostB",
                dst_ip: str = "10.0.0.2", port: int = 5001) -> Iterator[list[Any]]:
    """``count`` verified TCP streams ``src`` -> ``dst`` on a running lab for the ``with`` block, paced
    to ``rate`` each in ``chunk``-byte writes: one receiver (report ``out/rx.jsonl``) and a sender per
    stream (``out/tx<i>.jsonl``); yields the processes (receiver first). At the end of the block the
    senders are told to stop (the file ``out/stop``) and every report is complete once it returns; on
    an exception they are killed."""
    py = sys.executable
    stop = out / "stop"
    procs: list[Any] = []
    try:
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
        yield procs
        stop.write_text("stop")
        for p in procs:
            p.wait(timeout=60)
    finally:
        stop.write_text("stop")
        for p in procs:
            if p.poll() is None:
                p.kill()
