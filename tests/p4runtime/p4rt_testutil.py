"""Test helpers for the P4Runtime server tests: a StreamChannel client, an in-process Env, Write error decoding."""

from __future__ import annotations

import queue
import threading

import fake_pipeline
import grpc
from google.rpc import status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc


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


def write_errors(exc: grpc.RpcError) -> list[tuple[int, str]]:
    """[(canonical code, message)] per update from a failed Write's grpc-status-details-bin."""
    assert exc.code() == grpc.StatusCode.UNKNOWN
    for k, v in exc.trailing_metadata():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(v)
            out = []
            for d in st.details:
                err = p4runtime_pb2.Error()
                d.Unpack(err)
                out.append((err.canonical_code, err.message))
            return out
    raise AssertionError("no grpc-status-details-bin")
