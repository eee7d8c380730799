"""What TCP saw on the wire, read from the kernel: ``getsockopt(TCP_INFO)`` and a sampler thread.

The application-level checks of the stream apps (gaps, corrupt bytes) only see what TCP delivered
after it retransmitted and reordered. The kernel's ``struct tcp_info`` (linux/tcp.h) counts what
happened underneath: segments retransmitted (``tcpi_total_retrans``), data segments received out of
order (``tcpi_rcv_ooopack``), reordering events the sender detected (``tcpi_reord_seen``), duplicate
segments the receiver reported with D-SACK (``tcpi_dsack_dups``), bytes retransmitted. Older kernels
return a shorter struct; a field the kernel does not have is ``None``.

:class:`TcpInfoSampler` polls one socket every ``period`` seconds in its own thread and emits a ``tcp``
record whenever a counter changed (plus one at the start and one at the end), so a report can say
exactly how many retransmissions or out-of-order segments fell into any window of the run.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

# (name, struct format, byte offset) of the struct tcp_info fields we report, from linux/tcp.h.
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("state", "B", 0),
    ("retransmits", "B", 2),          # retransmissions of the current RTO episode
    ("rto_us", "I", 8),
    ("lost", "I", 32),
    ("retrans", "I", 36),             # segments currently retransmitted and not yet acked
    ("rtt_us", "I", 68),
    ("total_retrans", "I", 100),
    ("bytes_retrans", "Q", 208),
    ("dsack_dups", "I", 216),
    ("reord_seen", "I", 220),
    ("rcv_ooopack", "I", 224),
)
SIZE = 232                            # up to tcpi_snd_wnd; the kernel returns min(ours, its own)
# The counters a window of the run is measured by (monotonic over a connection's life).
COUNTERS = ("total_retrans", "bytes_retrans", "rcv_ooopack", "reord_seen", "dsack_dups")


def tcp_info(sock: socket.socket) -> dict[str, int | None]:
    """The socket's TCP_INFO fields of :data:`FIELDS`; ``None`` for those this kernel does not return."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, SIZE)
    out: dict[str, int | None] = {}
    for name, fmt, off in FIELDS:
        end = off + struct.calcsize(fmt)
        out[name] = struct.unpack_from("=" + fmt, raw, off)[0] if end <= len(raw) else None
    return out


class TcpInfoSampler:
    """Polls a socket's TCP_INFO and calls ``emit(**fields)`` when a counter changed.

    Records carry every counter of :data:`COUNTERS` (cumulative) plus ``rtt_us`` and ``state``; the
    first poll and :meth:`stop` always emit, so each connection has a record at both ends of its life.
    """

    def __init__(self, sock: socket.socket, emit: Callable[..., object], period: float = 0.005) -> None:
        self.sock = sock
        self.emit = emit
        self.period = period
        self.last: dict[str, int | None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcpinfo", daemon=True)

    def start(self) -> TcpInfoSampler:
        self.poll(force=True)
        self._thread.start()
        return self

    def poll(self, force: bool = False) -> None:
        try:
            info = tcp_info(self.sock)
        except OSError:               # socket closed under us: the final record was already taken
            return
        counters = {k: info[k] for k in COUNTERS}
        if force or self.last is None or counters != self.last:
            self.last = counters
            self.emit(**counters, rtt_us=info["rtt_us"], state=info["state"])

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.poll()

    def stop(self) -> None:
        """Stop polling and emit the final counters (call before closing the socket)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.poll(force=True)
