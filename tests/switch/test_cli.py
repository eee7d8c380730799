"""The ``p4target-switch`` daemon as a process: start-up time, gRPC reachability, SIGTERM, bad arguments."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

BIN = Path(sys.executable).parent / "p4target-switch"
CLI = Path(sys.executable).parent / "p4target-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_grpc(addr: str, timeout: float) -> float:
    t0 = time.monotonic()
    with grpc.insecure_channel(addr) as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
        while True:
            try:
                stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=0.2)
                return time.monotonic() - t0
            except grpc.RpcError:
                if time.monotonic() - t0 > timeout:
                    raise
                time.sleep(0.02)


@pytest.mark.root
def test_daemon_starts_fast_serves_and_stops_on_sigterm(veths, tmp_path):
    v = veths(2)
    gport, tport = free_port(), free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([str(BIN), "-i", f"1@{v.pairs[0][0]}", "-i", f"2@{v.pairs[1][0]}", "--no-p4",
                             "--device-id", "0", "--thrift-port", str(tport), "--log-file",
                             str(tmp_path / "s1.log"), "--pcap", str(tmp_path), "--",
                             "--grpc-server-addr", f"127.0.0.1:{gport}", "--cpu-port", "255"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_grpc(f"127.0.0.1:{gport}", 5)
        startup = time.monotonic() - t0
        assert startup < 1.5, f"start-up took {startup:.2f} s"
        out = subprocess.run([str(CLI), "--thrift-port", str(tport)], input="show_ports\n", text=True,
                             capture_output=True, timeout=10)
        assert out.returncode == 0, out.stderr
        assert v.pairs[0][0] in out.stdout and "UP" in out.stdout
        out = subprocess.run([str(CLI), "--thrift-port", str(tport), "-c", "register_read x 0"], text=True,
                             capture_output=True, timeout=10)
        assert out.returncode == 1 and "Error: Invalid register name (x)" in out.stdout  # as BMv2 --no-p4
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
    assert rc == 0, proc.stderr.read().decode()
    assert (tmp_path / f"{v.pairs[0][0]}_in.pcap").exists()
    assert "P4Runtime server listening" in (tmp_path / "s1.log").read_text()


@pytest.mark.parametrize("argv, message", [
    (["-i", "eth0"], "PORT@IFACE"),
    ([], "JSON program is required"),
    (["--no-p4", "-i", "1@does-not-exist0"], "cannot open ports"),
    (["/nonexistent.json"], "cannot read JSON"),
    (["--no-p4", "--", "--bogus"], "unrecognized target options"),
])
def test_daemon_bad_arguments(argv, message):
    out = subprocess.run([str(BIN), *argv], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert message in out.stderr
