"""Run every benchmark module (bench/bench_*.py) and merge their results into bench/results.json.

Each module offers ``run() -> dict``; the dicts are merged key by key. A module that fails is reported
(with its error in ``"errors"``) and the others still run, so one broken part does not hide the rest.
Usage: ``python -m bench [NAME ...]`` (names like ``compile`` or ``switch`` select modules).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path

import bench

RESULTS = Path(__file__).resolve().parent / "results.json"


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if wanted:
        names = [n for n in names if n.removeprefix("bench_") in wanted]
    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    errors: dict[str, str] = {}
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            _merge(results, module.run())
            print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benchmarks
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] {name} FAILED: {errors[name]}", flush=True)
    if errors:
        results["errors"] = errors
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"[bench] wrote {RESULTS}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
