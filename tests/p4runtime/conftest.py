"""Fixtures: an in-process P4Runtime server over a port-less Switch running the toy stand-in pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fake_pipeline  # noqa: E402
from p4rt_testutil import Env  # noqa: E402

from p4target.p4runtime import P4RuntimeServer  # noqa: E402
from p4target.switch import Switch  # noqa: E402


@pytest.fixture
def fake_pipeline_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "p4target.pipeline", fake_pipeline)
    return fake_pipeline


@pytest.fixture
def env(fake_pipeline_module):
    switch = Switch({}, cpu_port=255)
    server = P4RuntimeServer(switch, 0, "127.0.0.1:0").start()
    switch.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    e = Env(switch, server, channel)
    yield e
    for s in e.streams:
        s.close()
    channel.close()
    server.stop(0)
    switch.stop()


@pytest.fixture
def primed(env):
    """Env with a primary client (election id (0,1)) and the toy pipeline installed."""
    s = env.stream()
    s.arbitrate((0, 1))
    env.set_pipeline()
    env.primary = s
    return env
