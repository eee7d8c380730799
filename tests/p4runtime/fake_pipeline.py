"""A stand-in for ``p4target.pipeline`` used only by the switch/P4Runtime unit tests.

It implements the Pipeline API of docs/internals.md for one fixed toy program ("toy"): table
``MyIngress.fwd`` (exact on ingress port → ``MyIngress.set_egress(port)`` / ``MyIngress.drop``),
ternary table ``MyIngress.acl`` (on the first byte), register ``MyIngress.seen`` counting packets per
ingress port, counter ``MyIngress.pkts``, a digest ``learn_t`` (ingress port, length) per packet, and a
2-byte controller header (9-bit port + 7 pad bits) for packet-in / packet-out. The P4Info for it is
``toy_p4info()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from p4.config.v1 import p4info_pb2

CPU_PORT = 255


class PipelineError(Exception):
    pass


class TableError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Match:
    kind: str
    value: int = 0
    mask: int | None = None
    prefix_len: int | None = None
    high: int | None = None
    wildcard: bool = False

    def key(self):
        return (self.kind, self.value, self.mask, self.prefix_len, self.high, self.wildcard)


@dataclass
class KeySpec:
    name: str
    match_type: str
    bitwidth: int


@dataclass
class Entry:
    match: list
    priority: int
    action: str
    params: list
    counter: list = field(default_factory=lambda: [0, 0])
    meter_config: object = None
    handle: int = 0


class Table:
    def __init__(self, name, keys, actions, default, direct_counter=None):
        self.name, self.keys, self.action_names = name, keys, actions
        self.size = 1024
        self.direct_counter, self.direct_meter, self.is_const = direct_counter, None, False
        self._entries: dict = {}
        self._initial_default = default
        self._default = default
        self.default_counter = [0, 0]
        self._handle = 0

    def _k(self, match, priority):
        return (tuple(m.key() for m in match), priority)

    def add(self, match, action, params, priority=0):
        k = self._k(match, priority)
        if k in self._entries:
            raise TableError("ALREADY_EXISTS", "entry exists")
        if action not in self.action_names:
            raise TableError("INVALID_ARGUMENT", "bad action")
        self._handle += 1
        e = self._entries[k] = Entry(match, priority, action, list(params), handle=self._handle)
        return e

    def modify(self, match, priority, action, params):
        e = self._entries.get(self._k(match, priority))
        if e is None:
            raise TableError("NOT_FOUND", "no entry")
        e.action, e.params = action, list(params)
        return e

    def delete(self, match, priority):
        e = self._entries.pop(self._k(match, priority), None)
        if e is None:
            raise TableError("NOT_FOUND", "no entry")
        return e

    def get(self, match, priority):
        return self._entries.get(self._k(match, priority))

    def entries(self):
        return list(self._entries.values())

    def set_default(self, action, params):
        self._default = (action, list(params))

    def get_default(self):
        return self._default

    def reset_default(self):
        self._default = self._initial_default

    def lookup_exact(self, value):
        for e in self._entries.values():
            if e.match[0].value == value:
                e.counter[0] += 1
                return e.action, e.params
        return self._default


class Register:
    def __init__(self, name, size, bitwidth):
        self.name, self.size, self.bitwidth = name, size, bitwidth
        self.cells = [0] * size

    def read(self, i):
        return self.cells[i]

    def write(self, i, v):
        self.cells[i] = v

    def reset(self):
        self.cells = [0] * self.size


class Counter:
    def __init__(self, name, size):
        self.name, self.size = name, size
        self.cells = [[0, 0] for _ in range(size)]

    def read(self, i):
        return tuple(self.cells[i])

    def write(self, i, pkts, nbytes):
        self.cells[i] = [pkts, nbytes]


@dataclass
class EgressJob:
    egress_port: int
    length: int
    data: bytes
    ingress_port: int


class Pipeline:
    def __init__(self, bmv2_json):
        if isinstance(bmv2_json, (bytes, str)):
            try:
                bmv2_json = json.loads(bmv2_json)
            except ValueError as exc:
                raise PipelineError(f"bad JSON: {exc}") from None
        if not isinstance(bmv2_json, dict) or bmv2_json.get("program") != "toy":
            raise PipelineError("not the toy program")
        self.tables = {
            "MyIngress.fwd": Table("MyIngress.fwd", [KeySpec("standard_metadata.ingress_port", "exact", 9)],
                                   ["MyIngress.set_egress", "MyIngress.drop"], ("MyIngress.drop", []),
                                   direct_counter="MyIngress.fwd_counter"),
            "MyIngress.acl": Table("MyIngress.acl", [KeySpec("hdr.b0", "ternary", 8)],
                                   ["MyIngress.drop", "NoAction"], ("NoAction", [])),
        }
        self.registers = {"MyIngress.seen": Register("MyIngress.seen", 512, 32)}
        self.counters = {"MyIngress.pkts": Counter("MyIngress.pkts", 512)}
        self.meters: dict = {}
        self.mc_groups: dict = {}
        self.clone_sessions: dict = {}
        self.digest_sink = None
        self.log_sink = None

    def set_mc_group(self, gid, replicas):
        if replicas:
            self.mc_groups[gid] = list(replicas)
        else:
            self.mc_groups.pop(gid, None)

    def set_clone_session(self, sid, replicas, packet_length_bytes=0):
        self.clone_sessions[sid] = (list(replicas), packet_length_bytes)

    def ingress(self, port, data, ts_us):
        if port == CPU_PORT:
            out_port = int.from_bytes(data[:2], "big") >> 7
            return [EgressJob(out_port, len(data) - 2, data[2:], port)]
        reg = self.registers["MyIngress.seen"]
        reg.cells[port] = (reg.cells[port] + 1) & 0xFFFFFFFF
        c = self.counters["MyIngress.pkts"].cells[port]
        c[0] += 1
        c[1] += len(data)
        if self.digest_sink is not None:
            self.digest_sink(1, "learn_t", (port, len(data) & 0xFFFF))
        action, params = self.tables["MyIngress.fwd"].lookup_exact(port)
        if action != "MyIngress.set_egress":
            return []
        if params[0] in self.mc_groups:
            return [EgressJob(p, len(data), data, port) for p, _rid in self.mc_groups[params[0]]]
        return [EgressJob(params[0], len(data), data, port)]

    def egress(self, job, enq_ts_us, deq_ts_us, enq_qdepth, deq_qdepth):
        data = job.data
        if job.egress_port == CPU_PORT:
            data = (job.ingress_port << 7).to_bytes(2, "big") + data
        self.last_queueing = (enq_ts_us, deq_ts_us, enq_qdepth, deq_qdepth)
        return [(job.egress_port, data)], []

    def process(self, port, data, ts_us=None):
        outs = []
        for job in self.ingress(port, data, ts_us or 0):
            o, _ = self.egress(job, 0, 0, 0, 0)
            outs += o
        return outs


TOY_JSON = json.dumps({"program": "toy"}).encode()


def toy_p4info() -> p4info_pb2.P4Info:
    from google.protobuf import text_format

    return text_format.Parse(TOY_P4INFO, p4info_pb2.P4Info())


TOY_P4INFO = """
pkg_info { arch: "v1model" }
tables {
  preamble { id: 33554433 name: "MyIngress.fwd" alias: "fwd" }
  match_fields { id: 1 name: "standard_metadata.ingress_port" bitwidth: 9 match_type: EXACT }
  action_refs { id: 16777217 }
  action_refs { id: 16777218 }
  direct_resource_ids: 318767105
  size: 1024
}
tables {
  preamble { id: 33554434 name: "MyIngress.acl" alias: "acl" }
  match_fields { id: 1 name: "hdr.b0" bitwidth: 8 match_type: TERNARY }
  action_refs { id: 16777218 }
  action_refs { id: 16777219 }
  size: 1024
}
actions { preamble { id: 16777217 name: "MyIngress.set_egress" alias: "set_egress" }
  params { id: 1 name: "port" bitwidth: 9 } }
actions { preamble { id: 16777218 name: "MyIngress.drop" alias: "drop" } }
actions { preamble { id: 16777219 name: "NoAction" alias: "NoAction" } }
direct_counters { preamble { id: 318767105 name: "MyIngress.fwd_counter" alias: "fwd_counter" }
  spec { unit: BOTH } direct_table_id: 33554433 }
counters { preamble { id: 302011001 name: "MyIngress.pkts" alias: "pkts" } spec { unit: BOTH } size: 512 }
registers { preamble { id: 369098753 name: "MyIngress.seen" alias: "seen" }
  type_spec { bitstring { bit { bitwidth: 32 } } } size: 512 }
digests { preamble { id: 385875969 name: "learn_t" alias: "learn_t" }
  type_spec { struct { name: "learn_t" } } }
controller_packet_metadata { preamble { id: 67146229 name: "packet_in" }
  metadata { id: 1 name: "ingress_port" bitwidth: 9 } metadata { id: 2 name: "_pad" bitwidth: 7 } }
controller_packet_metadata { preamble { id: 67121543 name: "packet_out" }
  metadata { id: 1 name: "egress_port" bitwidth: 9 } metadata { id: 2 name: "_pad" bitwidth: 7 } }
"""
