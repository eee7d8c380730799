"""Specialise a BMv2 JSON program into Python source once, at load time: one function per parser
state, per action, per control-flow node and per calculation, plus the deparser and checksum
passes. The source is exec'd into a namespace whose globals are the runtime helpers and the
pipeline's state containers, so per-packet code never walks the JSON.

`build_program(doc, layout, pipe, trace)` returns that namespace. With ``trace=True`` the code
also calls ``LOG(P, msg)`` with simple_switch-style trace lines; without it no line is formatted.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from . import hashes
from .exprs import ExprGen, Val, parse_hex
from .layout import Layout
from .parsergen import ParserGen, goto_marker
from .primitives import gen_primitive
from .runtime import CORE_ERRORS, HELPERS, AssertionFailed, StackError
from .state import PipelineError

__all__ = ["build_program", "AssertionFailed", "StackError", "CORE_ERRORS"]


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


class _Gen(ParserGen):
    def __init__(self, doc: dict[str, Any], layout: Layout, pipe: Any, trace: bool) -> None:
        self.doc = doc
        self.layout = layout
        self.pipe = pipe
        self.trace = trace
        self.registers = pipe.registers
        self.counters = pipe.counters
        self.meters = pipe.meters
        self.direct_names = set(pipe._direct_counters.values()) | set(pipe._direct_meters.values())
        self.ns: dict[str, Any] = dict(HELPERS)
        self.ns.update({"_randint": random.randint, "LOG": pipe._log, "_csum16_int": hashes.csum16_int})
        self.g = ExprGen(layout, self.ns, self, trace)
        self.g.param_widths = []
        self.src: list[str] = []
        self.calc_names: dict[str, str] = {}
        self.errors = dict(CORE_ERRORS)
        for name, value in doc.get("errors", []):
            self.errors[name] = value

    def _calc_name(self, name: str) -> str:
        try:
            return self.calc_names[name]
        except KeyError:
            raise self.g.err(f"unknown calculation '{name}'") from None

    def emit(self, lines: list[str], indent: int = 0) -> None:
        pad = "    " * indent
        self.src.extend(pad + ln for ln in lines)

    def log(self, msg_expr: str) -> list[str]:
        return [f"LOG(P, {msg_expr})"] if self.trace else []

    # ---- headers ----
    # ---- deparser, calculations, checksums ----
    def gen_deparser(self) -> None:
        deps = self.doc.get("deparsers", [])
        order = deps[0].get("order", []) if deps else []
        self.dep_order = order
        pk = []
        for i, hname in enumerate(order):
            h = self.layout.header(hname)
            self.emit([f"def pk_{i}(F):", f"    return {self.pack_expr(hname)}"])
            pk.append(f"({h.valid}, pk_{i})")
        self.emit([f"DEP = [{', '.join(pk)}]"])
        self.emit(["def payload_after(P, F, pos):",
                   "    return b''.join([pk(F) for v, pk in DEP[pos + 1:] if F[v]]) + P.data[P.off:]"])
        name = deps[0]["name"] if deps else "deparser"
        self.emit(["def deparse(P, F):"])
        body = self.log(repr(f"Deparser '{name}': start"))
        body.append("update_checksums(P, F)")
        body.append("out = []")
        for hname in order:
            h = self.layout.header(hname)
            body.append(f"if F[{h.valid}]:")
            body += ["    " + s for s in self.log(repr(f"Deparsing header '{hname}'"))]
            body.append(f"    out.append({self.pack_expr(hname)})")
        body.append("out.append(P.data[P.off:])")
        body += self.log(repr(f"Deparser '{name}': end"))
        body.append("return b''.join(out)")
        self.emit(body, 1)

    def gen_calculations(self) -> None:
        order = {h: i for i, h in enumerate(getattr(self, "dep_order", []))}
        for i, calc in enumerate(self.doc.get("calculations", [])):
            algo = calc.get("algo")
            fn = hashes.ALGORITHMS.get(algo)
            if fn is None:
                raise PipelineError(f"calculation '{calc['name']}': unsupported algorithm '{algo}'")
            self.ns[f"ALGO_{i}"] = fn
            # groups of consecutive inputs sharing one validity condition: (valid slot | None, terms, bits)
            groups: list[tuple[int | None, list[tuple[str, int]]]] = []
            last_hdr = None
            payload = False

            def add(cond: int | None, code: str, width: int, groups: list = groups) -> None:
                if groups and groups[-1][0] == cond:
                    groups[-1][1].append((code, width))
                else:
                    groups.append((cond, [(code, width)]))

            for inp in calc.get("input", []):
                t = inp["type"]
                if t == "field":
                    h = self.layout.header(inp["value"][0])
                    slot, w, _ = self.layout.field(inp["value"][0], inp["value"][1])
                    add(None if h.metadata else h.valid, f"F[{slot}]", w)
                    last_hdr = h.name
                elif t == "hexstr":
                    bw = int(inp["bitwidth"])
                    add(None, str(parse_hex(inp["value"]) & ((1 << bw) - 1)), bw)
                elif t == "header":
                    h = self.layout.header(inp["value"])
                    for j, w in enumerate(h.widths):
                        add(h.valid, f"F[{h.base + j}]", w)
                    last_hdr = h.name
                elif t == "payload":
                    payload = True
                else:
                    raise PipelineError(f"calculation '{calc['name']}': unsupported input type '{t}'")

            def packed(terms: list[tuple[str, int]]) -> tuple[str, int]:
                total = sum(w for _, w in terms)
                parts, shift = [], total
                for code, w in terms:
                    shift -= w
                    parts.append(f"({code} << {shift})" if shift else code)
                return " | ".join(parts) or "0", total

            as_int = algo == "csum16" and not payload     # checksum straight from the packed int
            if all(cond is None for cond, _ in groups):
                expr, nbits = packed([term for _, terms in groups for term in terms])
                if as_int:
                    body = [f"return _csum16_int(({expr}) << {-nbits % 16})"]
                else:
                    pad = -nbits % 8
                    body = [f"b = (({expr}) << {pad}).to_bytes({(nbits + pad) // 8}, 'big')"]
            else:
                body = ["acc = 0", "n = 0"]
                for cond, terms in groups:
                    expr, nbits = packed(terms)
                    line = f"acc = (acc << {nbits}) | {expr}; n += {nbits}"
                    body.append(line if cond is None else f"if F[{cond}]: {line}")
                if as_int:
                    body.append("return _csum16_int(acc << (-n & 15))")
                else:
                    body += ["pad = -n & 7", "b = (acc << pad).to_bytes((n + pad) >> 3, 'big')"]
            if payload:
                pos = order.get(last_hdr, -1) if last_hdr is not None else -1
                body.append(f"b += payload_after(P, F, {pos})")
            if not as_int:
                body.append(f"return ALGO_{i}(b)")
            fname = f"calc_{i}"
            self.calc_names[calc["name"]] = fname
            self.emit([f"def {fname}(P, F):"])
            self.emit(body, 1)

    def gen_checksums(self) -> None:
        ver = ["bad = False"]
        upd = ["pass"]
        self.g.ctx = "control"
        for ck in self.doc.get("checksums", []):
            self.g.where = f"checksum '{ck['name']}'"
            calc = self._calc_name(ck["calculation"])
            slot, w, _ = self.layout.field(ck["target"][0], ck["target"][1])
            cond = "True" if ck.get("if_cond") is None else self.g.truth(ck["if_cond"])
            if ck.get("verify", True):
                ver += [f"if {cond} and F[{slot}] != {calc}(P, F) & {(1 << w) - 1}:", "    bad = True"]
                ver += ["    " + s for s in self.log(repr(f"Checksum '{ck['name']}' is not correct"))]
            if ck.get("update", True):
                upd += [f"if {cond}:", f"    F[{slot}] = {calc}(P, F) & {(1 << w) - 1}"]
                upd += ["    " + s for s in self.log(repr(f"Updating checksum '{ck['name']}'"))]
        ver.append("return bad")
        self.emit(["def verify_checksums(P, F):"])
        self.emit(ver, 1)
        self.emit(["def update_checksums(P, F):"])
        self.emit(upd, 1)
        self.g.ctx = "action"

    # ---- actions ----
    def gen_actions(self) -> None:
        acts = ["ACTS = {-1: _noact}"]
        self.emit(["def _noact(P, F, A):", "    return None"])
        self.exits: set[int] = set()
        self.inlinable: dict[int, list[str]] = {}
        for act in self.doc.get("actions", []):
            self.g.ctx = "action"
            self.g.where = f"action '{act['name']}'"
            self.g.param_widths = [int(r["bitwidth"]) for r in act.get("runtime_data", [])]
            prims = act.get("primitives", [])
            if any(p.get("op") == "exit" for p in prims):
                self.exits.add(act["id"])
            body = self.log(repr(f"Action {act['name']}"))
            if any(p.get("op") in ("_jump", "_jump_if_zero") for p in prims):
                body += self.jumpy_body(prims)
            else:
                for p in prims:
                    body += gen_primitive(self.g, p)
                # straight-line code: can be inlined where the action is fixed (p4c's tbl_* tables);
                # there `return` (exit) ends the pipeline, which is what exit means
                self.inlinable[act["id"]] = [("return None" if ln.strip() == "return" else ln) for ln in body]
            if not body:
                body = ["pass"]
            self.emit([f"def act_{act['id']}(P, F, A):"])
            self.emit(body, 1)
            acts.append(f"ACTS[{act['id']}] = act_{act['id']}")
        self.emit(acts)

    def jumpy_body(self, prims: list[dict[str, Any]]) -> list[str]:
        g = self.g
        leaders = {0}
        for i, p in enumerate(prims):
            if p["op"] in ("_jump", "_jump_if_zero"):
                leaders.add(int(parse_hex(p["parameters"][-1]["value"])))
                leaders.add(i + 1)
        leaders = sorted(x for x in leaders if x <= len(prims))
        out = ["pc = 0", "while True:"]
        for bi, start in enumerate(leaders):
            if start >= len(prims):
                continue
            end = leaders[bi + 1] if bi + 1 < len(leaders) else len(prims)
            block = []
            terminated = False
            for p in prims[start:end]:
                if p["op"] == "_jump":
                    block += [f"pc = {int(parse_hex(p['parameters'][0]['value']))}", "continue"]
                    terminated = True
                elif p["op"] == "_jump_if_zero":
                    cond = g.data(p["parameters"][0])
                    tgt = int(parse_hex(p["parameters"][1]["value"]))
                    block += [f"if not {cond}:", f"    pc = {tgt}", "    continue"]
                else:
                    block += gen_primitive(g, p)
            if not terminated:
                block += [f"pc = {end}", "continue"] if end < len(prims) else ["return None"]
            out.append(f"    if pc == {start}:")
            out += ["        " + s for s in block]
        out.append("    return None")
        return out

    # ---- control flow ----
    def gen_pipelines(self) -> None:
        """Control flow: every node's code ends in ``@GOTO <json name>`` markers; a node reached
        from exactly one marker is inlined at that marker, the others become functions returned
        to the ``run_<pipeline>`` trampoline."""
        self.g.ctx = "control"
        for pl in self.doc.get("pipelines", []):
            pname = pl["name"]
            fnames: dict[str, str] = {}
            bodies: dict[str, list[str]] = {}
            for t in pl.get("tables", []):
                fnames[t["name"]] = f"n_{_ident(pname)}_t{t['id']}"
                self.g.where = f"table '{t['name']}'"
                bodies[t["name"]] = self.table_node(t)
            for c in pl.get("conditionals", []):
                fnames[c["name"]] = f"n_{_ident(pname)}_c{c['id']}"
                self.g.where = f"conditional '{c['name']}'"
                cond = self.g.truth(c["expression"])
                src = ((c.get("source_info") or {}).get("source_fragment") or c["name"]).replace("'", "")
                src = src.replace('"', "").replace("\\", "")
                body = [f"c = {cond}"]
                if self.trace:
                    msg = f'Condition "{src}" ({c["name"]}) is '
                    body.append(f"LOG(P, {msg!r} + ('true' if c else 'false'))")
                bodies[c["name"]] = body + ["if c:", "    " + goto_marker(c.get("true_next")),
                                            goto_marker(c.get("false_next"))]
            for a in pl.get("action_calls", []):
                fnames[a["name"]] = f"n_{_ident(pname)}_a{a['id']}"
                bodies[a["name"]] = [f"act_{a['action_id']}(P, F, ())", goto_marker(a.get("next_node"))]
            counts: dict[str, int] = {}
            for body in bodies.values():
                for ln in body:
                    st = ln.lstrip()
                    if st.startswith("@GOTO "):
                        target = json.loads(st[6:])
                        if target is not None:
                            if target not in bodies:
                                raise PipelineError(f"pipeline '{pname}': reference to unknown control "
                                                    f"node '{target}'")
                            counts[target] = counts.get(target, 0) + 1
            init = pl.get("init_table")
            if init is not None and init not in bodies:
                raise PipelineError(f"pipeline '{pname}': init_table '{init}' does not exist")
            if init is not None:
                counts[init] = counts.get(init, 0) + 2      # entered from the trampoline
            self._emit_nodes(fnames, bodies, counts, init)
            self.emit([f"def run_{_ident(pname)}(P, F):"])
            body = self.log(repr(f"Pipeline '{pname}': start"))
            body += [f"n = {fnames[init] if init is not None else 'None'}", "while n is not None:",
                     "    n = n(P, F)"]
            body += self.log(repr(f"Pipeline '{pname}': end"))
            self.emit(body, 1)
            self.ns.setdefault("PIPELINES", {})[pname] = f"run_{_ident(pname)}"
        self.g.ctx = "action"

    def _emit_nodes(self, fnames: dict[str, str], bodies: dict[str, list[str]], counts: dict[str, int],
                    init: str | None, params: str = "P, F", prologue: tuple[str, ...] = (),
                    jump: tuple[str, ...] = ()) -> None:
        """Emit one function per node that is not inlined (see gen_pipelines); `prologue` starts
        every function, `jump` precedes a ``return <function>`` to another node."""
        pending = [init] if init is not None else []
        done: set[str] = set()

        def expand(lines: list[str], depth: int, visiting: frozenset[str]) -> list[str]:
            out: list[str] = []
            for ln in lines:
                st = ln.lstrip()
                ind = ln[:len(ln) - len(st)]
                if not st.startswith("@GOTO "):
                    out.append(ln)
                    continue
                target = json.loads(st[6:])
                level = depth + len(ind) // 4
                if target is None:
                    out.append(ind + "return None")
                elif counts[target] == 1 and level < 60 and target not in visiting:
                    out.extend(ind + x for x in expand(bodies[target], level, visiting | {target}))
                else:
                    out.extend(ind + x for x in jump)
                    out.append(ind + f"return {fnames[target]}")
                    if target not in done:
                        pending.append(target)
            return out

        while pending:
            name = pending.pop()
            if name in done:
                continue
            done.add(name)
            self.emit([f"def {fnames[name]}({params}):"])
            self.emit(list(prologue) + expand(bodies[name], 1, frozenset({name})), 1)

    def table_node(self, t: dict[str, Any]) -> list[str]:
        table = self.pipe.tables[t["name"]]
        T = self.g.const(table, "T")  # noqa: N806
        D = self.g.const(table.default, "DEF")  # noqa: N806
        keys = self.pipe._key_codes[t["name"]]
        body = self.log(repr(f"Applying table '{t['name']}'"))
        fixed = self.inlinable.get(table.default.aid) if not keys and table.default_is_const else None
        if fixed is not None:
            # a keyless table whose default action is const always runs that action: inline it
            if t.get("with_counters"):
                body += [f"c = {D}.counter", "c[0] += 1", "c[1] += P.in_len"]
            if table.default.args:
                body.append(f"A = {table.default.args!r}")
            body += fixed
            nxt = t.get("next_tables", {})
            if "__HIT__" in nxt or "__MISS__" in nxt:
                body.append(goto_marker(nxt.get("__MISS__")))
            else:
                name = table.default.action
                body.append(goto_marker(nxt.get(name, t.get("base_default_next")) if name in nxt
                                  else t.get("base_default_next")))
            return body
        if not keys:
            body.append(f"e = {D}")
            body.append("hit = False")
        else:
            if self.trace:
                body.append("LOG(P, 'Looking up key:' + " + " + ".join(
                    f"'\\n* {spec.name:<20}: ' + format({code}, '0{(spec.bitwidth + 7) // 8 * 2}x')"
                    for spec, code in zip(table.keys, keys, strict=True)) + ")")
            if table.kind == "exact":
                ex = self.g.const(table.exact, "EX")
                k = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
                body.append(f"e = {ex}.get({k})")
            elif table.kind == "lpm" and len(keys) == 1:
                lv = self.g.const(table.levels, "LV")
                body += ["e = None", f"k = {keys[0]}", f"for sh, dd in {lv}:", "    e = dd.get(k >> sh)",
                         "    if e is not None:", "        break"]
            elif table.kind == "lpm":
                body.append(f"e = {T}.lookup(({', '.join(keys)},))")
            else:
                parts = []
                shift = 0
                for spec, code in reversed(list(zip(table.keys, keys, strict=True))):
                    parts.append(f"({code} << {shift})" if shift else code)
                    shift += spec.bitwidth
                body.append(f"e = {T}.lookup_combined({' | '.join(reversed(parts))})")
            body += ["if e is None:", f"    e = {D}", "    hit = False", "else:", "    hit = True"]
            if self.trace:
                body += ["if hit:", f"    LOG(P, \"Table '{t['name']}': hit with handle %d\" % e.handle)",
                         "else:", f"    LOG(P, \"Table '{t['name']}': miss\")",
                         "LOG(P, 'Action entry is %s - %s' % (e.action, ','.join(format(x, 'x') "
                         "for x in e.args)))"]
        if t.get("with_counters"):
            body += ["c = e.counter", "c[0] += 1", "c[1] += P.in_len"]
        dm = t.get("direct_meters")
        if dm:
            meter = self.pipe._direct_meter_info.get(dm)
            if meter is not None and meter[0] is not None:
                unit = "1" if meter[1] == "packets" else "P.in_len"
                body += ["if hit and e.meter.rates:",
                         *("    " + s for s in self.g.store({"type": "field", "value": meter[0]},
                                                             Val(f"e.meter.execute(P.ts, {unit})", "data", 2)))]
        body.append("ACTS[e.aid](P, F, e.args)" if self.trace else "e.fn(P, F, e.args)")
        if self.exits and any(self.pipe._action_ids.get(a) in self.exits for a in t.get("actions", [])):
            body += ["if P.exit:", "    return None"]
        nxt = t.get("next_tables", {})
        if "__HIT__" in nxt or "__MISS__" in nxt:
            body += ["if hit:", "    " + goto_marker(nxt.get("__HIT__")), goto_marker(nxt.get("__MISS__"))]
            return body
        default_next = t.get("base_default_next")
        groups: dict[str | None, list[int]] = {}
        for aname, target in nxt.items():
            aid = self.pipe._action_ids.get(aname)
            if aid is not None:
                groups.setdefault(target, []).append(aid)
        covered = sum(len(v) for v in groups.values()) == len(t.get("actions", []))
        if not groups or (len(groups) == 1 and covered):
            body.append(goto_marker(next(iter(groups)) if groups else default_next))
            return body
        body.append("a = e.aid")
        for target, aids in groups.items():
            if target == default_next:
                continue
            body.append(f"if a in {set(aids)!r}:" if len(aids) > 1 else f"if a == {aids[0]}:")
            body.append("    " + goto_marker(target))
        body.append(goto_marker(default_next))
        return body


def build_program(doc: dict[str, Any], layout: Layout, pipe: Any, trace: bool) -> dict[str, Any]:
    """Generate, compile and exec the program; returns its namespace (see module docstring)."""
    gen = _Gen(doc, layout, pipe, trace)
    gen.gen_parser()
    gen.gen_deparser()
    gen.gen_calculations()
    gen.gen_checksums()
    gen.gen_actions()
    gen.gen_pipelines()
    source = "\n".join(gen.src) + "\n"
    ns = gen.ns
    try:
        code = compile(source, f"<bmv2:{'trace' if trace else 'fast'}>", "exec")
    except SyntaxError as exc:  # a bug in the generator, not in the user's JSON
        raise PipelineError(f"internal code generation error: {exc}") from exc
    exec(code, ns)  # noqa: S102 - our own generated source
    ns["__source__"] = source
    ns["__exits__"] = gen.exits
    ns["__calcs__"] = gen.calc_names
    return ns
