"""Source generation for the BMv2 parser: one function per parse state (states reached from a
single transition are inlined into their predecessor), header extraction with one
``int.from_bytes`` per header, select keys built from byte-padded fields as BMv2 does, and the
parser errors of v1model (PacketTooShort, NoMatch, StackOutOfBounds, verify's errors)."""

from __future__ import annotations

import json
from typing import Any

from .exprs import parse_hex
from .primitives import gen_primitive
from .state import PipelineError

__all__ = ["ParserGen", "goto_marker"]


def goto_marker(name: str | None) -> str:
    """A control transfer to node/state `name` (None: the end), resolved by `_emit_nodes`."""
    return "@GOTO " + json.dumps(name)


class ParserGen:
    """Mixin of the code generator (`codegen._Gen`) for the parser and header (de)serialisation."""

    doc: dict[str, Any]
    layout: Any
    g: Any
    pipe: Any
    trace: bool
    errors: dict[str, int]

    def pack_expr(self, hname: str, base: str | None = None) -> str:
        h = self.layout.header(hname)
        if h.bits % 8:
            raise PipelineError(f"header '{hname}' is {h.bits} bits, not a whole number of bytes")
        terms = []
        shift = h.bits
        for j, w in enumerate(h.widths):
            shift -= w
            slot = f"F[{h.base + j}]" if base is None else f"F[{base} + {j}]"
            terms.append(f"({slot} << {shift})" if shift else slot)
        inner = " | ".join(terms) if terms else "0"
        return f"({inner}).to_bytes({h.nbytes}, 'big')"

    def extract_lines(self, h: Any, base: str | None) -> list[str]:
        nb = h.nbytes
        if h.bits % 8:
            raise PipelineError(f"header '{h.name}' is {h.bits} bits, not a whole number of bytes")
        out = [f"if off + {nb} > ln:", f"    P.off = off; P.err = {self.errors['PacketTooShort']}",
               "    return None",
               f"v = int.from_bytes(d[off:off + {nb}], 'big')" if nb else "v = 0", f"off += {nb}"]
        shift = h.bits
        for j, w in enumerate(h.widths):
            shift -= w
            slot = f"{h.base + j}" if base is None else f"{base} + {j}"
            val = "v" if shift == 0 else f"(v >> {shift})"
            if j > 0:
                val = f"{val} & {(1 << w) - 1}"
            out.append(f"F[{slot}] = {val}")
        out.append(f"F[{h.valid if base is None else base + ' + ' + str(h.nfields)}] = 1")
        if self.trace:
            out.append(f"LOG(P, {('Extracting header ' + repr(h.name))!r})")
        return out

    # ---- parser ----
    def gen_parser(self) -> None:
        parsers = self.doc.get("parsers", [])
        if not parsers:
            raise PipelineError("the JSON has no parser")
        parser = next((p for p in parsers if p.get("name") == "parser"), parsers[0])
        states = {s["name"]: f"ps_{i}" for i, s in enumerate(parser.get("parse_states", []))}
        self.g.ctx = "parser"
        bodies: dict[str, list[str]] = {}
        for st in parser.get("parse_states", []):
            self.g.where = f"parser state '{st['name']}'"
            body = self.log(repr(f"Parser '{parser['name']}' entering state '{st['name']}'"))
            for op in st.get("parser_ops", []):
                body += self.parser_op(op)
            body += self.transitions(st, states)
            bodies[st["name"]] = body
        counts: dict[str, int] = {}
        for body in bodies.values():
            for ln in body:
                if ln.lstrip().startswith("@GOTO "):
                    target = json.loads(ln.lstrip()[6:])
                    counts[target] = counts.get(target, 0) + 1
        init = parser.get("init_state")
        if init not in states:
            raise PipelineError(f"parser init state '{init}' does not exist")
        counts[init] = counts.get(init, 0) + 2
        self._emit_nodes(states, bodies, counts, init, params="P, F, d", prologue=("off = P.off", "ln = len(d)"),
                         jump=("P.off = off",))
        self.emit(["def parse(P, F):", "    d = P.data", f"    s = {states[init]}"])
        self.emit(self.log(repr(f"Parser '{parser['name']}': start")), 1)
        self.emit(["    try:", "        while s is not None:", "            s = s(P, F, d)",
                   "    except _ParserAbort:", f"        P.err = {self.errors['PacketTooShort']}"])
        self.emit(self.log("'Bytes parsed: %d' % P.off"), 1)
        self.emit(self.log(repr(f"Parser '{parser['name']}': end")), 1)
        self.g.ctx = "action"

    def parser_op(self, op: dict[str, Any]) -> list[str]:
        kind = op.get("op")
        ps = op.get("parameters", [])
        g = self.g
        if kind == "extract":
            p = ps[0]
            if p["type"] == "regular":
                return self.extract_lines(self.layout.header(p["value"]), None)
            if p["type"] == "stack":
                st = self.layout.stack(p["value"])
                lines = [f"i = F[{st.next_slot}]", f"if i >= {st.size}:",
                         f"    P.off = off; P.err = {self.errors['StackOutOfBounds']}", "    return None",
                         f"b = {st.base} + i * {st.stride}"]
                lines += self.extract_lines(st.headers[0], "b")
                lines.append(f"F[{st.next_slot}] = i + 1")
                return lines
            raise g.err(f"unsupported extract target '{p['type']}'")
        if kind == "extract_VL":
            raise g.err("extract_VL (varbit) is not supported by this target")
        if kind == "set":
            return g.store(ps[0], g.expr(ps[1]))
        if kind == "verify":
            cond = g.truth(ps[0])
            code = g.data(ps[1])
            return [f"if not {cond}:", f"    P.off = off; P.err = {code}", "    return None"]
        if kind in ("shift", "advance"):
            n = g.data(ps[0])
            nbytes = f"{n}" if kind == "shift" else f"(({n}) >> 3)"
            return [f"if off + {nbytes} > ln:", f"    P.off = off; P.err = {self.errors['PacketTooShort']}",
                    "    return None", f"off += {nbytes}"]
        if kind == "primitive":
            return [ln for p in ps for ln in gen_primitive(g, p)]
        raise g.err(f"unsupported parser operation '{kind}'")

    def transitions(self, st: dict[str, Any], states: dict[str, str]) -> list[str]:
        g = self.g
        keys = st.get("transition_key", [])
        trans = st.get("transitions", [])

        def target(t: dict[str, Any]) -> list[str]:
            nxt = t.get("next_state")
            if nxt is None:
                return ["P.off = off", "return None"]
            if nxt not in states:
                raise g.err(f"transition to unknown state '{nxt}'")
            return [goto_marker(nxt)]

        out: list[str] = []
        if keys:
            parts = []
            total = 0
            for k in reversed(keys):
                if k["type"] == "lookahead":
                    w = int(k["value"][1])
                    code = f"_la(P, d, off, {int(k['value'][0])}, {w})"
                elif k["type"] == "stack_field":
                    st_info = self.layout.stack(k["value"][0])
                    j = st_info.field_names.index(k["value"][1])
                    w = st_info.headers[0].widths[j]
                    code = f"F[{st_info.base + j} + (F[{st_info.next_slot}] - 1) * {st_info.stride}]"
                else:
                    slot, w, _ = self.layout.field(k["value"][0], k["value"][1])
                    code = f"F[{slot}]"
                parts.append(f"({code} << {total})" if total else code)
                total += (w + 7) // 8 * 8
            out.append("key = " + " | ".join(reversed(parts)))
            if self.trace:
                out.append(f"LOG(P, \"Parser state '{st['name']}': key is %0{total // 4}x\" % key)")
        for t in trans:
            tt = t.get("type")
            if tt == "default":
                out += target(t)
                return out
            if tt == "hexstr":
                value = parse_hex(t["value"])
                mask = t.get("mask")
                if mask is None:
                    out.append(f"if key == {value}:")
                else:
                    m = parse_hex(mask)
                    out.append(f"if key & {m} == {value & m}:")
            elif tt == "parse_vset":
                vs = self.pipe.parse_vsets.get(t["value"])
                if vs is None:
                    raise g.err(f"unknown parse value set '{t['value']}'")
                name = g.const(vs, "VS")
                m = parse_hex(t["mask"]) if t.get("mask") is not None else -1
                out.append(f"if any(key & {m} == x & {m} for x in {name}):")
            else:
                raise g.err(f"unsupported transition type '{tt}'")
            out += ["    " + s for s in target(t)]
        out += [f"P.off = off; P.err = {self.errors['NoMatch']}", "return None"]
        return out
