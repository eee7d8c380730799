"""A verified TCP byte stream: the sender writes a sequence-numbered payload, the receiver checks it.

The stream is the concatenation of 64-bit big-endian counters 0, 1, 2, ... so byte ``i`` of the
stream is determined by ``i`` alone. The receiver compares every byte it reads with the expected
one; on a mismatch at a counter boundary it resynchronises on the counter it sees and reports the
gap (bytes skipped); any other mismatch is counted as corrupt bytes. A connection reset (or any
socket error) is reported as such. Both ends emit JSON lines: ``sample`` records every ``interval``
(bytes so far, throughput over the interval), ``tcp`` records with the kernel's TCP_INFO counters
whenever one changes (:mod:`topologies.apps.tcpinfo`: retransmitted and out-of-order segments, what the
wire saw), and one ``end`` record. The receiver's ``end`` also carries the client-visible stalls: every
interval longer than ``common.STALL_MIN_S`` in which no new byte reached the application (``stalls``:
[[start epoch s, ms], ...]) and the longest (``stall_ms``).

    python -m topologies.apps.tcp_stream recv --port 5001 [--count 1] [--interval 0.1]
    python -m topologies.apps.tcp_stream send --dst 10.0.0.2 --port 5001 --duration 5 [--rate 2M]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time

import numpy as np

from topologies.apps.common import Pacer, Reporter, StallTracker, parse_rate
from topologies.apps.tcpinfo import TcpInfoSampler

log = logging.getLogger(__name__)
WORD = 8


def stream_bytes(offset: int, length: int) -> bytes:
    """Bytes [offset, offset+length) of the reference stream."""
    if length <= 0:
        return b""
    first, last = offset // WORD, (offset + length + WORD - 1) // WORD
    words = np.arange(first, last, dtype=">u8").tobytes()
    start = offset - first * WORD
    return words[start:start + length]


class StreamChecker:
    """Checks received bytes against the reference stream, one whole 8-byte counter at a time.

    A trailing partial counter is kept until the rest arrives (or :meth:`finish` checks it). On a
    counter that differs from the expected one: if it is a later counter, the bytes in between are a
    gap and checking continues from there; otherwise its differing bytes are counted as corrupt.
    """

    def __init__(self) -> None:
        self.offset = 0            # stream offset of the next expected byte (after the carried bytes)
        self.received = 0          # bytes read from the socket
        self.gaps = 0              # number of gaps (jumps forward)
        self.gap_bytes = 0
        self.corrupt = 0           # bytes that differ from the stream (not explained by a gap)
        self.first_error: int | None = None
        self._carry = b""

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        buf = self._carry + data
        pos = 0
        while len(buf) - pos >= WORD:
            n = pos + (len(buf) - pos) // WORD * WORD
            expected = stream_bytes(self.offset, n - pos)
            if buf[pos:n] == expected:
                self.offset += n - pos
                pos = n
                break
            a = np.frombuffer(buf, dtype=np.uint8, count=n - pos, offset=pos)
            b = np.frombuffer(expected, dtype=np.uint8)
            d = int(np.argmax(a != b))
            w = d // WORD * WORD                                # the first differing counter
            pos += w
            self.offset += w
            if len(buf) - pos < 2 * WORD:
                break                                           # decide when more bytes are here
            first = self.first_error is None
            if first:
                self.first_error = self.offset + d - w
            found = self._find_counter(buf, pos)
            if found is None:                                   # garbage: count it, move on a counter
                self.corrupt += int(np.count_nonzero(a[w:w + WORD] != b[w:w + WORD]))
                self.offset += WORD
                pos += WORD
                continue
            k, value = found
            head = stream_bytes(self.offset, k)                 # bytes before the later counter
            self.corrupt += sum(x != y for x, y in zip(buf[pos:pos + k], head, strict=True))
            self.offset += k
            pos += k
            if first:
                self.first_error = self.offset                  # where the missing bytes start
            self.gaps += 1
            self.gap_bytes += value * WORD - self.offset
            self.offset = value * WORD
        self._carry = buf[pos:]

    def _find_counter(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        """A later counter starting within the next 8 bytes, confirmed by its successor."""
        for k in range(WORD):
            if pos + k + 2 * WORD > len(buf):
                break
            v = int.from_bytes(buf[pos + k:pos + k + WORD], "big")
            v2 = int.from_bytes(buf[pos + k + WORD:pos + k + 2 * WORD], "big")
            if v2 == v + 1 and self.offset + k < v * WORD < self.offset + (1 << 40):
                return k, v
        return None

    def finish(self) -> None:
        """Check a trailing partial counter (end of stream)."""
        tail, self._carry = self._carry, b""
        if tail:
            expected = stream_bytes(self.offset, len(tail))
            bad = sum(x != y for x, y in zip(tail, expected, strict=True))
            if bad and self.first_error is None:
                self.first_error = self.offset
            self.corrupt += bad
            self.offset += len(tail)

    @property
    def ok(self) -> bool:
        return self.gaps == 0 and self.corrupt == 0


class TcpStreamReceiver:
    """Accepts connections on a port and verifies each one's stream in its own thread."""

    def __init__(self, port: int, bind: str = "0.0.0.0", interval: float = 0.1,
                 reporter: Reporter | None = None, count: int = 1) -> None:
        self.reporter = reporter or Reporter(role="tcp-recv")
        self.interval = interval
        self.count = count
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.results: list[dict] = []
        self.threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def serve(self, timeout: float | None = None) -> list[dict]:
        """Accept ``count`` connections, verify them all, return their end records."""
        self.reporter.emit("listening", port=self.port)
        self.sock.settimeout(timeout)
        try:
            for _ in range(self.count):
                conn, peer = self.sock.accept()
                t = threading.Thread(target=self._handle, args=(conn, peer), daemon=True)
                t.start()
                self.threads.append(t)
        except TimeoutError:
            self.reporter.emit("error", message=f"no connection within {timeout}s")
        finally:
            self.sock.close()
        for t in self.threads:
            t.join()
        return self.results

    def _handle(self, conn: socket.socket, peer: tuple) -> None:
        flow = f"{peer[0]}:{peer[1]}"
        chk = StreamChecker()
        reset, error = False, None
        start = last_t = time.monotonic()
        last_bytes = 0
        stalls = StallTracker()
        self.reporter.emit("connected", flow=flow)
        conn.settimeout(self.interval)
        with conn:
            info = TcpInfoSampler(conn, lambda **f: self.reporter.emit("tcp", flow=flow, side="recv", **f)).start()
            while True:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    data = None
                except ConnectionResetError as exc:
                    reset, error = True, str(exc)
                    break
                except OSError as exc:
                    error = str(exc)
                    break
                if data is not None:
                    if not data:
                        break
                    stalls.delivered(time.time())
                    chk.feed(data)
                now = time.monotonic()
                if now - last_t >= self.interval:
                    self.reporter.emit("sample", flow=flow, bytes=chk.received,
                                       bps=round((chk.received - last_bytes) * 8 / (now - last_t), 1),
                                       gaps=chk.gaps, corrupt=chk.corrupt)
                    last_t, last_bytes = now, chk.received
            if error is not None:
                stalls.delivered(time.time())     # the silence before the failure counts too
            info.stop()
        chk.finish()
        dur = time.monotonic() - start
        rec = self.reporter.emit("end", flow=flow, bytes=chk.received, offset=chk.offset, gaps=chk.gaps,
                                 gap_bytes=chk.gap_bytes, corrupt=chk.corrupt, first_error=chk.first_error,
                                 reset=reset, error=error, duration=round(dur, 3),
                                 bps=round(chk.received * 8 / dur, 1) if dur > 0 else 0.0,
                                 ok=chk.ok and not reset and error is None, **stalls.record())
        self.results.append(rec)


def send_stream(dst: str, port: int, duration: float | None = None, total: int | None = None,
                rate: float | None = None, chunk: int = 8192, interval: float = 0.1,
                reporter: Reporter | None = None, connect_timeout: float = 5.0,
                stop_file: str | None = None) -> dict:
    """Send the reference stream for ``duration`` seconds or ``total`` bytes at ``rate`` bytes/s
    (or until ``stop_file`` exists, checked every ``interval``)."""
    rep = reporter or Reporter(role="tcp-send")
    if duration is None and total is None:
        raise ValueError("give a duration or a byte count")
    sent, reset, error = 0, False, None
    pacer = Pacer(rate)
    sock = socket.create_connection((dst, port), timeout=connect_timeout)
    host, lport = sock.getsockname()[:2]
    local = f"{host}:{lport}"
    rep.emit("connected", flow=local, dst=f"{dst}:{port}")
    start = last_t = time.monotonic()
    last_sent = 0
    info = TcpInfoSampler(sock, lambda **f: rep.emit("tcp", flow=local, side="send", **f)).start()
    try:
        sock.settimeout(max(5.0, interval))
        while True:
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            if stop_file is not None and now - last_t >= interval and os.path.exists(stop_file):
                break
            n = chunk if total is None else min(chunk, total - sent)
            if n <= 0:
                break
            sock.sendall(stream_bytes(sent, n))
            sent += n
            pacer.wait(n)
            if now - last_t >= interval:
                rep.emit("sample", flow=local, bytes=sent, bps=round((sent - last_sent) * 8 / (now - last_t), 1))
                last_t, last_sent = now, sent
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10.0)
        while sock.recv(4096):       # wait for the receiver to close: every byte was read
            pass
    except ConnectionResetError as exc:
        reset, error = True, str(exc)
    except (BrokenPipeError, OSError) as exc:
        error = str(exc)
    finally:
        info.stop()
        sock.close()
    dur = time.monotonic() - start
    return rep.emit("end", flow=local, bytes=sent, reset=reset, error=error, duration=round(dur, 3),
                    bps=round(sent * 8 / dur, 1) if dur > 0 else 0.0, ok=not reset and error is None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.apps.tcp_stream", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv", help="accept connections and verify their streams")
    r.add_argument("--port", type=int, default=5001)
    r.add_argument("--bind", default="0.0.0.0")
    r.add_argument("--count", type=int, default=1, help="connections to accept")
    r.add_argument("--timeout", type=float, default=None, help="give up waiting for connections after S")
    s = sub.add_parser("send", help="send the reference stream")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, default=5001)
    s.add_argument("--duration", type=float)
    s.add_argument("--bytes", type=int)
    s.add_argument("--rate", help="bytes per second, e.g. 500k, 2M (default: as fast as possible)")
    s.add_argument("--chunk", type=int, default=8192)
    s.add_argument("--stop", metavar="FILE", help="stop sending once FILE exists (with --duration as a bound)")
    for p in (r, s):
        p.add_argument("--interval", type=float, default=0.1, help="sample interval, seconds")
        p.add_argument("--out", help="write JSON lines here instead of stdout")
    args = ap.parse_args(argv)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below
    try:
        if args.cmd == "recv":
            rx = TcpStreamReceiver(args.port, args.bind, args.interval, Reporter(out, "tcp-recv"), args.count)
            results = rx.serve(args.timeout)
            return 0 if results and all(r["ok"] for r in results) else 1
        if args.duration is None and args.bytes is None:
            ap.error("send needs --duration or --bytes")
        res = send_stream(args.dst, args.port, args.duration, args.bytes, parse_rate(args.rate), args.chunk,
                          args.interval, Reporter(out, "tcp-send"), stop_file=args.stop)
        return 0 if res["ok"] else 1
    finally:
        if out:
            out.close()


if __name__ == "__main__":
    raise SystemExit(main())
