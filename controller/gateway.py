"""The gateways' side of a migration: per-flow forwarding entries, suspension and replay.

Owns ``GatewayDriver`` (one per gateway switch): the ``flow_forwarding`` entries this controller
manages (exact 5-tuple as the packet carries it → ``set_nic_port(port)`` or
``suspend_flow(mode, port, drain, lease_us, lease_gen)`` / ``forward_after_drain(port, drain, lease_us,
lease_gen)``, built by ``GatewayDriver.leased``: every suspension carries a data-plane lease, so a dead
controller costs a flow at most the lease; a live one renews it by rewriting the entry with a new
generation), written as one batched Write per step; the per-flow drain indexes (cells of the gateway's ``drain_punted``/``drain_replayed``
registers, allocated here, reset when freed; read and written through ``RegisterAccess``: P4Runtime, or
BMv2's Thrift where P4Runtime has no registers); the buffer of punted packets of suspended flows
(PacketIn reason SUSPENDED, kept in arrival order per flow); and their in-order replay (PacketOut mode
FORWARD with the original ingress port, which bypasses the suspension and sends the packet to the
entry's port, counted by ``forward_after_drain``).

A gateway only needs an entry for the direction of a reference that enters it from its host side:
``directions_for`` derives it from the lab config (which host is cabled to which gateway).
"""

from __future__ import annotations

import heapq
import logging
import math
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from p4.v1 import p4runtime_pb2

from . import dataplane as D
from .flowstate import FlowKey
from .p4rt.connection import PacketIn, SwitchConnection
from .p4rt.errors import P4RuntimeError
from .p4rt.p4info import P4InfoHelper
from .p4rt.registers import RegisterAccess, RegisterError

__all__ = ["GatewayDriver", "FiveTuple", "five_tuple_of", "marker_frame", "marker_token", "MARKER",
           "PACKET_IN_PATH_MARKER", "DRAIN_MARKER", "DRAIN_MARKERS", "MarkerBoard", "SUSPEND_PUNT",
           "SUSPEND_DROP"]

log = logging.getLogger(__name__)

SUSPEND_PUNT, SUSPEND_DROP = D.SUSPEND_PUNT, D.SUSPEND_DROP
PACKET_IN_SUSPENDED = D.PACKET_IN_SUSPENDED
PACKET_OUT_DIRECT, PACKET_OUT_FORWARD = D.PACKET_OUT_DIRECT, D.PACKET_OUT_FORWARD
BARRIER_REASON = 0xFB        # not a PACKET_IN_* of the programs: only our barrier frames carry it
BARRIER_ETHERTYPE = b"\x88\xb6"  # behind a fake packet_in header: the programs never parse it as an ethertype
TABLE = "flow_forwarding"
DRAIN_SLOTS = D.DRAIN_SLOTS  # the drain registers' size when the P4Info lacks them (index 0: none)
PUNTED, REPLAYED = "drain_punted", "drain_replayed"
MATCH_CACHE = 1 << 16        # encoded flow_forwarding matches kept (GatewayDriver._match)
LEASE_US_MAX = (1 << 32) - 1  # lease_us is a bit<32> of microseconds (~71 minutes)
GEN_MAX = (1 << 32) - 1       # lease_gen: bit<32>, never 0 (a drain index's lease register starts at 0)


@dataclass(frozen=True)
class FiveTuple:
    src: int
    dst: int
    proto: int
    sport: int
    dport: int

    def match(self) -> dict[str, int]:
        return {"src_addr": self.src, "dst_addr": self.dst, "proto": self.proto, "src_port": self.sport,
                "dst_port": self.dport}


# The path marker's 5-tuple (0.0.0.0/8 is never a host): the NICs answer it (PacketIn PATH_MARKER).
MARKER = FiveTuple(1, D.MARKER_DST_ADDR, 17, D.MARKER_PORT, D.MARKER_PORT)
PACKET_IN_PATH_MARKER = D.PACKET_IN_PATH_MARKER
# The drain marker's 5-tuple: the NIC forwards it behind its queue, the far gateway answers it
# (PacketIn DRAIN_MARKER, docs/dataplane.md "Drain markers").
DRAIN_MARKER = FiveTuple(1, D.MARKER_DST_ADDR, 17, D.MARKER_DRAIN_PORT, D.MARKER_DRAIN_PORT)
PACKET_IN_DRAIN_MARKER = D.PACKET_IN_DRAIN_MARKER


class MarkerBoard:
    """Where drain markers come back: any gateway may receive the one another gateway sent, so the
    arrivals (token -> perf_counter) are kept here, shared by every driver of the process. Bounded:
    the oldest arrivals are forgotten past ``keep`` (a token nobody waits for any more)."""

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._seen: dict[int, float] = {}
        self._cv = threading.Condition()

    def arrived(self, token: int) -> None:
        with self._cv:
            self._seen[token] = time.perf_counter()
            while len(self._seen) > self.keep:
                del self._seen[next(iter(self._seen))]
            self._cv.notify_all()

    def wait(self, tokens: Sequence[int], timeout: float) -> bool:
        """True when every token is back within ``timeout`` seconds."""
        with self._cv:
            return self._cv.wait_for(lambda: all(t in self._seen for t in tokens), timeout)

    def arrival(self, token: int) -> float | None:
        with self._cv:
            return self._seen.get(token)


DRAIN_MARKERS = MarkerBoard()


def drain_slots(helper: P4InfoHelper) -> int:
    """The size of the gateway's drain registers, as its P4Info states it (DRAIN_SLOTS without one)."""
    return min((helper.get("register", r).size for r in (PUNTED, REPLAYED) if helper.has("register", r)),
               default=DRAIN_SLOTS) or DRAIN_SLOTS


def _ipv4_checksum(hdr: bytes) -> int:
    total = sum(struct.unpack("!10H", hdr))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def marker_frame(token: int, marker: FiveTuple = MARKER) -> bytes:
    """An IPv4/UDP frame with a marker 5-tuple (path or drain marker) carrying ``token``."""
    payload = token.to_bytes(8, "big")
    udp = struct.pack("!HHHH", marker.sport, marker.dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, marker.src, marker.dst)
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\xfa" + b"\x08\x00" + ip + udp


def marker_token(frame: bytes, marker: FiveTuple = MARKER) -> int | None:
    """The token of a marker frame of the kind ``marker`` (None for any other frame)."""
    if len(frame) < 50 or five_tuple_of(frame) != marker:
        return None
    return int.from_bytes(frame[42:50], "big")


def five_tuple_of(frame: bytes) -> FiveTuple | None:
    """The IPv4 5-tuple of an Ethernet frame (None for non-IPv4 / non-TCP/UDP)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    src, dst = struct.unpack("!II", frame[26:34])
    l4 = 14 + ihl
    if proto in (6, 17) and len(frame) >= l4 + 4:
        sport, dport = struct.unpack("!HH", frame[l4:l4 + 4])
    else:
        sport = dport = 0
    return FiveTuple(src, dst, proto, sport, dport)


def directions(key: FlowKey, udp_ports: tuple[int, int] | None = None) -> list[FiveTuple]:
    """The packet 5-tuples of a reference (both directions for TCP/UDP, one for a RoCE QP).

    A RoCE QP's packets carry (src IP, dst IP, UDP, QP source port, 4791); the NIC's key has no ports,
    so they come from ``udp_ports`` (the inventory record's, learnt from digests) when given, else
    from the key itself. Without either a RoCE QP has no 5-tuple: ValueError.
    """
    if key.kind == "roce":
        sport, dport = udp_ports if udp_ports is not None else (key.src_port, key.dst_port)
        if not dport:
            raise ValueError(f"{key}: UDP ports of the queue pair unknown (no learn digest seen for it)")
        return [FiveTuple(key.src_ip, key.dst_ip, key.proto, sport, dport)]
    fwd = FiveTuple(key.src_ip, key.dst_ip, key.proto, key.src_port, key.dst_port)
    return [fwd, FiveTuple(key.dst_ip, key.src_ip, key.proto, key.dst_port, key.src_port)]


@dataclass
class Buffered:
    payload: bytes
    ingress_port: int
    received: float


@dataclass
class FlowBuffer:
    packets: list[Buffered] = field(default_factory=list)
    total: int = 0
    replayed: int = 0
    late: int = 0  # punts that arrived after the entry was flipped back to forwarding
    passthrough: int | None = None  # port: punts are sent on (PacketOut DIRECT) as they arrive
    forward: bool = False  # pass-through as PacketOut FORWARD (through forward_after_drain) instead
    forward_from: int = 0  # ``replayed`` when FORWARD pass-through began (later replays meet the drain count)
    stream: int = 0        # the connection's ``reconnects`` when buffering began (a new stream may lose punts)


def _arrival_order(buffers: list[list[Buffered]]) -> list[Buffered]:
    """The packets of several flows' buffers merged in the order the gateway punted them (each buffer
    is already in arrival order, so each flow's order is kept): every flow's first packet goes out
    early in a replay, not after every packet of the flows listed before it (with 8 TCP streams
    buffered flow by flow, the last flow's first byte came ~25 ms after the first's)."""
    if len(buffers) <= 1:
        return buffers[0] if buffers else []
    return list(heapq.merge(*buffers, key=lambda b: b.received))


class GatewayDriver:
    """Per-flow forwarding entries and suspended-flow buffers on one gateway."""

    def __init__(self, conn: SwitchConnection, host_ips: Iterable[int] = (),
                 nic_ports: dict[str, int] | None = None, registers: RegisterAccess | None = None) -> None:
        if conn.helper is None:
            raise RuntimeError(f"{conn.name}: no P4Info (is the gateway pipeline set?)")
        self.conn = conn
        self.name = conn.name
        self.helper = conn.helper
        self.regs = registers if registers is not None else RegisterAccess(conn)   # P4Runtime, else Thrift
        self.host_ips = set(host_ips)          # hosts cabled to this gateway
        self.nic_ports = dict(nic_ports or {})  # NIC name -> port on this gateway
        self.entries: dict[FiveTuple, tuple[str, dict[str, int]]] = {}
        self._lock = threading.Lock()
        self._buffers: dict[FiveTuple, FlowBuffer] = {}
        self.unexpected_punts = 0
        self._barrier_cv = threading.Condition()
        self._barriers_seen: set[int] = set()
        self._barrier_ids = iter(range(1, 1 << 62))
        self.cpu_port = conn.options.cpu_port
        self.drains: dict[FiveTuple, int] = {}   # flow -> its drain register index
        self.drain_slots = drain_slots(self.helper)
        self._drain_free = list(range(self.drain_slots - 1, 0, -1))   # cells known to be 0
        self._drain_dirty: set[int] = set()                      # freed, cells not reset yet
        self._drain_lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self.settling: set[FiveTuple] = set()   # flows a background thread is still draining
        self._matches: dict[FiveTuple, p4runtime_pb2.TableEntry] = {}   # encoded matches (``_match``)
        self._lease_gen = secrets.randbits(32)   # random start: a restarted controller's gens differ
        self._gen_lock = threading.Lock()
        self._unsub = conn.subscribe_packets(self._on_packet)

    def close(self) -> None:
        self._unsub()

    def port_of(self, nic: str) -> int:
        try:
            return self.nic_ports[nic]
        except KeyError:
            raise KeyError(f"gateway {self.name} has no port toward {nic!r} "
                           f"(NIC group: {', '.join(self.nic_ports) or 'empty'})") from None

    def tuples_for(self, key: FlowKey, udp_ports: tuple[int, int] | None = None) -> list[FiveTuple]:
        """The directions of ``key`` that enter this gateway from its host side (``udp_ports``: a RoCE
        QP's, see ``directions``; ValueError when a RoCE QP's ports are unknown)."""
        return [t for t in directions(key, udp_ports) if t.src in self.host_ips and t.dst not in self.host_ips]

    # ---- punted packets ------------------------------------------------------------------------------
    def _on_packet(self, pkt: PacketIn) -> None:
        reason = pkt.metadata.get("reason")
        if reason == BARRIER_REASON and pkt.payload[12:14] == BARRIER_ETHERTYPE:
            with self._barrier_cv:
                self._barriers_seen.add(int.from_bytes(pkt.payload[14:22], "big"))
                self._barrier_cv.notify_all()
            return
        if reason == PACKET_IN_DRAIN_MARKER:
            token = marker_token(pkt.payload, DRAIN_MARKER)
            if token is not None:
                DRAIN_MARKERS.arrived(token)
            return
        if reason != PACKET_IN_SUSPENDED:
            return
        t = five_tuple_of(pkt.payload)
        with self._lock:
            buf = self._buffers.get(t) if t is not None else None
            if buf is None:
                self.unexpected_punts += 1
                log.warning("%s: punted packet of a flow not being buffered (%s)", self.name, t)
                return
            buf.total += 1
            if buf.passthrough is not None and not buf.packets:
                # the buffer was drained: send it on at once, from the receiver thread (in arrival
                # order, with no barrier round trip in between)
                buf.replayed += 1
                if buf.forward:
                    self.conn.packet_out(pkt.payload, mode=PACKET_OUT_FORWARD,
                                         ingress_port=pkt.metadata.get("ingress_port", 0))
                else:
                    self.conn.packet_out(pkt.payload, mode=PACKET_OUT_DIRECT, egress_port=buf.passthrough)
                return
            buf.packets.append(Buffered(pkt.payload, pkt.metadata.get("ingress_port", 0), pkt.received))

    def start_buffering(self, tuples: Iterable[FiveTuple]) -> None:
        with self._lock:
            for t in tuples:
                self._buffers.setdefault(t, FlowBuffer(stream=self.conn.reconnects))

    def stop_buffering(self, tuples: Iterable[FiveTuple]) -> dict[FiveTuple, FlowBuffer]:
        with self._lock:
            return {t: self._buffers.pop(t) for t in tuples if t in self._buffers}

    def buffered(self, tuples: Iterable[FiveTuple]) -> int:
        with self._lock:
            return sum(len(self._buffers[t].packets) for t in tuples if t in self._buffers)

    def replay(self, tuples: Sequence[FiveTuple], late: bool = False, direct_port: int | None = None) -> int:
        """Send every buffered packet of ``tuples`` back in arrival order.

        By default as PacketOut FORWARD with the original ingress port (the pipeline forwards it by the
        flow's entry, bypassing the suspension); with ``direct_port``, straight out of that port
        (PacketOut DIRECT) — the gateway does not rewrite forwarded frames, so the wire sees the same.
        """
        taken: list[list[Buffered]] = []
        with self._lock:
            for t in tuples:
                buf = self._buffers.get(t)
                if buf is None or not buf.packets:
                    continue
                pkts, buf.packets = buf.packets, []
                buf.replayed += len(pkts)
                if late:
                    buf.late += len(pkts)
                taken.append(pkts)
        out = [(p.payload, {"mode": PACKET_OUT_FORWARD, "ingress_port": p.ingress_port}) if direct_port is None
               else (p.payload, {"mode": PACKET_OUT_DIRECT, "egress_port": direct_port})
               for p in _arrival_order(taken)]
        if out:
            self.conn.packet_out_many(out)
        return len(out)

    def pass_through(self, tuples: Sequence[FiveTuple], port: int, forward: bool = False) -> int:
        """Drain the buffers of ``tuples`` out of ``port`` (PacketOut DIRECT, arrival order) and from now
        on send each further punt of theirs on as it arrives. Atomic with respect to arriving punts, so
        the order is kept. Returns the packets drained. With ``forward``, as PacketOut FORWARD with the
        original ingress port instead: through the flow's entry (``forward_after_drain(port, drain)``,
        which counts them in ``drain_replayed``)."""
        taken: list[list[Buffered]] = []
        with self._lock:
            for t in tuples:
                buf = self._buffers.get(t)
                if buf is None:
                    continue
                if forward and not buf.forward:
                    buf.forward_from = buf.replayed
                taken.append(buf.packets)
                buf.replayed += len(buf.packets)
                buf.packets, buf.passthrough, buf.forward = [], port, forward
            out = [(p.payload, {"mode": PACKET_OUT_FORWARD, "ingress_port": p.ingress_port}) if forward
                   else (p.payload, {"mode": PACKET_OUT_DIRECT, "egress_port": port}) for p in _arrival_order(taken)]
            if out:   # queued on the stream before the lock is released: ahead of any later punt
                self.conn.packet_out_many(out)
        return len(out)

    def stop_pass_through(self, tuples: Iterable[FiveTuple]) -> None:
        """Buffer the punts of ``tuples`` again (a rollback replays them toward the old NIC)."""
        with self._lock:
            for t in tuples:
                if t in self._buffers:
                    self._buffers[t].passthrough = None
                    self._buffers[t].forward = False

    def punts(self, tuples: Iterable[FiveTuple]) -> int:
        """Packets of ``tuples`` punted to us so far (buffered or passed on)."""
        with self._lock:
            return sum(self._buffers[t].total for t in tuples if t in self._buffers)

    def barrier(self, timeout: float = 1.0) -> bool:
        """Wait until every packet the gateway punted before now has reached us.

        Sends a frame out of the CPU port through the pipeline (PacketOut DIRECT to the CPU port, the
        frame prefixed with a packet_in header whose reason is BARRIER_REASON): it is processed after
        every packet already processed, and PacketIns arrive in order, so its return marks the end of
        earlier punts. Returns False on timeout.
        """
        token = next(self._barrier_ids)
        frame = b"\xff" * 12 + BARRIER_ETHERTYPE + token.to_bytes(8, "big") + b"\x00" * 32
        fake_packet_in = b"\x00\x00" + bytes([BARRIER_REASON])   # ingress_port 0, pad, reason
        self.conn.packet_out(fake_packet_in + frame, mode=PACKET_OUT_DIRECT, egress_port=self.cpu_port)
        with self._barrier_cv:
            ok = self._barrier_cv.wait_for(lambda: token in self._barriers_seen, timeout)
            self._barriers_seen.discard(token)
        if not ok:
            log.warning("%s: barrier %d not returned within %.1fs", self.name, token, timeout)
        return ok

    def warm(self, t: FiveTuple, timeout: float = 0.5) -> None:
        """One round trip on each of the gateway's paths a migration uses: the stream (a barrier) and a
        unary RPC (a Read of ``t``'s entry)."""
        self.barrier(timeout)
        list(self.conn.read([self._match(t)]))

    # ---- path markers ---------------------------------------------------------------------------------
    def send_marker(self, port: int) -> int:
        """Send a path marker out of ``port`` (toward a NIC); returns its token, for ``wait_marker`` at
        that NIC's driver. It follows the data packets already sent that way (FIFO along the link), and
        the NIC answers it from its ingress (docs/dataplane.md "Path markers")."""
        token = secrets.randbits(63)   # unpredictable: a forged marker cannot complete a quiesce
        self.conn.packet_out(marker_frame(token), mode=PACKET_OUT_DIRECT, egress_port=port)
        return token

    def send_frames(self, port: int, frames: Sequence[bytes]) -> None:
        """Send ``frames`` out of ``port`` as they are (PacketOut DIRECT), behind every packet already
        sent that way: path saves toward a NIC (docs/dataplane.md "Path saves")."""
        self.conn.packet_out_many((f, {"mode": PACKET_OUT_DIRECT, "egress_port": port}) for f in frames)

    def send_drain_marker(self, port: int) -> int:
        """Send a drain marker out of ``port`` (toward a NIC); returns its unpredictable token. It leaves
        the NIC behind every packet queued there before it; the far gateway answers it and
        ``DRAIN_MARKERS`` records its arrival (docs/dataplane.md "Drain markers")."""
        token = secrets.randbits(63)
        self.conn.packet_out(marker_frame(token, DRAIN_MARKER), mode=PACKET_OUT_DIRECT, egress_port=port)
        return token

    # ---- leases ---------------------------------------------------------------------------------------
    def leased(self, action: str, lease: float, **params: int) -> tuple[str, dict[str, int]]:
        """The entry ``action(**params)`` (``suspend_flow`` / ``forward_after_drain``, with its ``drain``)
        with a lease of ``lease`` seconds (0: none) under a fresh generation. Written, its lease starts
        again at the flow's next packet; past it without a rewrite the gateway sends the flow to the
        entry's port by itself (docs/dataplane.md "Leases"). ValueError for a lease out of range."""
        if not (math.isfinite(lease) and 0 <= round(lease * 1e6) <= LEASE_US_MAX):
            raise ValueError(f"lease {lease!r} s: must be 0 (none) to {LEASE_US_MAX / 1e6:.0f} s")
        with self._gen_lock:
            self._lease_gen = self._lease_gen % GEN_MAX + 1   # 1 .. 2^32-1, wrapping past 0
            gen = self._lease_gen
        return action, {**params, "lease_us": round(lease * 1e6), "lease_gen": gen}

    def renew_leases(self, tuples: Iterable[FiveTuple], port: int, lease: float) -> int:
        """Rewrite the ``forward_after_drain(port, drain)`` entries of ``tuples`` (those holding a drain
        index) with fresh generations, in one Write: their leases start again. Returns how many."""
        renew = {t: self.leased("forward_after_drain", lease, port=port, drain=d)
                 for t in tuples if (d := self.drains.get(t))}
        if renew:
            self.apply(renew)
        return len(renew)

    # ---- drain indexes --------------------------------------------------------------------------------
    def alloc_drains(self, tuples: Iterable[FiveTuple]) -> dict[FiveTuple, int]:
        """A drain register index per flow (kept if it has one). Free indexes are kept with both cells
        at 0 (reset when freed, or at ``sync``), so allocating needs no Write on the suspend path.
        RuntimeError when all ``drain_slots - 1`` are taken."""
        out = {}
        for t in tuples:
            with self._drain_lock:
                if t not in self.drains and self._drain_free:
                    self.drains[t] = self._drain_free.pop()
                dirty = sorted(self._drain_dirty) if t not in self.drains else []
            if dirty:   # every clean index is taken: reset the freed ones now
                self._reset_drains(dirty)
                with self._drain_lock:
                    if self._drain_free:
                        self.drains[t] = self._drain_free.pop()
            if t not in self.drains:
                raise RuntimeError(f"{self.name}: no free drain index ({self.drain_slots - 1} flows draining)")
            out[t] = self.drains[t]
        return out

    def _reset_drains(self, indexes: Sequence[int]) -> None:
        """Zero both cells of ``indexes`` (one Write) and make them free; on failure they stay dirty."""
        if not indexes:
            return
        self.regs.write([(r, i, 0) for r in (PUNTED, REPLAYED) for i in indexes])
        with self._drain_lock:
            back = [i for i in indexes if i in self._drain_dirty]   # not handed out meanwhile
            self._drain_dirty.difference_update(back)
            self._drain_free.extend(back)

    def free_drains(self, tuples: Iterable[FiveTuple], background: bool = False) -> None:
        """Release the flows' drain indexes: their cells are reset (one Write; in a thread of its own
        with ``background``, e.g. after a migration's flip) before they are handed out again. Call
        once the flows' entries no longer use them (or their counts are equal: a reset keeps them
        equal). A failed reset leaves the indexes dirty: reset before their next use."""
        with self._drain_lock:
            freed = [i for i in (self.drains.pop(t, None) for t in tuples) if i is not None]
            self._drain_dirty.update(freed)
        if not freed:
            return

        def reset() -> None:
            try:
                self._reset_drains(freed)
            except RegisterError as exc:
                log.warning("%s: resetting %d drain indexes failed (%s); retried on next use", self.name,
                            len(freed), exc)
        if background:
            threading.Thread(target=reset, name=f"drain-reset-{self.name}", daemon=True).start()
        else:
            reset()

    def drain_counts(self, tuples: Iterable[FiveTuple]) -> dict[FiveTuple, tuple[int, int]]:
        """(punted, replayed) of each flow's drain index, in one Read: the flows' cells, or both whole
        registers when that is fewer bytes to move (big batches)."""
        want = {t: self.drains[t] for t in tuples if t in self.drains}
        if not want:
            return {}
        pid, rid = self.helper.get_id("register", PUNTED), self.helper.get_id("register", REPLAYED)
        if len(want) > self.drain_slots // 8:
            cells = self.regs.read([(pid, None), (rid, None)])
        else:
            cells = self.regs.read([(r, i) for i in want.values() for r in (pid, rid)])
        return {t: (cells.get((pid, i), 0), cells.get((rid, i), 0)) for t, i in want.items()}

    def drained(self, tuples: Iterable[FiveTuple]) -> list[FiveTuple]:
        """The flows of ``tuples`` whose punts have all been replayed (punted == replayed). Under
        ``forward_after_drain`` this is final: no packet is punted once the counts are equal."""
        return [t for t, (p, r) in self.drain_counts(tuples).items() if p == r]

    def drained_counted(self, tuples: Sequence[FiveTuple], timeout: float = 1.0) -> list[FiveTuple] | None:
        """``drained`` from this driver's own counts, one barrier round trip instead of a register Read.

        The FORWARD replays sent so far are noted, then a barrier: every replay sent before it has met
        ``forward_after_drain`` (one stream, in order), and every punt the gateway made before the
        barrier was processed has reached us. A flow whose punts received then equal its replays noted
        before had punted == replayed on the device at that moment: drained, for good. None (ask the
        registers) when a flow is not in FORWARD pass-through, the stream was re-established since its
        buffering began (punts may have been lost: only the registers know), or the barrier is late."""
        with self._lock:
            sent: dict[FiveTuple, int] = {}
            for t in tuples:
                buf = self._buffers.get(t)
                if buf is None or buf.passthrough is None or not buf.forward or buf.stream != self.conn.reconnects:
                    return None
                sent[t] = buf.replayed - buf.forward_from
        if not self.barrier(timeout):
            return None
        with self._lock:
            return [t for t, n in sent.items() if (buf := self._buffers.get(t)) is not None and buf.total == n]

    def settle_drains(self, tuples: Sequence[FiveTuple], port: int, wait: float,
                      counted: bool = False, lease: float = 0.0, renew_now: bool = False) -> list[FiveTuple]:
        """Wait (up to ``wait`` s) for the flows of ``tuples`` to be drained; rewrite the drained ones'
        entries to ``set_nic_port(port)`` (one Write) and free their indexes. Returns them. ``counted``:
        judge by ``drained_counted`` (a barrier round trip) where it can, else by the registers.
        ``lease`` (s, > 0): the flows' ``forward_after_drain`` entries carry that lease; the ones still
        draining are renewed every ``lease / 2`` (the first time at once with ``renew_now``, else
        ``lease / 2`` from now: the entries were just written), so a live controller's drain never
        expires."""
        now = time.monotonic()
        deadline = now + wait
        renew_at = (now if renew_now else now + lease / 2) if lease > 0 else math.inf
        done: list[FiveTuple] = []
        while True:
            if time.monotonic() >= renew_at:
                settled = set(done)
                self.renew_leases([t for t in tuples if t not in settled], port, lease)
                renew_at = time.monotonic() + lease / 2
            done = self.drained_counted(tuples, max(0.05, deadline - time.monotonic())) if counted else None
            if done is None:
                done = self.drained(tuples)
            if len(done) == len(tuples) or time.monotonic() >= deadline:
                break
            time.sleep(0.001 if counted else 0.002 if len(tuples) <= 16 else 0.01)
        if done:
            self.apply({t: ("set_nic_port", {"port": port}) for t in done})
            self.free_drains(done, background=True)
        return done

    def settle_drains_later(self, tuples: Sequence[FiveTuple], port: int, wait: float = 30.0,
                            lease: float = 0.0) -> threading.Thread:
        """``settle_drains`` in a daemon thread for flows still draining; their buffers stay in
        pass-through until they are settled (then dropped from buffering). ``lease``: their entries'
        lease, renewed at once and then every ``lease / 2`` while they wait."""
        self.settling.update(tuples)

        def run() -> None:
            try:
                done = self.settle_drains(tuples, port, wait, lease=lease, renew_now=True)
            except Exception:  # noqa: BLE001 - background: log, keep the flow on forward_after_drain
                log.exception("%s: settling drains failed", self.name)
                return
            self.stop_buffering(done)
            self.settling.difference_update(done)
            if len(done) < len(tuples):
                log.warning("%s: %d flows not drained after %.0f s: left on forward_after_drain",
                            self.name, len(tuples) - len(done), wait)
        th = threading.Thread(target=run, name=f"drain-{self.name}", daemon=True)
        th.start()
        return th

    # ---- entries ------------------------------------------------------------------------------------
    def _match(self, t: FiveTuple) -> p4runtime_pb2.TableEntry:
        """The flow's ``flow_forwarding`` match, encoded once (a migration writes each entry three
        times: suspend, flip, settle); bounded by clearing it when it is full."""
        te = self._matches.get(t)
        if te is None:
            if len(self._matches) >= MATCH_CACHE:
                self._matches.clear()
            te = self._matches[t] = self.helper.table_update_raw(
                p4runtime_pb2.Update.DELETE, TABLE, t.match()).entity.table_entry
        return te

    def _update(self, t: FiveTuple, action: str | None, params: dict[str, int] | None) -> p4runtime_pb2.Update:
        if action is None:
            return self.helper.table_update_raw(p4runtime_pb2.Update.DELETE, TABLE, self._match(t))
        kind = p4runtime_pb2.Update.MODIFY if t in self.entries else p4runtime_pb2.Update.INSERT
        return self.helper.table_update_raw(kind, TABLE, self._match(t), action, params)

    def apply(self, changes: dict[FiveTuple, tuple[str, dict[str, int]] | None]) -> None:
        """Set (or delete, for None) many entries in one Write; the local view follows the device."""
        with self._apply_lock:
            todo, ups = self._prepare(changes)
            self._finish_apply(changes, todo, lambda: self.conn.write_raw(ups))

    def apply_async(self, changes: dict[FiveTuple, tuple[str, dict[str, int]] | None]) -> Callable[[], None]:
        """``apply`` in two halves: the Write is sent now, the returned function waits for it and updates
        the local view (raising as ``apply`` does). Call it exactly once, soon: other applies on this
        gateway wait until then. A migration step starts its Writes on every gateway from one thread."""
        self._apply_lock.acquire()
        try:
            todo, ups = self._prepare(changes)
            wait = self.conn.write_async(ups)
        except BaseException:
            self._apply_lock.release()
            raise

        def finish() -> None:
            try:
                self._finish_apply(changes, todo, wait)
            finally:
                self._apply_lock.release()
        return finish

    def _prepare(self, changes: dict[FiveTuple, tuple[str, dict[str, int]] | None]) \
            -> tuple[list[tuple[FiveTuple, tuple[str, dict[str, int]] | None]], list[p4runtime_pb2.Update]]:
        todo = [(t, c) for t, c in changes.items() if c is not None or t in self.entries]
        return todo, [self._update(t, *(c if c is not None else (None, None))) for t, c in todo]

    def _finish_apply(self, changes: dict[FiveTuple, tuple[str, dict[str, int]] | None],
                      todo: list[tuple[FiveTuple, tuple[str, dict[str, int]] | None]], wait: Callable[[], None]) -> None:
        try:
            wait()
        except P4RuntimeError as exc:
            # An entry we did not know about (left by an earlier controller run): retry as MODIFY / ignore.
            bad = sorted({e.index for e in exc.errors})
            if exc.is_already_exists_only():
                self.conn.write_raw([self.helper.table_update_raw(p4runtime_pb2.Update.MODIFY, TABLE,
                                                                  todo[i][0].match(), *todo[i][1])
                                     for i in bad])
            elif not exc.is_not_found_only():
                raise
        for t, c in changes.items():
            if c is None:
                self.entries.pop(t, None)
            else:
                self.entries[t] = c

    def sync(self) -> int:
        """Load the device's ``flow_forwarding`` entries into the local view (e.g. written by an earlier
        controller process), so updates and rollbacks start from what is really there."""
        tid = self.helper.get_id("table", TABLE)
        self.entries.clear()
        self.drains.clear()
        for e in self.conn.read([p4runtime_pb2.TableEntry(table_id=tid)]):
            te = e.table_entry
            m = {k.rsplit(".", 1)[-1]: v for k, v in self.helper.decode_match(te).items()}
            try:
                t = FiveTuple(m["src_addr"], m["dst_addr"], m["proto"], m["src_port"], m["dst_port"])
            except KeyError:
                continue
            action, params = self.helper.decode_action(te)
            self.entries[t] = (action.rsplit(".", 1)[-1], params)
            if params.get("drain"):   # an index taken by an earlier controller process
                self.drains[t] = params["drain"]
        used = set(self.drains.values())
        # the other indexes are free; cells still holding counts of an earlier controller's flows are
        # dirty: reset now (one Read finds them; usually none), or on first use by a backup controller
        # (it cannot write)
        pid, rid = self.helper.get_id("register", PUNTED), self.helper.get_id("register", REPLAYED)
        try:
            cells = self.regs.read([(pid, None), (rid, None)])
        except P4RuntimeError as exc:
            if not exc.is_unimplemented():
                raise
            log.warning("%s: no register access (P4Runtime UNIMPLEMENTED, no BMv2 Thrift): lossless "
                        "replay cannot check its drain counts", self.name)
            cells = {}
        dirty = {i for (_, i), v in cells.items() if v and 0 < i < self.drain_slots and i not in used}
        with self._drain_lock:
            self._drain_free = [i for i in range(self.drain_slots - 1, 0, -1) if i not in used and i not in dirty]
            self._drain_dirty = dirty
        try:
            self._reset_drains(sorted(dirty, reverse=True))
        except RegisterError as exc:
            log.info("%s: drain registers not reset (%s)", self.name, exc)
        return len(self.entries)

    def snapshot(self, tuples: Iterable[FiveTuple]) -> dict[FiveTuple, tuple[str, dict[str, int]] | None]:
        return {t: self.entries.get(t) for t in tuples}
