"""Runs the PTF packet tests of p4src/flow_nic.p4 and p4src/gateway.p4 on both targets.

Each suite compiles the program (p4target.compiler for the embedded target, p4c-bm2-ss for bmv2),
starts p4target-switch or simple_switch_grpc on veth pairs and runs the PTF classes in
tests/dataplane/ptftests/<program>/ (tests/ptf/harness.py). The tests' register reads and writes
use P4Runtime where the switch serves them and BMv2's Thrift API where it answers UNIMPLEMENTED
(tests/ptf/p4runtime_base.py). Needs root.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ptf"))

from harness import run_ptf  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

SUITES = {
    "flow_nic": 18,
    "gateway": 13,
}


def _count_classes(path: Path) -> int:
    return len(re.findall(r"^class \w+Test\((?:FlowNicTest|GatewayTest)\):", path.read_text(),
                          re.M))


TARGETS = [pytest.param("embedded", id="embedded"), pytest.param("bmv2", id="bmv2", marks=pytest.mark.bmv2)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("program", sorted(SUITES))
def test_ptf_suite(program: str, target: str, tmp_path: Path) -> None:
    test_dir = HERE / "ptftests" / program
    expected = SUITES[program]
    assert _count_classes(test_dir / f"{program}.py") == expected, "update SUITES when adding PTF classes"
    res = run_ptf(test_dir, ROOT / "p4src" / f"{program}.p4", ports=4, work_dir=tmp_path,
                  include_dirs=[str(ROOT / "p4src" / "include")], timeout=300, target=target)
    assert res.ok, res.report()
    assert f"Ran {expected} tests" in res.output, res.report()
