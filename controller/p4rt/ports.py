"""Port (link) state of a switch through its runtime API, whichever target serves it.

Owns ``PortStatus``, the interface the monitor reads link state through: ``port_status()`` returns
{port: up} for the ports the switch reports, or raises ``PortStatusError``. Two implementations, one
per runtime API that a switch's ``--thrift-port`` may speak:

- ``ThriftPorts``: BMv2's Thrift API (``bm_dev_mgr_show_ports``, ``controller.p4rt.thrift``) —
  simple_switch and simple_switch_grpc;
- ``RuntimeCliPorts``: the embedded switch's runtime CLI, a line protocol (one command per line;
  each answer is the command's text, then a line ``\\x00`` when it succeeded or ``\\x00E`` when it
  failed; docs/internals.md "Runtime CLI") — its ``show_ports`` prints simple_switch_CLI's table.

``probe_port_status`` picks one by capability: it asks each protocol in turn and keeps the first that
answers. A probe in the wrong protocol costs about a second, once (BMv2's Thrift server drops a text
line after ~1 s; the line protocol waits for a newline a Thrift message lacks until the probe's
timeout), so Thrift is asked first where it is known to answer (the register path already uses it).
The controller never imports the embedded target: it talks to it over the socket only.
"""

from __future__ import annotations

import logging
import socket
from typing import Protocol

from .thrift import BmThrift, ThriftError

__all__ = ["PortStatus", "PortStatusError", "RuntimeCliPorts", "ThriftPorts", "parse_show_ports",
           "probe_port_status"]

log = logging.getLogger(__name__)

END_MARK = "\x00"          # the runtime CLI's end-of-answer line ("\x00" ok, "\x00E" failed)
STDERR_MARK = "\x01"       # ... and its stderr lines
PROBE_TIMEOUT = 1.0        # seconds a protocol gets to answer a probe


class PortStatusError(RuntimeError):
    """The switch's port state could not be read (unreachable, another protocol, a failed command)."""


class PortStatus(Protocol):
    """Link state of one switch's ports."""

    name: str

    def port_status(self) -> dict[int, bool]:
        """{port: up} of every port the switch reports; raises PortStatusError."""
        ...

    def close(self) -> None:
        ...


def parse_show_ports(text: str) -> dict[int, bool]:
    """{port: up} from simple_switch_CLI's ``show_ports`` table (header, rule, then one row per port:
    port #, iface name, status UP|DOWN)."""
    state = {}
    for line in text.splitlines()[2:]:
        cols = line.split()
        if len(cols) >= 3 and cols[0].isdigit():
            state[int(cols[0])] = cols[2] == "UP"
    return state


class ThriftPorts:
    """Port state from BMv2's Thrift API (its device manager's port list)."""

    def __init__(self, thrift: BmThrift) -> None:
        self.thrift = thrift
        self.name = f"{thrift.name} show_ports"

    def port_status(self) -> dict[int, bool]:
        try:
            return {p.port: p.up for p in self.thrift.show_ports()}
        except ThriftError as exc:
            raise PortStatusError(str(exc)) from None

    def close(self) -> None:
        self.thrift.close()


class RuntimeCliPorts:
    """Port state from the embedded switch's runtime CLI (``show_ports`` over its line protocol).
    One connection per call: the monitor asks rarely (only for interfaces not on this machine)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.host, self.port, self.timeout = host, int(port), timeout
        self.name = f"runtime CLI {host}:{port} show_ports"

    def command(self, line: str) -> str:
        """Run one command line; its output (stdout lines). Raises PortStatusError when the switch
        does not answer in the line protocol or the command failed."""
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                f = sock.makefile("rw", encoding="utf-8", errors="replace", newline="\n")
                f.write(line.rstrip("\r\n") + "\n")
                f.flush()
                out, err = [], []
                for reply in f:
                    if reply.startswith(END_MARK):
                        if reply.rstrip("\n") != END_MARK:
                            raise PortStatusError(f"{self.name}: {line!r} failed: {''.join(err).strip()}")
                        return "".join(out)
                    (err if reply.startswith(STDERR_MARK) else out).append(reply.lstrip(STDERR_MARK))
        except (OSError, UnicodeError) as exc:
            raise PortStatusError(f"{self.name}: {exc}") from None
        raise PortStatusError(f"{self.name}: connection closed before the end of the answer "
                              "(not the runtime CLI's line protocol?)")

    def port_status(self) -> dict[int, bool]:
        return parse_show_ports(self.command("show_ports"))

    def close(self) -> None:
        pass


def probe_port_status(host: str, port: int, thrift: BmThrift | None = None, thrift_first: bool = False,
                      timeout: float = PROBE_TIMEOUT) -> PortStatus | None:
    """The provider that answers ``show_ports`` on ``host:port``, or None when neither protocol does.
    ``thrift`` is a BMv2 Thrift client to reuse (the register path's), else one is made;
    ``thrift_first``: ask Thrift before the line protocol (it is known to answer there)."""
    bm = ThriftPorts(thrift if thrift is not None else BmThrift(host, port, timeout, name=f"{host}:{port} (thrift)"))
    cli = RuntimeCliPorts(host, port, timeout)
    for cand in ([bm, cli] if thrift_first else [cli, bm]):
        try:
            cand.port_status()
        except PortStatusError as exc:
            log.debug("%s:%d does not answer as %s: %s", host, port, cand.name, exc)
            continue
        if cand is not bm and thrift is None:
            bm.close()
        return cand
    if thrift is None:
        bm.close()
    return None
