"""Each compiler's BMv2 JSON loads on both switches, over P4Runtime.

For every program, the JSON + P4Info of the embedded compiler and of p4c-bm2-ss are pushed with
SetForwardingPipelineConfig (VERIFY_AND_COMMIT) to the embedded P4Runtime server (in process, real
gRPC, real Pipeline) and to a real ``simple_switch_grpc --no-p4`` on loopback (no interfaces); the
P4Info read back with GetForwardingPipelineConfig must be the one sent. Also: the device config
wrapped in the legacy ``p4.tmp.P4DeviceConfig`` (as the p4lang tutorials' ``p4runtime_lib`` sends it)
is accepted by both, and a config that is neither is INVALID_ARGUMENT on the embedded switch.
"""
from __future__ import annotations

import logging
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4target.p4runtime import P4RuntimeServer
from p4target.p4runtime.devconfig import P4DeviceConfig
from p4target.switch import Switch

from .build import compile_embedded, compile_p4c, programs

SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest
START_TIMEOUT_S = 15.0


class Client:
    """A P4Runtime client: primary for device 0 (election id 1), pushes pipelines."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.requests: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
        self.stream = self.stub.StreamChannel(iter(self.requests.get, None))
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = 0
        req.arbitration.election_id.low = 1
        self.requests.put(req)
        resp = next(self.stream)
        assert resp.HasField("arbitration") and resp.arbitration.status.code == 0, resp

    def set_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> None:
        req = SetReq(device_id=0, action=SetReq.VERIFY_AND_COMMIT)
        req.election_id.low = 1
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = device_config
        self.stub.SetForwardingPipelineConfig(req, timeout=60)

    def get_p4info(self) -> p4info_pb2.P4Info:
        req = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=0, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
        return self.stub.GetForwardingPipelineConfig(req, timeout=10).config.p4info

    def table_entries(self, table_id: int) -> list[p4runtime_pb2.TableEntry]:
        req = p4runtime_pb2.ReadRequest(device_id=0)
        req.entities.add().table_entry.table_id = table_id
        return [e.table_entry for resp in self.stub.Read(req, timeout=10) for e in resp.entities]

    def close(self) -> None:
        self.requests.put(None)
        self.stream.cancel()
        self.channel.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def embedded() -> Iterator[Client]:
    switch = Switch({}, cpu_port=255)
    server = P4RuntimeServer(switch, 0, "127.0.0.1:0").start()
    switch.start()
    client = Client(f"127.0.0.1:{server.port}")
    yield client
    client.close()
    server.stop(0)
    switch.stop()


@pytest.fixture(scope="module")
def bmv2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    exe = shutil.which("simple_switch_grpc")
    if exe is None:
        pytest.skip("simple_switch_grpc not on PATH")   # the bmv2 marker fails first under FLOWMIG_REQUIRE_BMV2
    log_path = tmp_path_factory.mktemp("bmv2") / "simple_switch_grpc.log"
    addr = f"127.0.0.1:{_free_port()}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, "--no-p4", "--device-id", "0", "--thrift-port", str(_free_port()),
                                 "--", "--grpc-server-addr", addr], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"simple_switch_grpc exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                client = Client(addr)
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise
        yield client
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance-json")


def artifacts(compiler: str, prog: Path, out_dir: Path) -> tuple[p4info_pb2.P4Info, bytes]:
    compile_fn = compile_embedded if compiler == "embedded" else compile_p4c
    json_path, info_path = compile_fn(prog, out_dir / compiler)
    info = p4info_pb2.P4Info()
    text_format.Parse(info_path.read_text(), info)
    return info, json_path.read_bytes()


CASES = [(c, p) for p in programs() for c in ("embedded", "p4c")]
IDS = [f"{c}-{p.stem}" for c, p in CASES]


@pytest.mark.bmv2
@pytest.mark.parametrize("compiler,prog", CASES, ids=IDS)
def test_json_loads_on_embedded_switch(compiler: str, prog: Path, out_dir: Path, embedded: Client) -> None:
    info, data = artifacts(compiler, prog, out_dir)
    embedded.set_pipeline(info, data)
    assert embedded.get_p4info() == info


@pytest.mark.bmv2
@pytest.mark.parametrize("compiler,prog", CASES, ids=IDS)
def test_json_loads_on_simple_switch_grpc(compiler: str, prog: Path, out_dir: Path, bmv2: Client) -> None:
    info, data = artifacts(compiler, prog, out_dir)
    bmv2.set_pipeline(info, data)
    assert bmv2.get_p4info() == info


@pytest.mark.bmv2
def test_masked_key_const_entries_read_back_like_bmv2(out_dir: Path, embedded: Client, bmv2: Client) -> None:
    # p4c emits `hdr.ipv4.dstAddr & 0xffffff00` as a masked key: the key keeps the field's 32 bits
    (prog,) = [p for p in programs() if p.stem == "features"]
    info, data = artifacts("p4c", prog, out_dir)
    (table,) = [t for t in info.tables if t.preamble.name == "MyIngress.forward"]
    got = {}
    for name, client in (("embedded", embedded), ("bmv2", bmv2)):
        client.set_pipeline(info, data)
        # whole entries: match, action, priority (2^31 - 1 - JSON priority) and no is_const, as PI
        got[name] = sorted(e.SerializeToString(deterministic=True) for e in client.table_entries(table.preamble.id))
    assert len(got["bmv2"]) == 3
    assert got["embedded"] == got["bmv2"]


# ---------------------------------------------------------------- the legacy P4DeviceConfig wrapper
def tutorial_device_config(json_path: Path) -> bytes:
    """What p4lang/tutorials' p4runtime_lib (Bmv2SwitchConnection.buildDeviceConfig) sends."""
    device_config = P4DeviceConfig()
    device_config.reassign = True
    device_config.device_data = json_path.read_text().encode("utf-8")
    return device_config.SerializeToString()


def flow_nic() -> Path:
    (p,) = [p for p in programs() if p.stem == "flow_nic"]
    return p


@pytest.mark.bmv2
@pytest.mark.parametrize("switch", ["embedded", "bmv2"])
def test_wrapped_device_config_is_accepted(switch: str, out_dir: Path, request: pytest.FixtureRequest,
                                           caplog: pytest.LogCaptureFixture) -> None:
    client: Client = request.getfixturevalue(switch)
    json_path, _ = compile_embedded(flow_nic(), out_dir / "embedded")
    info, _ = artifacts("embedded", flow_nic(), out_dir)
    wrapped = tutorial_device_config(json_path)
    assert not wrapped.startswith(b"{")
    with caplog.at_level(logging.WARNING, logger="p4target.p4runtime.devconfig"):
        client.set_pipeline(info, wrapped)
    assert client.get_p4info() == info
    if switch == "embedded":
        assert "P4DeviceConfig is deprecated" in caplog.text


@pytest.mark.parametrize("config,match", [
    (b"\x00\x01garbage", "neither a BMv2 JSON"),
    (P4DeviceConfig(reassign=True).SerializeToString(), "without device_data"),
    (P4DeviceConfig(device_data=b"not json").SerializeToString(), "device_data is not a BMv2 JSON"),
])
def test_bad_device_config_is_invalid_argument(config: bytes, match: str, out_dir: Path, embedded: Client) -> None:
    info, _ = artifacts("embedded", flow_nic(), out_dir)
    with pytest.raises(grpc.RpcError) as ei:
        embedded.set_pipeline(info, config)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert match in ei.value.details()
