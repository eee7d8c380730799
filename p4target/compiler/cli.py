"""p4target-compile: command line mirroring p4c-bm2-ss (-o OUT.json, --p4runtime-files, -I, -D).

Outputs are written to temporary files and renamed into place only when compilation succeeded, so a
failed run never leaves partial outputs behind.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

from . import CompileError, compile_file, p4info_text


def _write_atomic(path: str, data: bytes) -> str:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".p4tc-", dir=d)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    # mkstemp creates 0600; give the outputs the mode a plain open() would (as p4c's are).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4target-compile",
                                 description="Compile a P4_16 v1model program to BMv2 JSON and P4Info.")
    ap.add_argument("source", help="P4 source file")
    ap.add_argument("-o", "--output", help="BMv2 JSON output file (default: SOURCE with .json)")
    ap.add_argument("--p4runtime-files", dest="p4runtime_files",
                    help="P4Info output: .txt/.txtpb (text), .json or .bin, comma-separated list allowed")
    ap.add_argument("--p4runtime-format", dest="p4runtime_format", choices=["text", "json", "binary"])
    ap.add_argument("-I", dest="include", action="append", default=[], help="include directory")
    ap.add_argument("-D", dest="define", action="append", default=[], help="NAME[=VALUE] macro")
    ap.add_argument("--arch", default="v1model", help="architecture (only v1model)")
    ap.add_argument("--target", default="bmv2", help="target (only bmv2)")
    ap.add_argument("--std", default="p4-16", help="language (only p4-16)")
    ap.add_argument("--p4v", default="16", help="language version (only 16)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args, unknown = ap.parse_known_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if unknown:
        # p4c-bm2-ss has many tuning flags (--Wdisable, --emit-externs...); they do not change our output
        print(f"warning: ignoring options {' '.join(unknown)}", file=sys.stderr)
    if args.p4v not in ("16", "p4-16"):
        print(f"error: unsupported: --p4v {args.p4v} (only P4_16)", file=sys.stderr)
        return 1
    if args.arch != "v1model" or args.std not in ("p4-16", "p4_16"):
        print(f"error: unsupported: --arch {args.arch} --std {args.std} (only v1model, p4-16)", file=sys.stderr)
        return 1
    defines = {}
    for d in args.define:
        name, _, value = d.partition("=")
        defines[name] = value if _ else "1"
    out_json = args.output or os.path.splitext(args.source)[0] + ".json"
    t0 = time.perf_counter()
    try:
        res = compile_file(args.source, include_dirs=args.include, defines=defines)
    except CompileError as e:
        print(str(e), file=sys.stderr)
        return 1
    except RecursionError:
        print(f"{args.source}: error: program nested too deeply", file=sys.stderr)
        return 1
    outputs: list[tuple[str, bytes]] = [(out_json, (json.dumps(res.bmv2_json, indent=2) + "\n").encode())]
    if args.p4runtime_files:
        from google.protobuf import json_format

        for path in args.p4runtime_files.split(","):
            fmt = args.p4runtime_format or ("json" if path.endswith(".json") else
                                            "binary" if path.endswith(".bin") else "text")
            if fmt == "json":
                data = json_format.MessageToJson(res.p4info).encode()
            elif fmt == "binary":
                data = res.p4info.SerializeToString()
            else:
                head = "# proto-file: p4/config/v1/p4info.proto\n# proto-message: p4.config.v1.P4Info\n\n" \
                    if path.endswith(".txtpb") else ""
                data = (head + p4info_text(res.p4info)).encode()
            outputs.append((path, data))
    tmps: list[tuple[str, str]] = []
    try:
        for path, data in outputs:
            tmps.append((_write_atomic(path, data), path))
        for tmp, path in tmps:
            os.replace(tmp, path)
    except OSError as e:
        for tmp, _ in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print(f"error: cannot write output: {e}", file=sys.stderr)
        return 1
    logging.getLogger(__name__).debug("compiled in %.3f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
