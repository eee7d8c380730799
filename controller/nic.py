"""Access to a stateful NIC's flow state: the two paths and the lookup table.

Owns ``NicDriver``: per NIC switch, the suspend/save/load/resume/clear operations on many slots at
once, through either path — the in-band command packets (``controller.commands``, works on any
P4Runtime target) or register Read/Write (``controller.p4rt.registers``: P4Runtime RegisterEntry in one
batched RPC, or BMv2's Thrift API where P4Runtime answers UNIMPLEMENTED). The transfer path is chosen
automatically: registers when P4Runtime serves them (timed against in-band), else in-band — Thrift
calls are per cell and not atomic with the traffic, so there they serve scans, counters and forced
``path = "registers"`` only. Both paths return the same
``Command``-shaped replies, hence identical FlowStates. Also owns the NIC's ``flow_slots`` entries
(controller-placed references) and slot allocation for loads.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import replace

from p4.v1 import p4runtime_pb2

from . import commands as C
from . import dataplane as D
from .commands import Command, CommandChannel, CommandError, PendingCommands
from .flowstate import FlowKey, FlowState
from .gateway import PACKET_IN_PATH_MARKER, MarkerBoard, marker_token
from .p4rt.connection import PacketIn, SwitchConnection
from .p4rt.errors import P4RuntimeError
from .p4rt.registers import RegisterAccess

__all__ = ["NicDriver", "NicError", "FLOW_SLOTS", "REGISTER_FIELDS"]

log = logging.getLogger(__name__)

FLOW_SLOTS = D.FLOW_SLOTS        # when the P4Info lacks the slot registers; else their size
ROCE_UDP_PORT = D.ROCE_UDP_PORT
BATCH_THRESHOLD = 16
FLOW_SLOTS_TABLE = "flow_slots"
USE_SLOT_ACTION = "use_slot"

# register (short name) -> Command field; key_ports / proto_qpn are packed by the program.
REGISTER_FIELDS: dict[str, str] = {
    "slot_flags": "flags", "slot_kind": "kind", "slot_key_addr_lo": "key_addr_lo",
    "slot_key_addr_hi": "key_addr_hi", "slot_key_ports": "_ports", "slot_key_proto_qpn": "_proto_qpn",
    "flow_packets": "packets", "flow_bytes": "bytes", "flow_first_seen": "first_seen",
    "flow_last_seen": "last_seen", "tcp_phase": "tcp_phase", "tcp_next_seq_fwd": "tcp_next_seq_fwd",
    "tcp_next_seq_rev": "tcp_next_seq_rev", "tcp_max_ack_fwd": "tcp_max_ack_fwd",
    "tcp_max_ack_rev": "tcp_max_ack_rev", "tcp_max_window_fwd": "tcp_max_window_fwd",
    "tcp_max_window_rev": "tcp_max_window_rev", "tcp_wscale_fwd": "tcp_wscale_fwd",
    "tcp_wscale_rev": "tcp_wscale_rev", "roce_expected_psn": "roce_expected_psn",
    "roce_acked_psn": "roce_acked_psn", "roce_oos_count": "roce_oos_count",
}


class NicError(RuntimeError):
    """A NIC operation failed for some slots; ``failures`` lists (key, slot, reason)."""

    def __init__(self, message: str, failures: list[tuple[FlowKey, int, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


def _get(c: Command, fname: str) -> int:
    if fname == "_ports":
        return (c.key_port_lo << 16) | c.key_port_hi
    if fname == "_proto_qpn":
        return (c.key_proto << 24) | c.key_qpn
    return getattr(c, fname)


def _set(c: Command, fname: str, value: int) -> None:
    if fname == "_ports":
        c.key_port_lo, c.key_port_hi = value >> 16, value & 0xFFFF
    elif fname == "_proto_qpn":
        c.key_proto, c.key_qpn = value >> 24, value & 0xFFFFFF
    else:
        setattr(c, fname, value)


def _same_key(c: Command, key: FlowKey) -> bool:
    want = Command.for_key(C.NOP, key, 0)
    return (c.kind, c.key_addr_lo, c.key_addr_hi, c.key_port_lo, c.key_port_hi, c.key_proto, c.key_qpn) == \
        (want.kind, want.key_addr_lo, want.key_addr_hi, want.key_port_lo, want.key_port_hi, want.key_proto,
         want.key_qpn)


class NicDriver:
    """Flow-state operations on one NIC (``flow_nic`` program)."""

    def __init__(self, conn: SwitchConnection, path: str = "auto", timeout: float = 2.0,
                 registers: RegisterAccess | None = None) -> None:
        if conn.helper is None:
            raise NicError(f"{conn.name}: no P4Info (is the flow_nic pipeline set?)")
        self.conn = conn
        self.name = conn.name
        self.helper = conn.helper
        self.channel = CommandChannel(conn, timeout)
        self.regs = registers if registers is not None else RegisterAccess(conn)   # P4Runtime, else Thrift
        self._regs = {short: self._reg_name(short) for short in REGISTER_FIELDS}
        self.slots = FLOW_SLOTS
        if self.helper.has("register", self._regs["slot_flags"]):
            self.slots = self.helper.get("register", self._regs["slot_flags"]).size or FLOW_SLOTS
        self._path = self._choose_path(path)
        # any register access (P4Runtime or BMv2 Thrift): scans, counters, RoCE ports
        self.registers_ok = self._path == "registers" or self.regs.available()
        # `path` says what the device serves ("registers" when RegisterEntry works); `transfer_path` is
        # the one the state transfer uses for single references — measured when both work.
        self.calibration: dict[str, float] = {}
        self.transfer_path = self._calibrate() if path == "auto" and self._path == "registers" else self._path
        # With both paths available, batches of more than `batch_threshold` references use the
        # in-band commands (one packet per reference) rather than ~22 register entities each.
        self.batch_threshold: int | None = BATCH_THRESHOLD if path == "auto" else None
        self._alloc_lock = threading.Lock()
        self._reserved: set[int] = set()
        self.placed: dict[FlowKey, int] = {}  # flow_slots entries this controller inserted
        # path markers back from this NIC (token -> arrival), bounded: forged or late ones age out
        self.markers = MarkerBoard()
        self._unsub_markers = conn.subscribe_packets(self._on_packet)

    def close(self) -> None:
        self.channel.close()
        self._unsub_markers()

    # ---- path markers -------------------------------------------------------------------------------
    def _on_packet(self, pkt: PacketIn) -> None:
        if pkt.metadata.get("reason") != PACKET_IN_PATH_MARKER:
            return
        token = marker_token(pkt.payload)
        if token is not None:
            self.markers.arrived(token)

    def wait_marker(self, token: int, timeout: float) -> bool:
        """Wait until the path marker ``token`` (sent by a gateway toward this NIC) reached the NIC's
        ingress: every packet sent ahead of it on that link has then updated its flow's state."""
        return self.markers.wait([token], timeout)

    def _reg_name(self, short: str) -> str:
        for name in self.helper.names("register"):
            if name == short or name.endswith("." + short):
                return name
        return short

    def _probe_registers(self) -> bool:
        """True when P4Runtime itself serves registers (the Thrift fallback does not count here)."""
        return self.regs.available() and self.regs.via == "p4runtime"

    def _choose_path(self, path: str) -> str:
        if path in ("inband", "registers"):
            return path
        if path != "auto":
            raise ValueError(f"unknown state access path {path!r} (auto, inband, registers)")
        if self._probe_registers():
            return "registers"
        log.info("%s: P4Runtime register access UNIMPLEMENTED; state transfer by in-band commands%s", self.name,
                 " (registers through BMv2 Thrift for scans and counters)" if self.regs.via == "thrift" else "")
        return "inband"

    def _calibrate(self, rounds: int = 5) -> str:
        """Both paths work: time a SAVE of one (empty) slot on each, interleaved, ``rounds`` times; the
        register path is kept for single operations only if its median is clearly (20 %) faster — one
        slow sample on a busy machine must not pick the slower path for good."""
        probe = [(FlowKey("udp", 0, 0, 0, 0), 0)]
        fns = {"inband": lambda: self.channel.execute([Command.for_key(C.SAVE, *probe[0])]),
               "registers": lambda: self._run_registers(C.SAVE, probe)}
        samples: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                if samples[name] is None:
                    continue
                t0 = time.perf_counter()
                try:
                    fn()
                except (CommandError, P4RuntimeError) as exc:
                    log.info("%s: %s path unusable (%s)", self.name, name, exc)
                    samples[name] = None  # type: ignore[assignment]
                    continue
                samples[name].append(time.perf_counter() - t0)
        self.calibration = {name: statistics.median(v) * 1000 if v else float("inf") for name, v in samples.items()}
        choice = "registers" if self.calibration["registers"] < 0.8 * self.calibration["inband"] else "inband"
        if self.calibration[choice] == float("inf"):
            choice = "registers"
        log.info("%s: state access round trip (ms, median of %d) %s -> %s", self.name, rounds,
                 {k: round(v, 2) for k, v in self.calibration.items()}, choice)
        return choice

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        """Force one path for everything (tests, operators): no calibration, no batch switch."""
        if value not in ("inband", "registers"):
            raise ValueError(f"unknown state access path {value!r} (inband, registers)")
        self._path = self.transfer_path = value
        self.batch_threshold = None

    def path_for(self, n: int, writes: bool = False) -> str:
        """The path used for an operation on ``n`` references (``writes``: one that changes state)."""
        if self.batch_threshold is not None and n > self.batch_threshold:
            # batches: one command packet per reference beats ~22 register entities each
            return "inband"
        if writes and self.batch_threshold is not None and self.calibration.get("inband", 0.0) < float("inf"):
            # LOAD/SUSPEND/RESUME/CLEAR by registers is a Read and one or two Writes, in-band one round
            # trip: the calibration (a SAVE: one Read) only decides the reads
            return "inband"
        return self.transfer_path

    # ---- the five operations ------------------------------------------------------------------------
    def run(self, opcode: int, items: Sequence[tuple[FlowKey, int]], path: str | None = None) -> list[Command]:
        """Run SUSPEND/SAVE/RESUME/CLEAR on (key, slot) pairs; replies in order (status per item)."""
        path = path or self.path_for(len(items), writes=opcode != C.SAVE)
        if path == "inband":
            return self.channel.execute([Command.for_key(opcode, k, s) for k, s in items])
        return self._run_registers(opcode, items)

    def expect(self, opcode: int, items: Sequence[tuple[FlowKey, int]], batch: bool = False) -> PendingCommands:
        """Commands ``opcode`` on (key, slot) pairs, awaited but not sent: the caller sends their frames
        (out of a gateway toward this NIC: a path save, docs/dataplane.md "Path saves"); with ``batch``,
        as command batches where the NIC executes them."""
        return self.channel.expect([Command.for_key(opcode, k, s) for k, s in items], batch=batch)

    def load(self, states: Sequence[FlowState], slots: Sequence[int], suspended: bool = False,
             path: str | None = None) -> list[Command]:
        path = path or self.path_for(len(states), writes=True)
        cmds = [Command.load(fs, slot, suspended) for fs, slot in zip(states, slots, strict=True)]
        if path == "inband":
            return self.channel.execute(cmds)
        return self._load_registers(cmds)

    def save(self, items: Sequence[tuple[FlowKey, int]], suspend: bool = True,
             version: int = C.FLOWMIG_VERSION) -> list[FlowState]:
        """SUSPEND (or SAVE) each reference and return its FlowState; raises NicError on any failure."""
        replies = self.run(C.SUSPEND if suspend else C.SAVE, items)
        self.check(replies, items, "save")
        return [r.flow_state(self.name, version) for r in replies]

    def save_when_quiet(self, items: Sequence[tuple[FlowKey, int]], counts: Sequence[int] | None, interval: float,
                        timeout: float, version: int = C.FLOWMIG_VERSION) -> list[FlowState]:
        """Save once the references' packet counters match ``counts`` (the previous sample).

        In-band: SUSPEND (freeze + read) in one round trip; if a counter moved since the previous
        sample the slots are resumed and sampled again after ``interval``. Registers: one Read of every
        register; the slots are not frozen (the gateways already hold the references' packets).
        Bounded by ``timeout``: then the last state read is saved (and a warning logged).
        """
        deadline = time.monotonic() + timeout
        prev = list(counts) if counts is not None else None
        path = self.path_for(len(items))
        while True:
            if path == "inband":
                replies = self.run(C.SUSPEND, items, path)
            else:
                replies = self._run_registers(C.SAVE, items)
            self.check(replies, items, "save")
            now = [r.packets for r in replies]
            if prev is None or now == prev or time.monotonic() > deadline:
                if prev is not None and now != prev:
                    log.warning("%s: references still counting after %.0f ms; saving anyway", self.name,
                                timeout * 1000)
                return [r.flow_state(self.name, version) for r in replies]
            if path == "inband":
                self.run(C.RESUME, items, path)
            prev = now
            time.sleep(interval)

    def check(self, replies: Sequence[Command], items: Sequence[tuple[FlowKey, int]], what: str) -> None:
        bad = [(k, s, C.STATUS_NAMES.get(r.status, str(r.status)))
               for r, (k, s) in zip(replies, items, strict=True) if r.status != C.STATUS_OK]
        if bad:
            k, s, why = bad[0]
            raise NicError(f"{self.name}: {what} failed for {len(bad)} of {len(items)} references "
                           f"(first: {k} at slot {s}: {why})", bad)

    def packet_counts(self, items: Sequence[tuple[FlowKey, int]]) -> list[int]:
        """Each reference's packet counter (one register Read, or streamed SAVE commands)."""
        if self.registers_ok:  # one register entity per reference: cheaper than a command each
            vals = self._read_regs([s for _, s in items], ["flow_packets"])
            return [vals[s]["flow_packets"] for _, s in items]
        return [r.packets for r in self.channel.execute([Command.for_key(C.SAVE, k, s) for k, s in items])]

    def _read_regs(self, slots: Sequence[int], regs: Sequence[str]) -> dict[int, dict[str, int]]:
        """``regs`` of each slot in one register Read."""
        ids = {r: self.helper.get_id("register", self._regs[r]) for r in regs}
        cells = self.regs.read([(ids[r], s) for s in slots for r in regs])
        return {s: {r: cells.get((ids[r], s), 0) for r in regs} for s in slots}

    # ---- register path ----------------------------------------------------------------------------
    def read_slots(self, slots: Sequence[int]) -> list[Command]:
        """Every register of each slot in one Read RPC, as Command-shaped records."""
        vals = self._read_regs(slots, list(REGISTER_FIELDS))
        out = []
        for s in slots:
            c = Command(slot=s)
            for reg, fname in REGISTER_FIELDS.items():
                _set(c, fname, vals[s][reg])
            out.append(c)
        return out

    def _write_registers(self, cmds: Sequence[Command], only: Sequence[str] | None = None) -> None:
        self.regs.write([(self._regs[reg], c.slot, _get(c, fname))
                         for c in cmds for reg, fname in REGISTER_FIELDS.items() if only is None or reg in only])

    def _run_registers(self, opcode: int, items: Sequence[tuple[FlowKey, int]]) -> list[Command]:
        valid = [(k, s) for k, s in items if 0 <= s < self.slots]
        current = dict(zip([s for _, s in valid], self.read_slots([s for _, s in valid]), strict=True))
        replies, changed = [], []
        for key, slot in items:
            req = Command.for_key(opcode, key, slot)
            cur = current.get(slot)
            if cur is None:
                replies.append(replace(req, status=C.STATUS_BAD_SLOT))
                continue
            if not cur.flags & C.SLOT_VALID:
                replies.append(replace(req, status=C.STATUS_NOT_FOUND))
                continue
            if not _same_key(cur, key):
                replies.append(replace(req, status=C.STATUS_KEY_MISMATCH))
                continue
            reply = replace(cur, opcode=opcode, status=C.STATUS_OK, slot=slot)
            if opcode == C.SUSPEND:
                reply.flags |= C.SLOT_SUSPENDED
                changed.append(reply)
            elif opcode == C.RESUME:
                reply.flags &= ~C.SLOT_SUSPENDED
                changed.append(reply)
            elif opcode == C.CLEAR:
                changed.append(Command(slot=slot))
            replies.append(reply)
        if changed:
            self._write_registers(changed, only=None if opcode == C.CLEAR else ["slot_flags"])
            if opcode == C.CLEAR:   # as the CLEAR command does
                self._reset_roce_ports([c.slot for c in changed])
        return replies

    def _reset_roce_ports(self, slots: Sequence[int]) -> None:
        name = self._reg_name("roce_udp_sport")
        if slots and self.helper.has("register", name):
            self.regs.write([(name, s, 0) for s in slots])

    def _load_registers(self, cmds: Sequence[Command]) -> list[Command]:
        key_regs = ["slot_flags", "slot_kind", "slot_key_addr_lo", "slot_key_addr_hi", "slot_key_ports",
                    "slot_key_proto_qpn"]
        raw = self._read_regs([c.slot for c in cmds], key_regs)
        replies, ok = [], []
        for c in cmds:
            cur = Command(slot=c.slot)
            for r in key_regs:
                _set(cur, REGISTER_FIELDS[r], raw[c.slot].get(r, 0))
            if cur.flags & C.SLOT_VALID and not _same_key(cur, c.key()):
                replies.append(replace(c, status=C.STATUS_SLOT_BUSY))
                continue
            ok.append(c)
            replies.append(replace(c, status=C.STATUS_OK))
        self._write_registers(ok)
        # as the LOAD command does: a new occupant starts without the previous QP's UDP port
        self._reset_roce_ports([c.slot for c in ok if not raw[c.slot].get("slot_flags", 0) & C.SLOT_VALID])
        return replies

    def scan(self) -> list[Command]:
        """Every valid slot with its state (register path only: in-band commands cannot enumerate)."""
        if not self.registers_ok:
            raise NicError(f"{self.name}: scanning slots needs register reads (P4Runtime or BMv2 Thrift)")
        flags = self.regs.read([(self.helper.get_id("register", self._regs["slot_flags"]), None)])
        valid = sorted(i for (_, i), v in flags.items() if v & C.SLOT_VALID)
        return self.read_slots(valid) if valid else []

    def roce_udp_ports(self, slots: Sequence[int]) -> dict[int, tuple[int, int]]:
        """The UDP ports (source, 4791) of the RoCE QPs at ``slots``, from the NIC's ``roce_udp_sport``
        register (one Read): for QPs whose learn digest the controller missed. Slots with no packet
        seen yet (port 0) are left out; {} where registers cannot be read or the program lacks it."""
        name = self._reg_name("roce_udp_sport")
        if not self.registers_ok or not self.helper.has("register", name) or not slots:
            return {}
        rid = self.helper.get_id("register", name)
        cells = self.regs.read([(rid, s) for s in slots])
        return {s: (cells[(rid, s)], ROCE_UDP_PORT) for s in slots if cells.get((rid, s))}

    # ---- slot allocation and the flow_slots lookup table ------------------------------------------
    def hash_slots(self, key: FlowKey) -> tuple[int, int]:
        """The two slots the NIC's data plane probes for ``key`` when it has no ``flow_slots`` entry
        (flow_state.p4 compute_hash_slots: crc32 and crc16 over the key fields in the order of
        ``dataplane.HASH_SLOT1_FIELDS``/``HASH_SLOT2_FIELDS``, modulo the slot count).
        A state loaded at one of them is found without a lookup entry."""
        c = Command.for_key(C.NOP, key, 0)
        return (zlib.crc32(_hash_input(c, D.HASH_SLOT1_FIELDS)) % self.slots,
                _crc16_arc(_hash_input(c, D.HASH_SLOT2_FIELDS)) % self.slots)

    def allocate(self, n: int, busy: set[int]) -> list[int]:
        """Pick ``n`` slots not in ``busy`` nor reserved by an earlier allocation (a hint: LOAD checks)."""
        with self._alloc_lock:
            taken = busy | self._reserved
            out = []
            # from the top down: learned references hash anywhere, placed ones cluster at the end
            for s in range(self.slots - 1, -1, -1):
                if s not in taken:
                    out.append(s)
                    if len(out) == n:
                        break
            if len(out) < n:
                raise NicError(f"{self.name}: no free slots ({n} wanted)")
            self._reserved.update(out)
            return out

    def unreserve(self, slots: Sequence[int]) -> None:
        with self._alloc_lock:
            self._reserved.difference_update(slots)

    def _slot_match(self, key: FlowKey) -> dict[str, int]:
        c = Command.for_key(C.NOP, key, 0)
        return {"kind": c.kind, "addr_lo": c.key_addr_lo, "addr_hi": c.key_addr_hi, "port_lo": c.key_port_lo,
                "port_hi": c.key_port_hi, "proto": c.key_proto, "qpn": c.key_qpn}

    def place(self, items: Sequence[tuple[FlowKey, int]]) -> None:
        """Insert (or overwrite) the ``flow_slots`` entries of many references in one Write."""
        U = p4runtime_pb2.Update
        ups = [self.helper.table_update_raw(U.MODIFY if k in self.placed else U.INSERT, FLOW_SLOTS_TABLE,
                                            self._slot_match(k), USE_SLOT_ACTION, {"slot": s}) for k, s in items]
        try:
            self.conn.write_raw(ups)
        except P4RuntimeError as exc:
            if not exc.is_already_exists_only():
                raise
            # entries left by an earlier controller: overwrite them
            self.conn.write_raw([self.helper.table_update_raw(U.MODIFY, FLOW_SLOTS_TABLE,
                                                              self._slot_match(items[e.index][0]),
                                                              USE_SLOT_ACTION, {"slot": items[e.index][1]})
                                 for e in exc.errors])
        for k, s in items:
            self.placed[k] = s

    def sync(self) -> int:
        """Load the device's ``flow_slots`` entries into ``placed``."""
        from .flowstate import FlowStateError
        tid = self.helper.get_id("table", FLOW_SLOTS_TABLE)
        self.placed.clear()
        for e in self.conn.read([p4runtime_pb2.TableEntry(table_id=tid)]):
            te = e.table_entry
            m = {k.rsplit(".", 1)[-1]: v for k, v in self.helper.decode_match(te).items()}
            _, params = self.helper.decode_action(te)
            c = Command(kind=m.get("kind", 0), key_addr_lo=m.get("addr_lo", 0), key_addr_hi=m.get("addr_hi", 0),
                        key_port_lo=m.get("port_lo", 0), key_port_hi=m.get("port_hi", 0),
                        key_proto=m.get("proto", 0), key_qpn=m.get("qpn", 0))
            try:
                self.placed[c.key()] = params.get("slot", 0)
            except (CommandError, FlowStateError):
                continue
        return len(self.placed)

    def unplace(self, keys: Sequence[FlowKey]) -> None:
        """Delete ``flow_slots`` entries (missing ones are fine) in one Write."""
        if not keys:
            return
        ups = [self.helper.table_update_raw(p4runtime_pb2.Update.DELETE, FLOW_SLOTS_TABLE, self._slot_match(k))
               for k in keys]
        try:
            self.conn.write_raw(ups)
        except P4RuntimeError as exc:
            if not exc.is_not_found_only():
                raise
        for k in keys:
            self.placed.pop(k, None)

    def flow_events(self) -> dict[str, int]:
        """The NIC's ``flow_events`` counter (EVENT_* index -> packets)."""
        names = ["learned", "collision", "suspended_pass", "roce_out_of_seq", "tcp_reincarnated", "command",
                 "command_error"]
        cname = next((n for n in self.helper.names("counter") if n.endswith("flow_events")), None)
        if cname is None:
            return {}
        out = {}
        for e in self.conn.read([self.helper.counter_entry(cname)]):
            i = e.counter_entry.index.index
            if i < len(names):
                out[names[i]] = e.counter_entry.data.packet_count
        return out

    def drops(self) -> dict[int, int]:
        cname = next((n for n in self.helper.names("counter") if n.endswith("drops")), None)
        if cname is None:
            return {}
        return {e.counter_entry.index.index: e.counter_entry.data.packet_count
                for e in self.conn.read([self.helper.counter_entry(cname)])}


def _hash_input(c: Command, names: Sequence[str]) -> bytes:
    """The bytes a P4 ``hash`` over these fields reads (BMv2: the fields' bits concatenated)."""
    v = bits = 0
    for name in names:
        w = D.FIELD_BITS[name]
        v, bits = (v << w) | getattr(c, name), bits + w
    return v.to_bytes((bits + 7) // 8, "big")


GATEWAY_HASH_FIELDS = ("key_addr_lo", "key_addr_hi", "key_port_lo", "key_port_hi", "key_proto", "key_qpn")


def gateway_hash(key: FlowKey) -> int:
    """The crc16 a gateway's ``route_via_nics`` computes for ``key`` (gateway_forwarding.p4); the
    ``nic_group`` index is it modulo the group size."""
    return _crc16_arc(_hash_input(Command.for_key(C.NOP, key.canonical(), 0), GATEWAY_HASH_FIELDS))


def _crc16_arc_bitwise(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0): BMv2's ``crc16``, bit by bit (builds the table)."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_CRC16_TABLE = tuple(_crc16_arc_bitwise(bytes([i])) for i in range(256))


def _crc16_arc(data: bytes) -> int:
    """CRC-16/ARC a byte at a time from a table (the load plan hashes every reference of a batch: ~8x
    the bitwise loop's speed, same values)."""
    crc = 0
    table = _CRC16_TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc
