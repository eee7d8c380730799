"""`Pipeline`: loads a BMv2 JSON (as p4c-bm2-ss emits it for v1model), specialises it into Python
code (see `codegen`) and runs packets through it with simple_switch's semantics: parser, checksum
verification, ingress, the packet replication engine (I2E clones, digests, resubmit, multicast,
unicast/drop), then per egress job: egress, E2E clones, drop, checksum update, deparser,
recirculation.

Pure and single-threaded: no sockets, no threads, no clocks (timestamps are passed in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .codegen import CORE_ERRORS, AssertionFailed, StackError, build_program
from .exprs import parse_hex
from .layout import Layout
from .state import Counter, LearnList, Meter, PipelineError, Register, TableError
from .tables import ActionInfo, KeySpec, Match, Table

__all__ = ["Pipeline", "EgressJob", "PKT_INSTANCE_TYPE"]

log = logging.getLogger(__name__)

DROP_PORT = 511
PKT_INSTANCE_TYPE = {"NORMAL": 0, "INGRESS_CLONE": 1, "EGRESS_CLONE": 2, "COALESCED": 3,
                     "RECIRC": 4, "REPLICATION": 5, "RESUBMIT": 6}
_MAX_LOOPS = 32     # resubmit / recirculation passes allowed for one received packet

_INTRINSICS = ("ingress_port", "egress_spec", "egress_port", "instance_type", "packet_length",
               "enq_timestamp", "enq_qdepth", "deq_timedelta", "deq_qdepth",
               "ingress_global_timestamp", "egress_global_timestamp", "mcast_grp", "egress_rid",
               "checksum_error", "parser_error", "priority")


class _Pkt:
    """Per-packet context besides the PHV: buffer, parse offset and the packet 'registers'."""

    __slots__ = ("data", "off", "err", "exit", "clone", "clone_fl", "resubmit", "recirculate",
                 "digest", "trunc", "length", "in_len", "ts", "pid", "copy", "loops")

    def __init__(self, data: bytes, ts: int, pid: int) -> None:
        self.data = data
        self.off = 0
        self.err = 0
        self.exit = False
        self.clone: int | None = None
        self.clone_fl = 0
        self.resubmit: int | None = None
        self.recirculate: int | None = None
        self.digest = 0
        self.trunc = 0
        self.length = len(data)
        self.in_len = len(data)
        self.ts = ts
        self.pid = pid
        self.copy = 0
        self.loops = 0

    def fork(self, copy: int) -> _Pkt:
        p = _Pkt.__new__(_Pkt)
        p.data, p.off, p.err, p.exit = self.data, self.off, self.err, False
        p.clone, p.clone_fl, p.resubmit, p.recirculate, p.digest = None, 0, None, None, 0
        p.trunc, p.length, p.in_len, p.ts = self.trunc, self.length, self.in_len, self.ts
        p.pid, p.copy, p.loops = self.pid, copy, self.loops
        return p


class EgressJob:
    """A packet copy waiting for egress on `egress_port`; `length` is its size in bytes."""

    __slots__ = ("egress_port", "pkt", "phv")

    def __init__(self, egress_port: int, pkt: _Pkt, phv: list[int]) -> None:
        self.egress_port = egress_port
        self.pkt = pkt
        self.phv = phv

    @property
    def length(self) -> int:
        return self.pkt.length

    def __repr__(self) -> str:
        return f"EgressJob(port={self.egress_port}, length={self.length})"


def _load_doc(bmv2_json: dict | bytes | str) -> dict[str, Any]:
    if isinstance(bmv2_json, dict):
        return bmv2_json
    try:
        doc = json.loads(bmv2_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PipelineError(f"device config is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PipelineError("device config JSON is not an object")
    return doc


class Pipeline:
    """Executes one BMv2 JSON program. Not thread-safe (the switch serialises calls)."""

    def __init__(self, bmv2_json: dict | bytes | str) -> None:
        doc = _load_doc(bmv2_json)
        self.doc = doc
        try:
            self._build(doc)
        except PipelineError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise PipelineError(f"malformed BMv2 JSON: {type(exc).__name__}: {exc}") from exc
        self.digest_sink: Callable[[int, str, tuple[int, ...]], None] | None = None
        self.log_sink: Callable[[str], None] | None = None
        self.mc_groups: dict[int, list[tuple[int, int]]] = {}
        self.clone_sessions: dict[int, dict[str, Any]] = {}
        self._pid = 0

    # ------------------------------------------------------------------ loading
    def _build(self, doc: dict[str, Any]) -> None:
        self.layout = lay = Layout(doc)
        self.program_name = doc.get("program", "")
        self.registers = {r["name"]: Register(r["name"], int(r["size"]), int(r["bitwidth"]))
                          for r in doc.get("register_arrays", [])}
        self.counters: dict[str, Counter] = {}
        self._direct_counters: dict[str, str] = {}
        for c in doc.get("counter_arrays", []):
            if c.get("is_direct"):
                self._direct_counters[c["binding"]] = c["name"]
            else:
                self.counters[c["name"]] = Counter(c["name"], int(c["size"]))
        self.meters: dict[str, Meter] = {}
        self._direct_meter_info: dict[str, tuple[Any, str]] = {}
        self._direct_meters: dict[str, str] = {}
        for m in doc.get("meter_arrays", []):
            if m.get("is_direct"):
                self._direct_meter_info[m["name"]] = (m.get("result_target"), m.get("type", "packets"))
                self._direct_meters[m["binding"]] = m["name"]
            else:
                self.meters[m["name"]] = Meter(m["name"], int(m["size"]), m.get("type", "packets"),
                                               int(m.get("rate_count", 2)))
        self.learn_lists: dict[int, LearnList] = {}
        self._learn_slots: dict[int, list[int]] = {}
        for ll in doc.get("learn_lists", []):
            fields, slots = [], []
            for el in ll.get("elements", []):
                slot, w, _ = lay.field(el["value"][0], el["value"][1])
                fields.append((f"{el['value'][0]}.{el['value'][1]}", w))
                slots.append(slot)
            self.learn_lists[ll["id"]] = LearnList(ll["id"], ll["name"], fields)
            self._learn_slots[ll["id"]] = slots
        self._field_lists: dict[int, list[int]] = {}
        for fl in doc.get("field_lists", []):
            self._field_lists[fl["id"]] = [lay.field(el["value"][0], el["value"][1])[0]
                                           for el in fl.get("elements", []) if el.get("type") == "field"]
        self.parse_vsets: dict[str, list[int]] = {v["name"]: [] for v in doc.get("parse_vsets", [])}
        self._actions: dict[str, ActionInfo] = {}
        self._action_ids: dict[str, int] = {}
        self._action_by_id: dict[int, ActionInfo] = {}
        for a in doc.get("actions", []):
            info = ActionInfo(a["id"], a["name"], None, [int(r["bitwidth"]) for r in a.get("runtime_data", [])])
            self._actions[a["name"]] = info
            self._action_ids[a["name"]] = a["id"]
            self._action_by_id[a["id"]] = info
        self.tables: dict[str, Table] = {}
        self._key_codes: dict[str, list[str]] = {}
        for pl in doc.get("pipelines", []):
            for t in pl.get("tables", []):
                self._make_table(t)
        self.errors = dict(CORE_ERRORS)
        for name, value in doc.get("errors", []):
            self.errors[name] = value
        for pl in doc.get("pipelines", []):
            for t in pl.get("tables", []):
                self._init_default(t)
        self._fast = build_program(doc, lay, self, trace=False)
        self._traced: dict[str, Any] | None = None
        for info in self._actions.values():
            info.fn = self._fast[f"act_{info.id}"]
        for pl in doc.get("pipelines", []):
            for t in pl.get("tables", []):
                self._init_entries(t)
        pipes = self._fast.get("PIPELINES", {})
        for required in ("ingress", "egress"):
            if required not in pipes:
                raise PipelineError(f"the JSON has no '{required}' pipeline")
        self._slot = {name: lay.intrinsic(name) for name in _INTRINSICS}
        for name in ("ingress_port", "egress_spec", "egress_port", "instance_type", "packet_length"):
            if self._slot[name] is None:
                raise PipelineError(f"the JSON lacks the required field standard_metadata.{name}")
        self._slot = sl = {k: (lay.scratch if v is None else v) for k, v in self._slot.items()}
        self._ingress_slots = (sl["ingress_port"], sl["packet_length"], sl["instance_type"],
                               sl["ingress_global_timestamp"], sl["parser_error"], sl["checksum_error"])
        self._egress_slots = (sl["egress_global_timestamp"], sl["enq_timestamp"], sl["deq_timedelta"],
                              sl["enq_qdepth"], sl["deq_qdepth"], sl["egress_port"], sl["egress_spec"],
                              sl["packet_length"])
        self._init = lay.initial_vector()
        self._meta_slots = lay.metadata_slots()
        self._has_verify = any(c.get("verify", True) for c in doc.get("checksums", []))

    def _make_table(self, t: dict[str, Any]) -> None:
        lay = self.layout
        if t.get("type", "simple") != "simple":
            raise PipelineError(f"table '{t['name']}': action profiles/selectors "
                                f"('{t.get('type')}') are not supported by this target")
        specs, codes = [], []
        for k in t.get("key", []):
            mt = k["match_type"]
            if mt == "valid":
                target = k["target"]
                hname = target if isinstance(target, str) else target[0]
                slot, width = lay.header(hname).valid, 1
                name = k.get("name") or f"{hname}.$valid$"
                code = f"F[{slot}]"
            else:
                slot, width, _ = lay.field(k["target"][0], k["target"][1])
                name = k.get("name") or f"{k['target'][0]}.{k['target'][1]}"
                code = f"F[{slot}]"
                if k.get("mask") is not None:
                    # BMv2: the key is field & mask at the field's full width (p4c's P4Info bitwidth)
                    mask = parse_hex(k["mask"]) & ((1 << width) - 1)
                    code = f"(F[{slot}] & {mask})"
            specs.append(KeySpec(name, mt, width))
            codes.append(code)
        actions = list(t.get("actions", []))
        for a in actions:
            if a not in self._actions:
                raise PipelineError(f"table '{t['name']}' lists unknown action '{a}'")
        try:
            table = Table(t["name"], t["id"], specs, actions, self._actions, int(t.get("max_size", 1024)),
                          self._direct_counters.get(t["name"]), self._direct_meters.get(t["name"]))
        except TableError as exc:
            raise PipelineError(str(exc)) from exc
        self.tables[t["name"]] = table
        self._key_codes[t["name"]] = codes

    def _init_default(self, t: dict[str, Any]) -> None:
        """Default action from the JSON (bound before code generation, which inlines const ones)."""
        table = self.tables[t["name"]]
        de = t.get("default_entry")
        if de is not None:
            info = self._action_by_id.get(de["action_id"])
            if info is None:
                raise PipelineError(f"table '{t['name']}': default action id {de['action_id']} unknown")
            params = tuple(parse_hex(x) for x in de.get("action_data", []))
            if len(params) != len(info.param_widths):
                raise PipelineError(f"table '{t['name']}': default action '{info.name}' needs "
                                    f"{len(info.param_widths)} parameters, got {len(params)}")
            table.default.bind(info, params)
            table._initial_default = (info.name, params)
            table.default_is_const = bool(de.get("action_const"))

    def _init_entries(self, t: dict[str, Any]) -> None:
        table = self.tables[t["name"]]
        table.default.bind(self._actions[table.default.action] if table.default.action else None,
                           table.default.args)
        try:
            entries = t.get("entries") or []
            # BMv2/PI give a const entry of JSON priority p (smaller wins) the P4Runtime priority
            # 2^31 - 1 - p (larger wins): the same numbers read back over P4Runtime on both targets
            top = (1 << 31) - 1
            for e in entries:
                match = []
                for spec, mk in zip(table.keys, e["match_key"], strict=True):
                    match.append(self._json_match(spec, mk))
                info = self._action_by_id[e["action_entry"]["action_id"]]
                params = [parse_hex(x) for x in e["action_entry"].get("action_data", [])]
                prio = top - e.get("priority", 0) if table.needs_priority else 0
                table._add(match, info.name, params, prio)
            if entries:
                table.is_const = True
        except TableError as exc:
            raise PipelineError(f"table '{t['name']}' const entries: {exc}") from exc

    @staticmethod
    def _json_match(spec: KeySpec, mk: dict[str, Any]) -> Match:
        kind = spec.match_type
        if kind == "valid":
            return Match("valid", int(bool(mk["key"])) if isinstance(mk["key"], bool) else parse_hex(mk["key"]))
        if kind == "exact":
            return Match("exact", parse_hex(mk["key"]))
        if kind == "lpm":
            return Match("lpm", parse_hex(mk["key"]), prefix_len=int(mk["prefix_length"]))
        if kind == "range":
            return Match("range", parse_hex(mk["start"]), high=parse_hex(mk["end"]))
        full = (1 << spec.bitwidth) - 1
        mask = parse_hex(mk["mask"]) if "mask" in mk and mk["mask"] is not None else full
        value = parse_hex(mk["key"]) & mask
        if kind == "optional":
            return Match("optional", value, wildcard=mask == 0)
        return Match("ternary", value, mask=mask)

    # ------------------------------------------------------------------ control plane
    def set_mc_group(self, gid: int, replicas: list[tuple[int, int]]) -> None:
        """Set multicast group `gid` to [(egress_port, rid)]; an empty list deletes it."""
        if not 0 < gid < 1 << 16:
            raise TableError("INVALID_ARGUMENT", f"multicast group id {gid} outside [1, 65535]")
        if replicas:
            self.mc_groups[gid] = [(int(p), int(r)) for p, r in replicas]
        else:
            self.mc_groups.pop(gid, None)

    def set_clone_session(self, sid: int, replicas: list[tuple[int, int]],
                          packet_length_bytes: int = 0) -> None:
        """Set clone session `sid` to [(egress_port, instance)]; an empty list deletes it."""
        if not 0 <= sid < 1 << 15:
            raise TableError("INVALID_ARGUMENT", f"clone session id {sid} outside [0, 32767]")
        if replicas:
            self.clone_sessions[sid] = {"replicas": [(int(p), int(r)) for p, r in replicas],
                                        "packet_length_bytes": int(packet_length_bytes)}
        else:
            self.clone_sessions.pop(sid, None)

    def reset_state(self) -> None:
        """Clear registers, counters, meters and non-const table entries (like BMv2 reset_state)."""
        for r in self.registers.values():
            r.reset()
        for c in self.counters.values():
            c.reset()
        for m in self.meters.values():
            m.reset()
        for t in self.tables.values():
            if not t.is_const:
                t.clear()
            t.reset_default()
        self.mc_groups.clear()
        self.clone_sessions.clear()

    @property
    def generated_source(self) -> str:
        """The Python source the JSON was specialised into (for debugging)."""
        return self._fast["__source__"]

    # ------------------------------------------------------------------ logging
    def _log(self, P: _Pkt, msg: str) -> None:  # noqa: N803
        sink = self.log_sink
        if sink is not None:
            sink(f"[{P.pid}.{P.copy}] [cxt 0] {msg}")

    def _prog(self) -> dict[str, Any]:
        if self.log_sink is None:
            return self._fast
        if self._traced is None:
            self._traced = build_program(self.doc, self.layout, self, trace=True)
        return self._traced

    # ------------------------------------------------------------------ packet path
    def ingress(self, port: int, data: bytes, ts_us: int) -> list[EgressJob]:
        """Parser, checksum verification, ingress and the PRE for one received packet."""
        self._pid += 1
        P = _Pkt(bytes(data), ts_us, self._pid)  # noqa: N806
        if self.log_sink is not None:
            self._log(P, f"Processing packet received on port {port}")
        jobs: list[EgressJob] = []
        self._ingress(self._prog(), P, port, 0, None, jobs)
        return jobs

    def _ingress(self, prog: dict[str, Any], P: _Pkt, port: int, itype: int,  # noqa: N803
                 preserved: list[tuple[int, int]] | None, jobs: list[EgressJob]) -> None:
        s = self._slot
        F = self._init[:]  # noqa: N806
        iport, plen, itype_slot, igts, perr, ckerr = self._ingress_slots
        if itype == 0:
            F[iport] = port
        F[plen] = P.length
        F[itype_slot] = itype
        F[igts] = P.ts & 0xFFFFFFFFFFFF
        if preserved:
            for slot, v in preserved:
                F[slot] = v
        try:
            prog["parse"](P, F)
            F[perr] = P.err
            if self._has_verify:
                F[ckerr] = 1 if prog["verify_checksums"](P, F) else 0
            prog["run_ingress"](P, F)
        except (AssertionFailed, StackError) as exc:
            log.warning("packet dropped in ingress: %s", exc)
            self._log(P, f"Dropping packet: {exc}")
            return
        P.exit = False
        lg = self.log_sink is not None
        if P.clone is not None:
            session = self.clone_sessions.get(P.clone)
            if session is not None:
                self._i2e_clone(prog, P, F, session, jobs)
            elif lg:
                self._log(P, f"Clone session {P.clone} is not configured")
        if P.digest:
            self._learn(P.digest, F)
        if P.resubmit is not None:
            if P.loops >= _MAX_LOOPS:
                log.warning("packet resubmitted more than %d times, dropped", _MAX_LOOPS)
                return
            if lg:
                self._log(P, "Resubmitting packet")
            preserved = self._preserve(P.resubmit, F)
            P2 = _Pkt(P.data, P.ts, P.pid)  # noqa: N806
            P2.loops = P.loops + 1
            P2.length = P2.in_len = P.in_len
            # like simple_switch, metadata is reset: even ingress_port is 0 unless in the field list
            self._ingress(prog, P2, port, PKT_INSTANCE_TYPE["RESUBMIT"], preserved, jobs)
            return
        mgid = F[s["mcast_grp"]]
        if mgid:
            F[s["instance_type"]] = PKT_INSTANCE_TYPE["REPLICATION"]
            self._multicast(P, F, mgid, jobs)
            return
        egress_spec = F[s["egress_spec"]]
        if lg:
            self._log(P, f"Egress port is {egress_spec}")
        if egress_spec == DROP_PORT:
            if lg:
                self._log(P, "Dropping packet at the end of ingress")
            return
        F[s["instance_type"]] = 0
        P.clone = P.resubmit = P.recirculate = None
        P.digest = 0
        jobs.append(EgressJob(egress_spec, P, F))

    def _multicast(self, P: _Pkt, F: list[int], mgid: int, jobs: list[EgressJob]) -> None:  # noqa: N803
        replicas = self.mc_groups.get(mgid)
        if not replicas:
            if self.log_sink is not None:
                self._log(P, f"Multicast group {mgid} is empty or not configured")
            return
        rid_slot = self._slot["egress_rid"]
        for i, (port, rid) in enumerate(replicas):
            F2 = F[:]  # noqa: N806
            F2[rid_slot] = rid
            if self.log_sink is not None:
                self._log(P, f"Replicating packet on port {port}")
            jobs.append(EgressJob(port, P.fork(P.copy + i + 1), F2))

    def _preserve(self, field_list_id: int, F: list[int]) -> list[tuple[int, int]]:  # noqa: N803
        return [(slot, F[slot]) for slot in self._field_lists.get(field_list_id, [])]

    def _i2e_clone(self, prog: dict[str, Any], P: _Pkt, F: list[int], session: dict[str, Any],  # noqa: N803
                   jobs: list[EgressJob]) -> None:
        s = self._slot
        if self.log_sink is not None:
            self._log(P, "Cloning packet at ingress")
        P2 = P.fork(P.copy + 100)  # noqa: N806
        P2.off, P2.err, P2.length = 0, 0, P.in_len
        F2 = self._init[:]  # noqa: N806
        F2[s["ingress_port"]] = F[s["ingress_port"]]
        try:
            prog["parse"](P2, F2)
        except (AssertionFailed, StackError) as exc:
            log.warning("ingress clone dropped: %s", exc)
            return
        init = self._init
        for slot in self._meta_slots:
            F2[slot] = init[slot]
        for slot, v in self._preserve(P.clone_fl, F):
            F2[slot] = v
        F2[s["instance_type"]] = PKT_INSTANCE_TYPE["INGRESS_CLONE"]
        self._clone_out(P2, F2, session, jobs)

    def _clone_out(self, P: _Pkt, F: list[int], session: dict[str, Any], jobs: list[EgressJob]) -> None:  # noqa: N803
        P.trunc = session["packet_length_bytes"]       # a clone is truncated by its session only
        rid_slot = self._slot["egress_rid"]
        replicas = session["replicas"]
        for i, (port, rid) in enumerate(replicas):
            F2 = F if i == len(replicas) - 1 else F[:]  # noqa: N806
            F2[rid_slot] = rid
            jobs.append(EgressJob(port, P if i == len(replicas) - 1 else P.fork(P.copy + i), F2))

    def _learn(self, learn_id: int, F: list[int]) -> None:  # noqa: N803
        ll = self.learn_lists.get(learn_id)
        if ll is None:
            log.warning("generate_digest with unknown learn list id %d", learn_id)
            return
        sink = self.digest_sink
        if sink is not None:
            sink(learn_id, ll.name, tuple(F[slot] for slot in self._learn_slots[learn_id]))

    def egress(self, job: EgressJob, enq_ts_us: int, deq_ts_us: int, enq_qdepth: int,
               deq_qdepth: int) -> tuple[list[tuple[int, bytes]], list[EgressJob]]:
        """Egress, E2E clones, drop, deparser and recirculation for one dequeued job."""
        prog = self._prog()
        P, F, s = job.pkt, job.phv, self._slot  # noqa: N806
        P.ts = deq_ts_us
        egts, enqts, deqtd, enqqd, deqqd, eport, espec, plen = self._egress_slots
        F[egts] = deq_ts_us & 0xFFFFFFFFFFFF
        F[enqts] = enq_ts_us & 0xFFFFFFFF
        F[deqtd] = (deq_ts_us - enq_ts_us) & 0xFFFFFFFF if deq_ts_us > enq_ts_us else 0
        F[enqqd] = enq_qdepth & 0x7FFFF
        F[deqqd] = deq_qdepth & 0x7FFFF
        F[eport] = job.egress_port
        F[espec] = 0
        F[plen] = P.length
        outs: list[tuple[int, bytes]] = []
        more: list[EgressJob] = []
        lg = self.log_sink is not None
        try:
            prog["run_egress"](P, F)
        except (AssertionFailed, StackError) as exc:
            log.warning("packet dropped in egress: %s", exc)
            self._log(P, f"Dropping packet: {exc}")
            return outs, more
        P.exit = False
        if P.clone is not None:
            session = self.clone_sessions.get(P.clone)
            if session is not None and P.loops >= _MAX_LOOPS:
                log.warning("egress clone of a packet cloned %d times, not cloned again", _MAX_LOOPS)
            elif session is not None:
                if lg:
                    self._log(P, "Cloning packet at egress")
                F2 = F[:]  # noqa: N806
                init = self._init
                for slot in self._meta_slots:
                    F2[slot] = init[slot]
                for slot, v in self._preserve(P.clone_fl, F):
                    F2[slot] = v
                F2[s["instance_type"]] = PKT_INSTANCE_TYPE["EGRESS_CLONE"]
                P2 = P.fork(P.copy + 200)  # noqa: N806
                P2.loops = P.loops + 1
                self._clone_out(P2, F2, session, more)
            P.clone = None
        if F[s["egress_spec"]] == DROP_PORT:
            if lg:
                self._log(P, "Dropping packet at the end of egress")
            return outs, more
        data = prog["deparse"](P, F)
        if P.recirculate is not None:
            if P.loops >= _MAX_LOOPS:
                log.warning("packet recirculated more than %d times, dropped", _MAX_LOOPS)
                return outs, more
            if lg:
                self._log(P, "Recirculating packet")
            preserved = self._preserve(P.recirculate, F)
            P2 = _Pkt(data, P.ts, P.pid)  # noqa: N806
            P2.loops = P.loops + 1
            self._ingress(prog, P2, 0, PKT_INSTANCE_TYPE["RECIRC"], preserved, more)
            return outs, more
        if P.trunc and len(data) > P.trunc:
            data = data[:P.trunc]
        if lg:
            self._log(P, f"Transmitting packet of size {len(data)} out of port {job.egress_port}")
        outs.append((job.egress_port, data))
        return outs, more

    def process(self, port: int, data: bytes, ts_us: int | None = None) -> list[tuple[int, bytes]]:
        """Ingress then egress for every copy, with empty queues (tests, benchmarks)."""
        ts = 0 if ts_us is None else ts_us
        pending = self.ingress(port, data, ts)
        outs: list[tuple[int, bytes]] = []
        while pending:
            job = pending.pop(0)
            o, more = self.egress(job, ts, ts, 0, 0)
            outs.extend(o)
            pending.extend(more)
        return outs
