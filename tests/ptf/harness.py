"""Pytest-side PTF launcher: veth pairs + compiled program + a switch + the ``ptf`` CLI.

    from harness import run_ptf
    res = run_ptf("tests/ptf/ptftests/lpm", program="tests/compiler/corpus/lpm.p4", ports=3)
    assert res.ok, res.report()

Switch port i sits on ``<tag>v{2i}`` and PTF port i on ``<tag>v{2i+1}`` (the tutorials' veth{2i} /
veth{2i+1} pairing with a per-run tag so concurrent runs never clash). The program is compiled with
``p4target.compiler`` and run on ``p4target-switch`` (``target="embedded"``), or compiled with
``p4c-bm2-ss`` and run on ``simple_switch_grpc`` (``target="bmv2"``; both on PATH) — or given as ready
``json``/``p4info`` files. The switch starts with ``--no-p4`` and each PTF test pushes the pipeline
itself (``p4runtime_base.P4RuntimeTest``); its Thrift port is the ``thrift_port`` test parameter.
Interfaces and the switch are removed even when something fails. Needs root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PTF_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compile_program(program: str | Path, out_dir: str | Path, include_dirs: list[str] | None = None,
                    defines: dict[str, str] | None = None, target: str = "embedded") -> tuple[Path, Path]:
    """Compile ``program`` into out_dir with p4target.compiler, or p4c-bm2-ss for ``target="bmv2"``;
    returns (json path, p4info text path)."""
    import json

    from google.protobuf import text_format

    from p4target.compiler import compile_file

    program = Path(program)
    incs = list(include_dirs or [])
    if (program.parent / "include").is_dir():
        incs.append(str(program.parent / "include"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{program.stem}.json"
    p4info_path = out_dir / f"{program.stem}.p4info.txtpb"
    if target == "bmv2":
        cmd = ["p4c-bm2-ss", "--arch", "v1model", *[a for i in incs for a in ("-I", i)],
               *[f"-D{k}={v}" for k, v in (defines or {}).items()], "-o", str(json_path),
               "--p4runtime-files", str(p4info_path), str(program)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return json_path, p4info_path
    result = compile_file(str(program), include_dirs=incs, defines=defines or {})
    json_path.write_text(json.dumps(result.bmv2_json, indent=1))
    p4info_path.write_text(text_format.MessageToString(result.p4info))
    return json_path, p4info_path


OFFLOADS = ("tx", "rx", "tso", "gso", "gro", "rxvlan", "txvlan")


class Veths:
    """veth pairs <tag>v{2i} (switch) / <tag>v{2i+1} (PTF or test side), IPv6 off (no stray RS/MLD
    frames), offloads off (checksums and VLAN tags on the wire are real); ``mtu`` for jumbo tests."""

    def __init__(self, n: int, tag: str | None = None, mtu: int | None = None) -> None:
        self.tag = tag or "pt" + uuid.uuid4().hex[:5]
        self.switch_side: list[str] = []
        self.ptf_side: list[str] = []
        try:
            for i in range(n):
                a, b = f"{self.tag}v{2 * i}", f"{self.tag}v{2 * i + 1}"
                subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True,
                               capture_output=True)
                self.switch_side.append(a)
                self.ptf_side.append(b)
                for dev in (a, b):
                    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
                    if shutil.which("ethtool"):
                        subprocess.run(["ethtool", "-K", dev, *[w for o in OFFLOADS for w in (o, "off")]],
                                       capture_output=True)
                    up = ["ip", "link", "set", dev, *(["mtu", str(mtu)] if mtu else []), "up"]
                    subprocess.run(up, check=True, capture_output=True)
        except Exception:
            self.close()
            raise

    @property
    def test_side(self) -> list[str]:
        return self.ptf_side

    def close(self) -> None:
        for a in self.switch_side:
            subprocess.run(["ip", "link", "del", a], capture_output=True)
        self.switch_side, self.ptf_side = [], []


@dataclass
class PtfResult:
    returncode: int
    output: str
    switch_log: str
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def report(self) -> str:
        return (f"ptf exit status {self.returncode}\n$ {' '.join(self.argv)}\n--- ptf output ---\n"
                f"{self.output[-8000:]}\n--- switch log (tail) ---\n{self.switch_log[-4000:]}")


SWITCHES = {"embedded": "p4target-switch", "bmv2": "simple_switch_grpc"}


def start_switch(ifaces: list[str], grpc_port: int, thrift_port: int, log_file: Path,
                 cpu_port: int = 255, json_path: Path | None = None, pcap_dir: Path | None = None,
                 extra: list[str] | None = None, target: str = "embedded") -> subprocess.Popen:
    """Start p4target-switch (or simple_switch_grpc for ``target="bmv2"``, same arguments) with port i
    on ifaces[i]; returns once gRPC answers (or raises)."""
    import grpc
    from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

    binary = SWITCHES[target]
    found = str(BIN / binary) if (BIN / binary).exists() else shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} not found (target {target}: next to {sys.executable} or on PATH)")
    argv = [found]
    for i, iface in enumerate(ifaces):
        argv += ["-i", f"{i}@{iface}"]
    argv += ["--device-id", "0", "--thrift-port", str(thrift_port), "--log-file", str(log_file)]
    if pcap_dir is not None:
        argv += ["--pcap", str(pcap_dir)]
    argv += list(extra or [])
    argv += [str(json_path)] if json_path else ["--no-p4"]
    argv += ["--", "--grpc-server-addr", f"127.0.0.1:{grpc_port}", "--cpu-port", str(cpu_port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(str(log_file) + ".stderr", "w"))  # noqa: SIM115
    deadline = time.monotonic() + 10
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
        while True:
            if proc.poll() is not None:
                err = Path(str(log_file) + ".stderr").read_text()
                raise RuntimeError(f"{binary} exited with {proc.returncode}: {err}")
            try:
                stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=0.3)
                return proc
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    stop_process(proc)
                    raise RuntimeError(f"{binary} did not start serving gRPC within 10 s") from None
                time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_ptf(test_dir: str | Path, program: str | Path | None = None, *, json_path: str | Path | None = None,
            p4info_path: str | Path | None = None, ports: int = 4, tests: list[str] | None = None,
            cpu_port: int = 255, params: dict[str, str] | None = None, work_dir: str | Path | None = None,
            include_dirs: list[str] | None = None, timeout: float = 120, target: str = "embedded") -> PtfResult:
    """Run the PTF tests in ``test_dir`` against a fresh switch of ``target``; see the module docstring."""
    if os.geteuid() != 0:
        raise PermissionError("PTF runs need root (veth interfaces, raw sockets)")
    work = Path(work_dir) if work_dir else Path("/tmp") / f"ptf-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, exist_ok=True)
    if program is not None:
        json_path, p4info_path = compile_program(program, work, include_dirs, target=target)
    if json_path is None or p4info_path is None:
        raise ValueError("give a program to compile or json_path and p4info_path")
    grpc_port, thrift_port = free_port(), free_port()
    log_file = work / "switch.log"
    veths = Veths(ports)
    proc = None
    argv: list[str] = []
    try:
        proc = start_switch(veths.switch_side, grpc_port, thrift_port, log_file, cpu_port,
                            pcap_dir=work / "pcaps" if target == "embedded" else None, target=target)
        test_params = {"grpcaddr": f"127.0.0.1:{grpc_port}", "p4info": str(p4info_path),
                       "config": str(json_path), "device_id": "0", "cpu_port": str(cpu_port),
                       "thrift_port": str(thrift_port), **(params or {})}
        argv = [str(BIN / "ptf"), "--test-dir", str(test_dir), "--pypath", str(PTF_DIR), "--pypath", str(ROOT),
                "--log-file", str(work / "ptf.log"), "--test-params",
                ";".join(f"{k}='{v}'" for k, v in test_params.items())]
        for i, iface in enumerate(veths.ptf_side):
            argv += ["-i", f"{i}@{iface}"]
        argv += list(tests or [])
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=str(work))
            rc, output = out.returncode, out.stdout + out.stderr
        except subprocess.TimeoutExpired as exc:
            rc, output = -1, f"ptf timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    finally:
        if proc is not None:
            stop_process(proc)
        veths.close()
    switch_log = log_file.read_text() if log_file.exists() else ""
    return PtfResult(rc, output, switch_log, argv)
