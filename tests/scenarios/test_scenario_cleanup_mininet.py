"""A scenario that fails, or is killed with SIGTERM, leaves nothing of its lab behind (root, Mininet)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_scenarios_mininet import _mininet_missing

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(_mininet_missing() is not None, reason=_mininet_missing() or "")]


def _runs_of(pid: int) -> dict:
    from topologies import cleanup, registry
    return {r: cleanup.leftovers(r) for r in registry.runs() if r.startswith(f"{pid}-")}


def test_a_failing_fault_tears_the_lab_down(tmp_path):
    from topologies.scenarios.runner import Scenario, Traffic, run_scenario

    def boom(run):
        raise RuntimeError("fault injector failed")
    sc = Scenario("boom", "a fault that raises", "fig2", [Traffic("tcp", "hostA", "hostB", 1, "100k")],
                  duration=3.0, fault_at=1.0, fault=boom)
    with open(tmp_path / "progress.txt", "w") as out, pytest.raises(RuntimeError, match="fault injector failed"):
        run_scenario(sc, run_dir=tmp_path / "run", out=out)
    left = _runs_of(os.getpid())
    assert not left, left


def test_sigterm_mid_run_tears_the_lab_down(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "topologies.scenarios", "degrade", "--", "--run-dir",
                             str(tmp_path / "run")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    deadline = time.monotonic() + 600
    try:
        for line in proc.stdout:
            seen.append(line)
            if "traffic started" in line or time.monotonic() > deadline:
                break
        assert any("traffic started" in s for s in seen), "".join(seen)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted; the lab was torn down" in rest
    left = _runs_of(proc.pid)
    if left:
        from topologies import cleanup
        for r in left:
            cleanup.cleanup_run(r)
    assert not left, left
