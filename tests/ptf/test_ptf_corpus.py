"""PTF suites for the compiler's corpus programs (tests/compiler/corpus), each on a fresh p4target-switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import run_ptf

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "compiler" / "corpus"

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.mark.parametrize("program, ntests", [("basic", 3), ("multicast", 3), ("clone_cpu", 3), ("l2_learning", 2),
                                              ("ecn", 1)])
def test_corpus_program(program, ntests, tmp_path):
    source = CORPUS / f"{program}.p4"
    if not source.exists():
        pytest.skip(f"{source} not in the corpus")
    res = run_ptf(HERE / "ptftests" / "corpus", source, ports=4, tests=[program], work_dir=tmp_path)
    assert res.ok, res.report()
    assert f"Ran {ntests} test" in res.output, res.report()
