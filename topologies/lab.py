"""``python -m topologies.lab fig2``: start a topology and drop into a Mininet CLI with the lab's verbs.

Extra CLI commands (besides Mininet's own: ``pingall``, ``hostA ping hostB``, ``xterm``...):

    switches                      grpc/thrift ports, program, log of every switch
    degrade SWITCH PPS [PORT]     limit a switch's egress queue rate (runtime CLI set_queue_rate)
    restore SWITCH [PORT]         lift the queue-rate limit
    tbf NODE INTF RATE            token-bucket rate limit on an interface (e.g. tbf nic2 nic2-eth2 1mbit)
    untbf NODE INTF               remove it
    linkdown A B / linkup A B     cut the link(s) between two nodes at B (A loses the carrier) / restore them
    p4cli SWITCH CMD...           any runtime-CLI command (counter_read, register_read, table_dump...)
    log SWITCH [N]                last N lines of a switch's log
    stream SRC DST [SECS] [RATE]  background TCP stream SRC -> DST (verified byte by byte)
    roce SRC DST [SECS] [PPS]     background RoCEv2 QP stream SRC -> DST (PSN checked)
    streams                       state and last sample of every stream started here
    flows / migrate ... / monitor ...   the ``flowmig`` CLI with this run's config (flowmig --config FILE ...)
    config                        path of the controller config file

Switch logs go to ``logs/<switch>.log``; ``--pcap`` writes ``pcaps/``. ``--tls mtls`` (or ``tls``) runs
the switches' P4Runtime over (mutual) TLS with the lab's own certificates: :class:`TLSLab`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from mininet.cli import CLI
from mininet.log import setLogLevel

from controller.labconfig import LabConfig
from topologies import certs, degrade
from topologies.description import Topology, available, load
from topologies.network import Lab, LabOptions
from topologies.targets import TargetError, resolve

log = logging.getLogger(__name__)

TLS_MODES = ("tls", "mtls")


class TLSLab(Lab):
    """A :class:`Lab` whose switches serve P4Runtime only over TLS, and whose config says so.

    ``tls="tls"``: the switches present the lab's server certificate and take any TLS client;
    ``tls="mtls"``: every client must also present a certificate of the lab's CA (mutual TLS). At start
    a new CA and certificates are made (:mod:`topologies.certs`) in ``<run_dir>/tls-<run id>/`` — a
    directory per run, so a lab waiting for the machine's lab lock cannot replace the certificates of
    the lab that holds it — every switch (either target) gets the ``--grpc-server-ssl`` options, and
    the config's ``tls`` section names the CA and the controller's certificate and key, so every
    ``flowmig --config`` command connects with TLS. The directory is removed at stop. Plaintext
    P4Runtime clients are refused; the initial tables are installed over TLS too.
    """

    def __init__(self, topo: Topology, options: LabOptions | None = None, tls: str = "mtls") -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"TLS mode must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        options = options or LabOptions()
        super().__init__(topo, options)
        self.tls_mode = tls
        self.pki = certs.LabPKI(self.run_dir / f"tls-{self.run_id}")
        args = self.options.switch_args
        self.options = replace(self.options, switch_args=[*args, *([] if "--" in args else ["--"]),
                                                          *self.pki.switch_args(mutual=tls == "mtls")])

    def start(self) -> TLSLab:
        """Make the certificates, then bring the lab up (they are removed again if that fails)."""
        certs.generate(self.pki.directory)
        return super().start()

    def stop(self) -> dict[str, list]:
        try:
            return super().stop()
        finally:
            shutil.rmtree(self.pki.directory, ignore_errors=True)

    def config(self) -> LabConfig:
        """The lab's config with the ``tls`` section (see :meth:`Lab.config`)."""
        return replace(super().config(), tls=self.pki.client_tls())


def flowmig_command() -> list[str]:
    beside = Path(sys.executable).parent / "flowmig"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "topologies.cli"]


class LabCLI(CLI):
    """Mininet's CLI plus commands that act on P4 switches and delegate to the flowmig controller CLI."""

    prompt = "flowmig> "

    def __init__(self, lab: Lab, **kwargs) -> None:
        self.lab = lab
        self.streams: list[dict] = []
        CLI.__init__(self, lab.net, **kwargs)

    # helpers
    def _switch(self, name: str):
        if name not in self.lab.topo.switches:
            raise ValueError(f"no switch {name!r} (switches: {', '.join(self.lab.topo.switches)})")
        return self.lab.switch(name)

    def _run(self, fn, line: str, usage: str, nargs: tuple[int, int]) -> None:
        args = shlex.split(line)
        if not nargs[0] <= len(args) <= nargs[1]:
            print(f"usage: {usage}")
            return
        try:
            out = fn(*args)
            if out:
                print(out.rstrip())
        except (ValueError, degrade.DegradeError) as exc:
            print(f"error: {exc}")

    # commands
    def do_switches(self, _line: str) -> None:
        """List the P4 switches: program, role, gRPC and thrift ports, log file."""
        for sw in self.lab.switches():
            print(f"{sw.name:6} {sw.program:9} {sw.role:8} grpc {sw.grpc_addr:16} thrift {sw.thrift_port:5} "
                  f"pid {sw.proc.pid if sw.proc else '-':>7}  {sw.log_file}")

    def do_config(self, _line: str) -> None:
        """Print the path of the controller config file (for flowmig --config)."""
        print(self.lab.config_path.resolve())

    def do_degrade(self, line: str) -> None:
        """degrade SWITCH PPS [PORT]: limit the switch's egress queue rate to PPS packets/s."""
        def go(name, pps, port=None):
            sw = self._switch(name)
            return degrade.set_queue_rate(sw.thrift_port, int(pps), int(port) if port else None, sw.target)
        self._run(go, line, "degrade SWITCH PPS [PORT]", (2, 3))

    def do_restore(self, line: str) -> None:
        """restore SWITCH [PORT]: remove the egress queue-rate limit (rate 0 = unlimited)."""
        def go(name, port=None):
            sw = self._switch(name)
            return degrade.set_queue_rate(sw.thrift_port, 0, int(port) if port else None, sw.target)
        self._run(go, line, "restore SWITCH [PORT]", (1, 2))

    def do_tbf(self, line: str) -> None:
        """tbf NODE INTF RATE [BURST] [LATENCY]: token-bucket rate limit on an interface."""
        def go(node, intf, rate, burst="16kb", latency="50ms"):
            degrade.tbf(self.mn.get(node), intf, rate, burst, latency)
            return f"{intf}: tbf rate {rate}"
        self._run(go, line, "tbf NODE INTF RATE [BURST] [LATENCY]", (3, 5))

    def do_untbf(self, line: str) -> None:
        """untbf NODE INTF: remove the interface's root qdisc."""
        def go(node, intf):
            degrade.clear_qdisc(self.mn.get(node), intf)
        self._run(go, line, "untbf NODE INTF", (2, 2))

    def do_linkdown(self, line: str) -> None:
        """linkdown A B: cut the link(s) between A and B at B's end (A sees the carrier go)."""
        self._run(lambda a, b: degrade.link_status(self.mn, a, b, False, only=b), line, "linkdown A B", (2, 2))

    def do_linkup(self, line: str) -> None:
        """linkup A B: bring the link(s) between A and B back up."""
        self._run(lambda a, b: degrade.link_status(self.mn, a, b, True), line, "linkup A B", (2, 2))

    def do_p4cli(self, line: str) -> None:
        """p4cli SWITCH COMMAND...: send one runtime-CLI command to a switch."""
        name, _, cmd = line.strip().partition(" ")
        if not name or not cmd:
            print("usage: p4cli SWITCH COMMAND...")
            return
        self._run(lambda n: degrade.switch_cli(self._switch(n).thrift_port, cmd, self._switch(n).target),
                  name, "p4cli SWITCH COMMAND...", (1, 1))

    def do_log(self, line: str) -> None:
        """log SWITCH [N]: the last N (default 20) lines of the switch's log."""
        from topologies.p4switch import log_tail
        self._run(lambda n, k="20": log_tail(self._switch(n).log_file, int(k)), line, "log SWITCH [N]", (1, 2))

    def _start_stream(self, kind: str, line: str, usage: str, default_rate: str) -> None:
        args = shlex.split(line)
        if not 2 <= len(args) <= 4 or any(a not in self.lab.topo.hosts for a in args[:2]):
            print(f"usage: {usage} (hosts: {', '.join(self.lab.topo.hosts)})")
            return
        src, dst = args[0], args[1]
        secs = args[2] if len(args) > 2 else "30"
        rate = args[3] if len(args) > 3 else default_rate
        n = len(self.streams) + 1
        base = self.lab.run_dir / "streams" / f"{n}-{kind}-{src}-{dst}"
        base.parent.mkdir(parents=True, exist_ok=True)
        dst_ip = self.lab.topo.hosts[dst].ip
        cwd = str(Path(__file__).resolve().parent.parent)
        if kind == "tcp":
            port = str(5000 + n)
            rx_args = ["tcp_stream", "recv", "--port", port, "--timeout", "30"]
            tx_args = ["tcp_stream", "send", "--dst", dst_ip, "--port", port, "--duration", secs, "--rate", rate]
        else:
            qpn = hex(0x100 + n)
            rx_args = ["roce_stream", "recv", "--count", "1", "--idle", "10"]
            tx_args = ["roce_stream", "send", "--dst", dst_ip, "--qpn", qpn, "--duration", secs, "--pps", rate]
        rx_out, tx_out = f"{base}.rx.jsonl", f"{base}.tx.jsonl"
        rx = self.mn.get(dst).popen([sys.executable, "-m", f"topologies.apps.{rx_args[0]}", *rx_args[1:],
                                     "--out", rx_out], cwd=cwd)
        time.sleep(0.3)
        tx = self.mn.get(src).popen([sys.executable, "-m", f"topologies.apps.{tx_args[0]}", *tx_args[1:],
                                     "--out", tx_out], cwd=cwd)
        self.streams.append({"n": n, "kind": kind, "src": src, "dst": dst, "rx": rx, "tx": tx,
                             "rx_out": rx_out, "tx_out": tx_out})
        print(f"stream {n}: {kind} {src} -> {dst} for {secs}s, reports {base}.{{rx,tx}}.jsonl")

    def do_stream(self, line: str) -> None:
        """stream SRC DST [SECONDS] [RATE]: background TCP stream (RATE in bytes/s, e.g. 200k; 0 = max)."""
        self._start_stream("tcp", line, "stream SRC DST [SECONDS] [RATE]", "200k")

    def do_roce(self, line: str) -> None:
        """roce SRC DST [SECONDS] [PPS]: background RoCEv2 QP stream at PPS packets/s."""
        self._start_stream("roce", line, "roce SRC DST [SECONDS] [PPS]", "200")

    def do_streams(self, _line: str) -> None:
        """streams: state and latest receiver record of every stream started in this CLI."""
        from topologies.apps import parse_report
        for st in self.streams:
            state = "running" if st["rx"].poll() is None or st["tx"].poll() is None else "done"
            recs = [r for r in parse_report(st["rx_out"]) if r["event"] in ("sample", "end")] \
                if Path(st["rx_out"]).exists() else []
            last = recs[-1] if recs else {}
            detail = " ".join(f"{k}={last[k]}" for k in ("bytes", "packets", "bps", "pps", "gaps", "missing",
                                                        "corrupt", "reset", "ok") if k in last)
            print(f"{st['n']:3} {st['kind']:4} {st['src']}->{st['dst']} {state:7} {last.get('event', '-')}: {detail}")

    def _flowmig(self, sub: str, line: str) -> None:
        cmd = flowmig_command() + ["--config", str(self.lab.config_path), sub, *shlex.split(line)]
        try:
            subprocess.run(cmd)
        except KeyboardInterrupt:
            pass

    def do_flows(self, line: str) -> None:
        """flows [ARGS]: flowmig flows (references tracked by the NICs)."""
        self._flowmig("flows", line)

    def do_migrate(self, line: str) -> None:
        """migrate ARGS: flowmig migrate (move references between NICs)."""
        self._flowmig("migrate", line)

    def do_monitor(self, line: str) -> None:
        """monitor [ARGS]: flowmig monitor (Ctrl-C to return)."""
        self._flowmig("monitor", line)

    def do_flowmig(self, line: str) -> None:
        """flowmig SUBCOMMAND [ARGS]: any flowmig subcommand with this run's config."""
        sub, _, rest = line.strip().partition(" ")
        if not sub:
            print("usage: flowmig SUBCOMMAND [ARGS]")
            return
        self._flowmig(sub, rest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.lab", description="Start a flowmig lab topology.")
    ap.add_argument("topology", help=f"topology name ({', '.join(available())}) or path to a JSON file")
    ap.add_argument("--target", choices=("auto", "embedded", "bmv2"), default="auto",
                    help="P4 target (default auto: bmv2 when p4c-bm2-ss and simple_switch_grpc are on PATH, "
                         "else embedded)")
    ap.add_argument("--run-dir", type=Path, help="where config.json goes (default out/<topology>)")
    ap.add_argument("--log-dir", type=Path, default=Path("logs"))
    ap.add_argument("--pcap", action="store_true", help="write per-port pcaps to pcaps/")
    ap.add_argument("--log-console", action="store_true", help="per-packet trace in the switch logs")
    ap.add_argument("--no-populate", action="store_true", help="do not install the initial tables")
    ap.add_argument("--no-p4", action="store_true", help="start the switches without a program")
    ap.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                    help="wait this long for another lab on this machine to end (default 120)")
    ap.add_argument("--tls", choices=TLS_MODES, help="serve P4Runtime over TLS with the lab's own certificates; "
                    "mtls: clients must present one too")
    ap.add_argument("--cmd", action="append", default=[], help="run a CLI command and exit (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    setLogLevel("info" if args.verbose else "output")
    logging.getLogger("mininet").propagate = False      # Mininet prints through its own handler
    topo = load(args.topology)
    try:
        target = resolve(args.target)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    opts = LabOptions(target=target, run_dir=args.run_dir, log_dir=args.log_dir,
                      pcap_dir=Path("pcaps") if args.pcap else None, log_console=args.log_console,
                      populate=not args.no_populate, no_p4=args.no_p4, lock_timeout=args.wait)
    try:
        lab = TLSLab(topo, opts, args.tls) if args.tls else Lab(topo, opts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with lab:
        tls = f", P4Runtime over {args.tls.upper()}" if args.tls else ""
        print(f"*** {topo.name} up on the {target} target{tls}: controller config {lab.config_path}")
        if args.cmd:
            script = lab.run_dir / "lab-commands.txt"
            script.write_text("\n".join(args.cmd) + "\n")
            LabCLI(lab, script=str(script))
        else:
            print("*** type 'help' for commands; 'switches' lists the P4 switches")
            LabCLI(lab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
