"""What the runtime CLI knows of the loaded program, read from its BMv2 JSON as ``simple_switch_CLI``
reads it (tables with their key fields, actions with their parameters, counter/meter/register
arrays), name lookup by unique dotted suffix, and the CLI's value syntax and byte formats.

Values typed on the command line become ``Bytes`` (an integer and a byte width): a 32-bit field
takes dotted IPv4, a 48-bit one a MAC address, a 128-bit one IPv6, any field an integer (``int(x,
0)``); a value must fit the field's whole bytes. A negative integer becomes 0, as in BMv2's CLI.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter as _Count
from dataclasses import dataclass, field
from typing import Any

MATCH_TYPES = ("exact", "lpm", "ternary", "valid", "range")


class UsageError(Exception):
    """A command the CLI itself rejects: printed as ``Error: <message>``."""


class MatchKeyError(UsageError):
    """Printed as ``Invalid match key: <message>``."""


class RuntimeDataError(UsageError):
    """Printed as ``Invalid runtime data: <message>``."""


class BadParam(Exception):
    """A value that cannot be parsed (wrapped into MatchKeyError / RuntimeDataError)."""


class OperationError(Exception):
    """An operation the switch refuses: printed as ``Invalid <kind> operation (<code>)``."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"Invalid {kind} operation ({code})")
        self.kind, self.code = kind, code


@dataclass(frozen=True)
class Bytes:
    """A value as the CLI sends it: ``value`` on ``width`` bytes."""

    value: int
    width: int

    def printable(self) -> str:
        """``0a:00:01:00`` (the CLI's echo of what it sends)."""
        return ":".join(f"{b:02x}" for b in self.value.to_bytes(self.width, "big"))


def hexstr(value: int, width: int) -> str:
    """``0a000100``: a value on ``width`` bytes, as BMv2's dumps print keys."""
    return value.to_bytes(width, "big").hex() if width else ""


def data_hex(value: int) -> str:
    """Action data as BMv2 returns it: the fewest bytes that hold the value (at least one)."""
    return hexstr(value, max(1, (value.bit_length() + 7) // 8))


def _int_bytes(value: int, width: int) -> Bytes:
    if value < 0:
        value = 0
    if value.bit_length() > 8 * width:
        raise BadParam("Parameter is too large")
    return Bytes(value, width)


def parse_param(text: str, bitwidth: int) -> Bytes:
    """One value for a field or parameter of ``bitwidth`` bits (raises BadParam)."""
    width = (bitwidth + 7) // 8
    if bitwidth == 32 and "." in text:
        parts = text.split(".")
        try:
            octets = [int(p) for p in parts]
        except ValueError:
            raise BadParam("Invalid IPv4 address") from None
        if len(parts) != 4 or any(not 0 <= o <= 255 for o in octets):
            raise BadParam("Invalid IPv4 address")
        return Bytes(int.from_bytes(bytes(octets), "big"), 4)
    if bitwidth == 48 and ":" in text:
        parts = text.split(":")
        try:
            octets = [int(p, 16) for p in parts]
        except ValueError:
            raise BadParam("Invalid MAC address") from None
        if len(parts) != 6 or any(not 0 <= o <= 255 for o in octets):
            raise BadParam("Invalid MAC address")
        return Bytes(int.from_bytes(bytes(octets), "big"), 6)
    if bitwidth == 128 and ":" in text:
        try:
            return Bytes(int(ipaddress.IPv6Address(text)), 16)
        except ValueError:
            raise BadParam("Invalid IPv6 address") from None
    try:
        value = int(text, 0)
    except ValueError:
        raise BadParam("Invalid input, could not cast to integer, try in hex with 0x prefix") from None
    return _int_bytes(value, width)


@dataclass
class KeyField:
    """A table key field as the CLI shows it: ``ipv4.dstAddr``, ``udp_valid``; bitwidth of the
    whole field; ``mask``: the JSON's static mask (key on a slice), else None."""

    name: str
    match_type: str
    bitwidth: int
    mask: int | None = None

    @property
    def width(self) -> int:
        return (self.bitwidth + 7) // 8


@dataclass
class ActionDef:
    name: str
    params: list[tuple[str, int]]

    def describe(self) -> str:
        data = ",\t".join(f"{n}({bw})" for n, bw in self.params)
        return f"{self.name:30} [{data}]"


@dataclass
class TableDef:
    name: str
    match_type: str
    actions: list[str]
    keys: list[KeyField]
    support_timeout: bool
    indirect: str | None = None          # "indirect" / "indirect_ws" (action profiles)
    default_entry_const: bool = False
    default_action_const: bool = False
    default_action: str | None = None

    def describe(self) -> str:
        mk = ",\t".join(f"{k.name}({k.match_type}, {k.bitwidth})" for k in self.keys)
        return f"{self.name:30} [implementation=None, mk={mk}]"

    @property
    def has_priority(self) -> bool:
        return self.match_type in ("ternary", "range")


@dataclass
class ArrayDef:
    """A counter, meter or register array; ``binding`` is the table of a direct one."""

    name: str
    size: int = 0
    binding: str | None = None
    bitwidth: int = 0
    rate_count: int = 2
    unit: str = "packets"


@dataclass
class ProgramInfo:
    tables: dict[str, TableDef] = field(default_factory=dict)
    actions: dict[str, ActionDef] = field(default_factory=dict)
    counters: dict[str, ArrayDef] = field(default_factory=dict)
    meters: dict[str, ArrayDef] = field(default_factory=dict)
    registers: dict[str, ArrayDef] = field(default_factory=dict)
    action_profiles: dict[str, Any] = field(default_factory=dict)
    _suffix: dict[tuple[str, str], Any] = field(default_factory=dict)

    def lookup(self, kind: str, name: str) -> Any:
        """An object by full name or unique dotted suffix; kind is its word in the error message."""
        found = self._suffix.get((kind, name))
        if found is None:
            raise UsageError(f"Invalid {kind} name ({name})")
        return found

    def table_action(self, table: TableDef, name: str) -> ActionDef | None:
        action = self._suffix.get(("action", name))
        return action if action is not None and action.name in table.actions else None

    def _index(self) -> None:
        counts: _Count = _Count()
        pool: dict[tuple[str, str], Any] = {}
        for kind, objs in (("table", self.tables), ("action", self.actions), ("counter", self.counters),
                           ("meter", self.meters), ("register", self.registers),
                           ("action profile", self.action_profiles)):
            for name, obj in objs.items():
                parts = name.split(".")
                for i in range(len(parts)):
                    key = (kind, ".".join(parts[i:]))
                    pool[key] = obj
                    counts[key] += 1
        self._suffix = {k: v for k, v in pool.items() if counts[k] == 1}


def _field_width(doc: dict, header: str, fname: str) -> int:
    htype = next((h["header_type"] for h in doc.get("headers", []) if h["name"] == header), None)
    for ht in doc.get("header_types", []):
        if ht["name"] == htype:
            for f in ht["fields"]:
                if f[0] == fname:
                    return int(f[1])
    return 0


def load_program(json_bytes: bytes | str | dict | None) -> ProgramInfo:
    """The CLI's view of a BMv2 JSON (an empty program for None, like a switch started --no-p4)."""
    info = ProgramInfo()
    if json_bytes is None:
        return info
    doc = json_bytes if isinstance(json_bytes, dict) else json.loads(json_bytes)
    by_id: dict[int, str] = {}
    for a in doc.get("actions", []):
        info.actions[a["name"]] = ActionDef(a["name"], [(p["name"], int(p["bitwidth"]))
                                                       for p in a.get("runtime_data", [])])
        by_id[a["id"]] = a["name"]
    for pipe in doc.get("pipelines", []):
        for ap in pipe.get("action_profiles", []):
            info.action_profiles[ap["name"]] = ap
        for t in pipe.get("tables", []):
            keys = []
            for k in t.get("key", []):
                target, mtype = k["target"], k["match_type"]
                if mtype == "valid":
                    keys.append(KeyField(f"{target}_valid", mtype, 1))
                elif target[1] == "$valid$":
                    keys.append(KeyField(f"{target[0]}_valid", mtype, 1))
                else:
                    mask = int(k["mask"], 16) if k.get("mask") else None
                    keys.append(KeyField(".".join(target), mtype, _field_width(doc, target[0], target[1]), mask))
            default = t.get("default_entry") or {}
            info.tables[t["name"]] = TableDef(
                t["name"], t.get("match_type", "exact"), list(t.get("actions", [])), keys,
                bool(t.get("support_timeout")), t["type"] if t.get("type") != "simple" else None,
                bool(default.get("action_entry_const")), bool(default.get("action_const")),
                by_id.get(default.get("action_id", -1)))
    for c in doc.get("counter_arrays", []):
        info.counters[c["name"]] = ArrayDef(c["name"], int(c.get("size", 0)),
                                            c.get("binding") if c.get("is_direct") else None)
    for m in doc.get("meter_arrays", []):
        info.meters[m["name"]] = ArrayDef(m["name"], int(m.get("size", 0)),
                                          m.get("binding") if m.get("is_direct") else None,
                                          rate_count=int(m.get("rate_count", 2)), unit=m.get("type", "packets"))
    for r in doc.get("register_arrays", []):
        info.registers[r["name"]] = ArrayDef(r["name"], int(r["size"]), bitwidth=int(r["bitwidth"]))
    info._index()
    return info
