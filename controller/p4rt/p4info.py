"""Name-based access to a P4 program through its P4Info.

Owns the mapping between P4Info names and ids (tables, match fields, actions and their params,
registers, counters, direct counters, meters, digests, controller packet metadata) and the builders
that turn name-based descriptions into P4Runtime protobuf entities (and back). The names accepted are
the fully qualified preamble names (``MyIngress.flow_forwarding``) or their aliases
(``flow_forwarding``), as p4runtime-shell accepts them. Values go through ``codec`` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from . import codec

__all__ = ["P4InfoError", "P4InfoHelper", "load_p4info", "FieldInfo", "TableInfo"]


class P4InfoError(KeyError):
    """Unknown P4 object name or id, or a malformed name-based description."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""


def load_p4info(path: str | Path) -> p4info_pb2.P4Info:
    """Load a P4Info from a text-format (``.txt``/``.txtpb``) or binary (``.bin``/``.pb``) file."""
    path = Path(path)
    data = path.read_bytes()
    info = p4info_pb2.P4Info()
    if path.suffix in (".bin", ".pb"):
        info.ParseFromString(data)
    else:
        text_format.Merge(data.decode(), info, allow_unknown_field=True)
    return info


@dataclass(frozen=True)
class FieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: int = 0  # p4info MatchField.MatchType for match fields, 0 otherwise


@dataclass
class TableInfo:
    id: int
    name: str
    match_fields: dict[str, FieldInfo] = field(default_factory=dict)
    action_ids: list[int] = field(default_factory=list)
    size: int = 0


@dataclass
class ObjectInfo:
    kind: str
    id: int
    name: str
    alias: str
    bitwidth: int = 0
    size: int = 0
    fields: dict[str, FieldInfo] = field(default_factory=dict)  # action params, digest/packet metadata


_MT = p4info_pb2.MatchField


class P4InfoHelper:
    """Names ↔ ids for one P4Info, and builders for the entities of that program."""

    KINDS = ("table", "action", "register", "counter", "direct_counter", "meter", "digest",
             "controller_packet_metadata")

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self._by_name: dict[str, dict[str, ObjectInfo]] = {k: {} for k in self.KINDS}
        self._by_id: dict[int, ObjectInfo] = {}
        self.tables: dict[int, TableInfo] = {}
        structs = {name: s for name, s in p4info.type_info.structs.items()}

        def add(kind: str, preamble: Any, **kw: Any) -> ObjectInfo:
            obj = ObjectInfo(kind, preamble.id, preamble.name, preamble.alias or preamble.name, **kw)
            self._by_name[kind][obj.name] = obj
            if obj.alias and obj.alias not in self._by_name[kind]:
                self._by_name[kind][obj.alias] = obj
            short = obj.name.rsplit(".", 1)[-1]
            self._by_name[kind].setdefault(short, obj)
            self._by_id[obj.id] = obj
            return obj

        for a in p4info.actions:
            add("action", a.preamble,
                fields={p.name: FieldInfo(p.id, p.name, p.bitwidth) for p in a.params})
        for t in p4info.tables:
            add("table", t.preamble, size=t.size)
            ti = TableInfo(t.preamble.id, t.preamble.name, size=t.size,
                           action_ids=[r.id for r in t.action_refs])
            for mf in t.match_fields:
                ti.match_fields[mf.name] = FieldInfo(mf.id, mf.name, mf.bitwidth, mf.match_type)
            self.tables[ti.id] = ti
        for r in p4info.registers:
            add("register", r.preamble, bitwidth=r.type_spec.bitstring.bit.bitwidth, size=r.size)
        for c in p4info.counters:
            add("counter", c.preamble, size=c.size)
        for c in p4info.direct_counters:
            add("direct_counter", c.preamble)
        for m in p4info.meters:
            add("meter", m.preamble, size=m.size)
        for d in p4info.digests:
            members: dict[str, FieldInfo] = {}
            if d.type_spec.HasField("struct"):
                st = structs.get(d.type_spec.struct.name)
                if st is not None:
                    for i, mem in enumerate(st.members, start=1):
                        members[mem.name] = FieldInfo(i, mem.name, mem.type_spec.bitstring.bit.bitwidth)
            add("digest", d.preamble, fields=members)
        for cpm in p4info.controller_packet_metadata:
            add("controller_packet_metadata", cpm.preamble,
                fields={m.name: FieldInfo(m.id, m.name, m.bitwidth) for m in cpm.metadata})

    # ---- lookups ---------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> ObjectInfo:
        try:
            return self._by_name[kind][name]
        except KeyError:
            known = sorted({o.name for o in self._by_name.get(kind, {}).values()})
            raise P4InfoError(f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})") from None

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_name.get(kind, {})

    def get_id(self, kind: str, name: str) -> int:
        return self.get(kind, name).id

    def get_name(self, obj_id: int) -> str:
        try:
            return self._by_id[obj_id].name
        except KeyError:
            raise P4InfoError(f"unknown P4Info id {obj_id}") from None

    def names(self, kind: str) -> list[str]:
        return sorted({o.name for o in self._by_name[kind].values()})

    def table(self, name: str) -> TableInfo:
        return self.tables[self.get_id("table", name)]

    def match_field(self, table: str, fname: str) -> FieldInfo:
        ti = self.table(table)
        if fname in ti.match_fields:
            return ti.match_fields[fname]
        for f in ti.match_fields.values():  # accept the last component ("hdr.ipv4.dst" -> "dst")
            if f.name.rsplit(".", 1)[-1] == fname:
                return f
        raise P4InfoError(f"table {ti.name!r} has no match field {fname!r} "
                          f"(fields: {', '.join(ti.match_fields)})")

    def action_param(self, action: str, pname: str) -> FieldInfo:
        act = self.get("action", action)
        try:
            return act.fields[pname]
        except KeyError:
            raise P4InfoError(f"action {act.name!r} has no parameter {pname!r} "
                              f"(params: {', '.join(act.fields) or 'none'})") from None

    def register_width(self, name: str) -> int:
        return self.get("register", name).bitwidth

    def cookie(self, device_config: bytes) -> int:
        """A 64-bit pipeline cookie derived from the P4Info and the device config."""
        h = hashlib.sha256(self.p4info.SerializeToString(deterministic=True) + device_config).digest()
        return int.from_bytes(h[:8], "big")

    # ---- builders --------------------------------------------------------------------------------
    def field_match(self, table: str, fname: str, value: Any) -> p4runtime_pb2.FieldMatch:
        """Build one FieldMatch. ``value`` by match type: exact v; lpm (v, plen) or "a.b.c.d/n";
        ternary (v, mask); range (lo, hi); optional v."""
        f = self.match_field(table, fname)
        fm = p4runtime_pb2.FieldMatch(field_id=f.id)
        if f.match_type == _MT.EXACT:
            fm.exact.value = codec.encode(value, f.bitwidth)
        elif f.match_type == _MT.LPM:
            if isinstance(value, str) and "/" in value:
                addr, plen_s = value.split("/", 1)
                value = (addr, int(plen_s))
            v, plen = value
            mask = codec.lpm_mask(plen, f.bitwidth)
            fm.lpm.value = codec.encode_int(codec.parse_value(v, f.bitwidth) & mask, f.bitwidth)
            fm.lpm.prefix_len = plen
        elif f.match_type == _MT.TERNARY:
            v, m = value
            mask = codec.parse_value(m, f.bitwidth)
            fm.ternary.value = codec.encode_int(codec.parse_value(v, f.bitwidth) & mask, f.bitwidth)
            fm.ternary.mask = codec.encode_int(mask, f.bitwidth)
        elif f.match_type == _MT.RANGE:
            lo, hi = value
            fm.range.low = codec.encode(lo, f.bitwidth)
            fm.range.high = codec.encode(hi, f.bitwidth)
        elif f.match_type == _MT.OPTIONAL:
            fm.optional.value = codec.encode(value, f.bitwidth)
        else:
            raise P4InfoError(f"unsupported match type {f.match_type} for {fname!r}")
        return fm

    def action(self, action: str, params: Mapping[str, Any] | None = None) -> p4runtime_pb2.Action:
        act = self.get("action", action)
        params = dict(params or {})
        missing = [p for p in act.fields if p not in params]
        extra = [p for p in params if p not in act.fields]
        if missing or extra:
            raise P4InfoError(f"action {act.name!r}: missing params {missing}, unknown params {extra}")
        msg = p4runtime_pb2.Action(action_id=act.id)
        for pname, pinfo in act.fields.items():
            msg.params.add(param_id=pinfo.id, value=codec.encode(params[pname], pinfo.bitwidth))
        return msg

    def table_entry(self, table: str, match: Mapping[str, Any] | None = None, action: str | None = None,
                    params: Mapping[str, Any] | None = None, priority: int = 0,
                    is_default: bool = False) -> p4runtime_pb2.TableEntry:
        te = p4runtime_pb2.TableEntry(table_id=self.get_id("table", table), priority=priority)
        te.is_default_action = is_default
        for fname, value in (match or {}).items():
            te.match.append(self.field_match(table, fname, value))
        if action is not None:
            te.action.action.CopyFrom(self.action(action, params))
        return te

    def table_update_raw(self, utype: int, table: str, match: Mapping[str, Any] | p4runtime_pb2.TableEntry,
                         action: str | None = None, params: Mapping[str, Any] | None = None,
                         priority: int = 0) -> p4runtime_pb2.Update:
        """An ``Update`` of an exact-match table entry, filled in place (the batch writers' fast path:
        a third of the cost of building it with constructors, bench/bench_wire.py). ``match`` may be a
        ``TableEntry`` of this table holding the match only (made by this method with no action, kept by
        a caller that writes the same key again): it is copied, half the cost of encoding the fields."""
        up = p4runtime_pb2.Update()
        up.type = utype
        te = up.entity.table_entry
        if isinstance(match, p4runtime_pb2.TableEntry):
            te.CopyFrom(match)
            te.ClearField("action")
        else:
            te.table_id = self.get_id("table", table)
            for fname, value in match.items():
                f = self.match_field(table, fname)
                if f.match_type != _MT.EXACT:
                    raise P4InfoError(f"table_update_raw supports exact matches only ({fname!r})")
                fm = te.match.add()
                fm.field_id, fm.exact.value = f.id, codec.encode(value, f.bitwidth)
        if priority:
            te.priority = priority
        if action is None:
            return up
        act = self.get("action", action)
        params = params or {}
        if set(params) != set(act.fields):
            raise P4InfoError(f"action {act.name!r}: params {sorted(params)} != {sorted(act.fields)}")
        a = te.action.action
        a.action_id = act.id
        for n, p in act.fields.items():
            ap = a.params.add()
            v = params[n]
            # plain ints (the batch writers') skip parse_value; encode_int still checks them
            ap.param_id, ap.value = p.id, (codec.encode_int(v, p.bitwidth) if type(v) is int
                                           else codec.encode(v, p.bitwidth))
        return up

    def register_update_raw(self, name: str, index: int, value: int) -> p4runtime_pb2.Update:
        """A MODIFY ``Update`` of one register cell, filled in place."""
        reg = self.get("register", name)
        up = p4runtime_pb2.Update()
        up.type = p4runtime_pb2.Update.MODIFY
        r = up.entity.register_entry
        r.register_id, r.index.index, r.data.bitstring = reg.id, index, codec.encode_int(value, reg.bitwidth)
        return up

    def register_entry(self, name: str, index: int | None = None,
                       value: int | None = None) -> p4runtime_pb2.RegisterEntry:
        reg = self.get("register", name)
        re_ = p4runtime_pb2.RegisterEntry(register_id=reg.id)
        if index is not None:
            if not 0 <= index < max(reg.size, 1):
                raise P4InfoError(f"register {reg.name!r} index {index} outside 0..{reg.size - 1}")
            re_.index.index = index
        if value is not None:
            re_.data.bitstring = codec.encode_int(value, reg.bitwidth)
        return re_

    def counter_entry(self, name: str, index: int | None = None) -> p4runtime_pb2.CounterEntry:
        ce = p4runtime_pb2.CounterEntry(counter_id=self.get_id("counter", name))
        if index is not None:
            ce.index.index = index
        return ce

    def digest_entry(self, name: str, max_timeout_ns: int = 0, max_list_size: int = 1,
                     ack_timeout_ns: int = 1_000_000_000) -> p4runtime_pb2.DigestEntry:
        de = p4runtime_pb2.DigestEntry(digest_id=self.get_id("digest", name))
        de.config.max_timeout_ns = max_timeout_ns
        de.config.max_list_size = max_list_size
        de.config.ack_timeout_ns = ack_timeout_ns
        return de

    def packet_out(self, payload: bytes, metadata: Mapping[str, Any] | None = None) -> p4runtime_pb2.PacketOut:
        po = p4runtime_pb2.PacketOut(payload=payload)
        if not self.has("controller_packet_metadata", "packet_out"):
            if metadata:
                raise P4InfoError("program has no packet_out controller header")
            return po
        cpm = self.get("controller_packet_metadata", "packet_out")
        metadata = dict(metadata or {})
        unknown = [k for k in metadata if k not in cpm.fields]
        if unknown:
            raise P4InfoError(f"packet_out has no metadata {unknown} (fields: {', '.join(cpm.fields)})")
        for mname, minfo in cpm.fields.items():
            po.metadata.add(metadata_id=minfo.id, value=codec.encode(metadata.get(mname, 0), minfo.bitwidth))
        return po

    # ---- decoders --------------------------------------------------------------------------------
    def packet_metadata(self, kind: str, metadata: Any) -> dict[str, int]:
        """Decode PacketIn/PacketOut metadata (repeated PacketMetadata) into {name: int}."""
        if not self.has("controller_packet_metadata", kind):
            return {}
        cpm = self.get("controller_packet_metadata", kind)
        by_id = {f.id: f for f in cpm.fields.values()}
        out: dict[str, int] = {}
        for m in metadata:
            f = by_id.get(m.metadata_id)
            out[f.name if f else str(m.metadata_id)] = codec.decode_int(m.value)
        return out

    def digest_members(self, digest_id: int, data: Any) -> dict[str, int]:
        """Decode one DigestList data item (a P4Data struct) into {member name: int}."""
        obj = self._by_id.get(digest_id)
        names = list(obj.fields) if obj else []
        if data.HasField("struct"):
            members = data.struct.members
        else:
            members = [data]
        out: dict[str, int] = {}
        for i, m in enumerate(members):
            key = names[i] if i < len(names) else f"f{i}"
            out[key] = codec.decode_int(m.bitstring) if m.bitstring else 0
        return out

    def decode_match(self, entry: p4runtime_pb2.TableEntry) -> dict[str, Any]:
        ti = self.tables.get(entry.table_id)
        by_id = {f.id: f for f in ti.match_fields.values()} if ti else {}
        out: dict[str, Any] = {}
        for fm in entry.match:
            f = by_id.get(fm.field_id)
            name = f.name if f else str(fm.field_id)
            which = fm.WhichOneof("field_match_type")
            if which == "exact":
                out[name] = codec.decode_int(fm.exact.value)
            elif which == "lpm":
                out[name] = (codec.decode_int(fm.lpm.value), fm.lpm.prefix_len)
            elif which == "ternary":
                out[name] = (codec.decode_int(fm.ternary.value), codec.decode_int(fm.ternary.mask))
            elif which == "range":
                out[name] = (codec.decode_int(fm.range.low), codec.decode_int(fm.range.high))
            elif which == "optional":
                out[name] = codec.decode_int(fm.optional.value)
        return out

    def decode_action(self, entry: p4runtime_pb2.TableEntry) -> tuple[str, dict[str, int]]:
        act = entry.action.action
        obj = self._by_id.get(act.action_id)
        if obj is None:
            return (str(act.action_id), {})
        by_id = {f.id: f for f in obj.fields.values()}
        return obj.name, {by_id[p.param_id].name if p.param_id in by_id else str(p.param_id):
                          codec.decode_int(p.value) for p in act.params}
