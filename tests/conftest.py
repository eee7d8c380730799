"""Repository-wide pytest setup: the ``bmv2`` marker, and the ``p4rt_capabilities`` probe.

A test marked ``@pytest.mark.bmv2`` needs the real p4lang tools on PATH (``p4c-bm2-ss``,
``simple_switch_grpc``, and ``simple_switch_CLI`` where it says so). Without them it is skipped with
the reason — unless ``FLOWMIG_REQUIRE_BMV2=1`` (CI sets it), where a missing tool fails the test
instead, so a green CI run can never hide BMv2 tests that did not run.
"""

from __future__ import annotations

import os
import shutil

import pytest

BMV2_TOOLS = ("p4c-bm2-ss", "simple_switch_grpc", "simple_switch_CLI")


def bmv2_required() -> bool:
    return os.environ.get("FLOWMIG_REQUIRE_BMV2", "") not in ("", "0")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("bmv2") is None:
        return
    missing = [t for t in BMV2_TOOLS if shutil.which(t) is None]
    if not missing:
        return
    reason = f"bmv2 target: {', '.join(missing)} not on PATH"
    if bmv2_required():
        pytest.fail(f"{reason} (FLOWMIG_REQUIRE_BMV2=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def p4rt_capabilities():
    """``probe(address, creds=None)``: a P4Runtime Capabilities request to ``address`` over a plaintext
    channel (``creds`` None) or a TLS one: ``"ok"``, or the gRPC status name it failed with."""
    import grpc
    from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

    def probe(address: str, creds: grpc.ChannelCredentials | None = None) -> str:
        ch = grpc.secure_channel(address, creds) if creds else grpc.insecure_channel(address)
        try:
            p4runtime_pb2_grpc.P4RuntimeStub(ch).Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=5)
            return "ok"
        except grpc.RpcError as exc:
            return exc.code().name
        finally:
            ch.close()
    return probe
