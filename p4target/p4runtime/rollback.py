"""Undo records for ROLLBACK_ON_ERROR / DATAPLANE_ATOMIC Write batches.

Before an update is applied, ``undo_for`` captures what it will change and returns a closure that
restores it (table entries with their counters, default actions, register/counter cells, meter rates,
PRE entries, digest configs). The server applies a batch under the switch lock, so no packet sees a
partial batch, and runs the closures in reverse order when an update fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p4.v1 import p4runtime_pb2

from p4target.p4runtime.p4info import P4InfoIndex

Update = p4runtime_pb2.Update
Undo = Callable[[], None]


def _noop() -> None:
    return None


def undo_for(server: Any, utype: int, which: str | None, obj: Any) -> Undo:
    """A closure undoing (utype, which, obj) on ``server``'s current state; a no-op when the update
    would fail validation anyway (the update itself then raises)."""
    try:
        fn = _BUILDERS.get(which or "")
        return fn(server, utype, obj) if fn else _noop
    except Exception:  # noqa: BLE001 - the update will raise its own, precise error
        return _noop


def _table(server: Any, utype: int, te: Any) -> Undo:
    codec = server.codec
    tinfo = codec.index.table(te.table_id)
    table = codec.ptable(tinfo)
    if te.is_default_action:
        action, params = table.get_default()
        if action is None:
            return table.reset_default
        return lambda: table.set_default(action, params)
    match = codec.build_match(tinfo, te.match)
    prio = te.priority
    old = table.get(match, prio)
    if utype == Update.INSERT:
        return (lambda: table.delete(match, prio)) if old is None else _noop
    if old is None:
        return _noop
    action, params, counter = old.action, list(old.params), list(old.counter)
    rates = getattr(old, "meter_config", None)
    if utype == Update.MODIFY:
        return lambda: table.modify(match, prio, action, params)

    def reinsert() -> None:
        entry = table.add(match, action, params, prio)
        entry.counter[0], entry.counter[1] = counter
        if rates and hasattr(entry, "meter"):
            entry.meter.configure(rates)

    return reinsert


def _register(server: Any, utype: int, e: Any) -> Undo:
    info = P4InfoIndex.lookup("register", server.index.registers, e.register_id)
    reg = server.switch.pipeline.registers[info.name]
    idx = [e.index.index] if e.HasField("index") else range(reg.size)
    saved = [(i, reg.read(i)) for i in idx if 0 <= i < reg.size]
    return lambda: [reg.write(i, v) for i, v in saved] and None


def _counter(server: Any, utype: int, e: Any) -> Undo:
    info = P4InfoIndex.lookup("counter", server.index.counters, e.counter_id)
    ctr = server.switch.pipeline.counters[info.name]
    idx = [e.index.index] if e.HasField("index") else range(ctr.size)
    saved = [(i, *ctr.read(i)) for i in idx if 0 <= i < ctr.size]
    return lambda: [ctr.write(i, p, b) for i, p, b in saved] and None


def _meter(server: Any, utype: int, e: Any) -> Undo:
    info = P4InfoIndex.lookup("meter", server.index.meters, e.meter_id)
    meter = server.switch.pipeline.meters[info.name]
    idx = [e.index.index] if e.HasField("index") else range(meter.size)
    saved = [(i, meter.get_rates(i)) for i in idx if 0 <= i < meter.size]
    return lambda: [meter.set_rates(i, r) for i, r in saved] and None


def _direct_counter(server: Any, utype: int, dce: Any) -> Undo:
    codec = server.codec
    tinfo = codec.index.table(dce.table_entry.table_id)
    if dce.table_entry.is_default_action:
        counter = codec.ptable(tinfo).default_counter
    else:
        counter = codec.find_entry(tinfo, dce.table_entry).counter
    old = (counter[0], counter[1])

    def restore() -> None:
        counter[0], counter[1] = old

    return restore


def _direct_meter(server: Any, utype: int, dme: Any) -> Undo:
    codec = server.codec
    tinfo = codec.index.table(dme.table_entry.table_id)
    entry = codec.find_entry(tinfo, dme.table_entry)
    rates = entry.meter_config
    return lambda: entry.meter.configure(rates)


def _pre(server: Any, utype: int, e: Any) -> Undo:
    ents = server.entities
    which = e.WhichOneof("type")
    if which == "multicast_group_entry":
        key, store, field = e.multicast_group_entry.multicast_group_id, ents.mc_groups, "multicast_group_entry"
    elif which == "clone_session_entry":
        key, store, field = e.clone_session_entry.session_id, ents.clone_sessions, "clone_session_entry"
    else:
        return _noop
    old = store.get(key)
    if old is None:
        if utype != Update.INSERT:
            return _noop
        undo = p4runtime_pb2.PacketReplicationEngineEntry()
        getattr(undo, field).CopyFrom(getattr(e, field))
        return lambda: ents.write_pre(Update.DELETE, undo)
    undo = p4runtime_pb2.PacketReplicationEngineEntry()
    getattr(undo, field).CopyFrom(old)
    kind = Update.INSERT if utype == Update.DELETE else Update.MODIFY
    return (lambda: ents.write_pre(kind, undo)) if utype != Update.INSERT else _noop


def _digest(server: Any, utype: int, e: Any) -> Undo:
    digests = server.digests
    old = digests.config.get(e.digest_id)
    if old is None:
        return (lambda: digests.config.pop(e.digest_id, None) and None) if utype == Update.INSERT else _noop
    saved = p4runtime_pb2.DigestEntry.Config()
    saved.CopyFrom(old)

    def restore() -> None:
        digests.config[e.digest_id] = saved

    return restore


_BUILDERS: dict[str, Callable[[Any, int, Any], Undo]] = {
    "table_entry": _table,
    "register_entry": _register,
    "counter_entry": _counter,
    "meter_entry": _meter,
    "direct_counter_entry": _direct_counter,
    "direct_meter_entry": _direct_meter,
    "packet_replication_engine_entry": _pre,
    "digest_entry": _digest,
}
