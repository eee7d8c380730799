"""``flowmig``: the controller's command line.

Owns the subcommands ``flows`` (per-NIC slot use, FULL; the first --limit references: device, slot, rate,
state), ``migrate`` (by reference or by device, ``--to``, ``--mode lossless|drop``), ``monitor`` (live
table of per-port and per-flow rates and queue delay), ``shell SWITCH`` (p4runtime-shell attached to one switch) and ``save`` /
``restore`` (FlowStates as tagged JSON). A higher layer adds its own subcommands through ``main(argv,
extra=[Subcommand(...)])``: the installed ``flowmig`` script is ``topologies.cli:main``, which adds
``run`` (scenarios live in ``topologies``; the controller never imports it).
Switches come from ``--config FILE`` (written by the lab) and/or ``--switch NAME=HOST:PORT[:DEVICE_ID]``.
The FlowState HMAC key (``controller.config``: ``--hmac-key-file FILE``, ``$FLOWMIG_HMAC_KEY``,
``$FLOWMIG_HMAC_KEY_FILE``, the config's ``hmac_key_file``; no default) is needed by ``migrate``,
``save`` and ``restore`` (they sign or check FlowStates), which refuse to start without one; ``flows``,
``monitor`` and ``shell`` do not use it. ``run`` starts a lab, which writes its own key.
Exit codes: 0 success, 1 runtime failure (unreachable switch, unknown flow, failed migration),
2 bad arguments (argparse, the config file, the HMAC key: one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import commands as C
from .config import ENV_KEY, NO_KEY, ConfigError, ControllerConfig, load_config
from .flowstate import FlowStateError, dump_many, load_many, parse_reference
from .inventory import UnknownFlow
from .p4rt.errors import P4RuntimeError
from .runtime import Controller, ControllerError
from .shellenv import ShellEnvError, shell_python

log = logging.getLogger("flowmig")

TCP_PHASES = {0: "none", 1: "syn-sent", 2: "syn-rcvd", 3: "established", 4: "fin-wait-fwd", 5: "fin-wait-rev",
              6: "closing", 7: "closed"}
DEFAULT_CONFIG_ENV = "FLOWMIG_CONFIG"
NEEDS_KEY = frozenset({"migrate", "save", "restore"})   # the subcommands that sign or check FlowStates


class CliError(Exception):
    """A runtime failure to report on stderr with exit code 1."""


class UsageError(CliError):
    """A bad argument (option value, --config file, --switch spec): one line on stderr, exit code 2."""


@dataclass(frozen=True)
class Subcommand:
    """A subcommand that a higher layer adds to ``flowmig`` (``topologies.cli`` adds ``run``)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    takes_key: bool = False     # reads --hmac-key-file; if not, giving it is an error (``run``: the lab's key)


def _parser(extra: Sequence[Subcommand] = ()) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="flowmig", description="Flow migration controller (P4Runtime).")
    ap.add_argument("--config", "-c", help="controller config JSON (default: $FLOWMIG_CONFIG)")
    ap.add_argument("--switch", "-s", action="append", default=[], metavar="NAME=HOST:PORT[:DEVICE_ID]",
                    help="a switch to talk to (repeatable; overrides the config file's address)")
    ap.add_argument("--hmac-key-file", metavar="FILE",
                    help="file holding the FlowState HMAC key in hex, mode 0600 (default: $FLOWMIG_HMAC_KEY, "
                         "$FLOWMIG_HMAC_KEY_FILE, then the config's hmac_key_file)")
    ap.add_argument("--hmac-key", help=argparse.SUPPRESS)   # gone: refused with a pointer to the above
    ap.add_argument("--timeout", type=float, default=5.0, help="connect timeout per switch, seconds")
    ap.add_argument("--election-id", default="0,110", metavar="HIGH,LOW",
                    help="P4Runtime election id (default 0,110: above a long-running controller's 0,100, "
                         "which becomes primary again when this command exits)")
    ap.add_argument("--idle-timeout", type=_seconds, metavar="S",
                    help="set every NIC's idle timeout first: a reference idle for S seconds gives its slot up "
                         "to a new one (the program's default: 300)")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("flows", help="list the tracked references (device, slot, rate, state)")
    p.add_argument("--device", help="only this NIC")
    p.add_argument("--interval", type=float, default=0.5, help="rate sampling interval, seconds (0: no rates)")
    p.add_argument("--wait", type=float, default=0.0, help="also collect digests for this many seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=_count, default=200, metavar="N",
                   help="list at most N references (default 200; each NIC's slot use is always shown)")
    p.add_argument("--all", action="store_true", help="list every reference")

    p = sub.add_parser("migrate", help="move references (state and forwarding) to another NIC")
    p.add_argument("references", nargs="*", metavar="REF", help="tcp:A:P-B:Q, udp:A:P-B:Q or roce:A[:P]-B[:Q]:qpN")
    p.add_argument("--device", help="move every reference of this NIC (node-wide migration)")
    p.add_argument("--to", required=True, help="target NIC")
    p.add_argument("--mode", choices=("lossless", "drop"), default="lossless")
    p.add_argument("--old-path-wait", type=_ms, default=0.0, metavar="MS",
                   help="wait up to MS for the old path to drain before switching (default 0: switch at once; "
                        "docs/lab.md)")
    p.add_argument("--lease", type=_lease, default=1.0, metavar="MS",
                   help="the gateways resume a suspension by themselves after MS unless renewed (default 1000): "
                        "what a flow loses at most if this controller dies mid-migration (plus --old-path-wait)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("recover", help="finish or undo a migration a dead controller left (every command does "
                                       "this first; this one reports it)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("monitor", help="live table of per-port / per-flow rates and queue delay")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--count", type=int, default=0, help="number of refreshes (0: until Ctrl-C)")
    p.add_argument("--no-clear", action="store_true", help="do not clear the screen between tables")

    p = sub.add_parser("shell", help="open p4runtime-shell attached to one switch")
    p.add_argument("name", metavar="SWITCH")
    p.add_argument("--shell-election-id", default="0,50", metavar="HIGH,LOW",
                   help="the shell's election id (default 0,50: a backup below the controller's 0,100; "
                        "raise it to write)")

    p = sub.add_parser("save", help="save references' state to a tagged JSON file (they keep running)")
    p.add_argument("references", nargs="+", metavar="REF")
    p.add_argument("--out", "-o", required=True)

    p = sub.add_parser("restore", help="validate a saved state file and load it onto a NIC")
    p.add_argument("file")
    p.add_argument("--to", required=True)

    for command in extra:
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return ap


# ---- helpers -----------------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> ControllerConfig:
    path = args.config or os.environ.get(DEFAULT_CONFIG_ENV)
    if path is None and not args.switch:
        raise UsageError("no switches: give --config FILE (written by the lab) or --switch NAME=HOST:PORT")
    try:
        cfg = load_config(path, args.switch, args.hmac_key_file)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.cmd in NEEDS_KEY and cfg.key is None:
        raise UsageError(f"{args.cmd}: {NO_KEY}")
    try:
        hi, lo = (int(x) for x in args.election_id.split(","))
    except ValueError:
        raise UsageError(f"bad --election-id {args.election_id!r}: expected HIGH,LOW") from None
    cfg.election_id = (hi, lo)
    cfg.log_dir = "logs"
    cfg.connect_timeout = args.timeout
    return cfg


def _controller(args: argparse.Namespace, only: list[str] | None = None) -> Controller:
    cfg = _config(args)
    for n in only or []:
        cfg.switch(n)
    ctrl = Controller(cfg, hosts=cfg.hosts, connect_timeout=args.timeout)
    ctrl.start(only)
    if getattr(args, "idle_timeout", None) is not None:
        ctrl.set_idle_timeout(args.idle_timeout)
    ctrl.scan()
    return ctrl


def _state_summary(reply: C.Command) -> str:
    if reply.status != C.STATUS_OK:
        return C.STATUS_NAMES.get(reply.status, str(reply.status))
    suspended = " suspended" if reply.flags & C.SLOT_SUSPENDED else ""
    if reply.kind == 1:
        return (f"{TCP_PHASES.get(reply.tcp_phase, reply.tcp_phase)} seq {reply.tcp_next_seq_fwd}/"
                f"{reply.tcp_next_seq_rev}{suspended}")
    if reply.kind == 3:
        return f"psn {reply.roce_expected_psn} acked {reply.roce_acked_psn} oos {reply.roce_oos_count}{suspended}"
    return f"udp{suspended}".strip()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)] if rows else \
        [len(h) for h in header]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _rate(bps: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bps >= div:
            return f"{bps / div:.1f}{unit}"
    return f"{bps:.0f}"


# ---- subcommands -----------------------------------------------------------------------------------------
def cmd_flows(args: argparse.Namespace) -> int:
    """Each NIC's slot use (FULL / NEAR FULL), then the first ``--limit`` references (by device, slot)
    with their rate and state: only the listed ones are read, so 10k references print in a blink."""
    with _controller(args) as ctrl:
        if args.device:
            ctrl.nic(args.device)
        if args.wait:
            time.sleep(args.wait)
        nics = [args.device] if args.device else sorted(ctrl.nics)
        use = [ctrl.slot_use(n) for n in nics]
        recs = [r for n in nics for r in ctrl.inventory.on_device(n)]
        shown = recs if args.all else recs[:args.limit]
        by_nic: dict[str, list[Any]] = {}
        for r in shown:
            by_nic.setdefault(r.device, []).append(r)

        def save() -> dict[Any, C.Command]:
            return {r.key: rep for n, rs in by_nic.items()
                    for r, rep in zip(rs, ctrl.nic(n).run(C.SAVE, [(r.key, r.slot) for r in rs]), strict=True)}

        replies = save()
        rates: dict[Any, tuple[float, float]] = {}
        if args.interval > 0 and shown:
            t0 = time.monotonic()
            time.sleep(args.interval)
            first, replies = replies, save()
            dt = time.monotonic() - t0
            for k, rep in replies.items():
                p0 = first[k]
                if rep.status == C.STATUS_OK and p0.status == C.STATUS_OK:
                    rates[k] = (max(0, rep.packets - p0.packets) / dt, 8 * max(0, rep.bytes - p0.bytes) / dt)
        rows, out = [], []
        for r in shown:
            rep = replies[r.key]
            pps, bps = rates.get(r.key, (0.0, 0.0))
            summary = _state_summary(rep)
            rows.append([r.reference(), r.device, str(r.slot), str(rep.packets), f"{pps:.0f}", _rate(bps), summary])
            out.append({"reference": r.reference(), "device": r.device, "slot": r.slot, "packets": rep.packets,
                        "bytes": rep.bytes, "pps": pps, "bps": bps, "state": summary})
        if args.json:
            print(json.dumps({"nics": {u.device: {"used": u.used, "total": u.total, "free": u.free, "full": u.full,
                                                   "near_full": u.near_full} for u in use},
                              "total": len(recs), "shown": len(out), "flows": out}, indent=2))
            return 0
        for u in use:
            print(u)
        print()
        if rows:
            print(_table(rows, ["REFERENCE", "DEVICE", "SLOT", "PACKETS", "PPS", "BPS", "STATE"]))
            if len(rows) < len(recs):
                print(f"... {len(rows)} of {len(recs)} references shown (--limit N, --all)")
        else:
            print("no references tracked" + (f" on {args.device}" if args.device else ""))
    return 0


def _number(conv: Callable[[str], float], unit: str, ok: Callable[[float], bool], rule: str,
            scale: float = 1.0) -> Callable[[str], float]:
    """An argparse type: ``conv(text)`` checked by ``ok``, times ``scale``; one-line errors."""
    def parse(text: str) -> float:
        try:
            v = conv(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unit}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{rule}: {text!r}")
        return v * scale if scale != 1.0 else v
    return parse


_count = _number(int, "a count", lambda v: v >= 0, "must not be negative")
# the data plane holds the idle timeout in microseconds, in 48 bits
_seconds = _number(float, "seconds", lambda v: 0 < v < 8.9e6, "must be positive seconds (under 8.9e6)")
_ms = _number(float, "milliseconds", lambda v: v >= 0, "must not be negative", scale=1 / 1000)   # -> seconds
_lease = _number(float, "milliseconds", lambda v: v > 0, "must be positive", scale=1 / 1000)


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrator import Migrator
    if bool(args.references) == bool(args.device):
        raise CliError("give references to migrate, or --device NIC (not both)")
    keys = [parse_reference(r) for r in args.references]
    with _controller(args) as ctrl:
        m = Migrator(ctrl, old_path_wait=args.old_path_wait, lease=args.lease)
        if args.device:
            ctrl.nic(args.device)
            if not ctrl.inventory.on_device(args.device):
                print(f"{args.device} tracks no references: nothing to migrate")
                return 0
            rec = m.migrate_device(args.device, args.to, args.mode)
        else:
            keys = [_resolve(ctrl, k) for k in keys]
            rec = m.migrate(keys, args.to, args.mode)
        print(json.dumps(rec.to_dict(), indent=2) if args.json else rec.summary())
        return 0 if rec.outcome == "ok" else 1


def cmd_recover(args: argparse.Namespace) -> int:
    """What the start of this command recovered (``Controller.start`` runs the recovery)."""
    with _controller(args) as ctrl:
        rec = ctrl.recovery
        journal = str(ctrl.journal.path) if ctrl.journal is not None else None
    if args.json:
        print(json.dumps({**rec.to_dict(), "journal": journal}, indent=2))
    else:
        print("\n".join(rec.lines()) if rec or rec.skipped else
              f"nothing to recover (journal {journal or 'none: no --config'}; no suspended gateway entry)")
    return 1 if rec.problems else 0


def _resolve(ctrl: Controller, key: Any) -> Any:
    """Accept a reference in either direction, and the short RoCE form without ports."""
    # a RoCE QP is one direction (the reverse is another QP); the inventory ignores its UDP ports
    cands = (key,) if key.kind == "roce" else (key, key.canonical(), key.reversed().canonical())
    for cand in cands:
        rec = ctrl.inventory.find(cand)
        if rec is not None:
            return rec.key
    raise UnknownFlow(f"unknown flow {key} (not tracked by any NIC; see 'flowmig flows')")


def cmd_monitor(args: argparse.Namespace) -> int:
    from .stats import RateTracker, flow_sample, port_sample
    tracker = RateTracker()
    with _controller(args) as ctrl:
        n = 0
        primed = False
        try:
            while True:
                now = time.monotonic()
                port_rows = []
                for name in sorted(ctrl.config.switches):
                    conn = ctrl.fabric[name]
                    for port, s in sorted(port_sample(conn, regs=ctrl.registers.get(name)).items()):
                        rx_pps, rx_bps, tx_pps, tx_bps, qd, tx_n = tracker.update(
                            (name, port), (s.rx_packets, s.rx_bytes * 8, s.tx_packets, s.tx_bytes * 8,
                                           s.queue_delay_sum_us, s.tx_packets), now)
                        delay = f"{qd / tx_n:.0f}" if tx_n else "-"
                        port_rows.append([name, str(port), f"{rx_pps:.0f}", _rate(rx_bps), f"{tx_pps:.0f}",
                                          _rate(tx_bps), delay, str(s.queue_depth)])
                ctrl.scan()
                flow_rows = []
                for nic in sorted(ctrl.nics):
                    for k, (p, b) in flow_sample(ctrl, nic).items():
                        pps, bps = tracker.update(("flow", k), (p, b * 8), now)
                        flow_rows.append([str(k), nic, f"{pps:.0f}", _rate(bps), str(p)])
                if not primed:
                    # Rates need two samples: the first one only primes the tracker.
                    primed = True
                    time.sleep(max(0.0, args.interval - (time.monotonic() - now)))
                    continue
                if not args.no_clear and sys.stdout.isatty():
                    print("\033[2J\033[H", end="")
                print(time.strftime("%H:%M:%S"), f"every {args.interval:g}s  (Ctrl-C to stop)")
                print(_table(port_rows, ["SWITCH", "PORT", "RX_PPS", "RX_BPS", "TX_PPS", "TX_BPS",
                                         "QDELAY_US", "QDEPTH"]))
                print()
                print(_table(flow_rows, ["REFERENCE", "DEVICE", "PPS", "BPS", "PACKETS"]) if flow_rows
                      else "no references tracked")
                print(flush=True)
                n += 1
                if args.count and n >= args.count:
                    return 0
                time.sleep(max(0.0, args.interval - (time.monotonic() - now)))
        except KeyboardInterrupt:
            return 0


def cmd_shell(args: argparse.Namespace) -> int:
    cfg = _config(args)
    sc = cfg.switch(args.name)
    try:
        hi, lo = (int(x) for x in args.shell_election_id.split(","))
    except ValueError:
        raise CliError(f"bad --shell-election-id {args.shell_election_id!r}: expected HIGH,LOW") from None
    try:
        python = str(shell_python())
    except ShellEnvError as exc:
        raise CliError(str(exc)) from None
    argv = [python, "-m", "p4runtime_sh", "--grpc-addr", sc.address, "--device-id", str(sc.device_id),
            "--election-id", f"{hi},{lo}"]
    print(f"attaching p4runtime-shell to {sc.name} at {sc.address} (device {sc.device_id})", file=sys.stderr)
    os.execv(argv[0], argv)
    return 0  # not reached


def cmd_save(args: argparse.Namespace) -> int:
    keys = [parse_reference(r) for r in args.references]
    with _controller(args) as ctrl:
        states = []
        for k in keys:
            rec = ctrl.inventory.get(_resolve(ctrl, k))
            states += ctrl.nic(rec.device).save([(rec.key, rec.slot)], suspend=False)
        Path(args.out).write_text(dump_many(states, ctrl.config.hmac_key) + "\n")
        print(f"saved {len(states)} reference(s) to {args.out}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .migrator import Migrator
    cfg = _config(args)
    try:
        text = Path(args.file).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    states = load_many(text, cfg.hmac_key)  # validated before anything is written
    with _controller(args) as ctrl:
        items = Migrator(ctrl).restore([s.to_dict(cfg.hmac_key) for s in states], args.to)
        for k, s in items:
            print(f"{k} -> {args.to} slot {s}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "flows": cmd_flows, "migrate": cmd_migrate, "monitor": cmd_monitor, "shell": cmd_shell,
    "save": cmd_save, "restore": cmd_restore, "recover": cmd_recover}


def main(argv: list[str] | None = None, extra: Sequence[Subcommand] = ()) -> int:
    """Run ``flowmig`` with the controller's subcommands plus ``extra`` (a higher layer's)."""
    clash = [c.name for c in extra if c.name in COMMANDS]
    if clash:
        raise ValueError(f"subcommand(s) {', '.join(clash)} already defined by the controller")
    commands = {**COMMANDS, **{c.name: c.run for c in extra}}
    args = _parser(extra).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.hmac_key is not None:
            raise UsageError("--hmac-key is gone (a key on the command line is visible to every user): put the "
                             f"key in a mode-0600 file for --hmac-key-file, or in ${ENV_KEY}")
        keyless = {c.name for c in extra if not c.takes_key}
        if args.cmd in keyless and args.hmac_key_file is not None:
            raise UsageError(f"{args.cmd} does not read --hmac-key-file (the lab it starts writes its own key)")
        return int(commands[args.cmd](args) or 0)
    except UsageError as exc:
        print(f"flowmig: error: {exc}", file=sys.stderr)
        return 2
    except (CliError, ConfigError, ControllerError, UnknownFlow, FlowStateError) as exc:
        print(f"flowmig: error: {exc}", file=sys.stderr)
    except P4RuntimeError as exc:
        print(f"flowmig: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
