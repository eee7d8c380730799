"""A RoCEv2 queue-pair stream: UDP 4791 + BTH with incrementing PSN; the receiver checks continuity.

The sender encodes each packet (IP / UDP dport 4791 / BTH / payload / ICRC; byte-identical to scapy's
``scapy.contrib.roce`` build, which the tests check, at a fraction of its per-packet cost) and sends
it through one raw IPv4 socket (root), so the ICRC covers the exact headers on the wire; ``--socket
udp`` sends the same UDP payload through an ordinary UDP socket instead (no root; the kernel picks
the IP id, so the ICRC is then not meaningful). Opcodes are RC SEND_FIRST, SEND_MIDDLE..., SEND_LAST, so
the receiver knows when a QP's message stream ends. The payload starts with the 64-bit message
number. Each QP sends from its own UDP source port (the RoCEv2 entropy field).

The receiver (an ordinary UDP socket on 4791) keeps per-QP state keyed by (source IP, dest QPN):
the expected PSN; a PSN ahead of it is a gap (``missing`` PSNs counted), one behind it is a
duplicate or reordered packet. It emits JSON lines: ``sample`` records (packets, pps, gaps) and an
``end`` record per QP.

    python -m topologies.apps.roce_stream recv [--count 1] [--idle 5]
    python -m topologies.apps.roce_stream send --dst 10.0.0.2 --qpn 0x11 --pps 500 --duration 5
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import time
import zlib
from dataclasses import dataclass, field

from topologies.apps.common import Pacer, Reporter, StallTracker

log = logging.getLogger(__name__)

ROCE_PORT = 4791
PSN_MOD = 1 << 24
OP_SEND_FIRST, OP_SEND_MIDDLE, OP_SEND_LAST = 0x00, 0x01, 0x02
BTH_LEN = 12


def src_port_for(qpn: int) -> int:
    return 49152 + (qpn % 16384)


def build_packet(src: str, dst: str, qpn: int, psn: int, opcode: int, msg: int, size: int, ip_id: int = 1):
    """The scapy packet IP/UDP/BTH/payload (scapy computes the ICRC when it is built).

    The reference for :func:`encode_packet`, which produces the same bytes without scapy's per-packet cost.
    """
    from scapy.contrib.roce import BTH
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    return (IP(src=src, dst=dst, flags="DF", id=ip_id, ttl=64) / UDP(sport=src_port_for(qpn), dport=ROCE_PORT, chksum=0)
            / BTH(opcode=opcode, dqpn=qpn, psn=psn % PSN_MOD, ackreq=0) / Raw(_payload(msg, size)))


def _payload(msg: int, size: int) -> bytes:
    return struct.pack("!Q", msg).ljust(max(size, 8), b"\x5a")


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_packet(src: str, dst: str, qpn: int, psn: int, opcode: int, msg: int, size: int,
                  ip_id: int = 1) -> bytes:
    """IPv4 + UDP (checksum 0, as RoCEv2 allows) + BTH + payload + ICRC, as bytes.

    The ICRC is the CRC32 over a pseudo header (8 bytes of 0xff for the masked LRH), the IP header
    with TOS, TTL and checksum masked to all ones, the UDP header with its checksum masked, the BTH
    with its FECN/BECN/reserved byte masked, and the payload; it is appended little-endian.
    """
    bth = struct.pack("!BBHB3sB3s", opcode, 0, 0xFFFF, 0, qpn.to_bytes(3, "big"), 0,
                      (psn % PSN_MOD).to_bytes(3, "big"))
    payload = _payload(msg, size)
    udp_len = 8 + len(bth) + len(payload) + 4
    total_len = 20 + udp_len
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    sport = src_port_for(qpn)

    def ip_header(tos: int, ttl: int, csum: int) -> bytes:
        return struct.pack("!BBHHHBBH4s4s", 0x45, tos, total_len, ip_id & 0xFFFF, 0x4000, ttl, 17, csum,
                           saddr, daddr)

    masked = (b"\xff" * 8 + ip_header(0xFF, 0xFF, 0xFFFF) + struct.pack("!HHHH", sport, ROCE_PORT, udp_len, 0xFFFF)
              + bth[:4] + b"\xff" + bth[5:] + payload)
    icrc = struct.pack("<I", zlib.crc32(masked) & 0xFFFFFFFF)
    hdr = ip_header(0, 64, 0)
    hdr = ip_header(0, 64, _ip_checksum(hdr))
    return hdr + struct.pack("!HHHH", sport, ROCE_PORT, udp_len, 0) + bth + payload + icrc


def parse_bth(data: bytes) -> tuple[int, int, int]:
    """(opcode, dest QPN, PSN) from a UDP payload that starts with a BTH."""
    if len(data) < BTH_LEN:
        raise ValueError(f"{len(data)} bytes is too short for a BTH")
    opcode = data[0]
    dqpn = int.from_bytes(data[5:8], "big")
    psn = int.from_bytes(data[9:12], "big")
    return opcode, dqpn, psn


def psn_delta(psn: int, expected: int) -> int:
    """Signed distance psn - expected in 24-bit serial-number arithmetic."""
    d = (psn - expected) % PSN_MOD
    return d - PSN_MOD if d >= PSN_MOD // 2 else d


@dataclass
class QpState:
    src: str
    qpn: int
    expected: int | None = None
    packets: int = 0
    bytes: int = 0
    gaps: int = 0            # gap events
    missing: int = 0         # PSNs skipped in total
    duplicates: int = 0      # PSNs behind the expected one (duplicate or reordered)
    first: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    done: bool = False
    stalls: StallTracker = field(default_factory=StallTracker)   # between new (in-order) PSNs

    def feed(self, psn: int, length: int) -> None:
        self.packets += 1
        self.bytes += length
        self.last = time.monotonic()
        if self.expected is None:
            self.expected = (psn + 1) % PSN_MOD
            self.stalls.delivered(time.time())
            return
        d = psn_delta(psn, self.expected)
        if d >= 0:
            self.stalls.delivered(time.time())
        if d == 0:
            self.expected = (psn + 1) % PSN_MOD
        elif d > 0:
            self.gaps += 1
            self.missing += d
            self.expected = (psn + 1) % PSN_MOD
        else:
            self.duplicates += 1


class RoceReceiver:
    """Receives RoCEv2 packets on UDP 4791 and checks each QP's PSN sequence."""

    def __init__(self, port: int = ROCE_PORT, bind: str = "0.0.0.0", interval: float = 0.1,
                 reporter: Reporter | None = None) -> None:
        self.reporter = reporter or Reporter(role="roce-recv")
        self.interval = interval
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((bind, port))
        self.port = self.sock.getsockname()[1]
        self.qps: dict[tuple[str, int], QpState] = {}
        self.malformed = 0

    def serve(self, count: int = 1, idle: float = 5.0, duration: float | None = None) -> list[dict]:
        """Run until ``count`` QPs ended (SEND_LAST), or nothing arrived for ``idle`` s, or ``duration``."""
        self.reporter.emit("listening", port=self.port)
        self.sock.settimeout(self.interval)
        start = last_rx = last_sample = time.monotonic()
        prev = {}
        ended: list[dict] = []
        while True:
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            if now - last_rx >= idle:
                break
            if count and len(ended) >= count:
                break
            try:
                data, (src, _sport) = self.sock.recvfrom(65536)
            except TimeoutError:
                data = None
            if data is not None:
                last_rx = time.monotonic()
                try:
                    opcode, qpn, psn = parse_bth(data)
                except ValueError:
                    self.malformed += 1
                    continue
                qp = self.qps.get((src, qpn))
                if qp is None:
                    qp = self.qps[(src, qpn)] = QpState(src, qpn)
                    self.reporter.emit("qp", src=src, qpn=qpn, first_psn=psn)
                qp.feed(psn, len(data))
                if opcode == OP_SEND_LAST and not qp.done:
                    qp.done = True
                    ended.append(self._end(qp))
            now = time.monotonic()
            if now - last_sample >= self.interval:
                for key, qp in self.qps.items():
                    pps = (qp.packets - prev.get(key, 0)) / (now - last_sample)
                    self.reporter.emit("sample", src=qp.src, qpn=qp.qpn, packets=qp.packets, pps=round(pps, 1),
                                       bps=None, gaps=qp.gaps, missing=qp.missing, duplicates=qp.duplicates)
                    prev[key] = qp.packets
                last_sample = now
        self.sock.close()
        for qp in self.qps.values():
            if not qp.done:
                ended.append(self._end(qp, complete=False))
        return ended

    def _end(self, qp: QpState, complete: bool = True) -> dict:
        dur = max(qp.last - qp.first, 1e-9)
        return self.reporter.emit("end", src=qp.src, qpn=qp.qpn, packets=qp.packets, bytes=qp.bytes,
                                  gaps=qp.gaps, missing=qp.missing, duplicates=qp.duplicates,
                                  complete=complete, duration=round(dur, 3), pps=round(qp.packets / dur, 1),
                                  malformed=self.malformed,
                                  ok=complete and qp.gaps == 0 and qp.duplicates == 0, **qp.stalls.record())


class _Sender:
    """Sends encoded packets through one raw IPv4 socket (``raw``) or per-QP UDP sockets (``udp``)."""

    def __init__(self, dst: str, mode: str) -> None:
        if mode not in ("raw", "udp"):
            raise ValueError(f"unknown socket mode {mode!r} (raw or udp)")
        self.dst, self.mode = dst, mode
        self.socks: dict[int, socket.socket] = {}
        self.ip_id = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((dst, ROCE_PORT))
            self.src = s.getsockname()[0]
        if mode == "raw":
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, qpn: int, psn: int, opcode: int, msg: int, size: int) -> int:
        self.ip_id = self.ip_id % 0xFFFF + 1       # never 0: the kernel would fill it in, breaking the ICRC
        pkt = encode_packet(self.src, self.dst, qpn, psn, opcode, msg, size, self.ip_id)
        if self.mode == "raw":
            self.raw.sendto(pkt, (self.dst, 0))
            return len(pkt)
        sock = self.socks.get(qpn)
        if sock is None:
            sock = self.socks[qpn] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", src_port_for(qpn)))
        sock.sendto(pkt[28:], (self.dst, ROCE_PORT))
        return len(pkt) - 28

    def close(self) -> None:
        if self.mode == "raw":
            self.raw.close()
        for s in self.socks.values():
            s.close()


def send_qps(dst: str, qpn: int = 0x11, qps: int = 1, pps: float = 500.0, duration: float | None = 5.0,
             packets: int | None = None, size: int = 64, first_psn: int = 0, mode: str = "raw",
             interval: float = 0.1, reporter: Reporter | None = None) -> list[dict]:
    """Send ``qps`` queue pairs (QPNs qpn..qpn+qps-1) round robin at ``pps`` packets/s in total."""
    rep = reporter or Reporter(role="roce-send")
    if duration is None and packets is None:
        raise ValueError("give a duration or a packet count")
    tx = _Sender(dst, mode)
    qpns = [qpn + i for i in range(qps)]
    sent = dict.fromkeys(qpns, 0)
    pacer = Pacer(pps)
    start = last = time.monotonic()
    n = 0
    error = None
    try:
        while True:
            now = time.monotonic()
            if (duration is not None and now - start >= duration) or (packets is not None and n >= packets):
                break
            q = qpns[n % qps]
            op = OP_SEND_FIRST if sent[q] == 0 else OP_SEND_MIDDLE
            tx.send(q, first_psn + sent[q], op, sent[q], size)
            sent[q] += 1
            n += 1
            pacer.wait(1)
            if now - last >= interval:
                rep.emit("sample", packets=n, qps={str(k): v for k, v in sent.items()})
                last = now
        for q in qpns:                       # close every QP's message stream
            tx.send(q, first_psn + sent[q], OP_SEND_LAST, sent[q], size)
            sent[q] += 1
    except OSError as exc:
        error = str(exc)
    finally:
        tx.close()
    return [rep.emit("end", dst=dst, qpn=q, packets=sent[q], last_psn=(first_psn + sent[q] - 1) % PSN_MOD,
                     error=error, ok=error is None) for q in qpns]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.apps.roce_stream", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv", help="receive QP streams and check PSN continuity")
    r.add_argument("--port", type=int, default=ROCE_PORT)
    r.add_argument("--count", type=int, default=1, help="QPs to wait for (ended by SEND_LAST); 0: until idle")
    r.add_argument("--idle", type=float, default=5.0, help="stop after S seconds without packets")
    r.add_argument("--duration", type=float)
    s = sub.add_parser("send", help="send QP streams")
    s.add_argument("--dst", required=True)
    s.add_argument("--qpn", type=lambda v: int(v, 0), default=0x11)
    s.add_argument("--qps", type=int, default=1)
    s.add_argument("--pps", type=float, default=500.0)
    s.add_argument("--duration", type=float)
    s.add_argument("--packets", type=int)
    s.add_argument("--size", type=int, default=64, help="payload bytes after the BTH")
    s.add_argument("--first-psn", type=int, default=0)
    s.add_argument("--socket", choices=("raw", "udp"), default="raw")
    for p in (r, s):
        p.add_argument("--interval", type=float, default=0.1)
        p.add_argument("--out", help="write JSON lines here instead of stdout")
    args = ap.parse_args(argv)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below
    try:
        if args.cmd == "recv":
            rx = RoceReceiver(args.port, interval=args.interval, reporter=Reporter(out, "roce-recv"))
            res = rx.serve(args.count, args.idle, args.duration)
            return 0 if res and all(x["ok"] for x in res) else 1
        if args.duration is None and args.packets is None:
            ap.error("send needs --duration or --packets")
        res = send_qps(args.dst, args.qpn, args.qps, args.pps, args.duration, args.packets, args.size,
                       args.first_psn, args.socket, args.interval, Reporter(out, "roce-send"))
        return 0 if all(x["ok"] for x in res) else 1
    finally:
        if out:
            out.close()


if __name__ == "__main__":
    raise SystemExit(main())
