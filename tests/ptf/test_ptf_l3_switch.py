"""Runs the PTF suite of tests/ptf/p4/l3_switch.p4 against p4target-switch (needs root and the compiler)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import run_ptf

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_l3_switch_ptf_suite(tmp_path):
    res = run_ptf(HERE / "ptftests" / "l3_switch", HERE / "p4" / "l3_switch.p4", ports=4, work_dir=tmp_path)
    assert res.ok, res.report()
    assert "Ran 8 tests" in res.output, res.report()
