"""P4Info index and value codec: ids ↔ names, match-field and parameter widths, canonical bytestrings.

P4Runtime 1.3 canonical binary strings carry no leading zero bytes; older clients (the tutorials' helper)
zero-pad to the field width. Both decode to the same integer here; a value wider than its field is
OUT_OF_RANGE. Encoding (reads, PacketIn metadata, digests) is always canonical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p4.config.v1 import p4info_pb2

from p4target.p4runtime.errors import P4RTError, invalid, not_found, out_of_range

MATCH_KINDS = {
    p4info_pb2.MatchField.EXACT: "exact",
    p4info_pb2.MatchField.LPM: "lpm",
    p4info_pb2.MatchField.TERNARY: "ternary",
    p4info_pb2.MatchField.RANGE: "range",
    p4info_pb2.MatchField.OPTIONAL: "optional",
}


def decode(value: bytes, bitwidth: int, what: str) -> int:
    """Binary string → int, accepting canonical and zero-padded forms."""
    if not value:
        raise invalid(f"{what}: empty bytestring")
    v = int.from_bytes(value, "big")
    if bitwidth and v >> bitwidth:
        raise out_of_range(f"{what}: value {v:#x} does not fit in {bitwidth} bits")
    return v


def encode(v: int, bitwidth: int = 0) -> bytes:
    """int → canonical binary string (no leading zero bytes; 0 is one zero byte)."""
    return v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")


@dataclass
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    kind: str  # exact / lpm / ternary / range / optional
    position: int  # index in the table key (JSON key element)


@dataclass
class TableInfo:
    id: int
    name: str
    fields: dict[int, MatchFieldInfo]
    action_ids: set[int]
    default_only: set[int]
    table_only: set[int]
    const_default_action_id: int
    is_const: bool
    needs_priority: bool
    direct_counter_id: int = 0
    direct_meter_id: int = 0


@dataclass
class ActionInfo:
    id: int
    name: str
    params: dict[int, tuple[str, int, int]]  # id -> (name, bitwidth, position)


@dataclass
class SizedInfo:
    """A register, counter, meter (indirect or direct) or digest."""

    id: int
    name: str
    size: int = 0
    bitwidth: int = 0
    table_id: int = 0  # direct resources
    unit: int = 0


@dataclass
class P4InfoIndex:
    p4info: p4info_pb2.P4Info
    tables: dict[int, TableInfo] = field(default_factory=dict)
    actions: dict[int, ActionInfo] = field(default_factory=dict)
    registers: dict[int, SizedInfo] = field(default_factory=dict)
    counters: dict[int, SizedInfo] = field(default_factory=dict)
    direct_counters: dict[int, SizedInfo] = field(default_factory=dict)
    meters: dict[int, SizedInfo] = field(default_factory=dict)
    direct_meters: dict[int, SizedInfo] = field(default_factory=dict)
    digests: dict[int, SizedInfo] = field(default_factory=dict)
    digest_by_name: dict[str, SizedInfo] = field(default_factory=dict)
    packet_in: list[tuple[int, str, int]] = field(default_factory=list)  # (id, name, bitwidth)
    packet_out: list[tuple[int, str, int]] = field(default_factory=list)

    @classmethod
    def build(cls, p4info: p4info_pb2.P4Info) -> P4InfoIndex:
        idx = cls(p4info)
        for a in p4info.actions:
            params = {p.id: (p.name, p.bitwidth, i) for i, p in enumerate(a.params)}
            idx.actions[a.preamble.id] = ActionInfo(a.preamble.id, a.preamble.name, params)
        for t in p4info.tables:
            fields = {}
            needs_priority = False
            for i, mf in enumerate(t.match_fields):
                kind = MATCH_KINDS.get(mf.match_type)
                if kind is None:
                    raise invalid(f"table {t.preamble.name}: unsupported match type on field {mf.name}")
                needs_priority |= kind in ("ternary", "range", "optional")
                fields[mf.id] = MatchFieldInfo(mf.id, mf.name, mf.bitwidth, kind, i)
            refs = {r.id for r in t.action_refs}
            default_only = {r.id for r in t.action_refs if r.scope == p4info_pb2.ActionRef.DEFAULT_ONLY}
            table_only = {r.id for r in t.action_refs if r.scope == p4info_pb2.ActionRef.TABLE_ONLY}
            if t.implementation_id:
                raise invalid(f"table {t.preamble.name}: action profiles are not supported")
            info = TableInfo(t.preamble.id, t.preamble.name, fields, refs, default_only, table_only,
                             t.const_default_action_id, t.is_const_table, needs_priority)
            for rid in t.direct_resource_ids:
                if (rid >> 24) == p4info_pb2.P4Ids.DIRECT_COUNTER:
                    info.direct_counter_id = rid
                elif (rid >> 24) == p4info_pb2.P4Ids.DIRECT_METER:
                    info.direct_meter_id = rid
            idx.tables[t.preamble.id] = info
        for r in p4info.registers:
            width = r.type_spec.bitstring.bit.bitwidth or r.type_spec.bitstring.int.bitwidth
            idx.registers[r.preamble.id] = SizedInfo(r.preamble.id, r.preamble.name, r.size, width)
        for c in p4info.counters:
            idx.counters[c.preamble.id] = SizedInfo(c.preamble.id, c.preamble.name, c.size, unit=c.spec.unit)
        for c in p4info.direct_counters:
            idx.direct_counters[c.preamble.id] = SizedInfo(c.preamble.id, c.preamble.name,
                                                           table_id=c.direct_table_id, unit=c.spec.unit)
        for m in p4info.meters:
            idx.meters[m.preamble.id] = SizedInfo(m.preamble.id, m.preamble.name, m.size, unit=m.spec.unit)
        for m in p4info.direct_meters:
            idx.direct_meters[m.preamble.id] = SizedInfo(m.preamble.id, m.preamble.name,
                                                         table_id=m.direct_table_id, unit=m.spec.unit)
        for d in p4info.digests:
            info = SizedInfo(d.preamble.id, d.preamble.name)
            idx.digests[d.preamble.id] = info
            idx.digest_by_name[d.preamble.name] = info
        for cpm in p4info.controller_packet_metadata:
            fields_ = [(m.id, m.name, m.bitwidth) for m in cpm.metadata]
            if cpm.preamble.name == "packet_in":
                idx.packet_in = fields_
            elif cpm.preamble.name == "packet_out":
                idx.packet_out = fields_
        return idx

    def table(self, table_id: int) -> TableInfo:
        try:
            return self.tables[table_id]
        except KeyError:
            raise not_found(f"table id {table_id} not found") from None

    def action(self, action_id: int) -> ActionInfo:
        try:
            return self.actions[action_id]
        except KeyError:
            raise not_found(f"action id {action_id} not found") from None

    @staticmethod
    def lookup(kind: str, table: dict, ident: int) -> SizedInfo:
        try:
            return table[ident]
        except KeyError:
            raise not_found(f"{kind} id {ident} not found") from None


def pack_metadata(fields: list[tuple[int, str, int]], values: dict[int, int]) -> bytes:
    """Serialize controller-header metadata (field order, bit-packed, big-endian) into header bytes."""
    acc = 0
    total = 0
    for fid, _name, width in fields:
        acc = (acc << width) | values.get(fid, 0)
        total += width
    if total % 8:
        raise P4RTError(invalid("").code, f"controller header is {total} bits, not byte-aligned")
    return acc.to_bytes(total // 8, "big")


def unpack_metadata(fields: list[tuple[int, str, int]], data: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """Split a packet into its controller-header metadata [(id, value)] and the payload after it."""
    total = sum(w for _i, _n, w in fields)
    nbytes = (total + 7) // 8
    if len(data) < nbytes:
        raise invalid(f"packet shorter ({len(data)} bytes) than its controller header ({nbytes} bytes)")
    acc = int.from_bytes(data[:nbytes], "big")
    shift = nbytes * 8
    out = []
    for fid, _name, width in fields:
        shift -= width
        out.append((fid, (acc >> shift) & ((1 << width) - 1)))
    return out, data[nbytes:]
