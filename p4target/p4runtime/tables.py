"""TableEntry and DirectCounterEntry/DirectMeterEntry ↔ pipeline ``Table`` calls.

Validation follows the P4Runtime spec as PI applies it: every exact field present, don't-care fields
omitted (an LPM /0, a ternary mask 0 or a full range is INVALID_ARGUMENT), no bits set outside an LPM
prefix or ternary mask, priorities required exactly on tables with ternary/range/optional fields,
actions allowed by the table's action refs and scopes, every action parameter given once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.errors import P4RTError, from_table_error, invalid, not_found, unimplemented
from p4target.p4runtime.p4info import P4InfoIndex, TableInfo, decode, encode

Update = p4runtime_pb2.Update
Add = Callable[[], Any]  # appends a p4.v1.Entity to the response being built and returns it


def _match_cls():
    from p4target.pipeline import Match

    return Match


def _table_error_cls():
    from p4target.pipeline import TableError

    return TableError


class TableCodec:
    """Translates table entities for one (P4Info, Pipeline) pair."""

    def __init__(self, index: P4InfoIndex, pipeline: Any) -> None:
        self.index = index
        self.pipeline = pipeline
        self.action_ids = {a.name: a.id for a in index.actions.values()}
        self.Match = _match_cls()
        self.TableError = _table_error_cls()
        self._ternary_optional: dict[int, set[int]] = {}

    # ------------------------------------------------------------ helpers
    def ptable(self, tinfo: TableInfo) -> Any:
        try:
            return self.pipeline.tables[tinfo.name]
        except KeyError:
            raise not_found(f"table {tinfo.name} is not in the device config") from None

    def _as_ternary(self, tinfo: TableInfo) -> set[int]:
        """Positions of P4Info optional fields that the JSON implements as ternary (as PI maps them)."""
        cached = self._ternary_optional.get(tinfo.id)
        if cached is None:
            keys = getattr(self.pipeline.tables.get(tinfo.name), "keys", []) or []
            cached = {f.position for f in tinfo.fields.values() if f.kind == "optional"
                      and f.position < len(keys) and getattr(keys[f.position], "match_type", "") == "ternary"}
            self._ternary_optional[tinfo.id] = cached
        return cached

    def build_match(self, tinfo: TableInfo, fms: Any) -> list:
        given: dict[int, Any] = {}
        for fm in fms:
            if fm.field_id not in tinfo.fields:
                raise invalid(f"table {tinfo.name}: unknown match field id {fm.field_id}")
            if fm.field_id in given:
                raise invalid(f"table {tinfo.name}: match field id {fm.field_id} given twice")
            given[fm.field_id] = fm
        match: list = [None] * len(tinfo.fields)
        M = self.Match
        as_ternary = self._as_ternary(tinfo)
        for fid, f in tinfo.fields.items():
            fm = given.get(fid)
            what = f"{tinfo.name} field {f.name}"
            if fm is None:
                if f.kind == "exact":
                    raise invalid(f"{what}: exact match field is missing")
                match[f.position] = M("ternary" if f.position in as_ternary else f.kind, wildcard=True)
                continue
            which = fm.WhichOneof("field_match_type")
            if which != f.kind:
                raise invalid(f"{what}: expected a {f.kind} match, got {which}")
            bw = f.bitwidth
            if which == "exact":
                match[f.position] = M("exact", value=decode(fm.exact.value, bw, what))
            elif which == "optional":
                value = decode(fm.optional.value, bw, what)
                if f.position in as_ternary:
                    match[f.position] = M("ternary", value=value, mask=(1 << bw) - 1)
                else:
                    match[f.position] = M("optional", value=value)
            elif which == "lpm":
                plen = fm.lpm.prefix_len
                if plen <= 0 or plen > bw:
                    raise invalid(f"{what}: prefix length {plen} out of 1..{bw} (omit the field for /0)")
                value = decode(fm.lpm.value, bw, what)
                if value & ((1 << (bw - plen)) - 1):
                    raise invalid(f"{what}: value {value:#x} has bits set beyond the /{plen} prefix")
                match[f.position] = M("lpm", value=value, prefix_len=plen)
            elif which == "ternary":
                value = decode(fm.ternary.value, bw, what)
                mask = decode(fm.ternary.mask, bw, what + " mask")
                if mask == 0:
                    raise invalid(f"{what}: ternary mask is 0 (omit the field for don't care)")
                if value & ~mask:
                    raise invalid(f"{what}: value {value:#x} has bits set outside mask {mask:#x}")
                match[f.position] = M("ternary", value=value, mask=mask)
            elif which == "range":
                low = decode(fm.range.low, bw, what + " low")
                high = decode(fm.range.high, bw, what + " high")
                if low > high:
                    raise invalid(f"{what}: range low {low} > high {high}")
                if low == 0 and high == (1 << bw) - 1:
                    raise invalid(f"{what}: full range (omit the field for don't care)")
                match[f.position] = M("range", value=low, high=high)
        return match

    def check_priority(self, tinfo: TableInfo, priority: int) -> None:
        if tinfo.needs_priority and priority <= 0:
            raise invalid(f"table {tinfo.name} needs a priority > 0 (it has ternary/range/optional keys)")
        if not tinfo.needs_priority and priority != 0:
            raise invalid(f"table {tinfo.name} takes no priority (exact/lpm keys only)")

    def build_action(self, tinfo: TableInfo, ta: Any, default: bool) -> tuple[str, list[int]]:
        which = ta.WhichOneof("type")
        if which != "action":
            if which is None:
                raise invalid(f"table {tinfo.name}: entry has no action")
            raise unimplemented(f"table {tinfo.name}: action profiles are not supported")
        aid = ta.action.action_id
        ainfo = self.index.action(aid)
        if aid not in tinfo.action_ids:
            raise invalid(f"action {ainfo.name} is not an action of table {tinfo.name}")
        if not default and aid in tinfo.default_only:
            raise invalid(f"action {ainfo.name} is @defaultonly in table {tinfo.name}")
        if default and aid in tinfo.table_only:
            raise invalid(f"action {ainfo.name} is @tableonly in table {tinfo.name}")
        params: list[int | None] = [None] * len(ainfo.params)
        for p in ta.action.params:
            spec = ainfo.params.get(p.param_id)
            if spec is None:
                raise invalid(f"action {ainfo.name}: unknown param id {p.param_id}")
            name, bw, pos = spec
            if params[pos] is not None:
                raise invalid(f"action {ainfo.name}: param {name} given twice")
            params[pos] = decode(p.value, bw, f"action {ainfo.name} param {name}")
        missing = [ainfo.params[i][0] for i in ainfo.params if params[ainfo.params[i][2]] is None]
        if missing:
            raise invalid(f"action {ainfo.name}: missing params {', '.join(missing)}")
        return ainfo.name, params  # type: ignore[return-value]

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except self.TableError as exc:
            raise from_table_error(exc) from None

    # ------------------------------------------------------------ writes
    def write(self, utype: int, te: Any) -> None:
        tinfo = self.index.table(te.table_id)
        table = self.ptable(tinfo)
        if te.is_default_action:
            self._write_default(utype, tinfo, table, te)
            return
        if tinfo.is_const:
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED, f"table {tinfo.name} has const entries")
        if te.idle_timeout_ns:
            raise unimplemented("idle timeouts are not supported")
        match = self.build_match(tinfo, te.match)
        self.check_priority(tinfo, te.priority)
        if utype == Update.DELETE:
            self._call(table.delete, match, te.priority)
            return
        if not te.HasField("action"):
            raise invalid(f"table {tinfo.name}: entry has no action")
        action, params = self.build_action(tinfo, te.action, default=False)
        if utype == Update.INSERT:
            entry = self._call(table.add, match, action, params, te.priority)
        elif utype == Update.MODIFY:
            entry = self._call(table.modify, match, te.priority, action, params)
        else:
            raise invalid(f"unsupported update type {utype}")
        if te.HasField("counter_data"):
            _set_counter(entry, te.counter_data)
        if te.HasField("meter_config"):
            self.set_entry_meter(tinfo, entry, te.meter_config)

    def _write_default(self, utype: int, tinfo: TableInfo, table: Any, te: Any) -> None:
        if utype != Update.MODIFY:
            raise invalid(f"table {tinfo.name}: the default entry can only be modified")
        if len(te.match):
            raise invalid(f"table {tinfo.name}: a default entry has no match fields")
        if te.priority:
            raise invalid(f"table {tinfo.name}: a default entry has no priority")
        if tinfo.const_default_action_id and te.HasField("action"):
            raise P4RTError(grpc.StatusCode.PERMISSION_DENIED,
                            f"table {tinfo.name} has a const default action")
        if te.HasField("action"):
            action, params = self.build_action(tinfo, te.action, default=True)
            self._call(table.set_default, action, params)
        else:
            self._call(table.reset_default)

    def set_entry_meter(self, tinfo: TableInfo, entry: Any, cfg: Any) -> None:
        if not tinfo.direct_meter_id:
            raise invalid(f"table {tinfo.name} has no direct meter")
        rates = meter_rates(cfg)
        meter = getattr(entry, "meter", None)
        if meter is not None and hasattr(meter, "configure"):
            meter.configure(rates)
        else:
            entry.meter_config = rates

    def find_entry(self, tinfo: TableInfo, te: Any) -> Any:
        table = self.ptable(tinfo)
        if te.is_default_action:
            return None
        match = self.build_match(tinfo, te.match)
        entry = table.get(match, te.priority)
        if entry is None:
            raise not_found(f"table {tinfo.name}: no such entry")
        return entry

    # ------------------------------------------------------------ reads
    def read(self, te: Any, add: Add) -> Iterator[None]:
        """One TableEntry per matching entry, filled in place into ``add().table_entry`` (lazily, so the
        server can read big tables in slices of the switch lock)."""
        if te.table_id == 0:
            if te.is_default_action or len(te.match):
                raise invalid("a wildcard read over all tables takes no match and no default flag")
            for tinfo in self.index.tables.values():
                yield from self._read_table(tinfo, te, add)
            return
        yield from self._read_table(self.index.table(te.table_id), te, add)

    def _read_table(self, tinfo: TableInfo, te: Any, add: Add) -> Iterator[None]:
        table = self.ptable(tinfo)
        want_counter = te.HasField("counter_data")
        want_meter = te.HasField("meter_config")
        if te.is_default_action:
            action, params = table.get_default()
            msg = add().table_entry
            msg.table_id, msg.is_default_action = tinfo.id, True
            if action:
                self._fill_action(msg.action, action, params)
            if want_counter and tinfo.direct_counter_id:
                pk, by = table.default_counter[0], table.default_counter[1]
                msg.counter_data.packet_count, msg.counter_data.byte_count = pk, by
            yield
            return
        if len(te.match):
            entries = [self.find_entry(tinfo, te)]
        else:
            entries = table.entries()
            if te.priority:
                entries = [e for e in entries if e.priority == te.priority]
        fill = self.entry_to_proto
        for e in entries:
            fill(tinfo, e, want_counter, want_meter, add().table_entry)
            yield

    def _fill_action(self, msg: Any, action: str, params: list[int]) -> None:
        aid = self.action_ids.get(action)
        if aid is None:
            return  # an action the P4Info does not know (should not happen with a matching config)
        act = msg.action
        act.action_id = aid
        add = act.params.add
        for pid, (_name, _bw, pos) in self.index.actions[aid].params.items():
            p = add()
            p.param_id, p.value = pid, encode(params[pos])

    def entry_to_proto(self, tinfo: TableInfo, e: Any, counter: bool = False, meter: bool = False,
                       msg: Any = None) -> Any:
        """The TableEntry of a pipeline entry, filled into ``msg`` when given (filling in place is the
        cheapest way to build a protobuf message under upb: a constructor or CopyFrom copies)."""
        if msg is None:
            msg = p4runtime_pb2.TableEntry()
        msg.table_id = tinfo.id
        if e.priority:
            msg.priority = e.priority
        add = msg.match.add
        for fid, f in tinfo.fields.items():
            m = e.match[f.position]
            if getattr(m, "wildcard", False):
                continue
            kind = f.kind
            if kind == "exact":
                fm = add()
                fm.field_id, fm.exact.value = fid, encode(m.value)
            elif kind == "optional":
                if m.kind == "ternary" and not m.mask:
                    continue
                fm = add()
                fm.field_id, fm.optional.value = fid, encode(m.value)
            elif kind == "lpm":
                if not m.prefix_len:
                    continue
                fm = add()
                fm.field_id = fid
                fm.lpm.value, fm.lpm.prefix_len = encode(m.value), m.prefix_len
            elif kind == "ternary":
                if not m.mask:
                    continue
                fm = add()
                fm.field_id = fid
                fm.ternary.value, fm.ternary.mask = encode(m.value), encode(m.mask)
            elif kind == "range":
                high = m.high if m.high is not None else m.value
                if m.value == 0 and high == (1 << f.bitwidth) - 1:
                    continue
                fm = add()
                fm.field_id = fid
                fm.range.low, fm.range.high = encode(m.value), encode(high)
        self._fill_action(msg.action, e.action, e.params)
        # is_const is not set on reads: PI (simple_switch_grpc) leaves it unset, and BMv2 is the reference
        if counter and tinfo.direct_counter_id:
            pk, by = e.counter[0], e.counter[1]
            msg.counter_data.packet_count, msg.counter_data.byte_count = pk, by
        if meter and tinfo.direct_meter_id and getattr(e, "meter_config", None):
            fill_meter_config(msg.meter_config, e.meter_config)
        return msg


def _set_counter(entry: Any, data: Any) -> None:
    try:
        entry.counter[0] = data.packet_count
        entry.counter[1] = data.byte_count
    except TypeError:  # an immutable pair
        entry.counter = [data.packet_count, data.byte_count]


def meter_rates(cfg: Any) -> list[tuple[float, int]] | None:
    """MeterConfig → pipeline rates [(cir, cburst), (pir, pburst)]; rates go from units per second
    (P4Runtime) to units per microsecond (BMv2 and the pipeline); an empty config clears the meter."""
    if not (cfg.cir or cfg.cburst or cfg.pir or cfg.pburst):
        return None
    if cfg.cir < 0 or cfg.cburst < 0 or cfg.pir < 0 or cfg.pburst < 0:
        raise invalid("meter rates and bursts must be >= 0")
    if cfg.pir < cfg.cir:
        raise invalid(f"meter PIR {cfg.pir} < CIR {cfg.cir}")
    return [(cfg.cir / 1e6, cfg.cburst), (cfg.pir / 1e6, cfg.pburst)]


def fill_meter_config(msg: Any, rates: Any) -> None:
    """Pipeline rates (per microsecond) → MeterConfig (per second)."""
    (cir, cburst), (pir, pburst) = rates
    msg.cir, msg.cburst = round(cir * 1e6), int(cburst)
    msg.pir, msg.pburst = round(pir * 1e6), int(pburst)


def set_direct_counter(codec: TableCodec, dce: Any) -> None:
    tinfo = codec.index.table(dce.table_entry.table_id)
    if not tinfo.direct_counter_id:
        raise invalid(f"table {tinfo.name} has no direct counter")
    if dce.table_entry.is_default_action:
        counter = codec.ptable(tinfo).default_counter
        counter[0], counter[1] = dce.data.packet_count, dce.data.byte_count
        return
    codec.check_priority(tinfo, dce.table_entry.priority)
    _set_counter(codec.find_entry(tinfo, dce.table_entry), dce.data)


def read_direct_counters(codec: TableCodec, dce: Any, add: Add) -> Iterator[None]:
    """One DirectCounterEntry per entry, filled in place (lazily)."""
    te = dce.table_entry
    tids = [te.table_id] if te.table_id else [t for t, i in codec.index.tables.items() if i.direct_counter_id]
    for tid in tids:
        tinfo = codec.index.table(tid)
        if not tinfo.direct_counter_id:
            raise invalid(f"table {tinfo.name} has no direct counter")
        table = codec.ptable(tinfo)
        if te.is_default_action:
            msg = add().direct_counter_entry
            msg.table_entry.table_id, msg.table_entry.is_default_action = tid, True
            msg.data.packet_count, msg.data.byte_count = table.default_counter[0], table.default_counter[1]
            yield
            continue
        entries = [codec.find_entry(tinfo, te)] if len(te.match) else table.entries()
        for e in entries:
            msg = add().direct_counter_entry
            codec.entry_to_proto(tinfo, e, msg=msg.table_entry)
            msg.data.packet_count, msg.data.byte_count = e.counter[0], e.counter[1]
            yield


def set_direct_meter(codec: TableCodec, dme: Any) -> None:
    tinfo = codec.index.table(dme.table_entry.table_id)
    if dme.table_entry.is_default_action:
        raise unimplemented("direct meter of a default entry")
    codec.check_priority(tinfo, dme.table_entry.priority)
    codec.set_entry_meter(tinfo, codec.find_entry(tinfo, dme.table_entry), dme.config)


def read_direct_meters(codec: TableCodec, dme: Any, add: Add) -> Iterator[None]:
    """One DirectMeterEntry per entry, filled in place (lazily)."""
    te = dme.table_entry
    tids = [te.table_id] if te.table_id else [t for t, i in codec.index.tables.items() if i.direct_meter_id]
    for tid in tids:
        tinfo = codec.index.table(tid)
        if not tinfo.direct_meter_id:
            raise invalid(f"table {tinfo.name} has no direct meter")
        entries = [codec.find_entry(tinfo, te)] if len(te.match) else codec.ptable(tinfo).entries()
        for e in entries:
            msg = add().direct_meter_entry
            codec.entry_to_proto(tinfo, e, msg=msg.table_entry)
            if getattr(e, "meter_config", None):
                fill_meter_config(msg.config, e.meter_config)
            yield
