"""``p4target-cli``: the ``simple_switch_CLI`` of p4target-switch.

Reads commands from stdin (like simple_switch_CLI: ``p4target-cli --thrift-port 9090 < cmds.txt``),
from a FILE or from ``-c CMD`` options, and prints exactly what simple_switch_CLI prints: the banner,
the ``RuntimeCmd: `` prompt before each command's output, and the final newline at end of input.
Commands run in the switch (``p4target.switch.runtime``); ``shell``/``!`` runs locally as in
simple_switch_CLI. Unlike simple_switch_CLI, the exit status is 1 when a command failed.
"""

from __future__ import annotations

import argparse
import cmd
import io
import socket
import subprocess
import sys
from typing import Any

from p4target.switch.runtime import END_MARK, STDERR_MARK


class _Client(cmd.Cmd):
    prompt = "RuntimeCmd: "
    intro = "Control utility for runtime P4 table manipulation"

    def __init__(self, sock: socket.socket, stdin: Any = None) -> None:
        super().__init__(stdin=stdin)
        if stdin is not None:
            self.use_rawinput = False
        self._io = sock.makefile("rw", encoding="utf-8", newline="\n")
        self.failed = False

    def onecmd(self, line: str) -> bool:
        command, arg, parsed = self.parseline(line)
        if parsed == "EOF":
            print()
            return True
        if command == "shell":
            self.do_shell(arg or "")
            return False
        self._io.write(line.replace("\n", " ") + "\n")
        self._io.flush()
        for reply in self._io:
            if reply.startswith(END_MARK):
                self.failed |= reply.rstrip("\n") != END_MARK
                return False
            if reply.startswith(STDERR_MARK):
                sys.stderr.write(reply[1:])
            else:
                sys.stdout.write(reply)
        raise ConnectionError("the switch closed the runtime connection")

    def do_shell(self, line: str) -> None:
        "Run a shell command"
        out = subprocess.run(line, shell=True, stdout=subprocess.PIPE, text=True, check=False).stdout
        print(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4target-cli", description="Runtime CLI of p4target-switch "
                                 "(simple_switch_CLI's commands and output)")
    ap.add_argument("--thrift-port", type=int, default=9090, help="switch runtime port (default 9090)")
    ap.add_argument("--thrift-ip", default="127.0.0.1", help="switch runtime address (default 127.0.0.1)")
    ap.add_argument("--json", help="accepted for compatibility; the switch's own program is used")
    ap.add_argument("--pre", default="SimplePreLAG", choices=["None", "SimplePre", "SimplePreLAG"],
                    help="accepted for compatibility (the switch has simple_switch's SimplePreLAG)")
    ap.add_argument("-c", "--command", action="append", default=[], help="command to run (repeatable)")
    ap.add_argument("commands_file", nargs="?", help="file with one command per line (default stdin)")
    args = ap.parse_args(argv)
    try:
        sock = socket.create_connection((args.thrift_ip, args.thrift_port), timeout=30)
    except OSError:
        print(f"Could not connect to thrift client on port {args.thrift_port}")
        print("Make sure the switch is running and that you have the right port")
        return 1
    with sock:
        stdin = None
        if args.command:
            stdin = io.StringIO("".join(c + "\n" for c in args.command))
        elif args.commands_file:
            try:
                with open(args.commands_file) as f:
                    stdin = io.StringIO(f.read())
            except OSError as exc:
                print(f"p4target-cli: cannot read {args.commands_file}: {exc}", file=sys.stderr)
                return 2
        if args.json is None:
            print("Obtaining JSON from switch...")
            print("Done")
        client = _Client(sock, stdin)
        try:
            client.cmdloop()
        except (OSError, ConnectionError) as exc:
            print(f"\np4target-cli: lost the switch runtime connection: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    return 1 if client.failed else 0


if __name__ == "__main__":
    sys.exit(main())
