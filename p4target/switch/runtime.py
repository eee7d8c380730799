"""The runtime CLI service: ``simple_switch_CLI``-style commands over a plain-text loopback TCP socket.

BMv2 serves its CLI over Thrift; we have no Thrift, so ``--thrift-port N`` opens a TCP listener on
127.0.0.1:N that reads newline-terminated commands and answers each with its output followed by one
line holding only ``END_MARK`` (``p4target-cli`` is the client). Output formats follow simple_switch_CLI
(``reg[3]= 7``, ``BmCounterValue(packets=.., bytes=..)``) so scripts written against BMv2 keep working.
"""

from __future__ import annotations

import logging
import shlex
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from p4target.switch import runtime_tables as rt
from p4target.switch.switch import Switch

log = logging.getLogger(__name__)

END_MARK = "\x00"


class CommandError(Exception):
    """A command that cannot be executed (bad name, index, arguments)."""


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CommandError(f"Invalid {what} '{text}'") from None


def _fmt_match(m: object) -> str:
    kind = getattr(m, "kind", "?")
    if getattr(m, "wildcard", False):
        return "*"
    value = getattr(m, "value", 0)
    if kind == "lpm":
        return f"{value:#x}/{getattr(m, 'prefix_len', 0)}"
    if kind == "ternary":
        return f"{value:#x} &&& {getattr(m, 'mask', 0) or 0:#x}"
    if kind == "range":
        return f"{value:#x} -> {getattr(m, 'high', 0) or 0:#x}"
    return f"{value:#x}"


class RuntimeCommands:
    """Executes one CLI command line against a Switch and returns its text output."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.commands: dict[str, Callable[[list[str]], str]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("cmd_")
        }

    def execute(self, line: str) -> str:
        line = line.strip()
        if not line or line.startswith("#"):
            return ""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return f"Error: {exc}"
        handler = self.commands.get(words[0])
        if handler is None:
            return f"*** Unknown syntax: {line}"
        try:
            return handler(words[1:])
        except CommandError as exc:
            return f"Error: {exc}"
        except Exception as exc:  # never let a command kill the service
            log.exception("runtime command %r failed", line)
            return f"Error: {type(exc).__name__}: {exc}"

    # -------------------------------------------------------------- helpers
    def _pipeline(self):
        p = self.switch.pipeline
        if p is None:
            raise CommandError("no P4 program loaded")
        return p

    def _named(self, table: dict, name: str, kind: str):
        if name in table:
            return table[name]
        matches = [k for k in table if k.split(".")[-1] == name]
        if len(matches) == 1:
            return table[matches[0]]
        raise CommandError(f"Invalid {kind} name ({name})")

    # -------------------------------------------------------------- commands
    def cmd_help(self, args: list[str]) -> str:
        """help: list the commands"""
        lines = ["Documented commands:"]
        for name in sorted(self.commands):
            doc = (self.commands[name].__doc__ or name).strip()
            lines.append(f"  {doc}")
        return "\n".join(lines)

    def cmd_set_queue_rate(self, args: list[str]) -> str:
        """set_queue_rate <rate_pps> [<egress_port>]: egress rate limit (0: unlimited)"""
        if len(args) not in (1, 2):
            raise CommandError("usage: set_queue_rate <rate_pps> [<egress_port>]")
        try:
            rate = float(args[0])
        except ValueError:
            raise CommandError(f"Invalid rate '{args[0]}'") from None
        port = _int(args[1], "port") if len(args) == 2 else None
        self.switch.set_queue_rate(rate, port)
        return ""

    def cmd_set_queue_depth(self, args: list[str]) -> str:
        """set_queue_depth <depth_pkts> [<egress_port>]: egress queue capacity"""
        if len(args) not in (1, 2):
            raise CommandError("usage: set_queue_depth <depth_pkts> [<egress_port>]")
        depth = _int(args[0], "depth")
        if depth < 1:
            raise CommandError("depth must be >= 1")
        port = _int(args[1], "port") if len(args) == 2 else None
        self.switch.set_queue_depth(depth, port)
        return ""

    def cmd_register_read(self, args: list[str]) -> str:
        """register_read <name> [<index>]"""
        if len(args) not in (1, 2):
            raise CommandError("usage: register_read <name> [<index>]")
        with self.switch.lock:
            reg = self._named(self._pipeline().registers, args[0], "register")
            name = getattr(reg, "name", args[0])
            if len(args) == 2:
                idx = _int(args[1], "index")
                if not 0 <= idx < reg.size:
                    raise CommandError(f"Invalid index {idx} (register size {reg.size})")
                return f"{name}[{idx}]= {reg.read(idx)}"
            return f"{name}= " + ", ".join(str(reg.read(i)) for i in range(reg.size))

    def cmd_register_write(self, args: list[str]) -> str:
        """register_write <name> <index> <value>"""
        if len(args) != 3:
            raise CommandError("usage: register_write <name> <index> <value>")
        with self.switch.lock:
            reg = self._named(self._pipeline().registers, args[0], "register")
            idx, value = _int(args[1], "index"), _int(args[2], "value")
            if not 0 <= idx < reg.size:
                raise CommandError(f"Invalid index {idx} (register size {reg.size})")
            if value < 0 or value >= 1 << reg.bitwidth:
                raise CommandError(f"Value {value} does not fit in {reg.bitwidth} bits")
            reg.write(idx, value)
        return ""

    def cmd_register_reset(self, args: list[str]) -> str:
        """register_reset <name>"""
        if len(args) != 1:
            raise CommandError("usage: register_reset <name>")
        with self.switch.lock:
            self._named(self._pipeline().registers, args[0], "register").reset()
        return ""

    def cmd_counter_read(self, args: list[str]) -> str:
        """counter_read <name> <index>"""
        if len(args) != 2:
            raise CommandError("usage: counter_read <name> <index>")
        with self.switch.lock:
            ctr = self._named(self._pipeline().counters, args[0], "counter")
            idx = _int(args[1], "index")
            if not 0 <= idx < ctr.size:
                raise CommandError(f"Invalid index {idx} (counter size {ctr.size})")
            pkts, nbytes = ctr.read(idx)
            return f"{getattr(ctr, 'name', args[0])}[{idx}]=  BmCounterValue(packets={pkts}, bytes={nbytes})"

    def cmd_counter_reset(self, args: list[str]) -> str:
        """counter_reset <name>"""
        if len(args) != 1:
            raise CommandError("usage: counter_reset <name>")
        with self.switch.lock:
            ctr = self._named(self._pipeline().counters, args[0], "counter")
            for i in range(ctr.size):
                ctr.write(i, 0, 0)
        return ""

    def _table_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except rt.TableSyntaxError as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:
            if type(exc).__name__ == "TableError":
                raise CommandError(f"{getattr(exc, 'code', '')}: {getattr(exc, 'message', exc)}") from None
            raise

    def cmd_table_add(self, args: list[str]) -> str:
        """table_add <table> <action> <match fields> => <action params> [priority]"""
        if len(args) < 2:
            raise CommandError("usage: table_add <table> <action> <match fields> => <action params> [priority]")
        with self.switch.lock:
            p = self._pipeline()
            table = self._named(p.tables, args[0], "table")
            action = self._table_call(rt.resolve_action, table, args[1])
            keys, pwords, prio = self._table_call(rt.split_add, args[2:], getattr(table, "needs_priority", False))
            match = self._table_call(rt.parse_match, table, keys)
            params = self._table_call(rt.action_params, action, pwords)
            entry = self._table_call(table.add, match, action, params, prio)
            return f"Entry has been added with handle {entry.handle}"

    def cmd_table_modify(self, args: list[str]) -> str:
        """table_modify <table> <action> <handle> [params...]"""
        if len(args) < 3:
            raise CommandError("usage: table_modify <table> <action> <handle> [action params]")
        with self.switch.lock:
            p = self._pipeline()
            table = self._named(p.tables, args[0], "table")
            action = self._table_call(rt.resolve_action, table, args[1])
            entry = self._table_call(rt.find_by_handle, table, _int(args[2], "handle"))
            params = self._table_call(rt.action_params, action, args[3:])
            self._table_call(table.modify, entry.match, entry.priority, action, params)
            return ""

    def cmd_table_delete(self, args: list[str]) -> str:
        """table_delete <table> <handle>"""
        if len(args) != 2:
            raise CommandError("usage: table_delete <table> <handle>")
        with self.switch.lock:
            table = self._named(self._pipeline().tables, args[0], "table")
            entry = self._table_call(rt.find_by_handle, table, _int(args[1], "handle"))
            self._table_call(table.delete, entry.match, entry.priority)
            return ""

    def cmd_table_clear(self, args: list[str]) -> str:
        """table_clear <table>: delete every entry"""
        if len(args) != 1:
            raise CommandError("usage: table_clear <table>")
        with self.switch.lock:
            table = self._named(self._pipeline().tables, args[0], "table")
            for e in table.entries():
                self._table_call(table.delete, e.match, e.priority)
            return ""

    def cmd_table_set_default(self, args: list[str]) -> str:
        """table_set_default <table> <action> [action params]"""
        if len(args) < 2:
            raise CommandError("usage: table_set_default <table> <action> [action params]")
        with self.switch.lock:
            p = self._pipeline()
            table = self._named(p.tables, args[0], "table")
            action = self._table_call(rt.resolve_action, table, args[1])
            params = self._table_call(rt.action_params, action, args[2:])
            self._table_call(table.set_default, action, params)
            return ""

    def cmd_table_reset_default(self, args: list[str]) -> str:
        """table_reset_default <table>"""
        if len(args) != 1:
            raise CommandError("usage: table_reset_default <table>")
        with self.switch.lock:
            table = self._named(self._pipeline().tables, args[0], "table")
            self._table_call(table.reset_default)
            return ""

    def cmd_table_num_entries(self, args: list[str]) -> str:
        """table_num_entries <name>"""
        if len(args) != 1:
            raise CommandError("usage: table_num_entries <name>")
        with self.switch.lock:
            return str(len(self._named(self._pipeline().tables, args[0], "table").entries()))

    def cmd_table_dump(self, args: list[str]) -> str:
        """table_dump <name>"""
        if len(args) != 1:
            raise CommandError("usage: table_dump <name>")
        with self.switch.lock:
            table = self._named(self._pipeline().tables, args[0], "table")
            lines = ["=" * 10, f"TABLE ENTRIES ({table.name})"]
            for e in table.entries():
                lines.append("*" * 10)
                lines.append(f"Dumping entry {getattr(e, 'handle', '?'):#x}"
                             if isinstance(getattr(e, "handle", None), int) else "Dumping entry")
                lines.append("Match key:")
                for i, (k, m) in enumerate(zip(table.keys, e.match, strict=False)):
                    lines.append(f"* {getattr(k, 'name', i)}: {getattr(m, 'kind', '').upper():<8} {_fmt_match(m)}")
                if getattr(e, "priority", 0):
                    lines.append(f"Priority: {e.priority}")
                params = ", ".join(f"{v:#x}" for v in e.params)
                lines.append(f"Action entry: {e.action} - {params}")
            lines.append("=" * 10)
            action, params = table.get_default()
            lines.append("Dumping default entry")
            lines.append(f"Action entry: {action} - " + ", ".join(f"{v:#x}" for v in params))
            lines.append("=" * 10)
            return "\n".join(lines)

    def cmd_mc_dump(self, args: list[str]) -> str:
        """mc_dump: multicast groups and clone sessions"""
        with self.switch.lock:
            p = self._pipeline()
            lines = ["==========", "MC ENTRIES"]
            for gid, replicas in sorted(p.mc_groups.items()):
                reps = ", ".join(f"(port {port}, rid {rid})" for port, rid in replicas)
                lines.append(f"**********\nmgrp({gid})\n  -> {reps}")
            lines.append("==========")
            sessions = getattr(p, "clone_sessions", {}) or {}
            if sessions:
                lines.append("CLONE SESSIONS")
                for sid, sess in sorted(sessions.items()):
                    lines.append(f"session {sid}: {sess}")
            return "\n".join(lines)

    def cmd_show_ports(self, args: list[str]) -> str:
        """show_ports: port numbers, interfaces and status"""
        lines = ["port # | iface name       | status | admin"]
        status = self.switch.port_status()
        for n, port in sorted(self.switch.ports.items()):
            lines.append(f"{n:6} | {port.iface:<16} | {'UP' if status[n] else 'DOWN':<6} | "
                         f"{'up' if port.admin_up else 'down'}")
        return "\n".join(lines)

    cmd_port_status = cmd_show_ports

    def cmd_port_down(self, args: list[str]) -> str:
        """port_down <port>: administratively drop every frame in and out of a port"""
        if len(args) != 1:
            raise CommandError("usage: port_down <port>")
        try:
            self.switch.set_port_admin(_int(args[0], "port"), False)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from None
        return ""

    def cmd_port_up(self, args: list[str]) -> str:
        """port_up <port>"""
        if len(args) != 1:
            raise CommandError("usage: port_up <port>")
        try:
            self.switch.set_port_admin(_int(args[0], "port"), True)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from None
        return ""

    def cmd_switch_stats(self, args: list[str]) -> str:
        """switch_stats: packet-loop counters (drops, errors) and per-port rx/tx"""
        lines = [f"{k}: {v}" for k, v in sorted(self.switch.stats.items())]
        for n, port in sorted(self.switch.ports.items()):
            lines.append(f"port {n} ({port.iface}): rx {port.rx_packets} tx {port.tx_packets}")
        for n, q in sorted(self.switch.queues.items()):
            lines.append(f"queue {n}: depth {q.depth} rate {q.rate_pps or 'unlimited'} "
                         f"backlog {len(q.items)} drops {q.drops}")
        return "\n".join(lines)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        commands: RuntimeCommands = self.server.commands  # type: ignore[attr-defined]
        for raw in self.rfile:
            out = commands.execute(raw.decode("utf-8", "replace"))
            reply = (out + "\n" if out else "") + END_MARK + "\n"
            try:
                self.wfile.write(reply.encode())
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
        self._server.commands = RuntimeCommands(switch)  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-cli", daemon=True)
        self._thread.start()
        log.info("runtime CLI listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def run_commands(port: int, lines: list[str], host: str = "127.0.0.1", timeout: float = 10.0) -> list[str]:
    """Client side: send command lines, return one output string per line."""
    outputs = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        f = sock.makefile("rw", encoding="utf-8", newline="\n")
        for line in lines:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            chunk = []
            for reply in f:
                if reply.rstrip("\n") == END_MARK:
                    break
                chunk.append(reply)
            outputs.append("".join(chunk).rstrip("\n"))
    return outputs
