"""``p4target-switch``: the switch daemon, command line compatible with ``simple_switch_grpc``.

    p4target-switch -i 1@veth0 -i 2@veth2 --device-id 0 --log-console --thrift-port 9090 prog.json \\
        -- --grpc-server-addr 127.0.0.1:9559 --cpu-port 255

Options before ``--`` are BMv2's generic options; after it come the target options of
``simple_switch_grpc``. ``--no-p4`` starts without a program (a P4Runtime client pushes one). The gRPC
server binds loopback unless ``--grpc-server-addr`` says otherwise, and refuses to start when the port is
already bound (also by another process). ``--grpc-server-ssl`` with ``--grpc-server-cert``/``-key`` (and
``--grpc-server-cacert``, ``--grpc-server-with-client-auth`` for mutual TLS) serve P4Runtime over TLS, as
simple_switch_grpc does. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from p4target.switch.switch import Switch

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "off": logging.CRITICAL + 10}


def _port_iface(text: str) -> tuple[int, str]:
    num, sep, iface = text.partition("@")
    if not sep or not iface:
        raise argparse.ArgumentTypeError(f"expected PORT@IFACE, got '{text}'")
    try:
        port = int(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port number must be an integer in '{text}'") from None
    if not 0 <= port < 511:
        raise argparse.ArgumentTypeError(f"port {port} out of range 0..510")
    return port, iface


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    ap = argparse.ArgumentParser(prog="p4target-switch", usage="%(prog)s [options] [JSON] -- [target options]",
                                 description="Embedded P4 switch (simple_switch_grpc compatible)")
    ap.add_argument("json", nargs="?", help="BMv2 JSON of the P4 program")
    ap.add_argument("-i", "--interface", action="append", type=_port_iface, default=[], metavar="PORT@IFACE",
                    help="attach interface IFACE as port PORT (repeatable)")
    ap.add_argument("--device-id", type=int, default=0, help="P4Runtime device id (default 0)")
    ap.add_argument("--log-console", action="store_true", help="log to stdout")
    ap.add_argument("--log-file", help="log to this file")
    ap.add_argument("-L", "--log-level", default="info", choices=sorted(LEVELS),
                    help="log level; trace/debug also trace every packet through the pipeline")
    ap.add_argument("--log-flush", action="store_true", help="flush the log after every line (always on)")
    ap.add_argument("--pcap", nargs="?", const=".", metavar="DIR",
                    help="write <iface>_in.pcap/<iface>_out.pcap per port into DIR")
    ap.add_argument("--no-p4", action="store_true", help="start without a P4 program")
    ap.add_argument("--thrift-port", type=int, default=9090,
                    help="runtime CLI port on 127.0.0.1 (default 9090, 0: any free port)")
    tp = argparse.ArgumentParser(prog="p4target-switch ... --", add_help=False)
    tp.add_argument("--grpc-server-addr", default="127.0.0.1:9559",
                    help="P4Runtime gRPC address (default 127.0.0.1:9559)")
    tp.add_argument("--grpc-server-ssl", action="store_true", help="Enable SSL/TLS for gRPC server")
    tp.add_argument("--grpc-server-cacert", metavar="PEM",
                    help="Path to pem file holding CA certificate to verify peer against")
    tp.add_argument("--grpc-server-cert", metavar="PEM", help="Path to pem file holding server certificate")
    tp.add_argument("--grpc-server-key", metavar="PEM", help="Path to pem file holding server key")
    tp.add_argument("--grpc-server-with-client-auth", action="store_true",
                    help="Require client to have a valid certificate for mutual authentication")
    tp.add_argument("--cpu-port", type=int, default=0, help="CPU port number (0: none)")
    tp.add_argument("--drop-port", type=int, default=511, help="drop port (only 511 is supported)")
    return ap, tp


def _setup_logging(args: argparse.Namespace) -> logging.Logger:
    level = LEVELS[args.log_level]
    logger = logging.getLogger("p4target")
    logger.setLevel(level)
    fmt = logging.Formatter("[%(asctime)s.%(msecs)03d] [%(levelname)s] %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = []
    if args.log_console:
        handlers.append(logging.StreamHandler(sys.stdout))
    if args.log_file:
        Path(args.log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log_file))
    if not handlers:  # errors still reach the terminal
        handlers.append(logging.StreamHandler(sys.stderr))
        logger.setLevel(max(level, logging.WARNING))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        own, target = argv[:cut], argv[cut + 1:]
    else:
        own, target = argv, []
    ap, tp = _parsers()
    args = ap.parse_args(own)
    targs, unknown = tp.parse_known_args(target)
    if unknown:
        tp.error(f"unrecognized target options: {' '.join(unknown)}")
    if args.json is None and not args.no_p4:
        ap.error("a JSON program is required unless --no-p4 is given")
    if targs.drop_port != 511:
        ap.error("only --drop-port 511 is supported")
    ports = dict(args.interface)
    if len(ports) != len(args.interface):
        ap.error("a port number is given twice")
    if targs.cpu_port and targs.cpu_port in ports:
        ap.error(f"CPU port {targs.cpu_port} must not have an interface")
    logger = _setup_logging(args)

    json_bytes = None
    if args.json is not None:
        try:
            json_bytes = Path(args.json).read_bytes()
            json.loads(json_bytes)
        except (OSError, ValueError) as exc:
            print(f"p4target-switch: cannot read JSON '{args.json}': {exc}", file=sys.stderr)
            return 1

    try:
        switch = Switch(ports, cpu_port=targs.cpu_port or None, device_id=args.device_id,
                        pcap_dir=args.pcap, log=logger.getChild("switch"),
                        trace=args.log_level in ("trace", "debug"))
    except (OSError, ValueError) as exc:
        print(f"p4target-switch: cannot open ports: {exc}", file=sys.stderr)
        return 1
    if json_bytes is not None:
        try:
            switch.set_pipeline(json_bytes)
        except Exception as exc:  # PipelineError and friends: report and exit
            print(f"p4target-switch: cannot load '{args.json}': {exc}", file=sys.stderr)
            switch.close()
            return 1

    from p4target.p4runtime import P4RuntimeServer
    from p4target.p4runtime.tls import TLSConfigError, TLSOptions
    from p4target.switch.runtime import RuntimeServer

    runtime = None
    tls = TLSOptions(ssl=targs.grpc_server_ssl, cacert=targs.grpc_server_cacert, cert=targs.grpc_server_cert,
                     key=targs.grpc_server_key, with_client_auth=targs.grpc_server_with_client_auth)
    try:
        grpc_server = P4RuntimeServer(switch, args.device_id, targs.grpc_server_addr, tls=tls)
        grpc_server.start()
    except TLSConfigError as exc:
        print(f"p4target-switch: {exc}", file=sys.stderr)
        switch.close()
        return 1
    except Exception as exc:
        print(f"p4target-switch: cannot start P4Runtime server on {targs.grpc_server_addr}: {exc}",
              file=sys.stderr)
        switch.close()
        return 1
    try:
        runtime = RuntimeServer(switch, args.thrift_port)
        runtime.start()
    except OSError as exc:
        logger.error("runtime CLI not available: cannot listen on 127.0.0.1:%d: %s", args.thrift_port, exc)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    switch.start()
    logger.info("p4target-switch running: ports %s, cpu port %s, gRPC %s, device id %d",
                {n: p.iface for n, p in switch.ports.items()}, switch.cpu_port, targs.grpc_server_addr,
                args.device_id)
    while not stop.wait(0.5):
        pass
    logger.info("shutting down")
    grpc_server.stop()
    if runtime is not None:
        runtime.stop()
    switch.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
