"""Micro-benchmark: the hand-written P4Runtime wire codecs against plain protobuf, in one process.

For each path a hand-written codec serves (``controller/p4rt/wire.py`` on the client,
``p4target/p4runtime/wire.py`` in the server), both variants turn the same inputs into the same bytes, or
the same bytes into the same values that the caller reads, and the time of a batch is the best of
``REPEATS`` runs. Protobuf is the installed runtime (``protobuf_impl`` in the results: upb in the main
venv); its variant uses the generated classes the plain way — messages filled in place (``add()``,
attribute assignment; keyword constructors copy their arguments and cost up to 3x more under upb), a
cached template ``CopyFrom`` for PacketOuts, ``SerializeToString``/``FromString``, attribute reads — and
includes serialization, as gRPC would do it for a message.

``run()`` returns ``{"wire": {"protobuf_impl", "<path>": {"n", "hand_us", "protobuf_us", "ratio"}}}`` with
per-item microseconds and ratio = protobuf / hand (> 1: the hand codec is faster).
Usage: ``python -m bench wire`` (merged into bench/results.json) or ``python -m bench.bench_wire``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from google.protobuf.internal import api_implementation
from p4.v1 import p4runtime_pb2 as pb

from controller.p4rt import wire as cwire
from p4target.p4runtime import wire as swire

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


def _pair(n: int, hand: Callable[[], Any], proto: Callable[[], Any], check: Callable[[Any, Any], bool]) -> dict:
    if not check(hand(), proto()):
        raise AssertionError("the hand-written and protobuf variants disagree")
    h, p = _best(hand, n), _best(proto, n)
    return {"n": n, "hand_us": round(h, 3), "protobuf_us": round(p, 3), "ratio": round(p / h, 2)}


def _same_message(cls: Any) -> Callable[[Any, Any], bool]:
    """Equal once parsed (the hand encoders write some proto3 defaults, e.g. index 0, that protobuf omits)."""
    def check(a: Any, b: Any) -> bool:
        if isinstance(a, bytes):
            return cls.FromString(a) == cls.FromString(b)
        return len(a) == len(b) and all(cls.FromString(x) == cls.FromString(y) for x, y in zip(a, b, strict=True))
    return check


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

    def hand() -> bytes:
        return cwire.write_request(0, ELECTION, [cwire.table_update(2, 33554433, ex, 16777217, ps)
                                                 for ex, ps in ups])

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

    return _pair(n, hand, proto, lambda a, b: a == b)


def client_register_write(n: int = 1000) -> dict:
    cells = [(369098753 + i % 20, i, _bs(i * 7919)) for i in range(n)]

    def hand() -> bytes:
        return cwire.write_request(0, ELECTION, [cwire.register_update(2, r, i, v) for r, i, v in cells])

    def proto() -> bytes:
        req = pb.WriteRequest(device_id=0)
        req.election_id.high, req.election_id.low = ELECTION
        for r, i, v in cells:
            u = req.updates.add()
            u.type = 2
            e = u.entity.register_entry
            e.register_id, e.index.index, e.data.bitstring = r, i, v
        return req.SerializeToString()

    return _pair(n, hand, proto, lambda a, b: a == b)


def client_register_read(n: int = 10_000) -> dict:
    """Decoding a 10k-cell register ReadResponse (as the server sends it) into (id, index, value)."""
    data = swire.read_response([swire.entity_register(369098753, i, i * 7919) for i in range(n)])

    def hand() -> list:
        return cwire.decode_register_read(data)

    def proto() -> list:
        out = []
        for e in pb.ReadResponse.FromString(data).entities:
            r = e.register_entry
            out.append((r.register_id, r.index.index, int.from_bytes(r.data.bitstring, "big")))
        return out

    return _pair(n, hand, proto, lambda a, b: a == b)


def client_packet_out(n: int = 1000) -> dict:
    frames = [bytes(range(64)) + i.to_bytes(4, "big") for i in range(n)]
    md = [(1, b"\x01"), (2, b"\x00")]
    md_hand = cwire.packet_metadata(md)
    template = pb.StreamMessageRequest()
    for m, v in md:
        template.packet.metadata.add(metadata_id=m, value=v)

    def hand() -> list:
        return [cwire.packet_out_request(f, md_hand) for f in frames]

    def proto() -> list:
        out = []
        for f in frames:
            msg = pb.StreamMessageRequest()
            msg.CopyFrom(template)
            msg.packet.payload = f
            out.append(msg.SerializeToString())
        return out

    return _pair(n, hand, proto, lambda a, b: a == b)


def client_packet_in(n: int = 1000) -> dict:
    raws = [swire.packet_in(bytes(range(64)) + i.to_bytes(4, "big"), [(1, 3), (2, i % 256)]) for i in range(n)]

    def hand() -> list:
        return [cwire.decode_packet_in(r) for r in raws]

    def proto() -> list:
        out = []
        for r in raws:
            msg = pb.StreamMessageResponse.FromString(r)
            if msg.WhichOneof("update") == "packet":
                p = msg.packet
                out.append((p.payload, [(m.metadata_id, m.value) for m in p.metadata]))
        return out

    return _pair(n, hand, proto, lambda a, b: a == b)


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

    def hand() -> list:
        _hdr, updates = swire.decode_write(data)
        return [(t, k, _read_table_entry(o)) for t, k, o in updates]

    def proto() -> list:
        out = []
        for u in pb.WriteRequest.FromString(data).updates:
            which = u.entity.WhichOneof("entity")
            out.append((u.type, which, _read_table_entry(getattr(u.entity, which))))
        return out

    return _pair(n, hand, proto, lambda a, b: a == b)


def server_register_read(n: int = 10_000) -> dict:
    """Encoding a 10k-cell register ReadResponse from (index, value) cells."""
    cells = [(i, i * 7919) for i in range(n)]

    def hand() -> bytes:
        return swire.read_response([swire.entity_register(369098753, i, v) for i, v in cells])

    def proto() -> bytes:
        resp = pb.ReadResponse()
        add = resp.entities.add
        for i, v in cells:
            r = add().register_entry
            r.register_id, r.index.index, r.data.bitstring = 369098753, i, _bs(v)
        return resp.SerializeToString()

    return _pair(n, hand, proto, _same_message(pb.ReadResponse))


def server_counter_read(n: int = 10_000) -> dict:
    cells = [(i, i % 7, i * 64) for i in range(n)]

    def hand() -> bytes:
        return swire.read_response([swire.entity_counter(302011001, i, p, b) for i, p, b in cells])

    def proto() -> bytes:
        resp = pb.ReadResponse()
        add = resp.entities.add
        for i, p, b in cells:
            c = add().counter_entry
            c.counter_id, c.index.index = 302011001, i
            c.data.packet_count, c.data.byte_count = p, b
        return resp.SerializeToString()

    return _pair(n, hand, proto, _same_message(pb.ReadResponse))


def server_table_read(n: int = 10_000) -> dict:
    """Encoding a 10k-entry LPM table ReadResponse (the entries' values already at hand)."""
    rows = [((11 << 24) | i, 32, 2) for i in range(n)]

    def hand() -> bytes:
        return swire.read_response([swire.entity_table(swire.table_entry(
            33554433, 0, [(1, "lpm", v, plen)], 16777217, [(1, 2), (2, port)])) for v, plen, port in rows])

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

    return _pair(n, hand, proto, _same_message(pb.ReadResponse))


def server_packet_in(n: int = 1000) -> dict:
    frames = [bytes(range(64)) + i.to_bytes(4, "big") for i in range(n)]

    def hand() -> list:
        return [swire.packet_in(f, [(1, 3), (2, 0)]) for f in frames]

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

    return _pair(n, hand, proto, _same_message(pb.StreamMessageResponse))


def server_packet_out(n: int = 1000) -> dict:
    raws = [cwire.packet_out_request(bytes(range(64)) + i.to_bytes(4, "big"), cwire.packet_metadata([(1, b"\x01")]))
            for i in range(n)]

    def hand() -> list:
        out = []
        for r in raws:
            po = swire.decode_stream_request(r)
            out.append((po.payload, po.metadata))
        return out

    def proto() -> list:
        out = []
        for r in raws:
            req = pb.StreamMessageRequest.FromString(r)
            if req.WhichOneof("update") == "packet":
                out.append((req.packet.payload, [(m.metadata_id, m.value) for m in req.packet.metadata]))
        return out

    return _pair(n, hand, proto, lambda a, b: a == b)


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
        print(f"{k:28s} hand {v['hand_us']:8.3f} us  protobuf {v['protobuf_us']:8.3f} us  ratio {v['ratio']:5.2f}")

