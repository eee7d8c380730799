"""Fixtures: an in-process P4Runtime server over a port-less Switch running the toy stand-in pipeline."""

from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

sys.path.insert(0, str(Path(__file__).parent))
import fake_pipeline  # noqa: E402

from p4target.p4runtime import P4RuntimeServer  # noqa: E402
from p4target.switch import Switch  # noqa: E402


class StreamClient:
    """A StreamChannel with a background reader; ``arbitrate`` returns the server's answer."""

    def __init__(self, stub, device_id=0):
        self.device_id = device_id
        self.out: queue.Queue = queue.Queue()
        self.inq: queue.Queue = queue.Queue()
        self.call = stub.StreamChannel(iter(self.out.get, None))
        self.error = None
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        try:
            for msg in self.call:
                self.inq.put(msg)
        except grpc.RpcError as exc:
            self.error = exc
        self.inq.put(None)

    def arbitrate(self, election_id=(0, 1), role=None, device_id=None):
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id if device_id is None else device_id
        req.arbitration.election_id.high, req.arbitration.election_id.low = election_id
        if role:
            req.arbitration.role.name = role
        self.out.put(req)
        return self.get("arbitration")

    def get(self, kind, timeout=3.0):
        while True:
            msg = self.inq.get(timeout=timeout)
            if msg is None or msg.WhichOneof("update") == kind:
                return msg

    def send(self, req):
        self.out.put(req)

    def close(self):
        self.out.put(None)
        self.call.cancel()


class Env:
    def __init__(self, switch, server, channel):
        self.switch, self.server, self.channel = switch, server, channel
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        self.p4info = fake_pipeline.toy_p4info()
        self.streams: list[StreamClient] = []

    def stream(self):
        s = StreamClient(self.stub)
        self.streams.append(s)
        return s

    def set_pipeline(self, election_id=(0, 1), action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
                     json_bytes=fake_pipeline.TOY_JSON, p4info=None):
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=0, action=action)
        req.election_id.high, req.election_id.low = election_id
        req.config.p4info.CopyFrom(p4info or self.p4info)
        req.config.p4_device_config = json_bytes
        req.config.cookie.cookie = 42
        return self.stub.SetForwardingPipelineConfig(req)

    def write(self, *updates, election_id=(0, 1), device_id=0):
        req = p4runtime_pb2.WriteRequest(device_id=device_id)
        req.election_id.high, req.election_id.low = election_id
        req.updates.extend(updates)
        return self.stub.Write(req)

    def read(self, *entities, device_id=0):
        req = p4runtime_pb2.ReadRequest(device_id=device_id)
        req.entities.extend(entities)
        out = []
        for resp in self.stub.Read(req):
            out.extend(resp.entities)
        return out


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
