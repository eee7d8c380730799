"""Compile-time benchmark of the embedded P4 compiler: every top-level p4src/*.p4 program.

``run()`` returns ``{"compile_s": {"<program>": seconds}}`` (best of three, wall clock, in-process,
outputs not written), target < 1 s per program.
"""
from __future__ import annotations

import time
from pathlib import Path

from p4target.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 3


def run() -> dict:
    results: dict[str, float] = {}
    include = [str(ROOT / "p4src" / "include")]
    for src in sorted((ROOT / "p4src").glob("*.p4")):
        best = float("inf")
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            compile_file(str(src), include_dirs=include)
            best = min(best, time.perf_counter() - t0)
        results[src.stem] = round(best, 4)
    return {"compile_s": results}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
