"""Run every benchmark module (bench/bench_*.py) and merge their results into bench/results.json.

Each module offers ``run() -> dict``; the dicts are merged key by key. A module that fails is reported
(with its error in ``"errors"``) and the others still run, so one broken part does not hide the rest.
Usage: ``python -m bench [NAME ...]`` (names like ``compile`` or ``switch`` select modules). A run of
some modules keeps the other modules' figures already in the file (``ran`` says when each module last
ran); a run of all of them writes the file anew.
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


def _previous(path: Path) -> dict:
    """The results already written (empty when there are none, or they do not parse)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def main(argv: list[str] | None = None, results_path: Path | None = None) -> int:
    path = results_path or RESULTS
    wanted = set(argv if argv is not None else sys.argv[1:])
    every = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    unknown = sorted(wanted - {n.removeprefix("bench_") for n in every})
    if unknown:
        print(f"bench: no benchmark named {', '.join(unknown)} (known: "
              f"{', '.join(n.removeprefix('bench_') for n in every)})", file=sys.stderr)
        return 2
    names = [n for n in every if not wanted or n.removeprefix("bench_") in wanted]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # some modules: the others' figures stay; all of them: a fresh file
    results: dict = _previous(path) if wanted else {}
    results.update({"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
                    "started": now})
    errors: dict[str, str] = {k: v for k, v in results.pop("errors", {}).items() if k not in names}
    ran = results.setdefault("ran", {})
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        ran[name.removeprefix("bench_")] = now
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
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"[bench] wrote {path}")
    return 1 if any(n in errors for n in names) else 0


if __name__ == "__main__":
    sys.exit(main())
