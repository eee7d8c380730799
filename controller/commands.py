"""The in-band ``flowmig`` command packets (suspend, save, load, resume, clear) and their channel.

Owns the encoding of the command header (its layout, ``dataplane.COMMAND_FIELDS`` = headers.p4
``flowmig_cmd_t``, docs/dataplane.md: 92 bytes after an Ethernet header with ethertype 0x88B5), the
mapping between a command and a ``FlowState``,
and ``CommandChannel``: per switch, it streams many commands as back-to-back PacketOuts — up to
BATCH_MAX records per packet where the program executes batches (ethertype 0x88B6, one record per
pipeline pass, one PacketIn with every reply) — and collects the replies (PacketIn, reason
COMMAND_REPLY) by ``request_id``: never one round-trip per flow.
"""

from __future__ import annotations

import itertools
import logging
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import dataplane as D
from .flowstate import FlowKey, FlowState, RoceState, TcpState, UdpState
from .p4rt.connection import PacketIn, SwitchConnection

__all__ = ["Command", "CommandError", "CommandChannel", "PendingCommands", "ETHERTYPE_FLOWMIG",
           "ETHERTYPE_FLOWMIG_BATCH", "BATCH_MAX", "batch_frame", "replies_of_frame", "FLOWMIG_VERSION",
           "NOP", "SUSPEND", "SAVE", "LOAD", "RESUME", "CLEAR", "STATUS_NAMES", "KIND_CODES"]

ETHERTYPE_FLOWMIG = D.ETHERTYPE_FLOWMIG
ETHERTYPE_FLOWMIG_BATCH = D.ETHERTYPE_FLOWMIG_BATCH   # 4-byte header (count, done, pad) + `count` records
BATCH_MAX = D.FLOWMIG_BATCH_MAX
FLOWMIG_VERSION = D.FLOWMIG_VERSION
NOP, SUSPEND, SAVE, LOAD, RESUME, CLEAR = D.CMD_NOP, D.CMD_SUSPEND, D.CMD_SAVE, D.CMD_LOAD, D.CMD_RESUME, D.CMD_CLEAR
OPCODE_NAMES = {NOP: "NOP", SUSPEND: "SUSPEND", SAVE: "SAVE", LOAD: "LOAD", RESUME: "RESUME", CLEAR: "CLEAR"}
STATUS_OK, STATUS_BAD_SLOT, STATUS_NOT_FOUND = D.STATUS_OK, D.STATUS_BAD_SLOT, D.STATUS_NOT_FOUND
STATUS_KEY_MISMATCH, STATUS_SLOT_BUSY = D.STATUS_KEY_MISMATCH, D.STATUS_SLOT_BUSY
STATUS_NAMES = {getattr(D, n): n.removeprefix("STATUS_") for n in dir(D) if n.startswith("STATUS_")}
log = logging.getLogger(__name__)

KIND_CODES = {"tcp": D.KIND_TCP, "udp": D.KIND_UDP, "roce": D.KIND_ROCE}
KIND_NAMES = {v: k for k, v in KIND_CODES.items()}
SLOT_VALID, SLOT_SUSPENDED = D.SLOT_VALID, D.SLOT_SUSPENDED
PACKET_IN_COMMAND_REPLY = D.PACKET_IN_COMMAND_REPLY
PACKET_OUT_DIRECT = D.PACKET_OUT_DIRECT
CPU_MAC = b"\x02\x00\x00\x00\x00\xff"
HEADER_LEN = D.COMMAND_LEN
_FIELDS = tuple((name, bits, name.startswith("_")) for name, bits in D.COMMAND_FIELDS)


def _struct_plan(fields: tuple[tuple[str, int, bool], ...]) -> tuple[struct.Struct, tuple[tuple[str, int], ...]] | None:
    """A ``struct`` layout of the header for ``Command.unpack`` (thousands of replies per batch): each
    field one code, a 24-/48-bit one two (high part, then low part of ``split`` bits); None when a field
    does not fit that (the bit-by-bit path is used then)."""
    codes = {8: "B", 16: "H", 32: "I", 64: "Q"}
    fmt, plan = ">", []
    for name, bits, pad in fields:
        if pad and bits % 8 == 0:
            fmt += "x" * (bits // 8)
        elif bits in codes:
            fmt, plan = fmt + codes[bits], [*plan, (name, 0)]
        elif bits in (24, 48):
            fmt, plan = fmt + ("BH" if bits == 24 else "HI"), [*plan, (name, 16 if bits == 24 else 32)]
        else:
            return None
    layout = struct.Struct(fmt)
    return (layout, tuple(plan)) if layout.size == HEADER_LEN else None


_LAYOUT = _struct_plan(_FIELDS)


class CommandError(RuntimeError):
    """A command was refused by the switch (status != OK) or got no reply in time."""

    def __init__(self, message: str, status: int | None = None, command: Command | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.command = command


@dataclass
class Command:
    version: int = FLOWMIG_VERSION
    opcode: int = NOP
    status: int = 0
    kind: int = 0
    slot: int = 0
    request_id: int = 0
    key_addr_lo: int = 0
    key_addr_hi: int = 0
    key_port_lo: int = 0
    key_port_hi: int = 0
    key_proto: int = 0
    key_qpn: int = 0
    flags: int = 0
    tcp_phase: int = 0
    tcp_wscale_fwd: int = 0
    tcp_wscale_rev: int = 0
    tcp_next_seq_fwd: int = 0
    tcp_next_seq_rev: int = 0
    tcp_max_ack_fwd: int = 0
    tcp_max_ack_rev: int = 0
    tcp_max_window_fwd: int = 0
    tcp_max_window_rev: int = 0
    roce_expected_psn: int = 0
    roce_acked_psn: int = 0
    roce_oos_count: int = 0
    packets: int = 0
    bytes: int = 0
    first_seen: int = 0
    last_seen: int = 0

    # ---- bytes -----------------------------------------------------------------------------------
    def pack(self) -> bytes:
        """The header's bytes, field by field as ``dataplane.COMMAND_FIELDS`` lays them out."""
        v = 0
        for name, bits, pad in _FIELDS:
            x = 0 if pad else getattr(self, name)
            if x < 0 or x >> bits:
                raise CommandError(f"command field {name}={x} does not fit in {bits} bits")
            v = (v << bits) | x
        return v.to_bytes(HEADER_LEN, "big")

    @classmethod
    def unpack(cls, data: bytes) -> Command:
        if len(data) < HEADER_LEN:
            raise CommandError(f"command header truncated: {len(data)} < {HEADER_LEN} bytes")
        if _LAYOUT is not None:
            layout, plan = _LAYOUT
            raw = iter(layout.unpack_from(data))
            fields = {}
            for name, split in plan:
                x = next(raw)
                fields[name] = (x << split) | next(raw) if split else x
            cmd = cls.__new__(cls)   # every field is set: no __init__ needed (a third of the cost)
            cmd.__dict__.update(fields)
            return cmd
        v = int.from_bytes(data[:HEADER_LEN], "big")
        values = {}
        for name, bits, pad in reversed(_FIELDS):
            if not pad:
                values[name] = v & ((1 << bits) - 1)
            v >>= bits
        return cls(**values)

    def with_request_id(self, request_id: int) -> Command:
        """A copy carrying ``request_id`` (``dataclasses.replace`` without its __init__: per command of
        a batch)."""
        cmd = type(self).__new__(type(self))
        cmd.__dict__.update(self.__dict__)
        cmd.request_id = request_id
        return cmd

    def frame(self) -> bytes:
        """The Ethernet frame carrying this command (what follows the packet_out header)."""
        return CPU_MAC + CPU_MAC + struct.pack("!H", ETHERTYPE_FLOWMIG) + self.pack()

    @classmethod
    def from_frame(cls, frame: bytes) -> Command:
        if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != ETHERTYPE_FLOWMIG:
            raise CommandError("not a flowmig command frame")
        return cls.unpack(frame[14:])

    # ---- keys and states ---------------------------------------------------------------------------
    @classmethod
    def for_key(cls, opcode: int, key: FlowKey, slot: int) -> Command:
        return cls(opcode=opcode, kind=KIND_CODES[key.kind], slot=slot, key_addr_lo=key.src_ip,
                   key_addr_hi=key.dst_ip, key_port_lo=key.src_port, key_port_hi=key.dst_port,
                   key_proto=key.proto, key_qpn=key.qpn)

    @classmethod
    def load(cls, fs: FlowState, slot: int, suspended: bool = False) -> Command:
        c = cls.for_key(LOAD, fs.key, slot)
        c.flags = SLOT_VALID | (SLOT_SUSPENDED if suspended else 0)
        st = fs.state
        c.packets, c.bytes, c.first_seen, c.last_seen = st.packets, st.bytes, st.first_seen, st.last_seen
        if isinstance(st, TcpState):
            c.tcp_phase = st.phase
            c.tcp_next_seq_fwd, c.tcp_next_seq_rev = st.fwd_next_seq, st.rev_next_seq
            c.tcp_max_ack_fwd, c.tcp_max_ack_rev = st.fwd_max_ack, st.rev_max_ack
            c.tcp_max_window_fwd, c.tcp_max_window_rev = st.fwd_max_window, st.rev_max_window
            c.tcp_wscale_fwd, c.tcp_wscale_rev = st.fwd_wscale, st.rev_wscale
        elif isinstance(st, RoceState):
            c.roce_expected_psn, c.roce_acked_psn, c.roce_oos_count = st.expected_psn, st.acked_psn, st.oos_count
        return c

    def key(self) -> FlowKey:
        kind = KIND_NAMES.get(self.kind)
        if kind is None:
            raise CommandError(f"slot {self.slot} holds unknown kind {self.kind}")
        return FlowKey(kind, self.key_addr_lo, self.key_addr_hi, self.key_port_lo, self.key_port_hi,
                       self.key_qpn)

    def flow_state(self, device: str = "", program_version: int = FLOWMIG_VERSION) -> FlowState:
        key = self.key()
        common = dict(packets=self.packets, bytes=self.bytes, first_seen=self.first_seen, last_seen=self.last_seen)
        state: TcpState | UdpState | RoceState
        if key.kind == "tcp":
            state = TcpState(phase=self.tcp_phase, fwd_next_seq=self.tcp_next_seq_fwd,
                             fwd_max_ack=self.tcp_max_ack_fwd, fwd_max_window=self.tcp_max_window_fwd,
                             fwd_wscale=self.tcp_wscale_fwd, rev_next_seq=self.tcp_next_seq_rev,
                             rev_max_ack=self.tcp_max_ack_rev, rev_max_window=self.tcp_max_window_rev,
                             rev_wscale=self.tcp_wscale_rev, **common)
        elif key.kind == "roce":
            state = RoceState(expected_psn=self.roce_expected_psn, acked_psn=self.roce_acked_psn,
                              oos_count=self.roce_oos_count, **common)
        else:
            state = UdpState(**common)
        return FlowState(key, state, program_version=program_version, source_device=device,
                         source_slot=self.slot)

    def describe(self) -> str:
        return f"{OPCODE_NAMES.get(self.opcode, self.opcode)} slot {self.slot}"


def batch_frame(commands: Sequence[Command]) -> bytes:
    """The Ethernet frame of a command batch (1..BATCH_MAX records, executed in order by the NIC)."""
    if not 0 < len(commands) <= BATCH_MAX:
        raise CommandError(f"a batch carries 1..{BATCH_MAX} commands, not {len(commands)}")
    return CPU_MAC + CPU_MAC + struct.pack("!HBBH", ETHERTYPE_FLOWMIG_BATCH, len(commands), 0, 0) + \
        b"".join(c.pack() for c in commands)


def replies_of_frame(frame: bytes) -> list[Command]:
    """The command replies a PacketIn frame carries: one for a single command, ``done`` for a batch
    (its executed records, in request order). CommandError for anything else."""
    if len(frame) < 14:
        raise CommandError("not a flowmig command frame")
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == ETHERTYPE_FLOWMIG:
        return [Command.unpack(frame[14:])]
    if etype != ETHERTYPE_FLOWMIG_BATCH or len(frame) < 18:
        raise CommandError("not a flowmig command frame")
    done = frame[15]
    body = frame[18:]
    if len(body) < done * HEADER_LEN:
        raise CommandError(f"batch reply truncated: {done} records in {len(body)} bytes")
    return [Command.unpack(body[i * HEADER_LEN:(i + 1) * HEADER_LEN]) for i in range(done)]


class _Waiter:
    """Replies still awaited by one ``execute`` call."""

    __slots__ = ("left",)

    def __init__(self, n: int) -> None:
        self.left = n


def _frames(sent: Sequence[Command], per: int) -> list[bytes]:
    """The frames carrying ``sent``: batches of ``per`` records (per > 1), else one command each."""
    if per > 1:
        return [batch_frame(sent[i:i + per]) for i in range(0, len(sent), per)]
    return [c.frame() for c in sent]


class PendingCommands:
    """Commands whose replies a ``CommandChannel`` awaits (``CommandChannel.expect``): their ``frames``
    are sent by whoever can (a PacketOut to the switch itself, or out of a gateway toward it: a path
    save), ``wait`` returns the replies in request order. Call ``wait`` (or ``cancel``) exactly once."""

    def __init__(self, channel: CommandChannel, sent: list[Command], waiter: _Waiter, per: int = 1) -> None:
        self.channel, self.sent, self._waiter = channel, sent, waiter
        self.frames = _frames(sent, per)

    def wait(self, timeout: float | None = None) -> list[Command]:
        """The replies in request order; CommandError when one is missing after ``timeout``."""
        return self.channel._collect(self.sent, self._waiter, timeout)

    def cancel(self) -> None:
        """Stop awaiting the replies (late ones are ignored); harmless after ``wait``."""
        self.channel._forget(self.sent)


class CommandChannel:
    """Streams commands to one switch and collects their replies by request id."""

    _ids = itertools.count(1)

    def __init__(self, conn: SwitchConnection, timeout: float = 2.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self._cv = threading.Condition()
        self._pending: dict[int, Command | None] = {}
        self._waiters: dict[int, _Waiter] = {}
        self.batch_max: int | None = None   # records per packet; None: not probed yet
        self.probe_timeout = 0.5
        self._probe_lock = threading.Lock()
        self._unsubscribe = conn.subscribe_packets(self._on_packet)

    def close(self) -> None:
        self._unsubscribe()

    def _on_packet(self, pkt: PacketIn) -> None:
        if pkt.metadata.get("reason", PACKET_IN_COMMAND_REPLY) != PACKET_IN_COMMAND_REPLY:
            return
        try:
            replies = replies_of_frame(pkt.payload)
        except CommandError:
            return
        with self._cv:
            for reply in replies:
                if self._pending.get(reply.request_id, 0) is None:  # awaited, first reply
                    self._pending[reply.request_id] = reply
                    waiter = self._waiters[reply.request_id]
                    waiter.left -= 1
                    if not waiter.left:
                        self._cv.notify_all()

    def batches(self) -> bool:
        """Whether the switch executes command batches (probed once: a batch of two NOPs; a program
        without them never answers, and the channel keeps to one command per packet)."""
        with self._probe_lock:
            if self.batch_max is None:
                self.batch_max = 1
                try:
                    self.execute([Command(opcode=NOP), Command(opcode=NOP)], self.probe_timeout, _batch=BATCH_MAX)
                    self.batch_max = BATCH_MAX
                except CommandError:
                    log.info("%s: no reply to a command batch; sending one command per packet", self.conn.name)
            return self.batch_max > 1

    def execute(self, commands: Sequence[Command], timeout: float | None = None,
                _batch: int | None = None) -> list[Command]:
        """Send every command back to back, wait for all replies; returns replies in request order.

        Several commands go as batches of up to BATCH_MAX records per packet when the switch executes
        batches (``batches``), else one per packet. Replies with a non-OK status are returned as they
        are (callers decide what an error means); a missing reply raises CommandError.
        """
        if not commands:
            return []
        per = _batch or self._per(commands)
        sent, waiter = self._register(commands)
        try:
            self.conn.packet_out_many((f, {"mode": PACKET_OUT_DIRECT}) for f in _frames(sent, per))
        except BaseException:
            self._forget(sent)
            raise
        return self._collect(sent, waiter, timeout)

    def expect(self, commands: Sequence[Command], batch: bool = False) -> PendingCommands:
        """Await the replies of ``commands`` (given request ids now) without sending them: the caller
        sends ``PendingCommands.frames`` its own way and then waits. One command per frame, or with
        ``batch`` as batches of up to BATCH_MAX when the switch executes batches (``batches``)."""
        per = self._per(commands) if batch else 1
        sent, waiter = self._register(commands)
        return PendingCommands(self, sent, waiter, per)

    def _per(self, commands: Sequence[Command]) -> int:
        """Records per frame for ``commands``: BATCH_MAX where the switch executes batches, else 1."""
        return (self.batch_max or 1) if len(commands) > 1 and self.batches() else 1

    def _register(self, commands: Sequence[Command]) -> tuple[list[Command], _Waiter]:
        sent = []
        waiter = _Waiter(len(commands))
        with self._cv:
            for cmd in commands:
                rid = next(self._ids) & 0xFFFFFFFF
                sent.append(cmd.with_request_id(rid))
                self._pending[rid] = None
                self._waiters[rid] = waiter
        return sent, waiter

    def _forget(self, sent: Sequence[Command]) -> None:
        with self._cv:
            for c in sent:
                self._pending.pop(c.request_id, None)
                self._waiters.pop(c.request_id, None)

    def _collect(self, sent: list[Command], waiter: _Waiter, timeout: float | None) -> list[Command]:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            with self._cv:
                while waiter.left:  # counted down by the receiver: no rescan of the batch per reply
                    left = deadline - time.monotonic()
                    if left <= 0:
                        missing = [c for c in sent if self._pending[c.request_id] is None]
                        raise CommandError(f"{self.conn.name}: {len(missing)} of {len(sent)} commands got no "
                                           f"reply within {timeout:.1f}s (first: {missing[0].describe()})",
                                           command=missing[0])
                    self._cv.wait(left)
                return [self._pending[c.request_id] for c in sent]  # type: ignore[misc]
        finally:
            self._forget(sent)

    def ping(self, timeout: float | None = None) -> float:
        """One NOP round trip; returns its duration in seconds."""
        t0 = time.perf_counter()
        self.execute([Command(opcode=NOP)], timeout)
        return time.perf_counter() - t0
