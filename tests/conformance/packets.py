"""Packet and entry generation for the packet conformance suite, derived from a program's JSON + P4Info.

    plan = make_plan(bmv2_json, p4info)      # plan.setup (entries, PRE, digests), plan.stimuli

Packets come from the program's own parser: every path from ``start`` to ``accept`` of the BMv2 JSON
parser graph (loops unrolled a few times) becomes a packet whose header fields satisfy the path's
``select`` keys (header fields, stack fields and lookaheads; keys on computed metadata are left to
chance). Other fields get values by name (``ttl`` 64, ``version`` 4, ``ihl`` 5...), IPv4 total
lengths/checksums and UDP lengths are made right. Table entries come from P4Info: table ``t`` gets
one entry per *slot* s (up to NSLOTS, one per action of the table), with key values
``slot_value(field name, width, s)``; packets of slot s carry the same values in the fields of the
same names (and enter on port ``slot_value("ingress_port", 9, s)``), action parameters use the same
function, so an action that writes a key of a later table (``next_id``) hits its entry too. The last
slot misses every table.

Edge cases per path: no payload, maximum size (1514-byte frame), TTL 0 and 1, a bad IPv4 checksum,
truncated in the middle of the last header; per program: a runt, an unknown ethertype, an 802.1Q tag,
IPv4 options, and PacketOuts (metadata by slot) when the program has a ``packet_out`` header.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from p4.config.v1 import p4info_pb2

from .switches import CPU_PORT, Entry, Setup, Stimulus

NSLOTS = 4
MAX_PATHS = 24
MAX_VISITS = 3
PAYLOAD = bytes(range(0x30, 0x50))
MAX_FRAME = 1514
MC_GROUPS = 4

_MT = p4info_pb2.MatchField


def slot_value(name: str, width: int, slot: int) -> int:
    """The value of a key field / action parameter / packet field called ``name`` in slot ``slot``."""
    lname = name.lower()
    mask = (1 << width) - 1
    src = 100 if "src" in lname else 0
    if width == 9 or ("port" in lname and width < 16):
        return (slot % 3 + 1) & mask
    if any(w in lname for w in ("mcast", "grp", "group")):
        return (slot % MC_GROUPS + 1) & mask
    if width == 48:
        return (0x0000_0000_0000 | ((slot + 1) << 8) | (slot + 1 + src)) & mask
    if width == 32 and ("addr" in lname or "ip" in lname):
        return 0x0A00_0000 | ((slot + 1) << 8) | (slot + 1 + src)
    if width == 16 and "port" in lname:
        return 1000 + slot * 10 + src
    h = zlib.crc32(lname.encode())
    return ((h + slot * 0x9E3779B1) & mask) or 1


SPECIAL = {"ttl": 64, "hoplimit": 64, "version": 4, "ihl": 5, "dataoffset": 5, "flags": 0,
           "fragoffset": 0, "ethertype": 0x0800, "protocol": 6, "bos": 1}


def field_default(fname: str, width: int, slot: int, key_names: set[tuple[str, int]],
                  pools: dict[str, list[int]] | None = None) -> int:
    if pools and fname in pools:
        return pools[fname][slot % len(pools[fname])] & ((1 << width) - 1)
    if (fname, width) in key_names:
        return slot_value(fname, width, slot)
    if fname.lower() in SPECIAL:
        return SPECIAL[fname.lower()] & ((1 << width) - 1)
    return slot_value(fname, width, 0)


@dataclass
class Hdr:
    inst: str
    htype: str
    start: int  # bit offset
    fields: dict[str, tuple[int, int]]  # name -> (bit offset, width)

    @property
    def end(self) -> int:
        return self.start + sum(w for _, w in self.fields.values())


@dataclass
class PathPkt:
    """A packet being built along one parser path (bit-level, with bits fixed by select keys)."""

    bits: list[int] = field(default_factory=list)
    fixed: list[bool] = field(default_factory=list)
    headers: list[Hdr] = field(default_factory=list)
    stacks: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, tuple[int, int]] = field(default_factory=dict)
    states: list[str] = field(default_factory=list)
    pos: int = 0
    ingress: int | None = None  # set when the path selects on standard_metadata.ingress_port

    def copy(self) -> PathPkt:
        return PathPkt(list(self.bits), list(self.fixed), list(self.headers), dict(self.stacks),
                       dict(self.aliases), list(self.states), self.pos, self.ingress)

    def grow(self, n: int) -> None:
        if len(self.bits) < n:
            self.bits += [0] * (n - len(self.bits))
            self.fixed += [False] * (n - len(self.fixed))

    def read(self, pos: int, width: int) -> int:
        self.grow(pos + width)
        v = 0
        for b in self.bits[pos:pos + width]:
            v = (v << 1) | b
        return v

    def write(self, pos: int, width: int, value: int, fix: bool = False, force: bool = False) -> None:
        self.grow(pos + width)
        for i in range(width):
            if self.fixed[pos + i] and not force:
                continue
            self.bits[pos + i] = (value >> (width - 1 - i)) & 1
            if fix:
                self.fixed[pos + i] = True

    def constrain(self, pos: int, width: int, value: int, mask: int) -> bool:
        """Fix the bits under ``mask`` to ``value``; False when a fixed bit disagrees."""
        self.grow(pos + width)
        for i in range(width):
            sh = width - 1 - i
            if not (mask >> sh) & 1:
                continue
            bit = (value >> sh) & 1
            if self.fixed[pos + i] and self.bits[pos + i] != bit:
                return False
            self.bits[pos + i] = bit
            self.fixed[pos + i] = True
        return True

    def data(self, payload: bytes = b"") -> bytes:
        n = (self.pos + 7) // 8 * 8
        self.grow(n)
        v = int("".join(map(str, self.bits[:n])) or "0", 2)
        return v.to_bytes(n // 8, "big") + payload


class ParserWalk:
    """Enumerates parser paths of a BMv2 JSON program into PathPkts."""

    def __init__(self, bmv2: dict[str, Any], key_names: set[tuple[str, int]], slot: int) -> None:
        self.types = {t["name"]: t for t in bmv2["header_types"]}
        self.insts = {h["name"]: h["header_type"] for h in bmv2["headers"]}
        self.stacks = {s["name"]: [h for h in bmv2["headers"] if h["id"] in s["header_ids"]]
                       for s in bmv2.get("header_stacks", [])}
        parser = bmv2["parsers"][0]
        self.states = {s["name"]: s for s in parser["parse_states"]}
        self.init = parser["init_state"]
        self.key_names = key_names
        self.slot = slot
        self.scalar_widths = {f[0]: f[1] for f in self.types[self.insts["scalars"]]["fields"]}
        self.pools = const_pools(bmv2)

    def paths(self) -> list[PathPkt]:
        out: list[PathPkt] = []
        todo = [(self.init, PathPkt())]
        while todo and len(out) < MAX_PATHS:
            state, pkt = todo.pop(0)  # breadth first: short paths first, many branches covered
            if state is None:
                out.append(pkt)
                continue
            if pkt.states.count(state) >= MAX_VISITS:
                continue
            pkt.states.append(state)
            todo += self._step(self.states[state], pkt)
        return out

    def _extract(self, pkt: PathPkt, inst: str) -> None:
        htype = self.types[self.insts[inst]]
        fields: dict[str, tuple[int, int]] = {}
        pos = pkt.pos
        for fname, width, *_ in htype["fields"]:
            fields[fname] = (pos, width)
            pkt.write(pos, width, field_default(fname, width, self.slot, self.key_names, self.pools))
            pos += width
        pkt.headers.append(Hdr(inst, htype["name"], pkt.pos, fields))
        pkt.pos = pos

    def _field_pos(self, pkt: PathPkt, ref: list[str], stack: bool = False) -> tuple[int, int] | None:
        owner, fname = ref[0], ref[1]
        if stack:
            n = pkt.stacks.get(owner, 0)
            if n == 0:
                return None
            owner = self.stacks[owner][n - 1]["name"]
        if owner == "scalars":
            return pkt.aliases.get(fname)
        for h in reversed(pkt.headers):
            if h.inst == owner:
                return h.fields.get(fname)
        return None

    def _slice(self, expr: dict[str, Any], pkt: PathPkt) -> tuple[int, int] | None:
        """The packet bits (position, width) an expression reads, for fields, lookaheads and their
        slices ``(x >> k) & (2**m - 1)`` (what p4c makes of ``lookahead<h_t>().f``); else None."""
        while expr["type"] == "expression" and isinstance(expr["value"], dict) and "op" not in expr["value"]:
            expr = expr["value"]
        if expr["type"] == "field":
            return self._field_pos(pkt, expr["value"])
        if expr["type"] == "lookahead":
            return pkt.pos + expr["value"][0], expr["value"][1]
        if expr["type"] != "expression":
            return None
        op, left, right = expr["value"]["op"], expr["value"]["left"], expr["value"]["right"]
        if op not in (">>", "&") or right is None or right["type"] != "hexstr" or left is None:
            return None
        inner = self._slice(left, pkt)
        if inner is None:
            return None
        pos, width = inner
        k = int(right["value"], 16)
        if op == ">>":
            return (pos, width - k) if k < width else None
        if k & (k + 1):  # not 2**m - 1
            return None
        m = min(width, k.bit_length())
        return pos + width - m, m

    def _key_width(self, key: dict[str, Any], pkt: PathPkt) -> int:
        t, v = key["type"], key["value"]
        if t == "lookahead":
            return v[1]
        owner = v[0]
        if owner == "scalars":
            return self.scalar_widths.get(v[1], 8)
        if owner == "standard_metadata":
            return 9 if v[1] == "ingress_port" else 32
        if t == "stack_field":
            owner = self.stacks[owner][0]["name"]
        for fname, width, *_ in self.types[self.insts[owner]]["fields"]:
            if fname == v[1]:
                return width
        raise KeyError(f"parser key {v}")

    def _key_pos(self, key: dict[str, Any], pkt: PathPkt) -> tuple[int, int] | None:
        if key["type"] == "lookahead":
            off, width = key["value"]
            return pkt.pos + off, width
        return self._field_pos(pkt, key["value"], key["type"] == "stack_field")

    def _step(self, st: dict[str, Any], pkt: PathPkt) -> list[tuple[str | None, PathPkt]]:
        for op in st["parser_ops"]:
            kind, params = op["op"], op["parameters"]
            if kind == "extract":
                if params[0]["type"] == "stack":
                    name = params[0]["value"]
                    n = pkt.stacks.get(name, 0)
                    if n >= len(self.stacks[name]):
                        return [(None, pkt)]  # StackOutOfBounds: the parser stops here
                    pkt.stacks[name] = n + 1
                    self._extract(pkt, self.stacks[name][n]["name"])
                else:
                    self._extract(pkt, params[0]["value"])
            elif kind == "set" and params[0]["type"] == "field" and params[0]["value"][0] == "scalars":
                where = self._slice(params[1], pkt)
                if where is not None:
                    pkt.aliases[params[0]["value"][1]] = where
                else:
                    pkt.aliases.pop(params[0]["value"][1], None)
            elif kind == "advance" and params[0]["type"] == "hexstr":
                n = int(params[0]["value"], 16)
                pkt.grow(pkt.pos + n)
                pkt.pos += n
        keys = st["transition_key"]
        widths = [self._key_width(k, pkt) for k in keys]
        nbytes = [(w + 7) // 8 for w in widths]
        positions = [self._key_pos(k, pkt) for k in keys]

        def split(hexval: str | None) -> list[int]:
            if hexval is None:
                return [(1 << w) - 1 for w in widths]
            v = int(hexval, 16)
            parts = []
            for nb, w in zip(reversed(nbytes), reversed(widths), strict=True):
                parts.append(v & ((1 << w) - 1))
                v >>= nb * 8
            return parts[::-1]

        def matches(p: PathPkt, t: dict[str, Any]) -> bool:
            vals, masks = split(t["value"]), split(t.get("mask"))
            if t["value"] is None or None in positions:
                return False  # a key the packet does not decide (metadata): assume another outcome
            return all((p.read(*pos) & m) == (val & m) for pos, val, m in zip(positions, vals, masks, strict=True))

        def avoid(p: PathPkt, t: dict[str, Any]) -> None:
            """Flip one free bit under ``t``'s mask so that ``p`` does not take transition ``t``."""
            for pos, m in zip(positions, split(t.get("mask")), strict=True):
                if pos is None:
                    continue
                start, width = pos
                for i in range(width - 1, -1, -1):
                    if (m >> (width - 1 - i)) & 1 and not p.fixed[start + i]:
                        p.bits[start + i] ^= 1
                        p.fixed[start + i] = True
                        return

        out = []
        seen: set[str | None] = set()
        earlier: list[dict[str, Any]] = []
        for t in st["transitions"]:
            nxt = t["next_state"]
            child = pkt.copy()
            ok = True
            if t.get("type", "hexstr") == "hexstr" and t["value"] is not None:
                for key, pos, val, m in zip(keys, positions, split(t["value"]), split(t.get("mask")), strict=True):
                    if pos is not None and not child.constrain(pos[0], pos[1], val, m):
                        ok = False
                    if key["value"] == ["standard_metadata", "ingress_port"]:
                        child.ingress = val
            elif t.get("type") not in ("default", None):
                ok = False  # parser value sets: no entries are installed
            for e in earlier:
                if ok and matches(child, e):
                    avoid(child, e)
                    ok = not matches(child, e)
            earlier.append(t)
            if ok and (nxt, t["value"] is None) not in seen:
                seen.add((nxt, t["value"] is None))
                out.append((nxt, child))
        return out


# ---- whole packets ---------------------------------------------------------------------------------
def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _is_ipv4(h: Hdr) -> bool:
    return {"version", "ihl", "ttl", "protocol"} <= set(h.fields) and any("sum" in f.lower() for f in h.fields)


def _ipv4_csum_field(h: Hdr) -> str:
    return next(f for f in h.fields if "sum" in f.lower())


def finish(pkt: PathPkt, payload: bytes, ttl: int | None = None, bad_csum: bool = False) -> bytes:
    """Bytes of ``pkt`` + payload with lengths and IPv4 checksums made right (innermost first)."""
    p = pkt.copy()
    total = (p.pos + 7) // 8 + len(payload)
    for h in reversed(p.headers):
        start = h.start // 8
        if _is_ipv4(h):
            if ttl is not None:
                p.write(*h.fields["ttl"], ttl, force=True)
            for f in h.fields:
                if f.lower() in ("totallen", "total_len", "len", "length"):
                    p.write(*h.fields[f], total - start)
        elif {"srcPort", "dstPort"} <= set(h.fields) or {"src_port", "dst_port"} <= set(h.fields):
            for f in h.fields:
                if f.lower() in ("length_", "length", "len") and h.fields[f][1] == 16:
                    p.write(*h.fields[f], total - start)
    data = bytearray(p.data(payload))
    for h in p.headers:
        if _is_ipv4(h):
            start = h.start // 8
            pos, width = h.fields[_ipv4_csum_field(h)]
            ihl = p.read(*h.fields["ihl"])
            hlen = max(20, ihl * 4)
            b0, b1 = pos // 8, pos // 8 + 2
            data[b0:b1] = b"\0\0"
            c = _csum(bytes(data[start:start + hlen]))
            if bad_csum and h is next(x for x in p.headers if _is_ipv4(x)):
                c ^= 0x5555
            data[b0:b1] = c.to_bytes(2, "big")
    return bytes(data)


def const_pools(bmv2: dict[str, Any]) -> dict[str, list[int]]:
    """Key values of const table entries (exact/ternary/lpm), by key field name: packets carry them."""
    pools: dict[str, list[int]] = {}
    for pipe in bmv2["pipelines"]:
        for t in pipe["tables"]:
            for e in t.get("entries", []):
                for k, mk in zip(t["key"], e["match_key"], strict=False):
                    target = k.get("target")
                    if not isinstance(target, list) or target[0] in ("scalars", "standard_metadata"):
                        continue
                    if mk["match_type"] in ("exact", "ternary", "lpm") and "key" in mk:
                        vals = pools.setdefault(target[-1], [])
                        v = int(mk["key"], 16)
                        if v not in vals:
                            vals.append(v)
    return pools


@dataclass
class Plan:
    setup: Setup
    stimuli: list[Stimulus]


def key_names(p4info: p4info_pb2.P4Info) -> set[tuple[str, int]]:
    names = set()
    for t in p4info.tables:
        for mf in t.match_fields:
            names.add((mf.name.split(".")[-1], mf.bitwidth))
    return names


def make_entries(p4info: p4info_pb2.P4Info) -> list[Entry]:
    """One entry per (table, slot < number of the table's entry actions), keyed by slot values."""
    actions = {a.preamble.id: a for a in p4info.actions}
    entries = []
    for t in p4info.tables:
        if t.is_const_table or not t.match_fields:
            continue
        acts = [actions[r.id] for r in t.action_refs if r.scope != p4info_pb2.ActionRef.DEFAULT_ONLY]
        needs_prio = any(mf.match_type in (_MT.TERNARY, _MT.RANGE, _MT.OPTIONAL) for mf in t.match_fields)
        seen = set()
        for slot in range(min(len(acts), NSLOTS - 1)):
            match: dict[str, Any] = {}
            for mf in t.match_fields:
                w, v = mf.bitwidth, slot_value(mf.name.split(".")[-1], mf.bitwidth, slot)
                full = (1 << w) - 1
                if mf.match_type == _MT.EXACT:
                    match[mf.name] = v
                elif mf.match_type == _MT.LPM:
                    plen = w if slot % 2 == 0 or w < 16 else w - 8
                    match[mf.name] = (v & (full ^ ((1 << (w - plen)) - 1)), plen)
                elif mf.match_type == _MT.TERNARY:
                    m = full if slot % 2 == 0 else full ^ 1
                    match[mf.name] = (v & m, m)
                elif mf.match_type == _MT.RANGE:
                    lo, hi = max(0, v - 1), min(full, v + 1)
                    if (lo, hi) != (0, full):
                        match[mf.name] = (lo, hi)
                elif mf.match_type == _MT.OPTIONAL:
                    match[mf.name] = v
            sig = tuple(sorted((k, str(v)) for k, v in match.items()))
            if sig in seen:
                continue
            seen.add(sig)
            act = acts[slot % len(acts)]
            params = {p.name: slot_value(p.name, p.bitwidth, slot) for p in act.params}
            entries.append(Entry(t.preamble.name, match, act.preamble.name, params,
                                 NSLOTS - slot if needs_prio else 0))
    return entries


def clone_sessions(bmv2: dict[str, Any]) -> set[int]:
    ids = set()
    for a in bmv2.get("actions", []):
        for p in a.get("primitives", []):
            if p["op"].startswith("clone") and p["parameters"][0]["type"] == "hexstr":
                ids.add(int(p["parameters"][0]["value"], 16))
    return ids


def make_plan(bmv2: dict[str, Any], p4info: p4info_pb2.P4Info) -> Plan:
    """The setup and the stimuli of one program (see the module docstring)."""
    knames = key_names(p4info)
    cpm = {c.preamble.name: c for c in p4info.controller_packet_metadata}
    setup = Setup(entries=make_entries(p4info), digests=[d.preamble.name for d in p4info.digests])
    setup.mc_groups = {g: [(p, g) for p in range(4) if p != g % 4] for g in range(1, MC_GROUPS + 1)}
    to_cpu = "packet_in" in cpm
    setup.clone_sessions = {sid: [(CPU_PORT if to_cpu else 3, 1)] for sid in sorted(clone_sessions(bmv2))}

    stimuli: list[Stimulus] = []
    # paths that select ingress_port == CPU_PORT are what PacketOuts exercise (below)
    base = [p for p in ParserWalk(bmv2, knames, 0).paths() if p.ingress != CPU_PORT]
    for slot in range(NSLOTS):
        for i, pkt in enumerate(p for p in ParserWalk(bmv2, knames, slot).paths() if p.ingress != CPU_PORT):
            port = pkt.ingress if pkt.ingress is not None and pkt.ingress < 4 else slot_value("ingress_port", 9, slot)
            stimuli.append(Stimulus(f"path{i}/slot{slot} {'>'.join(pkt.states)}", finish(pkt, PAYLOAD), port))
    for i, pkt in enumerate(base):
        tag = f"path{i}"
        stimuli.append(Stimulus(f"{tag} no payload", finish(pkt, b""), 1))
        size = (pkt.pos + 7) // 8
        if size < MAX_FRAME:
            stimuli.append(Stimulus(f"{tag} max size", finish(pkt, bytes(i & 0xFF for i in range(MAX_FRAME - size))), 1))
        if any(_is_ipv4(h) for h in pkt.headers):
            stimuli.append(Stimulus(f"{tag} ttl 0", finish(pkt, PAYLOAD, ttl=0), 1))
            stimuli.append(Stimulus(f"{tag} ttl 1", finish(pkt, PAYLOAD, ttl=1), 1))
            stimuli.append(Stimulus(f"{tag} bad checksum", finish(pkt, PAYLOAD, bad_csum=True), 1))
        if pkt.headers:
            last = pkt.headers[-1]
            cut = (last.start + (last.end - last.start) // 2) // 8
            stimuli.append(Stimulus(f"{tag} truncated in {last.inst}", finish(pkt, b"")[:cut], 1))
    full = finish(base[0], PAYLOAD) if base else bytes(14) + PAYLOAD
    stimuli.append(Stimulus("runt (ethernet only)", full[:14], 1))
    stimuli.append(Stimulus("unknown ethertype", full[:12] + b"\x88\xb5" + PAYLOAD, 1))
    stimuli.append(Stimulus("802.1Q tag", full[:12] + b"\x81\x00\x00\x05" + full[12:], 1))
    ipv4_paths = [p for p in base if any(_is_ipv4(h) for h in p.headers)]
    if ipv4_paths:
        stimuli.append(Stimulus("ipv4 options", ipv4_options(ipv4_paths[0]), 1))
    stimuli.append(Stimulus("from port 0", full, 0))
    if "packet_out" in cpm:
        for slot in range(NSLOTS - 1):
            md = {m.name: slot_value(m.name, m.bitwidth, slot) for m in cpm["packet_out"].metadata}
            for i, pkt in enumerate(base[:3]):
                stimuli.append(Stimulus(f"packet_out slot{slot} path{i}", finish(pkt, PAYLOAD), None, md))
    # a frame shorter than an Ethernet header cannot be sent on a link (the kernel refuses it)
    return Plan(setup, [s for s in stimuli if s.port is None or len(s.data) >= 14])


def ipv4_options(pkt: PathPkt) -> bytes:
    """The packet with 4 bytes of IPv4 options (NOP NOP NOP EOL) after the first IPv4 header."""
    h = next(x for x in pkt.headers if _is_ipv4(x))
    raw = bytearray(finish(pkt, PAYLOAD))
    start, end = h.start // 8, h.start // 8 + 20
    raw[end:end] = b"\x01\x01\x01\x00"
    ihl_pos, _ = h.fields["ihl"]
    raw[ihl_pos // 8] = (raw[ihl_pos // 8] & 0xF0) | 6
    tl_pos = h.fields.get("totalLen", h.fields.get("total_len"))
    if tl_pos:
        raw[tl_pos[0] // 8:tl_pos[0] // 8 + 2] = (len(raw) - start).to_bytes(2, "big")
    cpos = h.fields[_ipv4_csum_field(h)][0] // 8
    raw[cpos:cpos + 2] = b"\0\0"
    raw[cpos:cpos + 2] = _csum(bytes(raw[start:start + 24])).to_bytes(2, "big")
    return bytes(raw)
