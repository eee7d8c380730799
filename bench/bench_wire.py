"""Micro-benchmark: the P4Runtime message paths of the controller and of the embedded server, on protobuf.

Both sides hand-encoded these paths (two ``wire.py`` modules) while the venv's protobuf was
the pure-Python 3.20. Under protobuf's upb runtime both are plain protobuf now, filled in place; this
benchmark measures the paths as the code runs them. Figures per item, µs, hand encoder → protobuf (ratio
protobuf / hand), each pair measured in one process (the hand-encoded server being the code before
the change, loaded under another package name):

* controller (before its encoder was deleted): table write 11.0 → 4.4 (0.40), register write 2.9 → 0.84
  (0.28), register read decode 3.0 → 0.60 (0.20), PacketOut 0.61 → 0.51 (0.83), PacketIn decode
  3.1 → 1.3 (0.44).
* server, its own code (below) before and after the change (the hand-encoded server of commit 5083ea1
  loaded as ``p4target_old`` through ``PKG``; three runs each, min-max; ratio of the best runs): Write
  decode of 10k LPM updates 8.9-15.2 → 2.7-2.9 (0.30), of 10k register updates 2.8-2.9 → 1.2-1.6
  (0.43); Read of 10k register cells 1.9 → 1.25-1.35 (0.66), of 10k counter cells 1.6 → 1.1-1.4
  (0.70), of 10k LPM entries 6.2-6.3 → 4.3 (0.69); PacketIn 5.0-5.1 → 4.1-4.3 (0.82); PacketOut
  decode 1.5 → 1.0-1.1 (0.69). Protobuf wins on every server path: no hand encoder is left.

Server paths run the server's own code: Write decoding is ``batch.WriteBatch.parse`` then ``chunks()``
(protobuf decodes a chunk of updates at a time behind the framing splitter) plus the reads
``TableCodec.write``/``Entities.write_register`` make of each update; Reads are ``P4RuntimeServer.Read``
on a server (no gRPC port) whose switch runs ``BENCH_P4`` (compiled by the embedded compiler, 10k entries
or cells), each ReadResponse serialized as gRPC does; PacketIn is the switch callback
``_on_packet_in`` up to the serialized StreamMessageResponse; PacketOut is the stream's decoding and the
metadata reads of ``_packet_out`` (not the pipeline run that follows). Controller paths build or parse
batches the way controller/p4rt does — messages filled in place (``add()``, attribute assignment;
keyword constructors copy their arguments and cost up to 3x more under upb), a cached template
``CopyFrom`` for PacketOuts. The time is the best of ``REPEATS`` runs, per item.
``run()`` returns ``{"wire": {"protobuf_impl", "<path>": {"n", "us"}}}``.
Usage: ``python -m bench wire`` (merged into bench/results.json) or ``python -m bench.bench_wire``.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.internal import api_implementation
from p4.v1 import p4runtime_pb2 as pb

REPEATS = 5
ELECTION = (0, 100)
PKG = "p4target"   # the package whose server is measured (an older copy can be compared in one process)


def _best(fn: Callable[[], Any], n: int) -> float:
    """Best per-item time of ``fn`` (which handles ``n`` items), in microseconds."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def _one(n: int, fn: Callable[[], Any]) -> dict:
    return {"n": n, "us": round(_best(fn, n), 3)}


def _bs(v: int) -> bytes:
    return v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")


# ---------------------------------------------------------------------------- controller side
def _gateway_updates(n: int) -> list[tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]]:
    """flow_forwarding-like entries: 5 exact keys, 2 action params."""
    out = []
    for i in range(n):
        exact = [(1, _bs(0x0A000001)), (2, _bs(0x0A000100 + i % 250)), (3, b"\x11"), (4, _bs(1024 + i)),
                 (5, _bs(4791))]
        out.append((exact, [(1, _bs(2 + i % 3)), (2, _bs(i % 1024))]))
    return out


def client_table_write(n: int = 1000) -> dict:
    ups = _gateway_updates(n)


    def proto() -> bytes:
        req = pb.WriteRequest(device_id=0)
        req.election_id.high, req.election_id.low = ELECTION
        for ex, ps in ups:
            u = req.updates.add()
            u.type = 2
            te = u.entity.table_entry
            te.table_id = 33554433
            for fid, v in ex:
                fm = te.match.add()
                fm.field_id, fm.exact.value = fid, v
            a = te.action.action
            a.action_id = 16777217
            for pid, v in ps:
                p = a.params.add()
                p.param_id, p.value = pid, v
        return req.SerializeToString()

    return _one(n, proto)


def client_register_write(n: int = 1000) -> dict:
    cells = [(369098753 + i % 20, i, _bs(i * 7919)) for i in range(n)]


    def proto() -> bytes:
        req = pb.WriteRequest(device_id=0)
        req.election_id.high, req.election_id.low = ELECTION
        for r, i, v in cells:
            u = req.updates.add()
            u.type = 2
            e = u.entity.register_entry
            e.register_id, e.index.index, e.data.bitstring = r, i, v
        return req.SerializeToString()

    return _one(n, proto)


def client_register_read(n: int = 10_000) -> dict:
    """Decoding a 10k-cell register ReadResponse (as the server sends it) into (id, index, value)."""
    resp = pb.ReadResponse()
    for i in range(n):
        r = resp.entities.add().register_entry
        r.register_id, r.index.index, r.data.bitstring = 369098753, i, _bs(i * 7919)
    data = resp.SerializeToString()


    def proto() -> list:
        out = []
        for e in pb.ReadResponse.FromString(data).entities:
            r = e.register_entry
            out.append((r.register_id, r.index.index, int.from_bytes(r.data.bitstring, "big")))
        return out

    return _one(n, proto)


def client_packet_out(n: int = 1000) -> dict:
    frames = [bytes(range(64)) + i.to_bytes(4, "big") for i in range(n)]
    md = [(1, b"\x01"), (2, b"\x00")]
    template = pb.StreamMessageRequest()
    for m, v in md:
        template.packet.metadata.add(metadata_id=m, value=v)


    def proto() -> list:
        out = []
        for f in frames:
            msg = pb.StreamMessageRequest()
            msg.CopyFrom(template)
            msg.packet.payload = f
            out.append(msg.SerializeToString())
        return out

    return _one(n, proto)


def client_packet_in(n: int = 1000) -> dict:
    raws = []
    for i in range(n):
        msg = pb.StreamMessageResponse()
        msg.packet.payload = bytes(range(64)) + i.to_bytes(4, "big")
        msg.packet.metadata.add(metadata_id=1, value=b"\x03")
        msg.packet.metadata.add(metadata_id=2, value=_bs(i % 256))
        raws.append(msg.SerializeToString())


    def proto() -> list:
        out = []
        for r in raws:
            msg = pb.StreamMessageResponse.FromString(r)
            if msg.WhichOneof("update") == "packet":
                p = msg.packet
                out.append((p.payload, [(m.metadata_id, m.value) for m in p.metadata]))
        return out

    return _one(n, proto)


# ---------------------------------------------------------------------------- server side
BENCH_P4 = r"""
#include <core.p4>
#include <v1model.p4>
@controller_header("packet_in")
header packet_in_t { bit<9> ingress_port; bit<7> _pad; bit<8> reason; }
@controller_header("packet_out")
header packet_out_t { bit<9> egress_port; bit<7> _pad; }
header ethernet_t { bit<48> dst; bit<48> src; bit<16> ether_type; }
header ipv4_t { bit<64> _skip; bit<32> src; bit<32> dst; }
struct headers { packet_in_t packet_in; packet_out_t packet_out; ethernet_t ethernet; ipv4_t ipv4; }
struct metadata { }
parser BenchParser(packet_in pkt, out headers h, inout metadata m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.ethernet); pkt.extract(h.ipv4); transition accept; }
}
control BenchVerify(inout headers h, inout metadata m) { apply { } }
control BenchIngress(inout headers h, inout metadata m, inout standard_metadata_t sm) {
    register<bit<32>>(10000) bench_reg;
    counter(10000, CounterType.packets_and_bytes) bench_ctr;
    action drop() { mark_to_drop(sm); }
    action ipv4_forward(bit<48> dstAddr, bit<9> port) { sm.egress_spec = port; h.ethernet.dst = dstAddr; }
    table ipv4_lpm {
        key = { h.ipv4.dst: lpm; }
        actions = { ipv4_forward; drop; }
        size = 16384;
        default_action = drop();
    }
    apply { ipv4_lpm.apply(); bench_reg.write(0, h.ipv4.dst); bench_ctr.count(0); }
}
control BenchEgress(inout headers h, inout metadata m, inout standard_metadata_t sm) { apply { } }
control BenchCompute(inout headers h, inout metadata m) { apply { } }
control BenchDeparser(packet_out pkt, in headers h) {
    apply { pkt.emit(h.packet_in); pkt.emit(h.ethernet); pkt.emit(h.ipv4); }
}
V1Switch(BenchParser(), BenchVerify(), BenchIngress(), BenchEgress(), BenchCompute(), BenchDeparser()) main;
"""


def _mod(name: str) -> Any:
    return importlib.import_module(f"{PKG}.{name}")


def _lpm_updates(n: int, table_id: int, field_id: int, action_id: int) -> bytes:
    """A WriteRequest of n /32 routes (bench_switch's batch shape)."""
    req = pb.WriteRequest(device_id=0)
    req.election_id.high, req.election_id.low = ELECTION
    for i in range(n):
        u = req.updates.add()
        u.type = pb.Update.INSERT
        te = u.entity.table_entry
        te.table_id = table_id
        fm = te.match.add()
        fm.field_id, fm.lpm.value, fm.lpm.prefix_len = field_id, ((11 << 24) | i).to_bytes(4, "big"), 32
        a = te.action.action
        a.action_id = action_id
        for pid, v in ((1, bytes.fromhex("000000000002")), (2, (2).to_bytes(2, "big"))):
            p = a.params.add()
            p.param_id, p.value = pid, v
    return req.SerializeToString()


def _register_updates(n: int, register_id: int) -> bytes:
    req = pb.WriteRequest(device_id=0)
    req.election_id.high, req.election_id.low = ELECTION
    for i in range(n):
        u = req.updates.add()
        u.type = pb.Update.MODIFY
        r = u.entity.register_entry
        r.register_id, r.index.index, r.data.bitstring = register_id, i, _bs(i * 7919 & 0xFFFFFFFF)
    return req.SerializeToString()


class _Context:
    """The part of a gRPC servicer context a successful Write touches (none; errors set metadata)."""

    def set_trailing_metadata(self, md: Any) -> None:
        raise RuntimeError(f"bench Write failed: {md}")

    def peer(self) -> str:
        return "bench"


class BenchServer:
    """A P4RuntimeServer of package ``PKG`` (no gRPC port) over a port-less switch running BENCH_P4, with a
    primary connection; its LPM table holds ``routes`` /32 routes."""

    def __init__(self, routes: int = 10_000) -> None:
        from p4target.compiler import compile_file

        with tempfile.TemporaryDirectory(prefix="bench-wire-") as tmp:
            src = Path(tmp) / "bench_wire.p4"
            src.write_text(BENCH_P4)
            res = compile_file(str(src))
        self.p4info = res.p4info
        switch = _mod("switch").Switch({}, cpu_port=255)
        server_mod, arb = _mod("p4runtime.server"), _mod("p4runtime.arbitration")
        self.server = srv = server_mod.P4RuntimeServer(switch, 0, "127.0.0.1:0")
        self.conn = arb.Connection("bench")
        upd = pb.MasterArbitrationUpdate(device_id=0)
        upd.election_id.high, upd.election_id.low = ELECTION
        srv.arbitrator.update(self.conn, upd)
        cfg = pb.SetForwardingPipelineConfigRequest(device_id=0, action=pb.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        cfg.election_id.high, cfg.election_id.low = ELECTION
        cfg.config.p4info.CopyFrom(res.p4info)
        cfg.config.p4_device_config = json.dumps(res.bmv2_json).encode()
        srv.SetForwardingPipelineConfig(cfg, _Context())
        self.drain()
        self.ids = {o.preamble.name.split(".")[-1]: o.preamble.id
                    for kind in ("tables", "actions", "registers", "counters") for o in getattr(res.p4info, kind)}
        t = next(t for t in res.p4info.tables if t.preamble.name.endswith("ipv4_lpm"))
        self.lpm = (t.preamble.id, t.match_fields[0].id, self.ids["ipv4_forward"])
        srv.WriteRaw(_lpm_updates(routes, *self.lpm), _Context())

    def drain(self) -> list:
        out = []
        while not self.conn.out.empty():
            out.append(self.conn.out.get_nowait())
        return out

    def read(self, entity: pb.Entity) -> list[bytes]:
        """A Read, each ReadResponse serialized (as gRPC's response serializer does)."""
        req = pb.ReadRequest(device_id=0)
        req.entities.add().CopyFrom(entity)
        return [_serialized(r) for r in self.server.Read(req, _Context())]


def _serialized(msg: Any) -> bytes:
    """What the server's gRPC response serializer does (bytes: a hand-encoded message of an older server,
    which its serializer passed through)."""
    return msg if isinstance(msg, bytes) else msg.SerializeToString()


def _read_table_entry(te: Any) -> tuple:
    """What TableCodec.write reads of an entry (the fields it reads, in its order)."""
    match = []
    for fm in te.match:
        which = fm.WhichOneof("field_match_type")
        m = getattr(fm, which)
        match.append((fm.field_id, which, m.value, m.prefix_len if which == "lpm" else 0))
    act = None
    if te.HasField("action"):
        a = te.action.action
        act = (a.action_id, [(p.param_id, p.value) for p in a.params])
    return te.table_id, te.priority, te.is_default_action, match, act


def _read_register_entry(e: Any) -> tuple:
    """What Entities.write_register reads of an update."""
    return e.register_id, e.data.WhichOneof("data"), e.data.bitstring, e.HasField("index"), e.index.index


def _decode(data: bytes, read: Callable[[Any], tuple]) -> int:
    n = 0
    for chunk in _mod("p4runtime.batch").WriteBatch.parse(data).chunks():
        for _utype, _which, obj in chunk:
            read(obj)
            n += 1
    return n


def server_write_decode_table(n: int = 10_000) -> dict:
    """A 10k-update LPM WriteRequest → the values the table codec reads."""
    data = _lpm_updates(n, 33554433, 1, 16777217)
    return _one(n, lambda: _decode(data, _read_table_entry))


def server_write_decode_register(n: int = 10_000) -> dict:
    data = _register_updates(n, 369098753)
    return _one(n, lambda: _decode(data, _read_register_entry))


def server_reads(bs: BenchServer) -> dict[str, dict]:
    """Register, counter and table Reads of 10k entities each."""
    reg, ctr, tbl = pb.Entity(), pb.Entity(), pb.Entity()
    reg.register_entry.register_id = bs.ids["bench_reg"]
    ctr.counter_entry.counter_id = bs.ids["bench_ctr"]
    tbl.table_entry.table_id = bs.lpm[0]
    out = {}
    for name, ent in (("server_register_read_10k", reg), ("server_counter_read_10k", ctr),
                      ("server_table_read_10k", tbl)):
        got = sum(len(pb.ReadResponse.FromString(r).entities) for r in bs.read(ent))
        if got != 10_000:
            raise RuntimeError(f"{name}: {got} entities read, 10,000 expected")
        out[name] = _one(got, lambda ent=ent: bs.read(ent))
    return out


def server_packet_in(bs: BenchServer, n: int = 1000) -> dict:
    """The switch's CPU-port callback: controller header split off, StreamMessageResponse serialized."""
    frames = [bytes([0x00, 0x80 | 0x03, 0x01]) + bytes(range(64)) + i.to_bytes(4, "big") for i in range(n)]
    on_packet_in = bs.server._on_packet_in

    def run_() -> list:
        for f in frames:
            on_packet_in(f)
        out = [_serialized(m) for m in bs.drain()]
        if len(out) != n:
            raise RuntimeError(f"{len(out)} PacketIns for {n} frames")
        return out

    return _one(n, run_)


def server_packet_out(n: int = 1000) -> dict:
    """The stream's decoding of a PacketOut and the reads ``_packet_out`` makes of it."""
    raws = []
    for i in range(n):
        msg = pb.StreamMessageRequest()
        msg.packet.payload = bytes(range(64)) + i.to_bytes(4, "big")
        m = msg.packet.metadata.add()
        m.metadata_id, m.value = 1, b"\x01"
        raws.append(msg.SerializeToString())
    decode = pb.StreamMessageRequest.FromString

    def run_() -> list:
        out = []
        for r in raws:
            req = decode(r)
            if req.WhichOneof("update") == "packet":
                pkt = req.packet
                out.append((pkt.payload, [(md.metadata_id, md.value) for md in pkt.metadata]))
        return out

    return _one(n, run_)


def server_paths() -> dict[str, dict]:
    bs = BenchServer()
    out = {"server_write_decode_table_10k": server_write_decode_table(),
           "server_write_decode_register_10k": server_write_decode_register()}
    out.update(server_reads(bs))
    out["server_packet_in_1k"] = server_packet_in(bs)
    out["server_packet_out_1k"] = server_packet_out()
    return out


CLIENT_PATHS: dict[str, Callable[[], dict]] = {
    "client_table_write_1k": client_table_write, "client_register_write_1k": client_register_write,
    "client_register_read_10k": client_register_read, "client_packet_out_1k": client_packet_out,
    "client_packet_in_1k": client_packet_in,
}


def run() -> dict:
    out: dict[str, Any] = {"protobuf_impl": api_implementation.Type()}
    for name, fn in CLIENT_PATHS.items():
        out[name] = fn()
    out.update(server_paths())
    return {"wire": out}


if __name__ == "__main__":
    res = run()["wire"]
    print(f"protobuf implementation: {res.pop('protobuf_impl')}")
    for k, v in res.items():
        print(f"{k:34s} {v['us']:8.3f} us per item ({v['n']})")
