"""The runtime CLI service: ``simple_switch_CLI``'s commands over a plain-text loopback TCP socket.

BMv2 serves its CLI over Thrift; we have no Thrift, so ``--thrift-port N`` opens a TCP listener on
127.0.0.1:N that reads newline-terminated command lines and executes each as simple_switch_CLI
would (same command set, syntax, handles, output and error messages; ``cmd.Cmd`` semantics, so an
empty line repeats the previous command and ``# x`` is ``*** Unknown syntax``). Each answer is the
command's exact output, lines starting with ``\\x01`` being stderr text, then one terminator line:
``\\x00`` (ok) or ``\\x00E`` (the command failed). ``p4target-cli`` is the client.

Besides simple_switch_CLI's commands: ``port_down``/``port_up <port>`` (administrative state),
``switch_stats`` (packet-loop counters). See docs/internals.md "Runtime CLI".
"""

from __future__ import annotations

import cmd
import io
import logging
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

from p4target.switch.runtime_info import (
    MatchKeyError,
    OperationError,
    ProgramInfo,
    RuntimeDataError,
    UsageError,
    load_program,
)
from p4target.switch.runtime_state import PreShadow, StateCommands
from p4target.switch.runtime_tables import TableCommands
from p4target.switch.switch import Switch

log = logging.getLogger(__name__)

END_MARK = "\x00"
FAILED_MARK = "E"
STDERR_MARK = "\x01"


@dataclass
class SwitchShadow:
    """What the CLI keeps beside the pipeline, per loaded program and shared by all connections:
    the program's names, entry timeouts, the multicast engine's nodes, mirroring sessions."""

    program: Any = None
    info: ProgramInfo = field(default_factory=ProgramInfo)
    timeouts: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)
    pre: PreShadow = field(default_factory=PreShadow)
    mirrors: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)


class RuntimeCommands(TableCommands, StateCommands, cmd.Cmd):
    """Executes CLI command lines against a Switch (one instance per client connection)."""

    prompt = "RuntimeCmd: "
    _server_shadow: list[SwitchShadow] | None = None   # the server's slot, shared by its connections

    def __init__(self, switch: Switch, thrift_port: int | None = None, shared: SwitchShadow | None = None) -> None:
        cmd.Cmd.__init__(self, stdin=io.StringIO(), stdout=io.StringIO())
        self.switch = switch
        self.thrift_port = thrift_port
        self.shared = shared if shared is not None else SwitchShadow()
        self._failed = False
        self._bind()

    def _bind(self) -> None:
        sh = self.shared
        self.info, self._timeouts, self._pre, self._mirrors = sh.info, sh.timeouts, sh.pre, sh.mirrors

    # ------------------------------------------------------------------ execution
    def execute(self, line: str) -> str:
        """Run one line; returns its output (stderr lines marked with STDERR_MARK)."""
        self.stdout = io.StringIO()
        self._failed = False
        with self.switch.lock:
            if self._server_shadow is not None:
                self.shared = self._server_shadow[0]
            self._refresh_program()
            self.onecmd(line.rstrip("\r\n"))
        return self.stdout.getvalue()

    @property
    def failed(self) -> bool:
        """Whether the last executed line failed (an error message, unknown command)."""
        return self._failed

    def _refresh_program(self) -> None:
        p = self.switch.pipeline
        if p is not self.shared.program:
            self.shared = SwitchShadow(p, load_program(self.switch.json_bytes if p is not None else None))
            if self._server_shadow is not None:
                self._server_shadow[0] = self.shared
        self._bind()

    def _pipeline(self) -> Any:
        p = self.switch.pipeline
        if p is None:  # unreachable through names (an empty program has none), kept for safety
            raise UsageError("no P4 program loaded")
        return p

    def onecmd(self, line: str) -> bool:
        command, _arg, _line = self.parseline(line)
        handler = getattr(self, "do_" + command, None) if command else None
        if handler is None:
            return bool(cmd.Cmd.onecmd(self, line))
        try:
            return bool(cmd.Cmd.onecmd(self, line))
        except MatchKeyError as exc:
            self._fail("Invalid match key:", exc)
        except RuntimeDataError as exc:
            self._fail("Invalid runtime data:", exc)
        except UsageError as exc:
            self._fail("Error:", exc)
        except OperationError as exc:
            self._fail(str(exc))
        except Exception as exc:  # never let a command kill the service
            log.exception("runtime command %r failed", line)
            self._fail("Error:", f"{type(exc).__name__}: {exc}")
        return False

    def _fail(self, *words: Any) -> None:
        self._failed = True
        self.out(*words)

    def default(self, line: str) -> None:
        self._failed = True
        self.out(f"*** Unknown syntax: {line}")

    def emptyline(self) -> bool:
        return bool(self.onecmd(self.lastcmd)) if self.lastcmd else False

    # ------------------------------------------------------------------ output
    def out(self, *words: Any, end: str = "\n") -> None:
        print(*words, end=end, file=self.stdout)

    def err(self, text: str) -> None:
        self.stdout.write(f"{STDERR_MARK}{text}\n")

    def at_least_n_args(self, args: list[str], n: int) -> None:
        if len(args) < n:
            raise UsageError("Insufficient number of args")

    def exactly_n_args(self, args: list[str], n: int) -> None:
        if len(args) != n:
            raise UsageError(f"Wrong number of args, expected {n} but got {len(args)}")

    # ------------------------------------------------------------------ misc commands
    def do_greet(self, line: str) -> None:
        self.out("hello")

    def do_help(self, arg: str) -> None:
        "List available commands with \"help\" or detailed help with \"help cmd\"."
        cmd.Cmd.do_help(self, arg)
        if arg and not getattr(getattr(self, "do_" + arg, None), "__doc__", None):
            self._failed = True

    def do_port_down(self, line: str) -> None:
        "Administratively bring a port down (drops every frame in and out): port_down <port>"
        self._port_admin(line, False)

    def do_port_up(self, line: str) -> None:
        "Administratively bring a port back up: port_up <port>"
        self._port_admin(line, True)

    def _port_admin(self, line: str, up: bool) -> None:
        args = line.split()
        self.exactly_n_args(args, 1)
        port = self._int(args[0], "port")
        try:
            self.switch.set_port_admin(port, up)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None

    def do_switch_stats(self, line: str) -> None:
        "Packet-loop counters (drops, errors), per-port rx/tx and queues: switch_stats"
        for k, v in sorted(self.switch.stats.items()):
            self.out(f"{k}: {v}")
        for n, port in sorted(self.switch.ports.items()):
            self.out(f"port {n} ({port.iface}): rx {port.rx_packets} tx {port.tx_packets}")
        for n, q in sorted(self.switch.queues.items()):
            self.out(f"queue {n}: depth {q.depth} rate {q.rate_pps or 'unlimited'} "
                     f"backlog {len(q.items)} drops {q.drops}")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        commands = RuntimeCommands(server.switch, server.thrift_port)
        commands._server_shadow = server.shadow
        for raw in self.rfile:
            out = commands.execute(raw.decode("utf-8", "replace"))
            end = END_MARK + (FAILED_MARK if commands.failed else "")
            try:
                self.wfile.write((out + end + "\n").encode())
                self.wfile.flush()
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class RuntimeServer:
    """The ``--thrift-port`` listener (127.0.0.1 only)."""

    def __init__(self, switch: Switch, port: int, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, port), _Handler)
        self.port = self._server.server_address[1]
        self._server.switch = switch  # type: ignore[attr-defined]
        self._server.thrift_port = self.port  # type: ignore[attr-defined]
        self._server.shadow = [SwitchShadow()]  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.switch = switch
        switch.on_install.append(self._installed)

    def _installed(self, pipeline: Any) -> None:
        """A new pipeline: read its JSON into the CLI's view now, in the background and outside the
        switch's lock, not under it at the first command (~30 ms with traffic, the packet loop waiting:
        a scenario's fault took effect that much later)."""
        json_bytes = self.switch.json_bytes

        def prepare() -> None:
            info = load_program(json_bytes)
            with self.switch.lock:
                shadow = self._server.shadow  # type: ignore[attr-defined]
                if self.switch.pipeline is pipeline and shadow[0].program is not pipeline:
                    shadow[0] = SwitchShadow(pipeline, info)
        threading.Thread(target=prepare, name="runtime-cli-program", daemon=True).start()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-cli", daemon=True)
        self._thread.start()
        log.info("runtime CLI listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        if self._installed in self.switch.on_install:
            self.switch.on_install.remove(self._installed)
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Reply:
    """One command's answer: stdout text (exact), stderr text, and whether the command failed."""

    out: str
    err: str
    failed: bool


def exchange(port: int, lines: list[str], host: str = "127.0.0.1", timeout: float = 10.0) -> list[Reply]:
    """Client side: send command lines over one connection, return one Reply per line."""
    replies = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        f = sock.makefile("rw", encoding="utf-8", newline="\n")
        for line in lines:
            f.write(line.rstrip("\r\n") + "\n")
            f.flush()
            out, err, failed = [], [], None
            for reply in f:
                if reply.startswith(END_MARK):
                    failed = reply.rstrip("\n") != END_MARK
                    break
                (err if reply.startswith(STDERR_MARK) else out).append(reply.lstrip(STDERR_MARK))
            if failed is None:
                raise ConnectionError("switch runtime closed the connection")
            replies.append(Reply("".join(out), "".join(err), failed))
    return replies


def run_commands(port: int, lines: list[str], host: str = "127.0.0.1", timeout: float = 10.0) -> list[str]:
    """Client side: send command lines, return each one's output (without its final newline)."""
    return [r.out.rstrip("\n") for r in exchange(port, lines, host, timeout)]
