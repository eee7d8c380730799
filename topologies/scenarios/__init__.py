"""Scenarios: topology + traffic + fault + expected outcome, run end to end (``flowmig run``).

``run(args)`` is what ``flowmig run --scenario NAME [--target auto|embedded|bmv2] [--tls tls|mtls]
[--report FILE] [--plot FILE] [-- --interval S --run-dir DIR]`` calls (``topologies.cli`` adds ``run`` to the
controller's CLI with ``add_arguments`` and ``run``); ``python -m topologies.scenarios NAME`` does the
same. The target ``auto`` (the default) is resolved by ``topologies.targets.resolve``; the resolved
name is printed and is the report's ``target``. Exit code 0 when every expectation held, 1 when one
failed (or the target cannot run here), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["run", "names", "main", "add_arguments"]

log = logging.getLogger(__name__)


def names() -> list[str]:
    from topologies.scenarios.catalog import scenarios
    return list(scenarios())


def add_arguments(ap: argparse.ArgumentParser, positional: bool = False) -> None:
    """The options of ``flowmig run`` (``positional``: the scenario is the first argument, as in
    ``python -m topologies.scenarios NAME``, instead of ``--scenario NAME``)."""
    if positional:
        ap.add_argument("scenario")
    else:
        ap.add_argument("--scenario", required=True)
    ap.add_argument("--target", choices=("auto", "embedded", "bmv2"), default="auto",
                    help="P4 target (default auto: bmv2 when p4c-bm2-ss and simple_switch_grpc are on PATH, "
                         "else embedded)")
    ap.add_argument("--tls", choices=("tls", "mtls"),
                    help="the switches serve P4Runtime over TLS only, with certificates made for the run "
                         "(mtls: clients must present one of the run's CA too); the controller uses them")
    ap.add_argument("--report", help="write the JSON report here")
    ap.add_argument("--plot", help="write the PNG plot here")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="further scenario options (-- --interval S --run-dir DIR)")


def _extra(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="flowmig run ... --", add_help=False)
    ap.add_argument("--interval", type=float, help="monitor sampling interval, seconds (default 0.1)")
    ap.add_argument("--run-dir", type=Path, help="where the lab config, app reports and logs go")
    ap.add_argument("--old-path-wait", type=float, default=0.0, metavar="MS",
                    help="migrations wait up to MS for the old path to drain before switching (default 0)")
    return ap.parse_args([a for a in argv if a != "--"])


def run(args: argparse.Namespace) -> int:
    """Run ``args.scenario`` on ``args.target``; write ``args.report`` / ``args.plot`` when given."""
    from topologies.scenarios.catalog import scenarios
    from topologies.scenarios.runner import run_scenario

    table = scenarios()
    sc = table.get(args.scenario)
    if sc is None:
        print(f"flowmig run: unknown scenario {args.scenario!r} (scenarios: {', '.join(table)})", file=sys.stderr)
        return 2
    from topologies.targets import TargetError, resolve
    asked = getattr(args, "target", None) or "auto"
    try:
        target = resolve(asked)
    except TargetError as exc:
        print(f"flowmig run: {exc}", file=sys.stderr)
        return 1
    try:
        extra = _extra(list(getattr(args, "extra", None) or []))
    except SystemExit:
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tls = getattr(args, "tls", None)
    print(f"flowmig run: scenario {args.scenario} on the {target} target"
          + (f" (--target {asked})" if asked != target else "")
          + (f", P4Runtime over {'mutual ' if tls == 'mtls' else ''}TLS" if tls else ""), flush=True)
    try:
        rep = run_scenario(sc, target, getattr(args, "report", None), getattr(args, "plot", None),
                           run_dir=extra.run_dir, interval=extra.interval,
                           old_path_wait=extra.old_path_wait / 1000, tls=tls)
    except KeyboardInterrupt:
        print("flowmig run: interrupted; the lab was torn down", file=sys.stderr)
        return 130
    return 0 if rep["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.scenarios", description=__doc__.split("\n")[0])
    add_arguments(ap, positional=True)
    return run(ap.parse_args(argv))
