"""Runtime CLI commands on state other than table entries, as ``simple_switch_CLI``: counters,
meters, registers, the multicast engine (``mc_*``), mirroring sessions, queues, ports and the switch.

The multicast engine keeps BMv2's objects (groups; L1 nodes with a rid, a port map and a lag map)
in ``PreShadow`` and writes each group's replicas to the pipeline (``set_mc_group``). ``mc_dump``
lists groups in the order simple_switch does: the iteration order of a libstdc++
``std::unordered_map`` keyed by group id (``UnorderedOrder`` reproduces it). This is a mixin of
``runtime.RuntimeCommands``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from p4target.switch.runtime_info import OperationError, UsageError

# bucket counts a libstdc++ unordered_map goes through (13, then the next prime >= twice the count)
_BUCKETS = (13, 29, 59, 127, 257, 541, 1109, 2357, 5087, 10273, 20753, 42043, 85229)


class UnorderedOrder:
    """Iteration order of a libstdc++ ``std::unordered_map<int, T>`` (identity hash, max load 1)
    under inserts, erases and clear: a singly linked list where a key goes first in its bucket, or
    first in the list when its bucket is empty; a rehash walks the list into the new buckets."""

    def __init__(self) -> None:
        self.nbkt = 1
        self.order: list[int] = []

    def _bucket_start(self, key: int) -> int | None:
        b = key % self.nbkt
        for i, k in enumerate(self.order):
            if k % self.nbkt == b:
                return i
        return None

    def insert(self, key: int) -> None:
        if key in self.order:
            return
        if len(self.order) + 1 > (self.nbkt if self.nbkt > 1 else 0):
            bigger = [n for n in _BUCKETS if n > self.nbkt]
            self._rehash(bigger[0] if bigger else self.nbkt * 2 + 1)
        start = self._bucket_start(key)
        self.order.insert(0 if start is None else start, key)

    def _rehash(self, nbkt: int) -> None:
        old, self.nbkt, self.order = self.order, nbkt, []
        for key in old:
            start = self._bucket_start(key)
            self.order.insert(0 if start is None else start, key)

    def erase(self, key: int) -> None:
        if key in self.order:
            self.order.remove(key)

    def clear(self) -> None:
        self.order = []


@dataclass
class _Node:
    rid: int
    ports: list[int]
    lags: list[int]
    group: int | None = None


@dataclass
class PreShadow:
    """The simple_pre_lag state behind the pipeline's multicast groups."""

    groups: dict[int, list[int]] = field(default_factory=dict)      # mgrp -> [L1 handles]
    nodes: dict[int, _Node] = field(default_factory=dict)
    order: UnorderedOrder = field(default_factory=UnorderedOrder)

    def replicas(self, mgrp: int) -> list[tuple[int, int]]:
        return [(port, self.nodes[h].rid) for h in self.groups.get(mgrp, []) for port in self.nodes[h].ports]


def _port_map(words: list[str], what: str = "port") -> tuple[str, list[int]]:
    """BMv2's port map string (bit i = port i, most significant first) and the sorted ports."""
    nums = []
    for w in words:
        try:
            n = int(w)
        except ValueError:
            raise UsageError(f"'{w}' is not a valid {what} number") from None
        if n < 0:
            raise UsageError(f"'{w}' is not a valid {what} number")
        nums.append(n)
    nums.sort()
    bits, last = "", 0
    for n in nums:
        if n == last - 1:
            raise UsageError(f"Found duplicate {what} number '{n}'")
        bits += "0" * (n - last) + "1"
        last = n + 1
    return bits[::-1], nums


def _rates(words: list[str], count: int) -> list[tuple[float, int]]:
    if len(words) != count:
        raise UsageError(f"Invalid number of rates, expected {count} but got {len(words)}")
    out = []
    for w in words:
        try:
            r, b = w.split(":")
            out.append((float(r), int(b)))
        except ValueError:
            raise UsageError("Error while parsing rates") from None
    for (r1, _), (r2, _) in zip(out, out[1:], strict=False):
        if r1 > r2:
            raise OperationError("meter", "INVALID_INFO_RATE_VALUE")
    return out


class StateCommands:
    """Counters, meters, registers, PRE, mirroring, queues, ports, switch (mixed into RuntimeCommands)."""

    info: Any
    out: Any
    err: Any
    switch: Any
    thrift_port: int | None
    _pre: PreShadow
    _mirrors: dict[int, tuple[int | None, int | None]]

    def _index(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise UsageError("Bad format for index") from None

    def _int(self, text: str, what: str, expected: str = ", expected integer") -> int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"Bad format for {what}{expected}") from None

    # ------------------------------------------------------------------ counters
    def do_counter_read(self, line: str) -> None:
        "Read counter value: counter_read <name> <index>"
        args = line.split()
        self.exactly_n_args(args, 2)
        cdef = self.info.lookup("counter", args[0])
        index = self._index(args[1])
        if cdef.binding:
            self.out("this is the direct counter for table", cdef.binding)
            pkts, nbytes = self._entry(self._pipeline().tables[cdef.binding], index).counter
        else:
            ctr = self._pipeline().counters[cdef.name]
            if not 0 <= index < ctr.size:
                raise OperationError("counter", "INVALID_INDEX")
            pkts, nbytes = ctr.read(index)
        self.out(f"{args[0]}[{index}]= ({nbytes} bytes, {pkts} packets)")

    def do_counter_write(self, line: str) -> None:
        "Write counter value: counter_write <name> <index> <packets> <bytes>"
        args = line.split()
        self.exactly_n_args(args, 4)
        cdef = self.info.lookup("counter", args[0])
        index = self._index(args[1])
        pkts, nbytes = self._int(args[2], "packets", ""), self._int(args[3], "bytes", "")
        if cdef.binding:
            self.out("writing to direct counter for table", cdef.binding)
            self._entry(self._pipeline().tables[cdef.binding], index).counter[:] = [pkts, nbytes]
        else:
            if args[0] != cdef.name:  # simple_switch_CLI passes the name as typed here
                raise OperationError("counter", "INVALID_COUNTER_NAME")
            ctr = self._pipeline().counters[cdef.name]
            if not 0 <= index < ctr.size:
                raise OperationError("counter", "INVALID_INDEX")
            ctr.write(index, pkts, nbytes)
        self.out(f"{args[0]}[{index}] has been updated")

    def do_counter_reset(self, line: str) -> None:
        "Reset counter: counter_reset <name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        cdef = self.info.lookup("counter", args[0])
        if cdef.binding:
            self.out("this is the direct counter for table", cdef.binding)
            table = self._pipeline().tables[cdef.binding]
            for e in table.entries():
                e.counter[:] = [0, 0]
            table.default_counter[:] = [0, 0]
        else:
            self._pipeline().counters[cdef.name].reset()

    # ------------------------------------------------------------------ meters
    def do_meter_array_set_rates(self, line: str) -> None:
        "Configure rates for an entire meter array: meter_array_set_rates <name> <rate_1>:<burst_1> <rate_2>:<burst_2> ..."
        args = line.split()
        self.at_least_n_args(args, 1)
        mdef = self.info.lookup("meter", args[0])
        rates = _rates(args[1:], mdef.rate_count)
        if mdef.binding:
            raise OperationError("meter", "INVALID_METER_OPERATION")
        meter = self._pipeline().meters[mdef.name]
        for i in range(meter.size):
            meter.set_rates(i, rates)

    def do_meter_set_rates(self, line: str) -> None:
        "Configure rates for a meter: meter_set_rates <name> <index> <rate_1>:<burst_1> <rate_2>:<burst_2> ...\nRate uses units/microsecond and burst uses units where units is bytes or packets"
        args = line.split()
        self.at_least_n_args(args, 2)
        mdef = self.info.lookup("meter", args[0])
        index = self._index(args[1])
        rates = _rates(args[2:], mdef.rate_count)
        if mdef.binding:
            table = self._pipeline().tables[mdef.binding]
            table.set_meter(self._entry(table, index), rates)
            return
        meter = self._pipeline().meters[mdef.name]
        if not 0 <= index < meter.size:
            raise OperationError("meter", "INVALID_INDEX")
        meter.set_rates(index, rates)

    def do_meter_get_rates(self, line: str) -> None:
        "Retrieve rates for a meter: meter_get_rates <name> <index>"
        args = line.split()
        self.exactly_n_args(args, 2)
        mdef = self.info.lookup("meter", args[0])
        index = self._index(args[1])
        if mdef.binding:
            rates = self._entry(self._pipeline().tables[mdef.binding], index).meter_config
        else:
            meter = self._pipeline().meters[mdef.name]
            if not 0 <= index < meter.size:
                raise OperationError("meter", "INVALID_INDEX")
            rates = meter.get_rates(index)
        rates = rates or []
        if len(rates) != mdef.rate_count:
            self.out("WARNING: expected", mdef.rate_count, "rates", end=" ")
            self.out("but only received", len(rates))
        for i, (rate, burst) in enumerate(rates):
            self.out(f"{i}: info rate = {float(rate)}, burst size = {burst}")

    # ------------------------------------------------------------------ registers
    def _register(self, name: str) -> tuple[Any, Any]:
        rdef = self.info.lookup("register", name)
        return rdef, self._pipeline().registers[rdef.name]

    def do_register_read(self, line: str) -> None:
        "Read register value: register_read <name> [index]"
        args = line.split()
        self.at_least_n_args(args, 1)
        _rdef, reg = self._register(args[0])
        if len(args) > 1:
            self.exactly_n_args(args, 2)
            index = self._index(args[1])
            if not 0 <= index < reg.size:
                raise OperationError("register", "INVALID_INDEX")
            self.out(f"{args[0]}[{index}]=", reg.read(index))
        else:
            self.err("register index omitted, reading entire array")
            self.out(f"{args[0]}=", ", ".join(str(reg.read(i)) for i in range(reg.size)))

    def do_register_write(self, line: str) -> None:
        "Write register value: register_write <name> <index> <value>"
        args = line.split()
        self.exactly_n_args(args, 3)
        _rdef, reg = self._register(args[0])
        index = self._index(args[1])
        try:
            value = int(args[2])
        except ValueError:
            raise UsageError("Bad format for value, must be an integer") from None
        if not 0 <= index < reg.size:
            raise OperationError("register", "INVALID_INDEX")
        reg.write(index, value & ((1 << reg.bitwidth) - 1))

    def do_register_reset(self, line: str) -> None:
        "Reset all the cells in the register array to 0: register_reset <name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        self._register(args[0])[1].reset()

    # ------------------------------------------------------------------ multicast
    def _pre_state(self) -> PreShadow:
        """The PRE shadow, re-synchronised with groups written by P4Runtime (one node per rid)."""
        p = self._pipeline()
        pre = self._pre
        for gid, replicas in p.mc_groups.items():
            if pre.replicas(gid) == list(replicas):
                continue
            for h in pre.groups.get(gid, []):
                del pre.nodes[h]
            pre.groups[gid] = []
            pre.order.insert(gid)
            by_rid: dict[int, list[int]] = {}
            for port, rid in replicas:
                by_rid.setdefault(rid, []).append(port)
            for rid, ports in by_rid.items():
                h = self._free_node(pre)
                pre.nodes[h] = _Node(rid, sorted(ports), [], gid)
                pre.groups[gid].append(h)
        for gid in [g for g, hs in pre.groups.items() if g not in p.mc_groups and pre.replicas(g)]:
            self.do_mc_mgrp_destroy(str(gid), quiet=True)
        return pre

    @staticmethod
    def _free_node(pre: PreShadow) -> int:
        h = 0
        while h in pre.nodes:
            h += 1
        return h

    def _sync_group(self, gid: int) -> None:
        self._pipeline().set_mc_group(gid, self._pre.replicas(gid))

    def _mgrp(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise UsageError("Bad format for multicast group id") from None

    def _node_handle(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise UsageError("Bad format for node handle") from None

    def do_mc_mgrp_create(self, line: str) -> None:
        "Create multicast group: mc_mgrp_create <group id>"
        args = line.split()
        self.exactly_n_args(args, 1)
        mgrp = self._mgrp(args[0])
        self.out("Creating multicast group", mgrp)
        if not 0 <= mgrp < 1 << 16:
            raise OperationError("PRE", "ERROR")
        pre = self._pre_state()
        if mgrp not in pre.groups:
            pre.groups[mgrp] = []
            pre.order.insert(mgrp)

    def do_mc_mgrp_destroy(self, line: str, quiet: bool = False) -> None:
        "Destroy multicast group: mc_mgrp_destroy <group id>"
        args = line.split()
        self.exactly_n_args(args, 1)
        mgrp = self._mgrp(args[0])
        if not quiet:
            self.out("Destroying multicast group", mgrp)
        pre = self._pre if quiet else self._pre_state()
        for h in pre.groups.pop(mgrp, []):
            pre.nodes[h].group = None
        pre.order.erase(mgrp)
        if 0 < mgrp < 1 << 16:
            self._pipeline().set_mc_group(mgrp, [])

    def _ports_and_lags(self, args: list[str]) -> tuple[str, list[int], str]:
        words = args[1:]
        ports, lags = (words[:words.index("|")], words[words.index("|") + 1:]) if "|" in words else (words, [])
        port_map, nums = _port_map(ports)
        lag_map, _ = _port_map(lags, "lag")
        return port_map, nums, lag_map

    def do_mc_node_create(self, line: str) -> None:
        "Create multicast node: mc_node_create <rid> <space-separated port list> [ | <space-separated lag list> ]"
        args = line.split()
        self.at_least_n_args(args, 1)
        try:
            rid = int(args[0])
        except ValueError:
            raise UsageError("Bad format for rid") from None
        port_map, ports, lag_map = self._ports_and_lags(args)
        self.out("Creating node with rid", rid, ", port map", port_map, "and lag map", lag_map)
        pre = self._pre_state()
        h = self._free_node(pre)
        pre.nodes[h] = _Node(rid, ports, [])
        self.out("node was created with handle", h)

    def do_mc_node_update(self, line: str) -> None:
        "Update multicast node: mc_node_update <node handle> <space-separated port list> [ | <space-separated lag list> ]"
        args = line.split()
        self.at_least_n_args(args, 2)
        h = self._node_handle(args[0])
        port_map, ports, lag_map = self._ports_and_lags(args)
        self.out("Updating node", h, "with port map", port_map, "and lag map", lag_map)
        pre = self._pre_state()
        if h not in pre.nodes:
            raise OperationError("PRE", "INVALID_L1_HANDLE")
        pre.nodes[h].ports = ports
        if pre.nodes[h].group is not None:
            self._sync_group(pre.nodes[h].group)

    def do_mc_node_associate(self, line: str) -> None:
        "Associate node to multicast group: mc_node_associate <group handle> <node handle>"
        args = line.split()
        self.exactly_n_args(args, 2)
        mgrp, h = self._mgrp(args[0]), self._node_handle(args[1])
        self.out("Associating node", h, "to multicast group", mgrp)
        pre = self._pre_state()
        if mgrp not in pre.groups:
            raise OperationError("PRE", "INVALID_MGRP_HANDLE")
        if h not in pre.nodes:
            raise OperationError("PRE", "INVALID_L1_HANDLE")
        if pre.nodes[h].group is not None:
            raise OperationError("PRE", "ERROR")
        pre.nodes[h].group = mgrp
        pre.groups[mgrp].append(h)
        self._sync_group(mgrp)

    def do_mc_node_dissociate(self, line: str) -> None:
        "Dissociate node from multicast group: mc_node_associate <group handle> <node handle>"
        args = line.split()
        self.exactly_n_args(args, 2)
        mgrp, h = self._mgrp(args[0]), self._node_handle(args[1])
        self.out("Dissociating node", h, "from multicast group", mgrp)
        pre = self._pre_state()
        if mgrp not in pre.groups:
            raise OperationError("PRE", "INVALID_MGRP_HANDLE")
        if h not in pre.nodes:
            raise OperationError("PRE", "INVALID_L1_HANDLE")
        if pre.nodes[h].group != mgrp:
            raise OperationError("PRE", "ERROR")
        pre.nodes[h].group = None
        pre.groups[mgrp].remove(h)
        self._sync_group(mgrp)

    def do_mc_node_destroy(self, line: str) -> None:
        "Destroy multicast node: mc_node_destroy <node handle>"
        args = line.split()
        self.exactly_n_args(args, 1)
        h = self._node_handle(args[0])
        self.out("Destroying node", h)
        pre = self._pre_state()
        node = pre.nodes.pop(h, None)
        if node is None:
            raise OperationError("PRE", "INVALID_L1_HANDLE")
        if node.group is not None:
            pre.groups[node.group].remove(h)
            self._sync_group(node.group)

    def do_mc_set_lag_membership(self, line: str) -> None:
        "Set lag membership of port list: mc_set_lag_membership <lag index> <space-separated port list>"
        raise UsageError("LAGs are not supported by p4target-switch")

    def do_mc_dump(self, line: str) -> None:
        "Dump entries in multicast engine"
        pre = self._pre_state()
        self.out("==========")
        self.out("MC ENTRIES")
        for mgrp in pre.order.order:
            self.out("**********")
            self.out(f"mgrp({mgrp})")
            for h in pre.groups[mgrp]:
                node = pre.nodes[h]
                self.out(f"  -> (L1h={h}, rid={node.rid})", end=" ")
                self.out("-> (ports=[{}], lags=[{}])".format(", ".join(map(str, node.ports)),
                                                            ", ".join(map(str, node.lags))))
        self.out("==========")
        self.out("LAGS")
        self.out("==========")

    # ------------------------------------------------------------------ mirroring
    def _apply_mirror(self, sid: int) -> None:
        port, mgid = self._mirrors[sid]
        if port is not None:
            replicas = [(port, 0)]
        else:
            replicas = [(p, 0) for p, _rid in self._pre_state().replicas(mgid or 0)]
        if 0 <= sid < 1 << 15:  # simple_switch accepts any id; the pipeline's sessions are 15-bit
            self._pipeline().set_clone_session(sid, replicas)

    def do_mirroring_add(self, line: str) -> None:
        "Add mirroring session to unicast port: mirroring_add <mirror_id> <egress_port>"
        args = line.split()
        self.exactly_n_args(args, 2)
        sid, port = self._int(args[0], "mirror_id"), self._int(args[1], "egress_port")
        self._pipeline()
        self._mirrors[sid] = (port, None)
        self._apply_mirror(sid)

    def do_mirroring_add_mc(self, line: str) -> None:
        "Add mirroring session to multicast group: mirroring_add_mc <mirror_id> <mgrp>"
        args = line.split()
        self.exactly_n_args(args, 2)
        sid, mgrp = self._int(args[0], "mirror_id"), self._int(args[1], "mgrp")
        self._pipeline()
        self._mirrors[sid] = (None, mgrp)
        self._apply_mirror(sid)

    def do_mirroring_delete(self, line: str) -> None:
        "Delete mirroring session: mirroring_delete <mirror_id>"
        args = line.split()
        self.exactly_n_args(args, 1)
        sid = self._int(args[0], "mirror_id")
        if self._mirrors.pop(sid, None) is None and sid not in self._pipeline().clone_sessions:
            raise OperationError("mirroring", "SESSION_NOT_FOUND")
        if 0 <= sid < 1 << 15:
            self._pipeline().set_clone_session(sid, [])

    def do_mirroring_get(self, line: str) -> None:
        "Display mirroring session: mirroring_get <mirror_id>"
        args = line.split()
        self.exactly_n_args(args, 1)
        sid = self._int(args[0], "mirror_id")
        config = self._mirrors.get(sid)
        if config is None:
            session = self._pipeline().clone_sessions.get(sid)
            if session is None:
                raise OperationError("mirroring", "SESSION_NOT_FOUND")
            replicas = session.get("replicas", [])
            config = (replicas[0][0], None) if len(replicas) == 1 else (None, None)
        self.out(f"MirroringSessionConfig(port={config[0]}, mgid={config[1]})")

    # ------------------------------------------------------------------ queues, ports, switch
    def _queue_args(self, args: list[str], what: str) -> tuple[int, int | None]:
        self.at_least_n_args(args, 1)
        value = self._int(args[0], what)
        port = self._int(args[1], "egress_port") if len(args) > 1 else None
        if len(args) > 2 and self._int(args[2], "priority") != 0:
            raise UsageError("p4target-switch has one queue per port (priority 0)")
        return value, port

    def do_set_queue_depth(self, line: str) -> None:
        "Set depth of one / all egress queue(s): set_queue_depth <nb_pkts> [<egress_port> [<priority>]]"
        depth, port = self._queue_args(line.split(), "nb_pkts")
        self.switch.set_queue_depth(max(depth, 1), port)

    def do_set_queue_rate(self, line: str) -> None:
        "Set rate of one / all egress queue(s): set_queue_rate <rate_pps> [<egress_port> [<priority>]]"
        rate, port = self._queue_args(line.split(), "rate_pps")
        self.switch.set_queue_rate(rate, port)

    def do_show_ports(self, line: str) -> None:
        "Shows the ports connected to the switch: show_ports"
        self.exactly_n_args(line.split(), 0)
        self.out("{:^10}{:^20}{:^10}{}".format("port #", "iface name", "status", "extra info"))
        self.out("=" * 50)
        status = self.switch.port_status()
        for n, port in sorted(self.switch.ports.items()):
            self.out("{:^10}{:^20}{:^10}{}".format(n, port.iface, "UP" if status.get(n) else "DOWN", ""))

    def do_port_add(self, line: str) -> None:
        "Add a port to the switch (behavior depends on device manager used): port_add <iface_name> <port_num> [pcap_path]"
        raise UsageError("p4target-switch ports are fixed at start-up (use -i PORT@IFACE)")

    def do_port_remove(self, line: str) -> None:
        "Removes a port from the switch (behavior depends on device manager used): port_remove <port_num>"
        raise UsageError("p4target-switch ports are fixed at start-up (use port_down <port>)")

    def do_switch_info(self, line: str) -> None:
        "Show some basic info about the switch: switch_info"
        self.exactly_n_args(line.split(), 0)
        attrs = [("device_id", self.switch.device_id), ("thrift_port", self.thrift_port),
                 ("notifications_socket", ""), ("elogger_socket", None), ("debugger_socket", None)]
        w = 5 + max(len(a) for a, _ in attrs)
        for a, v in attrs:
            self.out("{:{w}}: {}".format(a, v, w=w))

    def do_reset_state(self, line: str) -> None:
        "Reset all state in the switch (table entries, registers, ...), but P4 config is preserved: reset_state"
        self.exactly_n_args(line.split(), 0)
        p = self._pipeline()
        p.reset_state()
        self._timeouts.clear()
        self._pre.groups.clear()
        self._pre.nodes.clear()
        self._pre.order.clear()
        for sid in self._mirrors:  # simple_switch keeps mirroring sessions
            self._apply_mirror(sid)

    def do_get_time_elapsed(self, line: str) -> None:
        "Get time elapsed (in microseconds) since the switch started: get_time_elapsed"
        self.out(self.switch.now_us())

    def do_get_time_since_epoch(self, line: str) -> None:
        "Get time elapsed (in microseconds) since the switch clock's epoch: get_time_since_epoch"
        self.out(time.time_ns() // 1000)
