"""Offered-load traffic for the switch benchmark: one generator, kernel counters, timestamped probes.

The same code drives every switch under test, so the figures of p4target-switch and simple_switch
compare like for like:

- ``generate`` runs in a forked process pinned to one core and sends pre-built frames on a raw socket,
  either paced to a target rate (the frames due since the start are sent in bursts of at most one
  frame set; when the core is stolen the missed time is given up rather than sprinted back) or in a
  tight loop (saturation). One frame of every ``len(frames)`` is a *probe*: it carries a magic and the
  send time (``time.time_ns()``) and goes to the probe port ``PROBE_PORT``.
- Offered and delivered rates come from the kernel's rx counters of the switch's ingress interface and
  of the receiving interface, so counting costs the switch and the generator nothing.
- ``ProbeReceiver`` (a thread) reads only the probes (a classic BPF filter on the L4 destination port)
  with kernel receive timestamps (``SO_TIMESTAMPNS``): latency = receive stamp - send stamp. It includes
  the generator's send syscall and the two veths, so it is an upper bound of the switch's own latency.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_PORT = 81                      # L4 destination port of the probes (TCP or UDP)
PROBE_MAGIC = b"FMPROBE1"
_L4_DPORT_OFFSET = 14 + 20 + 2       # Ethernet + IPv4 (no options) + source port
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


@dataclass(frozen=True)
class Traffic:
    """Frames the generator cycles through; ``probe`` is a probe frame without its 8-byte send stamp."""

    name: str
    frames: list[bytes]
    probe: bytes


def make_traffic(kind: str, n: int = 64) -> Traffic:
    """``lpm``: TCP to 64 IPv4 destinations in 10.0.0.0/8; ``udp``: UDP flows (16 source ports) to 10.0.1.1."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    if kind not in ("lpm", "udp"):
        raise ValueError(f"unknown traffic kind {kind!r} (lpm or udp)")
    eth = Ether(dst="00:00:00:00:00:aa", src="00:00:00:00:00:01")
    frames = []
    for i in range(n):
        if kind == "lpm":
            p = eth / IP(src="10.0.0.1", dst=f"10.0.{1 + i % 200}.{1 + i % 250}") / TCP(sport=1000 + i, dport=80)
        else:
            p = eth / IP(src="10.0.0.1", dst="10.0.1.1") / UDP(sport=1000 + i % 16, dport=5000) / (b"x" * 18)
        frames.append(bytes(p))
    l4 = TCP(sport=999, dport=PROBE_PORT) if kind == "lpm" else UDP(sport=999, dport=PROBE_PORT)
    # IP total length and UDP length cover the 8-byte stamp appended at send time
    probe = bytes(eth / IP(src="10.0.0.1", dst="10.0.9.9") / l4 / (PROBE_MAGIC + bytes(8)))[:-8]
    return Traffic(kind, frames, probe)


def generate(iface: str, traffic: Traffic, rate: float | None, stop, cpu: int | None) -> None:
    """Send ``traffic`` on ``iface`` at ``rate`` frames/s (None: as fast as possible) until ``stop`` is set."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    send, now, stamp = s.send, time.perf_counter, time.time_ns
    frames, probe = traffic.frames, traffic.probe
    n = len(frames)
    sent = k = 0
    t0 = now()
    while not stop.is_set():
        if rate:
            burst = int((now() - t0) * rate) - sent
            if burst <= 0:
                time.sleep(0.0001)
                continue
            if burst > 4 * n:            # the core was taken from us: give the lost time up
                t0 += (burst - n) / rate
                burst = n
            burst = min(burst, n)
        else:
            burst = n
        for _ in range(burst):
            try:
                send(probe + stamp().to_bytes(8, "big") if k == 0 else frames[k])
            except OSError:
                pass
            k = k + 1 if k + 1 < n else 0
        sent += burst


def _probe_filter() -> bytes:
    """Classic BPF: accept a frame whose 16-bit word at the L4 destination port offset is PROBE_PORT."""
    insns = [(0x28, 0, 0, _L4_DPORT_OFFSET),   # ldh [offset]
             (0x15, 0, 1, PROBE_PORT),         # jeq #PROBE_PORT, accept, reject
             (0x06, 0, 0, 0xFFFF),             # ret #65535
             (0x06, 0, 0, 0)]                  # ret #0
    return b"".join(struct.pack("HBBI", *i) for i in insns)


class ProbeReceiver(threading.Thread):
    """Collects probe latencies (µs) on ``iface`` while armed; ``take()`` returns and clears them."""

    def __init__(self, iface: str) -> None:
        super().__init__(name=f"probes-{iface}", daemon=True)
        # protocol 0 until bound: a socket made with a protocol gets every interface's frames until bind
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        code = _probe_filter()
        self._buf = ctypes.create_string_buffer(code)
        prog = struct.pack("@HP", len(code) // 8, ctypes.addressof(self._buf))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((iface, 0x0800))           # IPv4 on this interface only (host byte order here)
        self.sock.settimeout(0.2)
        self._samples: list[float] | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.start()

    def run(self) -> None:
        plen = len(PROBE_MAGIC) + 8
        while not self._done.is_set():
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, 64)
            except (TimeoutError, OSError):
                continue
            if addr[2] == socket.PACKET_OUTGOING or data[-plen:-8] != PROBE_MAGIC:
                continue
            rx_ns = next((s * 1_000_000_000 + ns for lvl, typ, raw in anc
                          if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS
                          for s, ns in [struct.unpack("@qq", raw[:16])]), time.time_ns())
            with self._lock:
                if self._samples is not None:
                    self._samples.append((rx_ns - int.from_bytes(data[-8:], "big")) / 1000)

    def arm(self) -> None:
        with self._lock:
            self._samples = []

    def take(self) -> list[float]:
        with self._lock:
            out, self._samples = self._samples or [], None
        return out

    def close(self) -> None:
        self._done.set()
        self.join(timeout=2)
        self.sock.close()


def _rx_packets(iface: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/statistics/rx_packets").read_text())


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank); None without samples (JSON has no NaN)."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


@dataclass
class Ports:
    """The interfaces of one measurement: generator side, switch ingress, receiver side."""

    tx: str            # the generator sends here (veth peer of ``ingress``)
    ingress: str       # the switch's input interface: its rx counter is the offered load
    rx: str            # veth peer of the switch's output interface: its rx counter is the delivered load


@dataclass
class LoadResult:
    target_pps: float | None
    windows: list[dict] = field(default_factory=list)
    latency_us: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """The window with the median delivered rate, the per-window rates, latency over all windows."""
        ws = sorted(self.windows, key=lambda w: w["delivered_pps"])
        mid = ws[len(ws) // 2]
        return {"target_pps": self.target_pps, "offered_pps": round(mid["offered_pps"]),
                "delivered_pps": round(mid["delivered_pps"]), "loss_pct": round(mid["loss_pct"], 2),
                "windows_delivered_pps": [round(w["delivered_pps"]) for w in self.windows],
                "latency_us": {"p50": _round(percentile(self.latency_us, 0.5)),
                               "p99": _round(percentile(self.latency_us, 0.99)),
                               "samples": len(self.latency_us)}}


def measure_load(ports: Ports, traffic: Traffic, rate: float | None, windows: int = 3, seconds: float = 1.5,
                 warmup: float = 0.5, cpu: int | None = 0) -> LoadResult:
    """Offer ``rate`` pps (None: saturation) for ``windows`` windows of ``seconds``; count and time probes."""
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    receiver = ProbeReceiver(ports.rx)
    proc = ctx.Process(target=generate, args=(ports.tx, traffic, rate, stop, cpu), daemon=True)
    proc.start()
    result = LoadResult(rate)
    try:
        time.sleep(warmup)
        for _ in range(windows):
            receiver.arm()
            o0, d0, t0 = _rx_packets(ports.ingress), _rx_packets(ports.rx), time.monotonic()
            time.sleep(seconds)
            o1, d1, t1 = _rx_packets(ports.ingress), _rx_packets(ports.rx), time.monotonic()
            result.latency_us += receiver.take()
            offered, delivered = o1 - o0, d1 - d0
            result.windows.append({"offered_pps": offered / (t1 - t0), "delivered_pps": delivered / (t1 - t0),
                                   "loss_pct": max(0.0, 100.0 * (1 - delivered / offered)) if offered else 0.0})
            if proc.exitcode is not None:
                raise RuntimeError(f"traffic generator exited ({proc.exitcode})")
    finally:
        stop.set()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
        receiver.close()
    log.info("load %s: %s", rate or "saturation", [{k: round(v) for k, v in w.items()} for w in result.windows])
    return result
