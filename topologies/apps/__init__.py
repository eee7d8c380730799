"""Traffic applications run on lab hosts: a verified TCP byte stream and a RoCEv2 QP stream.

Each is a module runnable as ``python -m topologies.apps.<name> send|recv ...`` that reports JSON
lines (one object per line: periodic ``sample`` records and a final ``end`` record), and a small
Python API for in-process use. :func:`parse_report` reads such a report back.
"""

from __future__ import annotations

import json
from pathlib import Path


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
