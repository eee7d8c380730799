"""Micro-benchmark: the P4Runtime message paths of the controller and the embedded server, plain protobuf.

The controller (controller/p4rt) and the P4Runtime server (p4target/p4runtime) hand-encoded these paths
(two ``wire.py`` modules, ~600 lines) because protobuf was the pure-Python 3.20. With protobuf's upb
runtime this benchmark, run in one process against both encoders, gave per item (hand → protobuf, µs;
ratio = protobuf / hand; the second of three runs, all alike: every ratio < 1). The controller's encoder
is deleted; the server's is still in use (its chunked Writes, batch.py, frame on top of it), so the
server_* figures here are protobuf's alternative to it: client table write 11.0 → 4.4 (0.40), register write 2.9 → 0.84 (0.28), register read decode
3.0 → 0.60 (0.20), PacketOut 0.61 → 0.51 (0.83), PacketIn decode 3.1 → 1.3 (0.44); server Write decode
8.5 → 2.8 (0.33), register read encode 1.7 → 0.93 (0.55), counter read 1.7 → 0.83 (0.49), table read
4.8 → 4.3 (0.90), PacketIn encode 2.0 → 1.5 (0.73), PacketOut decode 1.4 → 1.1 (0.79).

Each path builds or parses a batch the way the code does now — messages filled in place (``add()``,
attribute assignment; keyword constructors copy their arguments and cost up to 3x more under upb), a
cached template ``CopyFrom`` for PacketOuts, ``SerializeToString``/``FromString``, attribute reads —
including serialization, as gRPC does it; the time is the best of ``REPEATS`` runs, per item.
``run()`` returns ``{"wire": {"protobuf_impl", "<path>": {"n", "us"}}}``.
Usage: ``python -m bench wire`` (merged into bench/results.json) or ``python -m bench.bench_wire``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.protobuf.internal import api_implementation
from p4.v1 import p4runtime_pb2 as pb

REPEATS = 5
ELECTION = (0, 100)


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


def server_write_decode(n: int = 1000) -> dict:
    """A 1,000-update LPM WriteRequest (bench_switch's batch) → the values the table codec reads."""
    req = pb.WriteRequest(device_id=0, election_id=pb.Uint128(low=1))
    for i in range(n):
        te = pb.TableEntry(table_id=33554433)
        fm = te.match.add(field_id=1)
        fm.lpm.value, fm.lpm.prefix_len = ((11 << 24) | i).to_bytes(4, "big"), 32
        te.action.action.action_id = 16777217
        te.action.action.params.add(param_id=1, value=bytes.fromhex("000000000002"))
        te.action.action.params.add(param_id=2, value=(2).to_bytes(2, "big"))
        req.updates.add(type=1).entity.table_entry.CopyFrom(te)
    data = req.SerializeToString()


    def proto() -> list:
        out = []
        for u in pb.WriteRequest.FromString(data).updates:
            which = u.entity.WhichOneof("entity")
            out.append((u.type, which, _read_table_entry(getattr(u.entity, which))))
        return out

    return _one(n, proto)


def server_register_read(n: int = 10_000) -> dict:
    """Encoding a 10k-cell register ReadResponse from (index, value) cells."""
    cells = [(i, i * 7919) for i in range(n)]


    def proto() -> bytes:
        resp = pb.ReadResponse()
        add = resp.entities.add
        for i, v in cells:
            r = add().register_entry
            r.register_id, r.index.index, r.data.bitstring = 369098753, i, _bs(v)
        return resp.SerializeToString()

    return _one(n, proto)


def server_counter_read(n: int = 10_000) -> dict:
    cells = [(i, i % 7, i * 64) for i in range(n)]


    def proto() -> bytes:
        resp = pb.ReadResponse()
        add = resp.entities.add
        for i, p, b in cells:
            c = add().counter_entry
            c.counter_id, c.index.index = 302011001, i
            c.data.packet_count, c.data.byte_count = p, b
        return resp.SerializeToString()

    return _one(n, proto)


def server_table_read(n: int = 10_000) -> dict:
    """Encoding a 10k-entry LPM table ReadResponse (the entries' values already at hand)."""
    rows = [((11 << 24) | i, 32, 2) for i in range(n)]


    def proto() -> bytes:
        resp = pb.ReadResponse()
        add = resp.entities.add
        for v, plen, port in rows:
            te = add().table_entry
            te.table_id = 33554433
            fm = te.match.add()
            fm.field_id, fm.lpm.value, fm.lpm.prefix_len = 1, _bs(v), plen
            a = te.action.action
            a.action_id = 16777217
            for pid, pv in ((1, 2), (2, port)):
                p = a.params.add()
                p.param_id, p.value = pid, _bs(pv)
        return resp.SerializeToString()

    return _one(n, proto)


def server_packet_in(n: int = 1000) -> dict:
    frames = [bytes(range(64)) + i.to_bytes(4, "big") for i in range(n)]


    def proto() -> list:
        out = []
        for f in frames:
            msg = pb.StreamMessageResponse()
            pkt = msg.packet
            pkt.payload = f
            for mid, v in ((1, 3), (2, 0)):
                m = pkt.metadata.add()
                m.metadata_id, m.value = mid, _bs(v)
            out.append(msg.SerializeToString())
        return out

    return _one(n, proto)


def server_packet_out(n: int = 1000) -> dict:
    raws = []
    for i in range(n):
        msg = pb.StreamMessageRequest()
        msg.packet.payload = bytes(range(64)) + i.to_bytes(4, "big")
        msg.packet.metadata.add(metadata_id=1, value=b"\x01")
        raws.append(msg.SerializeToString())


    def proto() -> list:
        out = []
        for r in raws:
            req = pb.StreamMessageRequest.FromString(r)
            if req.WhichOneof("update") == "packet":
                out.append((req.packet.payload, [(m.metadata_id, m.value) for m in req.packet.metadata]))
        return out

    return _one(n, proto)


PATHS: dict[str, Callable[[], dict]] = {
    "client_table_write_1k": client_table_write, "client_register_write_1k": client_register_write,
    "client_register_read_10k": client_register_read, "client_packet_out_1k": client_packet_out,
    "client_packet_in_1k": client_packet_in, "server_write_decode_1k": server_write_decode,
    "server_register_read_10k": server_register_read, "server_counter_read_10k": server_counter_read,
    "server_table_read_10k": server_table_read, "server_packet_in_1k": server_packet_in,
    "server_packet_out_1k": server_packet_out,
}


def run() -> dict:
    out: dict[str, Any] = {"protobuf_impl": api_implementation.Type()}
    for name, fn in PATHS.items():
        out[name] = fn()
    return {"wire": out}


if __name__ == "__main__":
    res = run()["wire"]
    print(f"protobuf implementation: {res.pop('protobuf_impl')}")
    for k, v in res.items():
        print(f"{k:28s} {v['us']:8.3f} us per item ({v['n']})")

