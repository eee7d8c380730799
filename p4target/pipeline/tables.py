"""Match-action tables: entries, matching structures and the control-plane API (add, modify,
delete, get, default action) with P4Runtime semantics and errors.

Lookup structures are built for the per-packet code that `codegen` generates:
exact tables are one dict, LPM tables one dict per prefix length (longest first), tables with
ternary/range/optional keys one list sorted by priority (larger wins, then insertion order).
The generated code holds references to these containers, so they are only mutated in place.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .state import MeterCell, TableError

__all__ = ["KeySpec", "Match", "Entry", "Table", "ActionInfo", "TableError"]

HANDLE_INDEX_MASK = 0xFFFFFF   # entry handle = (version << 24) | index, as BMv2

MATCH_KINDS = ("exact", "lpm", "ternary", "range", "optional", "valid")


@dataclass(frozen=True)
class KeySpec:
    """One key field: `name` as in the JSON (P4Info match field name), kind and width in bits."""

    name: str
    match_type: str
    bitwidth: int


@dataclass
class Match:
    """One key field of an entry. exact/valid/optional use `value`; lpm `value`+`prefix_len`;
    ternary `value`+`mask`; range `value` (low) .. `high`. `wildcard` marks a don't-care field
    (P4Runtime omits those); exact fields cannot be wildcarded."""

    kind: str
    value: int = 0
    mask: int | None = None
    prefix_len: int | None = None
    high: int | None = None
    wildcard: bool = False


@dataclass
class ActionInfo:
    """An action as tables see it: id, name, per-packet function and parameter widths."""

    id: int
    name: str
    fn: Callable[..., Any]
    param_widths: list[int]


class Entry:
    """A table entry. `counter` is the direct counter [packets, bytes]; `meter_config` the direct
    meter's rates or None; `handle` is unique within the table."""

    __slots__ = ("match", "priority", "action", "params", "counter", "meter", "handle",
                 "fn", "args", "aid", "ident", "_mv", "_ranges")

    def __init__(self, match: list[Match], priority: int, info: ActionInfo | None,
                 params: tuple[int, ...], handle: int | None) -> None:
        self.match = match
        self.priority = priority
        self.params = list(params)
        self.counter = [0, 0]
        self.meter = MeterCell()
        self.handle = handle
        self.bind(info, params)

    def bind(self, info: ActionInfo | None, params: tuple[int, ...]) -> None:
        self.params = list(params)
        self.args = tuple(params)
        if info is None:
            self.action, self.fn, self.aid = None, _no_action, -1
        else:
            self.action, self.fn, self.aid = info.name, info.fn, info.id

    @property
    def meter_config(self) -> list[tuple[float, int]] | None:
        return self.meter.rates

    def __repr__(self) -> str:
        return (f"Entry(handle={self.handle}, match={self.match}, priority={self.priority}, "
                f"action={self.action!r}, params={self.params})")


def _no_action(P: Any, F: Any, A: Any) -> None:  # noqa: N803 - generated-code calling convention
    return None


class Table:
    """A match-action table of the pipeline (see the contract in docs/internals.md)."""

    def __init__(self, name: str, table_id: int, keys: list[KeySpec], action_names: list[str],
                 actions: dict[str, ActionInfo], size: int, direct_counter: str | None,
                 direct_meter: str | None) -> None:
        self.name = name
        self.id = table_id
        self.keys = keys
        self.action_names = action_names
        self.size = size
        self.direct_counter = direct_counter
        self.direct_meter = direct_meter
        self.is_const = False
        self.default_is_const = False
        self._actions = actions
        kinds = {k.match_type for k in keys}
        self.needs_priority = bool(kinds & {"ternary", "range", "optional"})
        lpm = [i for i, k in enumerate(keys) if k.match_type == "lpm"]
        if len(lpm) > 1 and not self.needs_priority:
            raise TableError("INVALID_ARGUMENT", f"table '{name}': more than one lpm key")
        if self.needs_priority:
            self.kind = "ternary"
        elif lpm:
            self.kind = "lpm"
        else:
            self.kind = "exact"
        self._lpm_pos = lpm[0] if lpm and not self.needs_priority else -1
        # combined key layout for ternary tables: field i sits at bit offset _shifts[i]
        self._shifts: list[int] = []
        off = 0
        for k in reversed(keys):
            self._shifts.insert(0, off)
            off += k.bitwidth
        self.exact: dict[Any, Entry] = {}
        self.levels: list[tuple[int, dict[Any, Entry]]] = []   # (shift, dict), longest prefix first
        self._level_by_plen: dict[int, dict[Any, Entry]] = {}
        self.ternary: list[tuple[int, int, Entry]] = []       # (mask, value, entry) in match order
        self._has_ranges = "range" in kinds
        self._by_ident: dict[tuple, Entry] = {}
        # BMv2 entry handles: (version << 24) | index, the lowest free index first; a slot's
        # version grows when its entry is deleted (a stale handle is EXPIRED), clear() resets them
        self._next_index = 0
        self._free: list[int] = []
        self._versions: dict[int, int] = {}
        self._seq: dict[int, int] = {}
        self.default: Entry = Entry([], 0, None, (), None)
        self._initial_default: tuple[str | None, tuple[int, ...]] = (None, ())

    # ---- per-packet lookup (generated code calls these for the generic cases) ----
    def lookup(self, key: Any) -> Entry | None:
        """Entry matching `key` (a value for one-key tables, else a tuple in key order), or None."""
        if self.kind == "exact":
            return self.exact.get(key)
        if self.kind == "lpm":
            if len(self.keys) == 1:
                for shift, d in self.levels:
                    e = d.get(key >> shift)
                    if e is not None:
                        return e
                return None
            pos = self._lpm_pos
            for shift, d in self.levels:
                k = key[:pos] + (key[pos] >> shift,) + key[pos + 1:]
                e = d.get(k)
                if e is not None:
                    return e
            return None
        combined = key if len(self.keys) == 1 else self.combine(key)
        return self.lookup_combined(combined)

    def combine(self, key: tuple[int, ...]) -> int:
        out = 0
        for value, spec in zip(key, self.keys, strict=True):
            out = (out << spec.bitwidth) | value
        return out

    def lookup_combined(self, k: int) -> Entry | None:
        if not self._has_ranges:
            for mask, value, e in self.ternary:
                if k & mask == value:
                    return e
            return None
        for mask, value, e in self.ternary:
            if k & mask == value:
                for shift, wmask, lo, hi in e._ranges:
                    if not lo <= (k >> shift) & wmask <= hi:
                        break
                else:
                    return e
        return None

    # ---- control plane ----
    def _action(self, action: str, params: list[int] | tuple[int, ...]) -> tuple[ActionInfo, tuple[int, ...]]:
        if action not in self.action_names:
            raise TableError("INVALID_ARGUMENT", f"table '{self.name}': action '{action}' not allowed "
                             f"(allowed: {', '.join(self.action_names)})")
        info = self._actions[action]
        params = tuple(params)
        if len(params) != len(info.param_widths):
            raise TableError("INVALID_ARGUMENT", f"action '{action}' takes {len(info.param_widths)} "
                             f"parameters, got {len(params)}")
        for i, (v, w) in enumerate(zip(params, info.param_widths, strict=True)):
            if not isinstance(v, int) or v < 0 or v >> w:
                raise TableError("INVALID_ARGUMENT",
                                 f"action '{action}' parameter {i + 1}: {v!r} does not fit {w} bits")
        return info, params

    def _normalize(self, match: list[Match]) -> tuple[tuple, int, int, tuple]:
        """(identity tuple, combined mask, combined value, ranges) for a match list."""
        if len(match) != len(self.keys):
            raise TableError("INVALID_ARGUMENT", f"table '{self.name}' has {len(self.keys)} key fields, "
                             f"got {len(match)}")
        ident = []
        cmask = cvalue = 0
        ranges = []
        for i, (m, spec) in enumerate(zip(match, self.keys, strict=True)):
            w = spec.bitwidth
            full = (1 << w) - 1
            kind = spec.match_type
            where = f"table '{self.name}' key '{spec.name}'"
            if not isinstance(m, Match):
                raise TableError("INVALID_ARGUMENT", f"{where}: expected a Match, got {m!r}")
            if m.kind != kind and not (kind == "valid" and m.kind == "exact"):
                raise TableError("INVALID_ARGUMENT", f"{where}: is {kind}, got a {m.kind} match")
            value = m.value
            if not isinstance(value, int) or value < 0 or value > full:
                raise TableError("INVALID_ARGUMENT", f"{where}: value {value!r} does not fit {w} bits")
            if kind in ("exact", "valid"):
                if m.wildcard:
                    raise TableError("INVALID_ARGUMENT", f"{where}: exact field cannot be wildcarded")
                ident.append(value)
                mask = full
            elif kind == "lpm":
                plen = 0 if m.wildcard else m.prefix_len
                if plen is None or not 0 <= plen <= w:
                    raise TableError("INVALID_ARGUMENT", f"{where}: prefix length {plen!r} outside [0, {w}]")
                mask = full ^ ((1 << (w - plen)) - 1)
                if m.wildcard:
                    value = 0
                elif value & ~mask:
                    raise TableError("INVALID_ARGUMENT", f"{where}: value has bits set beyond the prefix")
                ident.append((value, plen))
            elif kind in ("ternary", "optional"):
                if m.wildcard:
                    mask, value = 0, 0
                elif kind == "optional":
                    mask = full
                else:
                    mask = m.mask if m.mask is not None else full
                    if not isinstance(mask, int) or mask < 0 or mask > full:
                        raise TableError("INVALID_ARGUMENT", f"{where}: mask {mask!r} does not fit {w} bits")
                    if value & ~mask:
                        raise TableError("INVALID_ARGUMENT", f"{where}: value has bits set outside the mask")
                ident.append((value, mask))
            elif kind == "range":
                lo, hi = (0, full) if m.wildcard else (value, m.high)
                if hi is None or not isinstance(hi, int) or not lo <= hi <= full:
                    raise TableError("INVALID_ARGUMENT", f"{where}: bad range [{lo}, {hi}]")
                ident.append((lo, hi))
                mask, value = 0, 0
                if (lo, hi) != (0, full):
                    ranges.append((self._shifts[i], full, lo, hi))
            else:
                raise TableError("INVALID_ARGUMENT", f"{where}: unsupported match kind {kind}")
            cmask = (cmask << w) | mask
            cvalue = (cvalue << w) | (value & mask)
        return tuple(ident), cmask, cvalue, tuple(ranges)

    def _check_priority(self, priority: int) -> None:
        if self.needs_priority:
            if not isinstance(priority, int) or priority <= 0 or priority >= 1 << 31:
                raise TableError("INVALID_ARGUMENT", f"table '{self.name}' needs a priority in [1, 2^31)")
        elif priority != 0:
            raise TableError("INVALID_ARGUMENT", f"table '{self.name}' takes no priority (got {priority})")

    def _check_mutable(self) -> None:
        if self.is_const:
            raise TableError("PERMISSION_DENIED", f"table '{self.name}' has const entries")

    def add(self, match: list[Match], action: str, params: list[int] | tuple[int, ...] = (),
            priority: int = 0) -> Entry:
        self._check_mutable()
        return self._add(match, action, params, priority)

    def _add(self, match: list[Match], action: str, params: list[int] | tuple[int, ...],
             priority: int) -> Entry:
        self._check_priority(priority)
        ident, cmask, cvalue, ranges = self._normalize(match)
        info, params = self._action(action, params)
        key = (ident, priority if self.needs_priority else 0)
        if key in self._by_ident:
            raise TableError("ALREADY_EXISTS", f"table '{self.name}': entry already exists")
        if len(self._by_ident) >= self.size:
            raise TableError("RESOURCE_EXHAUSTED", f"table '{self.name}' is full ({self.size} entries)")
        if self._free:
            index = heapq.heappop(self._free)
        else:
            index, self._next_index = self._next_index, self._next_index + 1
        entry = Entry(list(match), priority, info, params, (self._versions.get(index, 0) << 24) | index)
        entry.ident = key
        entry._mv = (cmask, cvalue)
        entry._ranges = ranges
        self._by_ident[key] = entry
        self._insert(entry)
        return entry

    def _insert(self, entry: Entry) -> None:
        ident = entry.ident[0]
        if self.kind == "exact":
            self.exact[ident[0] if len(ident) == 1 else ident] = entry
        elif self.kind == "lpm":
            pos = self._lpm_pos
            value, plen = ident[pos]
            w = self.keys[pos].bitwidth
            d = self._level_by_plen.get(plen)
            if d is None:
                d = self._level_by_plen[plen] = {}
                order = sorted(self._level_by_plen, reverse=True)
                self.levels[:] = [(self.keys[pos].bitwidth - p, self._level_by_plen[p]) for p in order]
            dk = value >> (w - plen)
            if len(ident) == 1:
                d[dk] = entry
            else:
                d[ident[:pos] + (dk,) + ident[pos + 1:]] = entry
        else:
            mask, value = entry._mv
            lst = self.ternary
            # keep sorted by descending priority, stable for equal priority (insertion order)
            i = len(lst)
            while i > 0 and lst[i - 1][2].priority < entry.priority:
                i -= 1
            lst.insert(i, (mask, value, entry))

    def _remove(self, entry: Entry) -> None:
        ident = entry.ident[0]
        if self.kind == "exact":
            del self.exact[ident[0] if len(ident) == 1 else ident]
        elif self.kind == "lpm":
            pos = self._lpm_pos
            value, plen = ident[pos]
            w = self.keys[pos].bitwidth
            d = self._level_by_plen[plen]
            dk = value >> (w - plen)
            del d[dk if len(ident) == 1 else ident[:pos] + (dk,) + ident[pos + 1:]]
            if not d:
                del self._level_by_plen[plen]
                self.levels[:] = [lv for lv in self.levels if lv[1] is not d]
        else:
            for i, item in enumerate(self.ternary):
                if item[2] is entry:
                    del self.ternary[i]
                    break

    def _find(self, match: list[Match], priority: int) -> Entry:
        self._check_priority(priority)
        ident = self._normalize(match)[0]
        entry = self._by_ident.get((ident, priority if self.needs_priority else 0))
        if entry is None:
            raise TableError("NOT_FOUND", f"table '{self.name}': no such entry")
        return entry

    def modify(self, match: list[Match], priority: int, action: str,
               params: list[int] | tuple[int, ...] = ()) -> Entry:
        self._check_mutable()
        entry = self._find(match, priority)
        info, params = self._action(action, params)
        entry.bind(info, params)
        return entry

    def delete(self, match: list[Match], priority: int = 0) -> Entry:
        self._check_mutable()
        entry = self._find(match, priority)
        del self._by_ident[entry.ident]
        self._remove(entry)
        index = entry.handle & HANDLE_INDEX_MASK
        self._versions[index] = (self._versions.get(index, 0) + 1) & 0xFF
        heapq.heappush(self._free, index)
        return entry

    def get(self, match: list[Match], priority: int = 0) -> Entry | None:
        try:
            return self._find(match, priority)
        except TableError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    def entries(self) -> list[Entry]:
        """Entries in handle-index order (as BMv2 lists them)."""
        return sorted(self._by_ident.values(), key=lambda e: e.handle & HANDLE_INDEX_MASK)

    def clear(self) -> None:
        """Delete every (non-const) entry."""
        self._check_mutable()
        self._by_ident.clear()
        self._next_index, self._free, self._versions = 0, [], {}
        self.exact.clear()
        self.levels.clear()
        self._level_by_plen.clear()
        self.ternary.clear()

    def set_meter(self, entry: Entry, rates: list[tuple[float, int]] | None) -> None:
        """Configure an entry's direct meter ([(cir, cburst), (pir, pburst)] or None)."""
        if self.direct_meter is None:
            raise TableError("INVALID_ARGUMENT", f"table '{self.name}' has no direct meter")
        if rates is not None and len(rates) != 2:
            raise TableError("INVALID_ARGUMENT", "a direct meter takes [(cir, cburst), (pir, pburst)]")
        entry.meter.configure(rates)

    # ---- default entry ----
    def set_default(self, action: str, params: list[int] | tuple[int, ...] = ()) -> None:
        if self.default_is_const:
            raise TableError("PERMISSION_DENIED", f"table '{self.name}': default action is const")
        info, params = self._action(action, params)
        self.default.bind(info, params)

    def get_default(self) -> tuple[str | None, list[int]]:
        return self.default.action, list(self.default.params)

    def reset_default(self) -> None:
        action, params = self._initial_default
        if action is None:
            self.default.bind(None, ())
        else:
            info, params = self._action(action, params)
            self.default.bind(info, params)

    @property
    def default_counter(self) -> list[int]:
        return self.default.counter
