"""Table commands of the runtime CLI in ``simple_switch_CLI`` syntax (table_add/modify/delete/clear,
table_set_default/reset_default).

    table_add MyIngress.ipv4_lpm ipv4_forward 10.0.1.0/24 => 00:00:00:00:01:01 1
    table_add acl drop 0x0800&&&0xffff 10.0.0.0&&&0xff000000 => 10        (ternary: priority last)

Match syntax per key kind: exact ``V``; lpm ``V/LEN``; ternary ``V&&&MASK``; range ``LO->HI``; optional
``V``; ``*`` is a don't-care (ternary/lpm/range/optional). Values are integers (decimal or 0x hex),
dotted IPv4, IPv6 or colon-separated MAC addresses. Actions may be named by their last component.
"""

from __future__ import annotations

import ipaddress
from typing import Any


class TableSyntaxError(ValueError):
    pass


def parse_value(text: str, bitwidth: int, what: str) -> int:
    try:
        if text.count(":") == 5 and all(len(p) <= 2 for p in text.split(":")):
            v = int(text.replace(":", ""), 16)
        elif "." in text or ":" in text:
            v = int(ipaddress.ip_address(text))
        else:
            v = int(text, 0)
    except ValueError:
        raise TableSyntaxError(f"{what}: cannot parse '{text}'") from None
    if v < 0 or (bitwidth and v >> bitwidth):
        raise TableSyntaxError(f"{what}: {text} does not fit in {bitwidth} bits")
    return v


def _match_cls() -> Any:
    from p4target.pipeline import Match

    return Match


def parse_match(table: Any, words: list[str]) -> list:
    keys = table.keys
    if len(words) != len(keys):
        names = ", ".join(f"{k.name} ({k.match_type})" for k in keys)
        raise TableSyntaxError(f"table {table.name} has {len(keys)} key fields ({names}), got {len(words)}")
    M = _match_cls()
    out = []
    for k, w in zip(keys, words, strict=True):
        kind, bw, what = k.match_type, k.bitwidth, f"key {k.name}"
        if w == "*" and kind != "exact":
            out.append(M(kind, wildcard=True))
        elif kind == "lpm":
            value, _, plen = w.partition("/")
            if not plen.isdigit() or int(plen) > bw:
                raise TableSyntaxError(f"{what}: expected VALUE/PREFIX_LEN (prefix <= {bw}), got '{w}'")
            out.append(M("lpm", value=parse_value(value, bw, what), prefix_len=int(plen)))
        elif kind == "ternary":
            value, sep, mask = w.partition("&&&")
            if not sep:
                raise TableSyntaxError(f"{what}: expected VALUE&&&MASK, got '{w}'")
            out.append(M("ternary", value=parse_value(value, bw, what), mask=parse_value(mask, bw, what)))
        elif kind == "range":
            low, sep, high = w.partition("->")
            if not sep:
                raise TableSyntaxError(f"{what}: expected LOW->HIGH, got '{w}'")
            out.append(M("range", value=parse_value(low, bw, what), high=parse_value(high, bw, what)))
        else:  # exact, optional, valid
            out.append(M(kind, value=parse_value(w, bw if kind != "valid" else 1, what)))
    return out


def resolve_action(table: Any, name: str) -> str:
    if name in table.action_names:
        return name
    matches = [a for a in table.action_names if a.split(".")[-1] == name]
    if len(matches) != 1:
        raise TableSyntaxError(f"table {table.name} has no action '{name}' (has {', '.join(table.action_names)})")
    return matches[0]


def action_params(action: str, words: list[str]) -> list[int]:
    """Parameter values (the pipeline checks their number and widths when the entry is written)."""
    return [parse_value(w, 0, f"action {action} parameter {i + 1}") for i, w in enumerate(words)]


def split_add(args: list[str], needs_priority: bool) -> tuple[list[str], list[str], int]:
    """[key words], [param words], priority from 'KEYS... => PARAMS... [PRIORITY]'."""
    if "=>" in args:
        cut = args.index("=>")
        keys, params = args[:cut], args[cut + 1:]
    else:
        keys, params = args, []
    priority = 0
    if needs_priority:
        if not params:
            raise TableSyntaxError("this table needs a priority (last argument after '=>')")
        try:
            priority = int(params[-1], 0)
        except ValueError:
            raise TableSyntaxError(f"priority must be an integer, got '{params[-1]}'") from None
        params = params[:-1]
    return keys, params, priority


def find_by_handle(table: Any, handle: int) -> Any:
    for e in table.entries():
        if e.handle == handle:
            return e
    raise TableSyntaxError(f"table {table.name} has no entry with handle {handle}")
