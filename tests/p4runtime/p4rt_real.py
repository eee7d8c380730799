"""Helpers for the server hardening, fuzz and TLS tests: the real flow_nic program (compiled by the
embedded compiler), an in-process server over it, p4target-switch as a process, RSS readings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4rt_testutil import StreamClient

from p4target.p4runtime import P4RuntimeServer
from p4target.p4runtime.batch import scan
from p4target.switch import Switch

ROOT = Path(__file__).resolve().parents[2]
FLOW_NIC = ROOT / "p4src" / "flow_nic.p4"
U = p4runtime_pb2.Update


@lru_cache(maxsize=1)
def flow_nic() -> tuple[bytes, object]:
    """(BMv2 JSON bytes, P4Info) of p4src/flow_nic.p4."""
    from p4target.compiler import compile_file

    res = compile_file(str(FLOW_NIC), include_dirs=[str(ROOT / "p4src" / "include")])
    return json.dumps(res.bmv2_json).encode(), res.p4info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_pipeline(stub, election_id=(0, 1)) -> None:
    json_bytes, p4info = flow_nic()
    req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=0, action=3)
    req.election_id.high, req.election_id.low = election_id
    req.config.p4info.CopyFrom(p4info)
    req.config.p4_device_config = json_bytes
    stub.SetForwardingPipelineConfig(req, timeout=60)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _vi(num: int, n: int) -> bytes:
    return _varint(num << 3) + _varint(n) if n else b""


def register_update(utype: int, register_id: int, index: int, value: bytes) -> bytes:
    """A serialized Update with a RegisterEntry (hand-encoded: 100k protobuf messages take seconds)."""
    entry = _vi(1, register_id) + _ld(2, _vi(1, index)) + _ld(3, _ld(1, value))
    return _vi(1, utype) + _ld(2, _ld(11, entry))


def write_request(device_id: int, election_id: tuple[int, int], updates: list[bytes], atomicity: int = 0) -> bytes:
    """A serialized WriteRequest from serialized Updates."""
    out = bytearray(_vi(1, device_id))
    out += _ld(3, _vi(1, election_id[0]) + _vi(2, election_id[1]))
    for u in updates:
        out += _ld(4, u)
    out += _vi(5, atomicity)
    return bytes(out)


def register_updates(p4info, n: int, value: int = 1) -> list[bytes]:
    """n MODIFY updates of single register cells over every register of the program (values 0 or 1: they
    fit every register, some are 1 bit wide)."""
    regs = list(p4info.registers)
    out = []
    for k in range(n):
        r = regs[k % len(regs)]
        idx = (k // len(regs)) % r.size
        out.append(register_update(U.MODIFY, r.preamble.id, idx, bytes([(value + k) % 2])))
    return out


class Rig:
    """An in-process server on a port-less Switch running flow_nic, with a primary client."""

    def __init__(self, **server_kw) -> None:
        self.switch = Switch({}, cpu_port=255)
        self.server = P4RuntimeServer(self.switch, 0, "127.0.0.1:0", **server_kw).start()
        self.switch.start()
        self.address = f"127.0.0.1:{self.server.port}"
        self.channel = grpc.insecure_channel(self.address, options=[("grpc.max_receive_message_length", 256 << 20),
                                                                    ("grpc.max_metadata_size", 64 << 20)])
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.streams: list[StreamClient] = []
        self.primary = self.stream()
        self.primary.arbitrate((0, 1))
        set_pipeline(self.stub)
        self.p4info = flow_nic()[1]
        self.registers = {r.preamble.name: r for r in self.p4info.registers}

    def stream(self) -> StreamClient:
        s = StreamClient(self.stub)
        self.streams.append(s)
        return s

    def raw_write(self, data: bytes, timeout: float = 60):
        call = self.channel.unary_unary("/p4.v1.P4Runtime/Write")
        return call(data, timeout=timeout)

    def register_updates(self, n: int, value: int = 1) -> list[bytes]:
        return register_updates(self.p4info, n, value)

    def read_all_registers(self, timeout: float = 60) -> tuple[int, int]:
        """(ReadResponse messages, entities) of one wildcard register read. The responses are counted,
        not parsed: pure-Python protobuf parsing in this process would hold the GIL far longer than
        the server does."""
        req = p4runtime_pb2.ReadRequest(device_id=0)
        req.entities.add().register_entry.SetInParent()
        call = self.channel.unary_stream("/p4.v1.P4Runtime/Read")
        msgs = ents = 0
        for data in call(req.SerializeToString(), timeout=timeout):
            msgs += 1
            ents += sum(1 for num, *_ in scan(data) if num == 1)
        return msgs, ents

    def close(self) -> None:
        for s in self.streams:
            s.close()
        self.channel.close()
        self.server.stop(0)
        self.switch.stop()


class StallProbe:
    """A thread that pushes a frame through the switch's packet path (``Switch.inject``, under the switch
    lock) every ``period`` seconds and records how long each one took: the forwarding stall."""

    def __init__(self, switch, period: float = 0.001) -> None:
        self.switch, self.period = switch, period
        self.samples: list[float] = []
        self.done_at: list[float] = []     # perf_counter when each probe frame came through
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.frame = bytes(12) + b"\x08\x00" + bytes(46)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            self.switch.inject(1, self.frame)
            done = time.perf_counter()
            self.samples.append(done - t)
            self.done_at.append(done)
            time.sleep(self.period)

    def __enter__(self) -> StallProbe:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(5)

    def through_during(self, t0: float, t1: float) -> int:
        """Probe frames that came through the packet path between t0 and t1 (perf_counter)."""
        return sum(1 for d in self.done_at if t0 < d < t1)

    @property
    def worst_ms(self) -> float:
        return max(self.samples) * 1000 if self.samples else 0.0


def rss_kb(pid: int | str = "self", field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class SwitchProcess:
    """``p4target-switch --no-p4`` (no interfaces) serving P4Runtime on a free loopback port."""

    def __init__(self, *target_opts: str, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "p4target.switch.cli", "--no-p4", "--thrift-port", "0", "--log-console",
                "--", "--grpc-server-addr", self.address, "--cpu-port", "255", *target_opts]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = tempfile.TemporaryFile("w+")   # a pipe nobody reads would block the switch's logging
        self.proc = subprocess.Popen(argv, cwd=cwd or ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     text=True)

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"p4target-switch exited {self.proc.returncode}: {self.output()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError("p4target-switch did not listen")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.output()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()
