"""SwitchConnection against an in-process fake P4Runtime servicer (the fake lives only in this test)."""

import queue
import threading
import time
from concurrent import futures

import grpc
import pytest
from ctl_p4info_fixture import make_p4info
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4data_pb2, p4runtime_pb2, p4runtime_pb2_grpc

from controller.p4rt import codec
from controller.p4rt.connection import SwitchConnection, SwitchOptions
from controller.p4rt.errors import ConnectionFailed, P4RuntimeError
from controller.p4rt.fabric import Fabric
from controller.p4rt.p4info import P4InfoHelper


class FakeServer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, answer_arbitration=True):
        self.answer_arbitration = answer_arbitration
        self.writes = []
        self.packet_outs = queue.Queue()
        self.acks = queue.Queue()
        self.config = None
        self.to_client = queue.Queue()
        self.fail_write = None
        self.primary_election = None

    def StreamChannel(self, request_iterator, context):
        own = queue.Queue()
        self.to_client = own

        def reader():
            try:
                self._read(request_iterator, own)
            except grpc.RpcError:
                pass
            own.put(None)

        threading.Thread(target=reader, daemon=True).start()
        while context.is_active():
            try:
                msg = own.get(timeout=0.1)
            except queue.Empty:
                continue
            if msg is None:
                return
            yield msg

    def _read(self, request_iterator, own):
            for req in request_iterator:
                kind = req.WhichOneof("update")
                if kind == "arbitration":
                    if not self.answer_arbitration:
                        continue
                    eid = (req.arbitration.election_id.high, req.arbitration.election_id.low)
                    rep = p4runtime_pb2.StreamMessageResponse()
                    rep.arbitration.CopyFrom(req.arbitration)
                    if self.primary_election is None or eid >= self.primary_election:
                        self.primary_election = eid
                        rep.arbitration.status.code = code_pb2.OK
                    else:
                        rep.arbitration.status.code = code_pb2.ALREADY_EXISTS
                    own.put(rep)
                elif kind == "packet":
                    self.packet_outs.put(req.packet)
                elif kind == "digest_ack":
                    self.acks.put(req.digest_ack)

    def SetForwardingPipelineConfig(self, request, context):
        self.config = request.config
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request, context):
        if self.config is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no pipeline")
        rep = p4runtime_pb2.GetForwardingPipelineConfigResponse()
        rep.config.cookie.CopyFrom(self.config.cookie)
        if request.response_type != request.COOKIE_ONLY:
            rep.config.p4info.CopyFrom(self.config.p4info)
        return rep

    def Write(self, request, context):
        self.writes.append(request)
        if self.fail_write:
            status = status_pb2.Status(code=code_pb2.UNKNOWN, message="batch failed")
            for code in self.fail_write:
                a = any_pb2.Any()
                a.Pack(p4runtime_pb2.Error(canonical_code=code, message=f"code {code}"))
                status.details.append(a)
            context.abort_with_status(_RichStatus(status))
        return p4runtime_pb2.WriteResponse()

    def Read(self, request, context):
        for ent in request.entities:
            rep = p4runtime_pb2.ReadResponse()
            if ent.HasField("register_entry"):
                for i in range(3):
                    e = rep.entities.add().register_entry
                    e.register_id = ent.register_entry.register_id
                    e.index.index = i
                    e.data.bitstring = b"\x00\x00" + bytes([i])  # padded on purpose
            yield rep

    def Capabilities(self, request, context):
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version="1.3.0")


class _RichStatus(grpc.Status):
    def __init__(self, status):
        self.code = grpc.StatusCode.UNKNOWN
        self.details = status.message
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)


@pytest.fixture
def server():
    fake = FakeServer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    fake.address = f"127.0.0.1:{port}"
    yield fake
    srv.stop(0)


def opts(server, **kw):
    return SwitchOptions(name="s1", address=server.address, log_dir=None, connect_timeout=2, **kw)


def test_connect_primary_and_pipeline(server, tmp_path):
    info = make_p4info()
    with SwitchConnection(SwitchOptions("s1", server.address, log_dir=str(tmp_path))) as sw:
        assert sw.is_primary
        assert sw.helper is None  # no pipeline yet
        assert sw.pipeline_cookie() is None
        assert sw.ensure_pipeline(info, b"{json}") is True
        assert sw.ensure_pipeline(info, b"{json}") is False  # same cookie: not pushed again
        assert sw.ensure_pipeline(info, b"{other}") is True
        assert sw.capabilities() == "1.3.0"
    log_text = (tmp_path / "s1-p4runtime-requests.txt").read_text()
    assert "SetForwardingPipelineConfig" in log_text and "arbitration" in log_text


def test_backup_when_lower_election_id(server):
    with SwitchConnection(opts(server, election_id=(0, 10))) as a:
        assert a.is_primary
        with SwitchConnection(SwitchOptions("s1b", server.address, log_dir=None,
                                            election_id=(0, 5))) as b:
            assert not b.is_primary


def test_unreachable_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match="no P4Runtime server"):
        SwitchConnection(SwitchOptions("gone", "127.0.0.1:1", log_dir=None)).connect(timeout=0.5)
    assert time.monotonic() - t0 < 3


def test_arbitration_wait_is_bounded(server):
    server.answer_arbitration = False
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match="no arbitration response"):
        SwitchConnection(opts(server, reconnect=False)).connect(timeout=0.7)
    assert time.monotonic() - t0 < 3


def test_write_batch_and_error_details(server):
    helper = P4InfoHelper(make_p4info())
    with SwitchConnection(opts(server), make_p4info()) as sw:
        entries = [helper.register_entry("tcp_next_seq_fwd", i, i) for i in range(5)]
        sw.modify(entries)
        assert len(server.writes) == 1 and len(server.writes[0].updates) == 5
        assert server.writes[0].election_id.low == 100
        server.fail_write = [code_pb2.OK, code_pb2.NOT_FOUND, code_pb2.NOT_FOUND]
        with pytest.raises(P4RuntimeError) as ei:
            sw.delete(entries[:3])
        err = ei.value
        assert [(e.index, e.code) for e in err.errors] == [(1, code_pb2.NOT_FOUND), (2, code_pb2.NOT_FOUND)]
        assert err.is_not_found_only() and not err.is_pipeline_missing()
        assert "update 1: NOT_FOUND" in str(err)
        server.fail_write = [code_pb2.NOT_FOUND, code_pb2.ALREADY_EXISTS]
        with pytest.raises(P4RuntimeError) as ei:
            sw.insert(entries[:2])
        assert not ei.value.is_not_found_only()


def test_pipeline_missing_predicate(server):
    with SwitchConnection(opts(server)) as sw, pytest.raises(P4RuntimeError) as ei:
        sw.get_pipeline()
    assert ei.value.is_pipeline_missing()


def test_read_streams_and_decodes_padded(server):
    helper = P4InfoHelper(make_p4info())
    with SwitchConnection(opts(server), make_p4info()) as sw:
        ents = sw.read_all([helper.register_entry("tcp_next_seq_fwd")])
        assert [codec.decode_int(e.register_entry.data.bitstring) for e in ents] == [0, 1, 2]


def test_packet_out_in_and_digest_ack(server):
    with SwitchConnection(opts(server), make_p4info()) as sw:
        got = queue.Queue()
        sw.subscribe_packets(got.put)
        digests = queue.Queue()
        sw.subscribe_digests(digests.put)
        sw.packet_out_many([(b"p%d" % i, {"opcode": i}) for i in range(3)])
        outs = [server.packet_outs.get(timeout=2) for _ in range(3)]
        assert [o.payload for o in outs] == [b"p0", b"p1", b"p2"]
        assert outs[2].metadata[1].value == b"\x02"
        rep = p4runtime_pb2.StreamMessageResponse()
        rep.packet.payload = b"hello"
        rep.packet.metadata.add(metadata_id=1, value=b"\x00\x07")
        server.to_client.put(rep)
        pin = got.get(timeout=2)
        assert pin.payload == b"hello" and pin.metadata["ingress_port"] == 7
        rep = p4runtime_pb2.StreamMessageResponse()
        rep.digest.digest_id = 385875969
        rep.digest.list_id = 42
        d = p4data_pb2.P4Data()
        d.struct.members.add(bitstring=b"\x05")
        d.struct.members.add(bitstring=b"\x0a\x00\x00\x01")
        rep.digest.data.append(d)
        server.to_client.put(rep)
        dl = digests.get(timeout=2)
        assert dl.digest == "new_flow_t" and dl.members == [{"slot": 5, "src_addr": 0x0A000001}]
        ack = server.acks.get(timeout=2)
        assert ack.list_id == 42 and ack.digest_id == 385875969


def test_fabric_parallel(server):
    fab = Fabric()
    try:
        fab.connect([opts(server), SwitchOptions("s2", server.address, log_dir=None)])
        assert set(fab.switches) == {"s1", "s2"}
        res = fab.parallel({n: (lambda c=c: c.capabilities()) for n, c in fab.switches.items()})
        assert res == {"s1": "1.3.0", "s2": "1.3.0"}
        with pytest.raises(KeyError, match="unknown switch"):
            fab["nope"]
    finally:
        fab.close()


def test_stream_reconnects_after_server_ends_it(server):
    sw = SwitchConnection(opts(server), make_p4info())
    sw.connect()
    try:
        server.to_client.put(None)  # the server ends the stream
        deadline = time.monotonic() + 5
        while sw.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sw.reconnects == 1 and sw.connected.is_set() and sw.is_primary
        sw.packet_out(b"after", opcode=1)
        assert server.packet_outs.get(timeout=2).payload == b"after"
    finally:
        sw.close()


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="openssl not installed")
def test_tls_when_certificates_are_given(tmp_path):
    import subprocess
    key, crt = tmp_path / "srv.key", tmp_path / "srv.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(crt), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    fake = FakeServer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(fake, srv)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), crt.read_bytes())])
    port = srv.add_secure_port("localhost:0", creds)
    srv.start()
    try:
        o = SwitchOptions("tls1", f"localhost:{port}", log_dir=None, cacert=str(crt), connect_timeout=5)
        assert o.tls
        with SwitchConnection(o) as sw:
            assert sw.is_primary and sw.capabilities() == "1.3.0"
        plain = SwitchOptions("tls2", f"localhost:{port}", log_dir=None, connect_timeout=1, reconnect=False)
        with pytest.raises(ConnectionFailed):
            SwitchConnection(plain).connect()
    finally:
        srv.stop(0)


def test_request_log_is_written_off_the_request_path(tmp_path):
    from controller.p4rt.connection import RequestLog
    log = RequestLog(tmp_path / "sw-p4runtime-requests.txt", delay=0.05)
    made = []

    def lazy():
        made.append(1)
        return p4runtime_pb2.ReadRequest(device_id=7)
    log.record("Read", lazy)
    log.record("Write", p4runtime_pb2.WriteRequest(device_id=8))
    assert made == []                      # nothing parsed or formatted while the request goes out
    deadline = time.monotonic() + 3
    text = ""
    while "device_id: 8" not in text and time.monotonic() < deadline:
        time.sleep(0.02)
        text = (tmp_path / "sw-p4runtime-requests.txt").read_text()
    assert text.index("device_id: 7") < text.index("device_id: 8") and made == [1]
    log.record("Read", p4runtime_pb2.ReadRequest(device_id=9))
    log.close()                            # what is still queued is written on close
    assert "device_id: 9" in (tmp_path / "sw-p4runtime-requests.txt").read_text()
