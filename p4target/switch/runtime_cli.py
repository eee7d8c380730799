"""``p4target-cli``: the ``simple_switch_CLI`` counterpart (commands from stdin, ``-c CMD`` or a file)."""

from __future__ import annotations

import argparse
import sys

from p4target.switch.runtime import run_commands


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4target-cli", description="Runtime CLI of p4target-switch")
    ap.add_argument("--thrift-port", type=int, default=9090, help="switch runtime port (default 9090)")
    ap.add_argument("--thrift-ip", default="127.0.0.1", help="switch runtime address (default 127.0.0.1)")
    ap.add_argument("-c", "--command", action="append", default=[], help="command to run (repeatable)")
    ap.add_argument("commands_file", nargs="?", help="file with one command per line (default stdin)")
    args = ap.parse_args(argv)
    if args.command:
        lines = args.command
    elif args.commands_file:
        with open(args.commands_file) as f:
            lines = f.read().splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    try:
        outputs = run_commands(args.thrift_port, lines, host=args.thrift_ip)
    except OSError as exc:
        print(f"Could not connect to switch runtime at {args.thrift_ip}:{args.thrift_port}: {exc}",
              file=sys.stderr)
        return 1
    failed = False
    for line, out in zip(lines, outputs, strict=True):
        print(f"RuntimeCmd: {line}")
        if out:
            print(out)
        failed |= out.startswith("Error") or out.startswith("*** Unknown")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
