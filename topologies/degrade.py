"""Degradation tooling for labs and scenarios: what this kernel can do to a path.

- the switch's egress queue rate and depth (``set_queue_rate``/``set_queue_depth``: on BMv2 through its
  Thrift API directly, ``controller.p4rt.thrift``; on the embedded target through its runtime CLI),
- a ``tbf`` rate limit on an interface,
- link down/up (Mininet ``configLinkStatus``: both ends of the veth pair),
- ``netem`` delay/loss, only where the kernel has it (:func:`netem_available` probes for it).

Functions that touch interfaces take the Mininet node owning the interface (switches live in the root
namespace, hosts in their own), so they work for both.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:   # imported here, not at the first command: a scenario's fault must not wait ~20 ms for it
    from p4target.switch.runtime import exchange as _runtime_exchange
except ImportError:   # an environment without p4target: the p4target-cli process instead
    _runtime_exchange = None

log = logging.getLogger(__name__)


class DegradeError(RuntimeError):
    """A degradation could not be applied; the message carries the tool's output."""


class NetemUnavailable(DegradeError):
    """The kernel has no netem qdisc (sch_netem)."""


# ---- switch runtime CLI ----
def runtime_cli(target: str = "embedded") -> list[str]:
    """The runtime CLI command for a target: p4target-cli, or simple_switch_CLI for bmv2."""
    if target == "bmv2":
        found = shutil.which("simple_switch_CLI")
        if not found:
            raise DegradeError("simple_switch_CLI not on PATH (bmv2 target)")
        return [found]
    beside = Path(sys.executable).parent / "p4target-cli"
    found = str(beside) if beside.exists() else shutil.which("p4target-cli")
    if not found:
        raise DegradeError(f"p4target-cli not found next to {sys.executable} nor on PATH")
    return [found]


def switch_cli(thrift_port: int, commands: str | list[str], target: str = "embedded",
               timeout: float = 10.0) -> str:
    """Run runtime-CLI commands (one per line) against a switch; returns the CLI's output.

    The embedded target is driven in-process (``p4target.switch.runtime.run_commands``, the code
    behind ``p4target-cli``); bmv2 through ``simple_switch_CLI``. A command the switch rejects raises.
    """
    lines = [commands] if isinstance(commands, str) else list(commands)
    if target == "embedded" and _runtime_exchange is not None:
        try:
            replies = _runtime_exchange(thrift_port, lines)
        except OSError as exc:
            raise DegradeError(f"switch runtime on 127.0.0.1:{thrift_port} unreachable: {exc}") from exc
        # the runtime's own verdict per line (its end mark), not a guess from the text
        bad = [(ln, (r.out + r.err).strip()) for ln, r in zip(lines, replies, strict=True) if r.failed]
        if bad:
            raise DegradeError("; ".join(f"{ln!r}: {out}" for ln, out in bad))
        return "\n".join(o for o in (r.out.rstrip("\n") for r in replies) if o)
    cmd = runtime_cli(target) + ["--thrift-port", str(thrift_port)]
    proc = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or cli_failed(out):
        raise DegradeError(f"{' '.join(cmd)} <<< {lines!r} failed ({proc.returncode}): {out.strip()}")
    return out


# simple_switch_CLI exits 0 whatever happens: a failed command is known by what it prints after its
# prompt(s) ("RuntimeCmd: ", one per command read from stdin) — its errors ("Error: Bad format for
# rate_pps, expected integer"), unknown commands ("*** Unknown syntax"), the Thrift API's refusals
# ("Invalid table operation (DUPLICATE_ENTRY)") and Python tracebacks
CLI_FAILURES = ("Error", "*** Unknown", "Invalid ", "Traceback (most recent call last)")
_PROMPTS = re.compile(r"^(?:RuntimeCmd: )+")


def cli_failed(output: str) -> bool:
    """Whether simple_switch_CLI's ``output`` reports a failed command (see ``CLI_FAILURES``)."""
    return any(_PROMPTS.sub("", ln).startswith(CLI_FAILURES) for ln in output.splitlines())


def _bmv2_thrift(thrift_port: int, what: str, call: str, *args: int | None) -> str:
    """One call of BMv2's Thrift API (no simple_switch_CLI process: milliseconds, not a second)."""
    from controller.p4rt.thrift import BmThrift, ThriftError
    try:
        with BmThrift("127.0.0.1", thrift_port) as client:
            getattr(client, call)(*args)
    except ThriftError as exc:
        raise DegradeError(f"{what} on BMv2 thrift port {thrift_port} failed: {exc}") from exc
    return ""


def _queue_line(command: str, value: int, unit: str, port: int | None) -> str:
    """A runtime-CLI queue command line (``set_queue_rate``/``set_queue_depth``); DegradeError when
    ``value`` is negative."""
    if value < 0:
        raise DegradeError(f"{command.removeprefix('set_').replace('_', ' ')} must be >= 0 {unit}, got {value}")
    return f"{command} {int(value)}" + (f" {port}" if port is not None else "")


def _set_queue(thrift_port: int, command: str, value: int, unit: str, port: int | None, target: str) -> str:
    cmd = _queue_line(command, value, unit, port)
    log.info("thrift %d: %s", thrift_port, cmd)
    if target == "bmv2":
        return _bmv2_thrift(thrift_port, cmd, command, int(value), port)
    return switch_cli(thrift_port, cmd, target)


def set_queue_rate(thrift_port: int, pps: int, port: int | None = None, target: str = "embedded") -> str:
    """Limit a switch's egress queue(s) to ``pps`` packets per second (all ports if ``port`` is None;
    0 lifts the limit)."""
    return _set_queue(thrift_port, "set_queue_rate", pps, "packets/s", port, target)


def set_queue_depth(thrift_port: int, packets: int, port: int | None = None, target: str = "embedded") -> str:
    """Set a switch's egress queue depth(s) in packets (all ports if ``port`` is None)."""
    return _set_queue(thrift_port, "set_queue_depth", packets, "packets", port, target)


def limit_queue(thrift_port: int, pps: int, port: int | None = None, target: str = "embedded",
                depth: int = 64) -> None:
    """A rate-limited egress queue as the embedded switch has one: ``pps`` packets/s, ``depth`` packets
    (64: both targets' default; BMv2 labs deepen their queues, so the depth is set with the rate)."""
    # both checked before either is set
    lines = [_queue_line("set_queue_depth", depth, "packets", port), _queue_line("set_queue_rate", pps, "packets/s", port)]
    if target == "bmv2":
        set_queue_depth(thrift_port, depth, port, target)
        set_queue_rate(thrift_port, pps, port, target)
        return
    # the runtime CLI: both lines over one connection
    log.info("runtime %d: %s", thrift_port, "; ".join(lines))
    switch_cli(thrift_port, lines, target)


# ---- tc ----
def _tc(node, args: str) -> str:
    out = node.cmd(f"tc {args} 2>&1; echo rc=$?")
    body, _, rc = out.strip().rpartition("rc=")
    if rc.strip() != "0":
        raise DegradeError(f"tc {args} (on {node.name}) failed: {body.strip()}")
    return body


def tbf(node, intf: str, rate: str, burst: str = "16kb", latency: str = "50ms") -> None:
    """Rate-limit ``intf`` with a token bucket (``rate`` like '1mbit'); replaces any root qdisc."""
    log.info("%s: tbf %s rate %s burst %s latency %s", node.name, intf, rate, burst, latency)
    _tc(node, f"qdisc replace dev {intf} root tbf rate {rate} burst {burst} latency {latency}")


def clear_qdisc(node, intf: str) -> None:
    """Remove the root qdisc of ``intf`` (no error if there is none)."""
    node.cmd(f"tc qdisc del dev {intf} root 2>/dev/null")


def netem_available(node, intf: str) -> bool:
    """True when a netem qdisc can be attached to ``intf`` (the probe is removed again)."""
    out = node.cmd(f"tc qdisc add dev {intf} root netem delay 1ms 2>&1; echo rc=$?")
    ok = out.strip().endswith("rc=0")
    if ok:
        clear_qdisc(node, intf)
    return ok


def netem(node, intf: str, delay_ms: float = 0.0, loss_pct: float = 0.0) -> None:
    """Add delay and/or loss with netem; raises :class:`NetemUnavailable` on kernels without it."""
    spec = []
    if delay_ms:
        spec.append(f"delay {delay_ms}ms")
    if loss_pct:
        spec.append(f"loss {loss_pct}%")
    if not spec:
        raise DegradeError("netem needs a delay or a loss")
    try:
        _tc(node, f"qdisc replace dev {intf} root netem {' '.join(spec)}")
    except DegradeError as exc:
        if not netem_available(node, intf):
            raise NetemUnavailable(f"no netem on this kernel ({exc})") from exc
        raise


# ---- links ----
def link_status(net, a: str, b: str, up: bool, only: str | None = None) -> None:
    """Set every link between nodes ``a`` and ``b`` up or down: both ends, or with ``only`` (a or b)
    that node's end alone — the cable cut there: the other end loses its carrier (operstate
    ``lowerlayerdown``) but stays administratively up.

    Cutting at one end is how a link fails on BMv2: ``simple_switch`` stops receiving on every port
    once one of its interfaces is set administratively down (and does not recover when it comes back
    up), so a switch that must survive the fault must keep its own end up."""
    na, nb = net.get(a), net.get(b)
    links = na.connectionsTo(nb)
    if not links:
        raise DegradeError(f"{a} and {b} are not connected")
    if only is None:
        net.configLinkStatus(a, b, "up" if up else "down")
        return
    if only not in (a, b):
        raise DegradeError(f"link {a}-{b}: cannot cut it at {only!r} (one of {a}, {b})")
    for ia, ib in links:
        (ia if only == a else ib).ifconfig("up" if up else "down")


def interface_up(node, intf: str) -> bool:
    """Operational state of an interface as the kernel reports it (operstate 'up')."""
    return node.cmd(f"cat /sys/class/net/{intf}/operstate 2>/dev/null").strip() == "up"
