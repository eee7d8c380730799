"""Bounded fuzz of the P4Runtime server (issue #11): thousands of mutated requests of every RPC class —
Write, Read, Set/GetForwardingPipelineConfig, Capabilities and StreamChannel messages — against the
real flow_nic program. Every answer must carry one of the spec's statuses (never INTERNAL, never UNKNOWN
except a Write's per-update report, never a timeout), every refusal must be logged, the server must
stay responsive throughout, and memory must come back afterwards. Mutations are byte-level (flips,
cuts, insertions, truncation) and structural (a random field of a valid message set to a random
value). Seeded, and bounded by a time budget."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2
from p4rt_real import Rig, flow_nic, rss_kb

from p4target.p4runtime.batch import trim_memory

BUDGET_S = 25.0
MIN_REQUESTS = 1500
SPEC_CODES = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "ALREADY_EXISTS", "PERMISSION_DENIED",
              "FAILED_PRECONDITION", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED"}
DETAIL_CODES = {code_pb2.Code.Value(c) for c in SPEC_CODES} | {code_pb2.ABORTED}
P = p4runtime_pb2


class FuzzStream:
    """A StreamChannel fed with raw (mutated) messages; a reader thread records the codes of the
    StreamErrors it gets and the stream's final status."""

    def __init__(self, channel, first: bytes, codes: set) -> None:
        self.q: queue.Queue = queue.Queue()
        self.q.put(first)
        self.codes = codes
        self.call = channel.stream_stream("/p4.v1.P4Runtime/StreamChannel")(iter(self.q.get, None), timeout=60)
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self.call:
                msg = P.StreamMessageResponse.FromString(raw)
                if msg.WhichOneof("update") == "error":
                    self.codes.add(code_pb2.Code.Name(msg.error.canonical_code))
            self.codes.add("OK")
        except grpc.RpcError as exc:
            self.codes.add(exc.code().name)
        self.ended.set()

    def close(self) -> None:
        self.q.put(None)
        self.ended.wait(10)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refusals = 0
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if " refused: " in msg:
            self.refusals += 1
        if record.levelno >= logging.ERROR:
            self.errors.append(msg)


def _seeds(p4info) -> dict[str, list]:
    """Valid requests of every class for flow_nic."""
    def write(*updates, atomicity=0):
        w = P.WriteRequest(device_id=0, atomicity=atomicity)
        w.election_id.low = 1
        w.updates.extend(updates)
        return w

    def upd(kind, **ent):
        return P.Update(type=kind, entity=P.Entity(**ent))

    tables = {t.preamble.name.split(".")[-1]: t for t in p4info.tables}
    slots, ports = tables["flow_slots"], tables["nic_ports"]

    def entry(t, action=None):
        te = P.TableEntry(table_id=t.preamble.id)
        for k, mf in enumerate(t.match_fields):
            te.match.add(field_id=mf.id).exact.value = bytes([k + 1])
        aid = action or t.action_refs[0].id
        te.action.action.action_id = aid
        act = next(a for a in p4info.actions if a.preamble.id == aid)
        for prm in act.params:
            te.action.action.params.add(param_id=prm.id, value=b"\x01")
        return te

    slot, port = entry(slots), entry(ports)
    reg, ctr, dig = p4info.registers[0], p4info.counters[0], p4info.digests[0]
    rentry = P.RegisterEntry(register_id=reg.preamble.id)
    rentry.index.index, rentry.data.bitstring = 3, b"\x01"
    centry = P.CounterEntry(counter_id=ctr.preamble.id)
    centry.index.index, centry.data.packet_count, centry.data.byte_count = 1, 5, 500
    mc = P.PacketReplicationEngineEntry()
    mc.multicast_group_entry.multicast_group_id = 7
    mc.multicast_group_entry.replicas.add(egress_port=1, instance=1)
    cs = P.PacketReplicationEngineEntry()
    cs.clone_session_entry.session_id = 5
    cs.clone_session_entry.replicas.add(egress_port=2, instance=0)
    de = P.DigestEntry(digest_id=dig.preamble.id)
    de.config.max_list_size, de.config.max_timeout_ns = 10, 1000
    writes = [write(upd(U, table_entry=slot)) for U in (1, 2, 3)] + [
        write(upd(1, table_entry=port), upd(2, register_entry=rentry), upd(2, counter_entry=centry)),
        write(upd(1, packet_replication_engine_entry=mc), upd(1, packet_replication_engine_entry=cs),
              atomicity=1),
        write(upd(1, digest_entry=de), upd(3, digest_entry=de), atomicity=2),
    ]
    reads = []
    for ent in (P.Entity(table_entry=P.TableEntry()), P.Entity(table_entry=P.TableEntry(table_id=slots.preamble.id)),
                P.Entity(register_entry=rentry), P.Entity(counter_entry=P.CounterEntry()),
                P.Entity(packet_replication_engine_entry=mc), P.Entity(digest_entry=P.DigestEntry()),
                P.Entity(direct_counter_entry=P.DirectCounterEntry())):
        reads.append(P.ReadRequest(device_id=0, entities=[ent]))
    json_bytes, info = flow_nic()
    cfg = P.SetForwardingPipelineConfigRequest(device_id=0, action=P.SetForwardingPipelineConfigRequest.VERIFY)
    cfg.election_id.low = 1
    cfg.config.p4info.CopyFrom(info)
    cfg.config.p4_device_config = json_bytes
    arb = P.StreamMessageRequest()
    arb.arbitration.device_id, arb.arbitration.election_id.low = 0, 1
    arb.arbitration.role.name = "fuzz"
    pkt = P.StreamMessageRequest()
    pkt.packet.payload = bytes(60)
    pkt.packet.metadata.add(metadata_id=1, value=b"\x01")
    ack = P.StreamMessageRequest()
    ack.digest_ack.digest_id, ack.digest_ack.list_id = dig.preamble.id, 1
    return {"Write": writes, "Read": reads, "SetForwardingPipelineConfig": [cfg],
            "GetForwardingPipelineConfig": [P.GetForwardingPipelineConfigRequest(device_id=0, response_type=r)
                                            for r in range(4)],
            "Capabilities": [P.CapabilitiesRequest()], "Stream": [arb, pkt, ack]}


def _random_value(rng: random.Random, field) -> object:
    t = field.type
    if t == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FD.TYPE_STRING:
        return rng.choice(["", "fuzz", "x" * rng.randrange(50), "\u00e9"])
    if t == FD.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 2, 4, 6, 17, 300]))
    if t == FD.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [rng.randrange(-3, 50)])
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return rng.choice([0, 1, -1, 2**31 - 1, -2**31, rng.randrange(-1000, 1000)])
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rng.choice([0, 1, -1, 2**63 - 1, -2**63, rng.randrange(-10**6, 10**6)])
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1, rng.randrange(2**32)])
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rng.choice([0, 1, 2**64 - 1, rng.randrange(2**64)])
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.random() * 1e6
    return None


def _repeated(field) -> bool:
    is_rep = getattr(field, "is_repeated", None)   # protobuf >= 6 (label is gone)
    return bool(is_rep) if is_rep is not None else field.label == FD.LABEL_REPEATED


def _structural(rng: random.Random, msg) -> None:
    """Set one random scalar field somewhere in ``msg`` to a random value (or clear a message field)."""
    for _ in range(6):
        fields = msg.DESCRIPTOR.fields
        if not fields:
            return
        f = rng.choice(fields)
        if f.type == FD.TYPE_MESSAGE:
            if _repeated(f):
                items = getattr(msg, f.name)
                if f.message_type.GetOptions().map_entry or (items and rng.random() < 0.2):
                    if items and not f.message_type.GetOptions().map_entry:
                        del items[rng.randrange(len(items))]
                    return
                msg = items[rng.randrange(len(items))] if items and rng.random() < 0.8 else items.add()
            elif rng.random() < 0.1:
                msg.ClearField(f.name)
                return
            else:
                msg = getattr(msg, f.name)
            continue
        value = _random_value(rng, f)
        if value is None:
            return
        try:
            if _repeated(f):
                getattr(msg, f.name).append(value)
            else:
                setattr(msg, f.name, value)
        except (ValueError, TypeError):
            pass
        return


def _bytes_mutation(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        if not buf:
            buf += rng.randbytes(rng.randrange(1, 8))
            continue
        i = rng.randrange(len(buf))
        op = rng.random()
        if op < 0.35:
            buf[i] ^= 1 << rng.randrange(8)
        elif op < 0.55:
            buf[i] = rng.randrange(256)
        elif op < 0.7:
            del buf[i:i + rng.randrange(1, 6)]
        elif op < 0.85:
            buf[i:i] = rng.randbytes(rng.randrange(1, 6))
        elif op < 0.95:
            del buf[i:]
        else:
            buf += buf[i:i + rng.randrange(1, 40)]
    return bytes(buf)


def _mutant(rng: random.Random, seed) -> bytes:
    if rng.random() < 0.5:
        msg = type(seed)()
        msg.CopyFrom(seed)
        for _ in range(rng.randrange(1, 3)):
            _structural(rng, msg)
        data = msg.SerializeToString()
        return data if rng.random() < 0.7 else _bytes_mutation(rng, data)
    return _bytes_mutation(rng, seed.SerializeToString())


def _check_write_details(exc: grpc.RpcError) -> None:
    details = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert details, f"UNKNOWN without per-update details: {exc.details()}"
    st = status_pb2.Status.FromString(details)
    for d in st.details:
        err = P.Error()
        d.Unpack(err)
        assert err.canonical_code in DETAIL_CODES, (err.canonical_code, err.message)


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_fuzzed_requests_get_spec_codes_are_logged_and_the_server_keeps_serving(rig):
    cap = Capture()
    logger = logging.getLogger("p4target.p4runtime")
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False   # pytest keeps every record it captures: that would be the memory growth
    logger.addHandler(cap)
    rng = random.Random(20261206)
    seeds = _seeds(rig.p4info)
    channel = rig.channel
    calls = {m: channel.unary_unary(f"/p4.v1.P4Runtime/{m}") for m in
             ("Write", "SetForwardingPipelineConfig", "GetForwardingPipelineConfig", "Capabilities")}
    read = channel.unary_stream("/p4.v1.P4Runtime/Read")
    weights = {"Write": 40, "Read": 25, "SetForwardingPipelineConfig": 3, "GetForwardingPipelineConfig": 5,
               "Capabilities": 4, "Stream": 23}
    kinds = list(weights)
    counts = dict.fromkeys(kinds, 0)
    codes: dict[str, set] = {k: set() for k in kinds}
    failures = 0
    stream_codes: set = set()
    stream: FuzzStream | None = None
    streams_opened = 0

    # warm-up: one pass over the seeds, then the baseline memory
    for seed in seeds["Write"]:
        try:
            calls["Write"](seed.SerializeToString(), timeout=10)
        except grpc.RpcError:
            pass
    trim_memory()
    rss_before = rss_kb()
    t0 = time.monotonic()
    n = 0
    worst_ping = 0.0
    while time.monotonic() - t0 < BUDGET_S:
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind == "SetForwardingPipelineConfig" and counts[kind] >= 40:
            kind = "Capabilities"    # each one builds a pipeline: a few dozen are enough
        data = _mutant(rng, rng.choice(seeds[kind]))
        counts[kind] += 1
        n += 1
        if kind == "Stream":
            if stream is None or stream.ended.is_set() or rng.random() < 0.02:
                if stream is not None:
                    stream.close()
                first = seeds["Stream"][0].SerializeToString() if rng.random() < 0.7 else data
                stream = FuzzStream(channel, first, stream_codes)
                streams_opened += 1
            stream.q.put(data)
            continue
        try:
            if kind == "Read":
                list(read(data, timeout=10))
            else:
                calls[kind](data, timeout=10)
            codes[kind].add("OK")
        except grpc.RpcError as exc:
            code = exc.code().name
            codes[kind].add(code)
            failures += 1
            if code == "UNKNOWN" and kind == "Write":
                _check_write_details(exc)
            else:
                assert code in SPEC_CODES, (kind, code, exc.details(), data[:80])
        if n % 200 == 0:   # liveness: a small request is answered at once
            t = time.perf_counter()
            channel.unary_unary("/p4.v1.P4Runtime/Capabilities")(P.CapabilitiesRequest().SerializeToString(),
                                                                   timeout=5)
            worst_ping = max(worst_ping, time.perf_counter() - t)
    elapsed = time.monotonic() - t0
    if stream is not None:
        stream.close()
    logger.removeHandler(cap)
    logger.setLevel(old_level)
    logger.propagate = old_propagate

    assert n >= MIN_REQUESTS, (n, elapsed)
    assert all(counts[k] >= 20 for k in kinds), counts
    assert stream_codes <= SPEC_CODES, stream_codes     # StreamErrors and final statuses of the streams
    assert streams_opened >= 20 and len(stream_codes) >= 2, (streams_opened, stream_codes)
    assert not cap.errors, cap.errors[:5]           # no "failed unexpectedly": no handler bug was hit
    assert cap.refusals >= failures, (cap.refusals, failures)
    assert {"OK", "INVALID_ARGUMENT"} <= codes["Write"] | {"UNKNOWN"} | codes["Read"], codes
    assert worst_ping < 1.0, worst_ping
    # still serving: the primary writes and reads, a packet goes through the pipeline
    rig.primary.close()
    primary = rig.stream()
    ans = primary.arbitrate((0, 10**6))
    assert ans is not None and ans.arbitration.status.code == code_pb2.OK
    reg = rig.registers["FlowNicIngress.flow_state.flow_packets"]
    w = P.WriteRequest(device_id=0)
    w.election_id.low = 10**6
    u = w.updates.add(type=P.Update.MODIFY)
    u.entity.register_entry.register_id, u.entity.register_entry.index.index = reg.preamble.id, 9
    u.entity.register_entry.data.bitstring = b"\x2a"
    rig.stub.Write(w, timeout=10)
    q = P.ReadRequest(device_id=0)
    q.entities.add().register_entry.CopyFrom(u.entity.register_entry)
    q.entities[0].register_entry.ClearField("data")
    (resp,) = list(rig.stub.Read(q, timeout=10))
    assert resp.entities[0].register_entry.data.bitstring == b"\x2a"
    rig.switch.inject(1, bytes(60))
    trim_memory()
    grown = rss_kb() - rss_before
    print(f"fuzz: {n} requests in {elapsed:.1f} s {counts}; codes {codes}; {streams_opened} streams: {stream_codes}; "
          f"worst Capabilities {worst_ping * 1000:.0f} ms; RSS {rss_before} -> {rss_before + grown} kB")
    assert grown < 40_000, f"RSS grew {grown} kB over {n} requests"
