"""Fixtures for switch tests: unique veth pairs (root) and the toy stand-in pipeline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "p4runtime"))
import fake_pipeline  # noqa: E402
from switch_testutil import VethPairs  # noqa: E402


@pytest.fixture
def veths():
    if os.geteuid() != 0:
        pytest.skip("needs root for veth interfaces")
    created: list[VethPairs] = []

    def make(n: int) -> VethPairs:
        v = VethPairs(n)
        created.append(v)
        return v

    yield make
    for v in created:
        v.close()


@pytest.fixture
def fake_pipeline_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "p4target.pipeline", fake_pipeline)
    return fake_pipeline


