"""P4Runtime under load (issue #11): small Write and Read latency on p4target-switch (flow_nic, its own
process) while 50 StreamChannels are open (the primary, 15 arbitrated backups, 34 that never arbitrate)
and a 100k-update Write batch (register cells, CONTINUE_ON_ERROR) runs concurrently.

Result keys: {"switch": {"p4rt_under_load": {"streams_open", "batch_updates", "batch_s", "idle": {...},
"loaded": {...}, "rss_kb": {"before", "peak", "after"}}}}; idle/loaded hold write_ms/read_ms p50/p99/max
and the number of samples.
"""

from __future__ import annotations

import logging
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
STREAMS = 50
BACKUPS = 15
BATCH = 100_000
IDLE_SAMPLES = 100


def _helpers() -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "p4runtime"))
    import p4rt_real  # the test helpers: flow_nic compile, hand-encoded register updates, switch process

    return p4rt_real


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(statistics.median(ms), 2), "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max": round(ms[-1], 2)}


def _stream(stub: Any, election_low: int | None) -> tuple[queue.Queue, Any]:
    q: queue.Queue = queue.Queue()
    if election_low is not None:
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id, req.arbitration.election_id.low = 0, election_low
        q.put(req)
    call = stub.StreamChannel(iter(q.get, None))
    if election_low is not None:
        next(call)  # the arbitration answer
    return q, call


def run() -> dict:
    h = _helpers()
    proc = h.SwitchProcess()
    streams: list[tuple[queue.Queue, Any]] = []
    try:
        proc.wait_listening()
        opts = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_metadata_size", 64 << 20)]
        channel = grpc.insecure_channel(proc.address, options=opts)
        stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        streams.append(_stream(stub, 1000))                      # primary
        h.set_pipeline(stub, (0, 1000))
        streams += [_stream(stub, 10 + i) for i in range(BACKUPS)]
        streams += [_stream(stub, None) for _ in range(STREAMS - 1 - BACKUPS)]
        p4info = h.flow_nic()[1]
        reg = next(r for r in p4info.registers if r.preamble.name.endswith("flow_packets"))
        write = channel.unary_unary("/p4.v1.P4Runtime/Write")
        small = h.write_request(0, (0, 1000), [h.register_update(2, reg.preamble.id, 7, b"\x01")])
        rq = p4runtime_pb2.ReadRequest(device_id=0)
        cell = rq.entities.add().register_entry
        cell.register_id, cell.index.index = reg.preamble.id, 7
        read = channel.unary_stream("/p4.v1.P4Runtime/Read")
        rdata = rq.SerializeToString()

        def sample(out_w: list, out_r: list) -> None:
            t = time.perf_counter()
            write(small, timeout=30)
            out_w.append(time.perf_counter() - t)
            t = time.perf_counter()
            list(read(rdata, timeout=30))
            out_r.append(time.perf_counter() - t)

        idle_w: list[float] = []
        idle_r: list[float] = []
        for _ in range(IDLE_SAMPLES):
            sample(idle_w, idle_r)
        big = h.write_request(0, (0, 1000), h.register_updates(p4info, BATCH))
        write(h.write_request(0, (0, 1000), h.register_updates(p4info, 5000)), timeout=60)   # warm-up
        rss_before = h.rss_kb(proc.proc.pid)
        done = threading.Event()
        batch_s: list[float] = []

        def batch() -> None:
            t = time.perf_counter()
            try:
                write(big, timeout=120)
            finally:
                batch_s.append(time.perf_counter() - t)
                done.set()

        loaded_w: list[float] = []
        loaded_r: list[float] = []
        worker = threading.Thread(target=batch, daemon=True)
        worker.start()
        while not done.is_set():
            sample(loaded_w, loaded_r)
            time.sleep(0.005)
        worker.join(5)
        peak = h.rss_kb(proc.proc.pid, "VmHWM")
        time.sleep(0.5)
        rss_after = h.rss_kb(proc.proc.pid)
        result = {
            "streams_open": len(streams), "batch_updates": BATCH, "batch_s": round(batch_s[0], 2),
            "idle": {"write_ms": _stats(idle_w), "read_ms": _stats(idle_r)},
            "loaded": {"write_ms": _stats(loaded_w), "read_ms": _stats(loaded_r)},
            "rss_kb": {"before": rss_before, "peak": peak, "after": rss_after},
        }
        for q, call in streams:
            q.put(None)
            call.cancel()
        channel.close()
        return {"switch": {"p4rt_under_load": result}}
    finally:
        proc.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
