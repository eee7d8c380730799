"""The Mininet P4 switch node: runs ``p4target-switch`` (embedded target) or ``simple_switch_grpc``.

Both binaries get the same arguments (docs/internals.md, switch CLI contract)::

    BIN -i 1@gwA-eth1 -i 2@gwA-eth2 ... --device-id 0 --thrift-port 9090 \
        --log-file logs/gwA.log [--log-console] [--pcap pcaps/] build/gateway.json \
        -- --grpc-server-addr 127.0.0.1:50001 --cpu-port 255

Port numbers are Mininet's port numbers (set from the topology description). gRPC and thrift ports
are picked free on loopback. :meth:`P4Switch.start` launches the daemon; :meth:`P4Switch.wait_ready`
(called by Mininet's ``batchStartup``) waits until its gRPC port accepts connections. Every daemon
is tagged with ``FLOWMIG_LAB=<run id>`` in its environment and recorded in the run registry so
``topologies.cleanup`` can find exactly the processes we started.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mininet.node import Switch

from topologies import registry

log = logging.getLogger(__name__)

CPU_PORT = 255
GRPC_PORT_BASE = 50001
THRIFT_PORT_BASE = 9090
OFFLOADS = ("tx", "rx", "tso", "gso", "gro", "lro")
ENV_TAG = "FLOWMIG_LAB"

_taken: set[int] = set()
_dpids = itertools.count(1)


class P4SwitchError(RuntimeError):
    """A switch daemon could not be found, started, or did not come up."""


PORT_SPAN = 2000


def free_port(base: int) -> int:
    """A bindable loopback TCP port in [base, base + PORT_SPAN) not handed out in this process.

    The scan starts at an offset derived from the process id, so labs started one after the other by
    different processes rarely get the same ports: a client still reconnecting to a switch of an
    earlier lab (its backoff loop outlives the lab) can then not wander into a new lab's switch and
    take its primary role.
    """
    offset = (os.getpid() * 97) % PORT_SPAN
    for i in range(PORT_SPAN):
        port = base + (offset + i) % PORT_SPAN
        if port in _taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise P4SwitchError(f"no free TCP port in {base}..{base + PORT_SPAN - 1}")


def switch_binary(target: str) -> str:
    """Path of the switch daemon for a target ('embedded' or 'bmv2')."""
    if target == "embedded":
        beside = Path(sys.executable).parent / "p4target-switch"
        found = str(beside) if beside.exists() else shutil.which("p4target-switch")
        if not found:
            raise P4SwitchError(f"p4target-switch not found next to {sys.executable} nor on PATH "
                                f"(run 'make install')")
        return found
    if target == "bmv2":
        found = shutil.which("simple_switch_grpc")
        if not found:
            raise P4SwitchError("target bmv2 needs simple_switch_grpc on PATH (not found); "
                                "use --target embedded")
        return found
    raise P4SwitchError(f"unknown target {target!r} (embedded or bmv2)")


def disable_offloads(node, intf: str) -> None:
    """Turn NIC offloads off on a veth so checksums on the wire are real (run inside ``node``)."""
    out = node.cmd(f"ethtool -K {intf} {' '.join(f'{o} off' for o in OFFLOADS)} 2>&1")
    if "ethtool: not found" in out or "command not found" in out:
        raise P4SwitchError("ethtool is missing (apt-get install ethtool)")
    log.debug("offloads off on %s: %s", intf, out.strip())


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on (from /proc: its socket inodes matched with LISTEN entries)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:       # 0A = LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _port_conflict(path: Path, since: int = 0) -> bool:
    """Does the log, from byte ``since`` on (this launch), report a port that could not be bound?"""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace").lower()
    except OSError:
        return False
    return any(s in text for s in ("address already in use", "cannot start p4runtime server",
                                   "runtime cli not available", "failed to bind", "bind failed"))


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def switch_command(binary: str, ports: dict[int, str], json_path: str | Path | None, grpc_port: int, thrift_port: int,
                   device_id: int = 0, cpu_port: int = CPU_PORT, log_file: str | Path | None = None,
                   pcap_dir: str | Path | None = None, log_console: bool = False,
                   extra_args: list[str] | None = None) -> list[str]:
    """The daemon's argv, identical for p4target-switch and simple_switch_grpc (no JSON: ``--no-p4``).

    ``extra_args`` are more daemon options; those after a ``--`` among them are target options and go
    after ``--cpu-port``, as on the daemon's own command line (e.g. ``["--", "--grpc-server-ssl", ...]``:
    a TLS lab's, ``topologies.certs.LabPKI.switch_args``).
    """
    extra = list(extra_args or [])
    cut = extra.index("--") if "--" in extra else len(extra)
    generic, target = extra[:cut], extra[cut + 1:]
    args = [binary]
    for port, name in sorted(ports.items()):
        args += ["-i", f"{port}@{name}"]
    args += ["--device-id", str(device_id), "--thrift-port", str(thrift_port)]
    if log_file:
        args += ["--log-file", str(log_file)]
    if log_console:
        args.append("--log-console")
    if pcap_dir:
        args += ["--pcap", str(pcap_dir)]
    args += generic
    args += [str(json_path) if json_path else "--no-p4", "--", "--grpc-server-addr", f"127.0.0.1:{grpc_port}",
             "--cpu-port", str(cpu_port), *target]
    return args


class P4Switch(Switch):
    """A Mininet switch backed by a P4 software switch with a P4Runtime gRPC endpoint on loopback."""

    def __init__(self, name: str, json_path: str | Path | None, program: str = "", role: str = "",
                 p4info_path: str | Path | None = None, target: str = "embedded",
                 grpc_port: int | None = None, thrift_port: int | None = None, device_id: int = 0,
                 cpu_port: int = CPU_PORT, log_dir: str | Path = "logs", pcap_dir: str | Path | None = None,
                 log_console: bool = False, start_timeout: float = 30.0, run_id: str | None = None,
                 extra_args: list[str] | None = None, **params) -> None:
        params.setdefault("dpid", f"{next(_dpids):016x}")
        Switch.__init__(self, name, **params)
        self.binary = switch_binary(target)
        self.target = target
        self.program = program
        self.role = role
        self.json_path = Path(json_path) if json_path else None
        self.p4info_path = Path(p4info_path) if p4info_path else None
        self.grpc_port = grpc_port or free_port(GRPC_PORT_BASE)
        self.thrift_port = thrift_port or free_port(THRIFT_PORT_BASE)
        self.device_id = device_id
        self.cpu_port = cpu_port
        self.log_dir = Path(log_dir)
        self.log_file = self.log_dir / f"{name}.log"
        self.stdout_file = self.log_dir / f"{name}.out"
        self.pcap_dir = Path(pcap_dir) if pcap_dir else None
        self.log_console = log_console
        self.start_timeout = start_timeout
        self.run_id = run_id or registry.run_id()
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self._since: dict[Path, int] = {}

    # ---- addresses ----
    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def data_ports(self) -> dict[int, str]:
        """Mininet port number -> interface name, without the loopback control interface."""
        return {port: intf.name for port, intf in sorted(self.intfs.items()) if intf.name != "lo"}

    def command(self) -> list[str]:
        return switch_command(self.binary, self.data_ports(), self.json_path, self.grpc_port, self.thrift_port,
                              self.device_id, self.cpu_port, self.log_file, self.pcap_dir, self.log_console,
                              self.extra_args)

    # ---- Mininet life cycle ----
    def start(self, controllers) -> None:  # noqa: ARG002 - P4 switches have no OpenFlow controller
        if self.proc and self.proc.poll() is None:
            return
        if self.json_path is not None and not self.json_path.is_file():
            raise P4SwitchError(f"{self.name}: program JSON {self.json_path} does not exist")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.pcap_dir:
            self.pcap_dir.mkdir(parents=True, exist_ok=True)
        for name in self.data_ports().values():
            disable_offloads(self, name)
            self.cmd(f"ip link set {name} up")
        self._launch()

    def _launch(self) -> None:
        self._since = {self.stdout_file: _size(self.stdout_file), self.log_file: _size(self.log_file)}
        cmd = self.command()
        log.info("%s: %s", self.name, " ".join(cmd))
        env = dict(os.environ, **{ENV_TAG: self.run_id})
        with open(self.stdout_file, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        registry.record_process(self.run_id, self.proc.pid, self.name, cmd)

    def wait_ready(self, timeout: float | None = None, attempts: int = 3) -> None:
        """Block until our daemon listens on its gRPC and thrift ports; raise with the log tail if not.

        Ports are picked free, but another program may take one between the pick and the daemon's
        bind; then the daemon is restarted on fresh ports (up to ``attempts`` times).
        """
        for attempt in range(attempts):
            if self._wait_listening(timeout or self.start_timeout):
                return
            log.warning("%s: port %d or %d taken by another process (attempt %d), restarting on new ports",
                        self.name, self.grpc_port, self.thrift_port, attempt + 1)
            self.stop_daemon()
            self.grpc_port, self.thrift_port = free_port(GRPC_PORT_BASE), free_port(THRIFT_PORT_BASE)
            self._launch()
        raise P4SwitchError(f"{self.name}: could not get free gRPC/thrift ports after {attempts} attempts\n"
                            f"{self._tails()}")

    def _wait_listening(self, timeout: float) -> bool:
        """True when our process listens on both ports; False on a port conflict; raises otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None:
                raise P4SwitchError(f"{self.name}: not started")
            rc = self.proc.poll()
            listening = listening_ports(self.proc.pid) if rc is None else set()
            if rc is None and {self.grpc_port, self.thrift_port} <= listening:
                return True
            if rc is not None:
                if self._conflict(self.stdout_file) or self._conflict(self.log_file):
                    return False
                raise P4SwitchError(f"{self.name}: {Path(self.binary).name} exited with code {rc} "
                                    f"before serving gRPC on {self.grpc_addr}\n{self._tails()}")
            if self.grpc_port in listening and self._conflict(self.log_file):
                return False                       # the runtime CLI could not bind its port
            if time.monotonic() > deadline:
                raise P4SwitchError(f"{self.name}: not listening on gRPC {self.grpc_addr} and thrift port "
                                    f"{self.thrift_port} after {timeout:.0f}s\n{self._tails()}")
            time.sleep(0.05)

    def _conflict(self, path: Path) -> bool:
        return _port_conflict(path, self._since.get(path, 0))

    def _tails(self) -> str:
        return (f"--- {self.stdout_file} ---\n{log_tail(self.stdout_file)}\n"
                f"--- {self.log_file} ---\n{log_tail(self.log_file)}")

    @classmethod
    def batchStartup(cls, switches, run=None):  # noqa: N802 - Mininet's hook name
        for sw in switches:
            sw.wait_ready()
        return switches

    def stop_daemon(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s: daemon %d ignored SIGTERM, killing", self.name, proc.pid)
                proc.kill()
                proc.wait(timeout)
        registry.forget_process(self.run_id, proc.pid)

    def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 - Mininet's signature
        self.stop_daemon()
        Switch.stop(self, deleteIntfs)

    def connected(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> dict:
        """This switch's entry in the controller config file."""
        return {
            "grpc_addr": self.grpc_addr,
            "device_id": self.device_id,
            "program": self.program,
            "role": self.role,
            "cpu_port": self.cpu_port,
            "p4info": str(self.p4info_path.resolve()) if self.p4info_path else None,
            "json": str(self.json_path.resolve()) if self.json_path else None,
            "thrift_port": self.thrift_port,
            "target": self.target,
            "log": str(self.log_file.resolve()),
            "pid": self.proc.pid if self.proc else None,
            "ports": {str(p): n for p, n in self.data_ports().items()},
        }
