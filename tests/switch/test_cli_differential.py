"""``p4target-cli`` ≡ ``simple_switch_CLI``: the same command files, run on simple_switch_grpc through
simple_switch_CLI and on p4target-switch through p4target-cli (same p4c-bm2-ss JSON on the command
line of both), give the same stdout and stderr, byte for byte.

Normalised, because they must differ: the switch's own thrift port (``switch_info``), the clock
(``get_time_elapsed``, ``get_time_since_epoch``: each checked to be an integer), the age of an
entry with a timeout (``Life: Nms since hit``), and interface names (``show_ports``). Nothing else.
Each file starts on freshly started switches. The command files are in tests/switch/cli_files/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bmv2

HERE = Path(__file__).resolve().parent
FILES = HERE / "cli_files"
CORPUS = HERE.parent / "compiler" / "corpus"
EMBEDDED_SWITCH = Path(sys.executable).parent / "p4target-switch"
EMBEDDED_CLI = Path(sys.executable).parent / "p4target-cli"
PROMPT = "RuntimeCmd: "
TIME_COMMANDS = ("get_time_elapsed", "get_time_since_epoch")

# command file -> program it runs against
CASES = {
    "basic_l3.txt": "basic",
    "tables.txt": "features",
    "state.txt": "features",
    "multicast_mirroring.txt": "features",
    "switch.txt": "features",
    "errors.txt": "features",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switch exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cli_programs")
    sources = {"basic": CORPUS / "basic.p4", "features": FILES / "cli_features.p4"}
    built = {}
    for name, src in sources.items():
        json_path = out / f"{name}.json"
        subprocess.run(["p4c-bm2-ss", "--p4v", "16", "-o", str(json_path), str(src)], check=True,
                       capture_output=True, timeout=120)
        built[name] = json_path
    return built


class SwitchPair:
    """simple_switch_grpc and p4target-switch running the same JSON, each with its thrift port."""

    def __init__(self, json_path: Path, tmp: Path, bmv2_ifaces: list[str] = (), embedded_ifaces: list[str] = ()):
        self.procs: list[subprocess.Popen] = []
        self.ports: dict[str, int] = {}
        self.ifaces = {"bmv2": list(bmv2_ifaces), "embedded": list(embedded_ifaces)}
        device = 90 + os.getpid() % 100
        for kind, binary in (("bmv2", shutil.which("simple_switch_grpc")), ("embedded", str(EMBEDDED_SWITCH))):
            tport, gport = free_port(), free_port()
            argv = [binary, "--thrift-port", str(tport), "--device-id", str(device)]
            for i, iface in enumerate(self.ifaces[kind]):
                argv += ["-i", f"{i + 1}@{iface}"]
            argv += [str(json_path), "--", "--grpc-server-addr", f"127.0.0.1:{gport}"]
            proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.procs.append(proc)
            self.ports[kind] = tport
        for proc, port in zip(self.procs, self.ports.values(), strict=True):
            wait_port(port, proc)

    def run(self, kind: str, commands: Path) -> subprocess.CompletedProcess:
        cli = shutil.which("simple_switch_CLI") if kind == "bmv2" else str(EMBEDDED_CLI)
        with commands.open() as stdin:
            return subprocess.run([cli, "--thrift-port", str(self.ports[kind])], stdin=stdin,
                                  capture_output=True, text=True, timeout=120)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


def normalise(stdout: str, lines: list[str], thrift_port: int, ifaces: list[str]) -> list[str]:
    """The output split at each prompt (chunk i+1 answers input line i), with what must differ
    replaced by placeholders after checking its shape."""
    chunks = stdout.split(PROMPT)
    out = [chunks[0]]
    for i, chunk in enumerate(chunks[1:]):
        line = lines[i].strip() if i < len(lines) else ""
        if line.split()[:1] and line.split()[0] in TIME_COMMANDS:
            assert re.fullmatch(r"\d+\n", chunk), f"{line!r} answered {chunk!r}"
            chunk = "<time>\n"
        if line == "switch_info":
            chunk, n = re.subn(rf"(thrift_port\s+: ){thrift_port}\n", r"\g<1><port>\n", chunk)
            assert n == 1, chunk
        chunk = re.sub(r"Life: \d+ms since hit", "Life: <n>ms since hit", chunk)
        for i_face, iface in enumerate(ifaces):
            chunk = re.sub(rf"(?<=\s){re.escape(iface)}(?=\s)", f"<if{i_face + 1}>".center(len(iface)), chunk)
        out.append(chunk)
    return out


def compare(pair: SwitchPair, commands: Path) -> tuple[list[str], list[str]]:
    lines = commands.read_text().splitlines()
    ref = pair.run("bmv2", commands)
    got = pair.run("embedded", commands)
    assert ref.returncode == 0 and "Traceback" not in ref.stderr, f"simple_switch_CLI failed: {ref.stderr}"
    assert "Traceback" not in got.stderr, got.stderr
    want = normalise(ref.stdout, lines, pair.ports["bmv2"], pair.ifaces["bmv2"])
    have = normalise(got.stdout, lines, pair.ports["embedded"], pair.ifaces["embedded"])
    assert len(want) == len(lines) + 2, "simple_switch_CLI did not answer every line"
    assert have == want
    assert got.stderr == ref.stderr
    return want, lines


@pytest.mark.parametrize("name", sorted(CASES))
def test_command_file_same_output(name, programs, tmp_path):
    pair = SwitchPair(programs[CASES[name]], tmp_path)
    try:
        want, _lines = compare(pair, FILES / name)
    finally:
        pair.close()
    assert len("".join(want)) > 200  # the file did produce output to compare


@pytest.mark.root
def test_show_ports_with_interfaces(programs, tmp_path, veths):
    v = veths(4)
    bm, emb = [a for a, _b in v.pairs[:2]], [a for a, _b in v.pairs[2:]]
    subprocess.run(["ip", "link", "set", v.pairs[1][1], "down"], check=True)  # port 2 of bmv2: no carrier
    subprocess.run(["ip", "link", "set", v.pairs[3][1], "down"], check=True)  # port 2 of embedded: same
    commands = tmp_path / "ports.txt"
    commands.write_text("show_ports\nswitch_info\n")
    pair = SwitchPair(programs["features"], tmp_path, bm, emb)
    try:
        want, _lines = compare(pair, commands)
    finally:
        pair.close()
    assert "<if1>" in want[1] and "<if2>" in want[1]
