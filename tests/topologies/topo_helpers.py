"""Helpers shared by the topology tests: environment guards and the leftover check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mininet_missing() -> str | None:
    """Why Mininet tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet is not installed (apt-get install mininet)"
    for tool in ("mnexec", "ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    return None


def programs_missing() -> str | None:
    """Why the P4 programs cannot be built for the embedded target yet, or None."""
    for prog in ("flow_nic", "gateway"):
        if not (REPO / "p4src" / f"{prog}.p4").is_file():
            return f"p4src/{prog}.p4 not written yet"
    try:
        from p4target.compiler import compile_file  # noqa: F401
        from p4target.pipeline import Pipeline  # noqa: F401
    except ImportError as exc:
        return f"embedded target incomplete: {exc}"
    return None


def assert_no_leftovers(lab) -> None:
    """Nothing of the lab's run may remain: processes, processes in its namespaces, interfaces."""
    from topologies import cleanup, registry

    run = lab.run_id
    found = cleanup.leftovers(run)
    names = [f"{s}-eth{p}" for s in lab.topo.switches for p in lab.topo.ports_of(s)]
    found["topology_interfaces"] = cleanup.existing_interfaces(names)
    found["registry"] = [r for r in registry.runs() if r == run]
    if any(found.values()):
        cleanup.cleanup_run(run)        # do not poison the next test
    assert not any(found.values()), f"lab run {run} left things behind: {found}"
