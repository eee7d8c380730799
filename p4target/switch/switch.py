"""The switch daemon core: ports, egress queues and the packet loop around a BMv2-JSON ``Pipeline``.

One thread (``Switch.run``) polls every port socket, runs ingress on each frame, and sends the resulting
egress jobs through the per-port egress queues. A queue with no rate limit and no backlog is bypassed:
egress runs at once (enq/deq timestamps equal, qdepth 0), so the common path has no thread hand-off.
Rate-limited queues (``set_queue_rate``) hold packets up to their depth (``set_queue_depth``, 64 by
default like BMv2) and are drained by the same thread at their rate; ``deq_timedelta`` and ``enq_qdepth``
then reflect the wait. Every pipeline call happens under ``Switch.lock``; P4Runtime and the runtime CLI
take the same lock for state access, which makes a command packet atomic with respect to data traffic.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from p4target.switch.ports import Port

log = logging.getLogger(__name__)

DEFAULT_QUEUE_DEPTH = 64  # BMv2's default egress queue capacity (packets)
DROP_PORT = 511
RX_BURST = 64  # frames taken from one socket before looking at the others
YIELD_EVERY = float(os.environ.get("P4TARGET_YIELD_S", "0.001"))  # seconds of packet work between GIL hand-overs
ERR_EVENTS = select.POLLERR | select.POLLHUP | select.POLLNVAL


class EgressQueue:
    """One port's egress queue: FIFO of (job, enq_ts_us, enq_qdepth), optional rate (pps), bounded depth."""

    __slots__ = ("port", "items", "rate_pps", "depth", "next_tx", "drops")

    def __init__(self, port: int, depth: int = DEFAULT_QUEUE_DEPTH, rate_pps: float | None = None) -> None:
        self.port = port
        self.items: collections.deque = collections.deque()
        self.rate_pps = rate_pps
        self.depth = depth
        self.next_tx = 0.0  # monotonic seconds: earliest time the next packet may leave
        self.drops = 0


class Switch:
    """A software switch executing a BMv2 JSON pipeline on real Linux interfaces."""

    def __init__(
        self,
        ports: dict[int, str] | None = None,
        cpu_port: int | None = None,
        device_id: int = 0,
        pcap_dir: str | None = None,
        log: logging.Logger | None = None,
        trace: bool = False,
        rx_ring: bool = True,
    ) -> None:
        self.device_id = device_id
        self.cpu_port = cpu_port if cpu_port else None
        self.log = log or logging.getLogger("p4target.switch")
        self.trace = trace
        self.lock = threading.RLock()
        self.pipeline: Any = None
        # called (outside the lock) with each newly installed pipeline: the runtime CLI prepares its view
        self.on_install: list[Callable[[Any], None]] = []
        self.json_bytes: bytes | None = None
        self.packet_in_sink: Callable[[bytes], None] | None = None
        self.digest_sink: Callable[[int, str, tuple], None] | None = None
        self.ports: dict[int, Port] = {}
        self.queues: dict[int, EgressQueue] = {}
        self._default_depth = DEFAULT_QUEUE_DEPTH
        self._default_rate: float | None = None
        self._t0 = time.perf_counter_ns()
        self._running = False
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.stats = collections.Counter()
        try:
            for number, iface in (ports or {}).items():
                if number == self.cpu_port:
                    raise ValueError(f"port {number} is the CPU port and cannot have an interface")
                self.ports[number] = Port(number, iface, pcap_dir, use_ring=rx_ring)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ pipeline
    def set_pipeline(self, json_bytes: bytes | str | dict) -> None:
        """Build a Pipeline from BMv2 JSON and swap it in (raises PipelineError on a bad JSON)."""
        from p4target.pipeline import Pipeline

        pipeline = Pipeline(json_bytes)
        self.install_pipeline(pipeline, json_bytes)

    def install_pipeline(self, pipeline: Any, json_bytes: Any = None) -> None:
        """Swap in an already built Pipeline (P4Runtime builds it first to verify the config)."""
        pipeline.digest_sink = self._on_digest
        if self.trace:
            pipeline.log_sink = self.log.debug
        with self.lock:
            for q in self.queues.values():
                q.items.clear()
            self.pipeline = pipeline
            if isinstance(json_bytes, str):
                json_bytes = json_bytes.encode()
            self.json_bytes = json_bytes if isinstance(json_bytes, bytes) else None
        self.log.info("pipeline installed")
        for cb in list(self.on_install):
            try:
                cb(pipeline)
            except Exception:  # noqa: BLE001 - a listener must not fail the install
                self.log.exception("pipeline install listener failed")

    def _on_digest(self, list_id: int, name: str, values: tuple) -> None:
        sink = self.digest_sink
        if sink is not None:
            sink(list_id, name, values)

    def now_us(self) -> int:
        """Switch clock in microseconds since start (the pipeline's timestamps)."""
        return (time.perf_counter_ns() - self._t0) // 1000

    # ------------------------------------------------------------------ queues
    def _queue(self, port: int) -> EgressQueue:
        q = self.queues.get(port)
        if q is None:
            q = self.queues[port] = EgressQueue(port, self._default_depth, self._default_rate)
        return q

    def set_queue_rate(self, pps: float | None, port: int | None = None) -> None:
        """Egress rate limit in packets/s for one port or all ports (None or <= 0: unlimited)."""
        rate = float(pps) if pps is not None and pps > 0 else None
        with self.lock:
            if port is None:
                self._default_rate = rate
                for p in set(self.ports) | set(self.queues):
                    self._queue(p).rate_pps = rate
            else:
                self._queue(port).rate_pps = rate
        self._wake()

    def set_queue_depth(self, pkts: int, port: int | None = None) -> None:
        """Egress queue capacity in packets for one port or all ports."""
        if pkts < 1:
            raise ValueError("queue depth must be >= 1")
        with self.lock:
            if port is None:
                self._default_depth = pkts
                for p in set(self.ports) | set(self.queues):
                    self._queue(p).depth = pkts
            else:
                self._queue(port).depth = pkts

    # ------------------------------------------------------------------ ports
    def port_status(self) -> dict[int, bool]:
        """Oper state of every port's interface (False also when administratively down)."""
        return {n: p.admin_up and p.oper_up() for n, p in sorted(self.ports.items())}

    def set_port_admin(self, port: int, up: bool) -> None:
        if port not in self.ports:
            raise KeyError(f"no port {port}")
        self.ports[port].admin_up = up

    # ------------------------------------------------------------------ packet path
    def inject(self, port: int, data: bytes) -> None:
        """Run a frame through the pipeline as if it arrived on ``port`` (any thread)."""
        with self.lock:
            self._ingress(port, data)
            self._flush()
        if threading.get_ident() != self._loop_ident:
            self._wake()

    def packet_out(self, data: bytes) -> None:
        """A P4Runtime PacketOut: ``data`` starts with the packet_out header; enters ingress on cpu_port."""
        if self.cpu_port is None:
            raise RuntimeError("switch has no CPU port (--cpu-port)")
        self.inject(self.cpu_port, data)

    def _ingress(self, port: int, data: bytes) -> None:
        p = self.pipeline
        if p is None:
            self.stats["rx_no_pipeline"] += 1
            return
        now = (time.perf_counter_ns() - self._t0) // 1000
        try:
            jobs = p.ingress(port, data, now)
        except Exception:  # a pipeline bug must not kill the switch
            self.stats["pipeline_errors"] += 1
            self.log.exception("ingress failed on port %d", port)
            return
        queues, ports = self.queues, self.ports
        for job in jobs:
            q = queues.get(job.egress_port)
            if q is None and self._default_rate is None or q is not None and q.rate_pps is None and not q.items:
                # fast path (no rate limit, no backlog): egress now, transmit directly
                try:
                    outs, more = p.egress(job, now, now, 0, 0)
                except Exception:
                    self.stats["pipeline_errors"] += 1
                    self.log.exception("egress failed on port %s", job.egress_port)
                    continue
                for out_port, out in outs:
                    pt = ports.get(out_port)
                    if pt is not None and pt.admin_up:
                        pt.send(out)
                    else:
                        self._transmit(out_port, out)
                for m in more:
                    self._enqueue(m, now)
            else:
                self._enqueue(job, now)

    def _enqueue(self, job: Any, now: int) -> None:
        q = self.queues.get(job.egress_port)
        if q is None:
            q = self._queue(job.egress_port)
        if q.rate_pps is None and not q.items:
            self._egress(job, now, now, 0, 0)
            return
        if len(q.items) >= q.depth:
            q.drops += 1
            self.stats["queue_drops"] += 1
            return
        q.items.append((job, now, len(q.items)))

    def _egress(self, job: Any, enq: int, deq: int, enq_qdepth: int, deq_qdepth: int) -> None:
        try:
            outs, more = self.pipeline.egress(job, enq, deq, enq_qdepth, deq_qdepth)
        except Exception:
            self.stats["pipeline_errors"] += 1
            self.log.exception("egress failed on port %s", getattr(job, "egress_port", "?"))
            return
        for port, data in outs:
            self._transmit(port, data)
        for m in more:
            self._enqueue(m, deq)

    def _transmit(self, port: int, data: bytes) -> None:
        p = self.ports.get(port)
        if p is not None:
            if p.admin_up:
                p.send(data)
            else:
                self.stats["tx_port_down"] += 1
        elif port == self.cpu_port and self.cpu_port is not None:
            sink = self.packet_in_sink
            if sink is not None:
                try:
                    sink(data)
                except Exception:
                    self.log.exception("packet-in sink failed")
            else:
                self.stats["packet_in_no_client"] += 1
        else:
            self.stats["tx_no_port"] += 1

    def _service_queues(self) -> float | None:
        """Dequeue what the rates allow; return seconds until the next dequeue is due (None: idle)."""
        wait: float | None = None
        mono = time.monotonic()
        for q in self.queues.values():
            items = q.items
            if not items:
                continue
            rate = q.rate_pps
            while items:
                if rate is not None:
                    if mono < q.next_tx:
                        w = q.next_tx - mono
                        wait = w if wait is None or w < wait else wait
                        break
                    # allow a ~2 ms burst of credit: poll() wakes up with millisecond granularity
                    credit = max(1.0, rate * 0.002) / rate
                    q.next_tx = max(q.next_tx, mono - credit) + 1.0 / rate
                job, enq, enq_qdepth = items.popleft()
                now = (time.perf_counter_ns() - self._t0) // 1000
                self._egress(job, enq, now, enq_qdepth, len(items))
        return wait

    def _flush(self) -> None:
        """Hand the frames queued in the ports' TX rings to the kernel (under the lock)."""
        for p in self.ports.values():
            if p.tx_pending:
                p.flush()

    def _port_error(self, poller: Any, port: Port, ev: int) -> bool:
        """A socket error (link down: ENETDOWN) must be read or poll() reports it forever; a socket
        whose interface is gone (POLLHUP/POLLNVAL) leaves the poll set. Returns False when dropped."""
        try:
            err = port.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            err = 0
        if err:
            self.log.info("port %d (%s): %s", port.number, port.iface, os.strerror(err))
        if ev & (select.POLLHUP | select.POLLNVAL):
            self.log.warning("port %d (%s): interface gone, port closed", port.number, port.iface)
            poller.unregister(port.fd)
            return False
        return True

    def _wake(self) -> None:
        if self._wake_w is None:
            return
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def run(self) -> None:
        """The packet loop (blocking) until ``stop()``."""
        self._loop_ident = threading.get_ident()
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd = {}
        for port in self.ports.values():
            poller.register(port.fd, select.POLLIN)
            by_fd[port.fd] = port
        lock = self.lock
        wake_r = self._wake_r
        timeout_ms: float | None = None
        next_yield = time.monotonic() + YIELD_EVERY
        while self._running:
            try:
                timeout_ms = self._iteration(poller, by_fd, lock, wake_r, timeout_ms)
                if YIELD_EVERY and time.monotonic() >= next_yield:
                    # Under sustained load this thread would keep the GIL for whole switch intervals
                    # (5 ms) at a time and starve the gRPC threads (PacketIn, Write...): hand it over.
                    time.sleep(0)
                    next_yield = time.monotonic() + YIELD_EVERY
            except Exception:  # the loop must survive anything (a port error, a bug): log and go on
                self.stats["loop_errors"] += 1
                self.log.exception("packet loop error")
                time.sleep(0.01)
                timeout_ms = 0
        self.log.info("packet loop stopped")

    def _iteration(self, poller: Any, by_fd: dict, lock: Any, wake_r: int, timeout_ms: float | None) -> float | None:
        """One poll(): drain the readable ports through ingress, then the rate-limited queues.
        Returns the next poll timeout (ms; None = until a frame or a wake-up)."""
        for fd, ev in poller.poll(timeout_ms):
            if fd == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                continue
            port = by_fd.get(fd)
            if port is None:
                continue
            if ev & ERR_EVENTS:
                if not self._port_error(poller, port, ev):
                    del by_fd[fd]
                if not ev & select.POLLIN:
                    continue
            number = port.number
            with lock:
                for _ in range(RX_BURST):
                    try:
                        data = port.recv()
                    except OSError as exc:  # recvfrom mode: ENETDOWN and friends
                        self.log.info("port %d (%s): receive failed: %s", number, port.iface, exc)
                        break
                    if data is None:
                        break
                    if port.admin_up:
                        self._ingress(number, data)
        with lock:
            wait = self._service_queues()
            self._flush()
        if wait is None:
            return None
        if wait <= 0:
            return 0
        return max(1.0, wait * 1000.0)  # poll() has millisecond granularity

    def start(self) -> None:
        """Start the packet loop in a background thread."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self.run, name="switch-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the packet loop and close ports (idempotent)."""
        self._running = False
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self.close()

    def close(self) -> None:
        for port in self.ports.values():
            port.close()
        for fd in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = None  # type: ignore[assignment]
