"""Finding and compiling the P4 programs the switches run (build/<prog>.json + .p4info.txtpb).

A program is (re)compiled when its JSON is missing or older than ``p4src/<prog>.p4`` or any
``p4src/include`` file, or — for the bmv2 target — was not written by p4c (its ``__meta__.compiler``):
with the embedded compiler (``p4target.compiler.compile_file``) by default,
or with ``p4c-bm2-ss`` for the bmv2 target. Outputs are written atomically so two runs compiling at
once never see half a file.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
P4SRC_DIR = REPO_ROOT / "p4src"
BUILD_DIR = REPO_ROOT / "build"
TARGETS = ("embedded", "bmv2")


class ProgramError(RuntimeError):
    """A program could not be found or compiled; carries the compiler's diagnostics."""


@dataclass(frozen=True)
class ProgramPaths:
    name: str
    source: Path
    json: Path
    p4info: Path


def paths(program: str, p4src: Path = P4SRC_DIR, build: Path = BUILD_DIR) -> ProgramPaths:
    return ProgramPaths(program, p4src / f"{program}.p4", build / f"{program}.json",
                        build / f"{program}.p4info.txtpb")


def _inputs(pp: ProgramPaths) -> list[Path]:
    inc = pp.source.parent / "include"
    return [pp.source, *sorted(inc.rglob("*.p4"))] if inc.is_dir() else [pp.source]


def is_outdated(pp: ProgramPaths) -> bool:
    """True when the JSON or P4Info is missing or older than a source file."""
    if not (pp.json.is_file() and pp.p4info.is_file()):
        return True
    built = min(pp.json.stat().st_mtime, pp.p4info.stat().st_mtime)
    return any(src.stat().st_mtime > built for src in _inputs(pp))


def ensure_compiled(program: str, target: str = "embedded", p4src: Path = P4SRC_DIR,
                    build: Path = BUILD_DIR) -> ProgramPaths:
    """Return the program's build paths, compiling it first if needed."""
    if target not in TARGETS:
        raise ProgramError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    pp = paths(program, p4src, build)
    if not pp.source.is_file():
        if pp.json.is_file() and pp.p4info.is_file():
            return pp  # prebuilt, no sources shipped
        raise ProgramError(f"P4 program {program!r}: no source {pp.source} and no build {pp.json}")
    if not is_outdated(pp) and (target != "bmv2" or built_by_p4c(pp)):
        return pp
    build.mkdir(parents=True, exist_ok=True)
    log.info("compiling %s for the %s target", pp.source, target)
    if target == "bmv2":
        _compile_p4c(pp)
    else:
        _compile_embedded(pp)
    return pp


def built_by_p4c(pp: ProgramPaths) -> bool:
    """True when the program's JSON was written by p4c (BMv2 runs what p4c emits; the embedded switch
    runs either compiler's output)."""
    import json
    try:
        meta = json.loads(pp.json.read_bytes()).get("__meta__") or {}
    except (OSError, ValueError):
        return False
    return "p4lang/p4c" in str(meta.get("compiler", ""))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _compile_embedded(pp: ProgramPaths) -> None:
    import json

    from google.protobuf import text_format

    try:
        from p4target.compiler import CompileError, compile_file
    except ImportError as exc:  # the compiler is part of this repository
        raise ProgramError(f"embedded compiler unavailable: {exc}") from exc
    inc = pp.source.parent / "include"
    try:
        result = compile_file(str(pp.source), include_dirs=[str(inc)] if inc.is_dir() else [])
    except CompileError as exc:
        raise ProgramError(f"compiling {pp.source} failed:\n{exc}") from exc
    _atomic_write(pp.p4info, text_format.MessageToString(result.p4info).encode())
    _atomic_write(pp.json, json.dumps(result.bmv2_json, indent=1).encode())


def _compile_p4c(pp: ProgramPaths) -> None:
    p4c = shutil.which("p4c-bm2-ss")
    if p4c is None:
        raise ProgramError("target bmv2 needs p4c-bm2-ss on PATH (not found); use --target embedded")
    with tempfile.TemporaryDirectory(dir=pp.json.parent) as tmp:
        out_json, out_info = Path(tmp) / pp.json.name, Path(tmp) / pp.p4info.name
        cmd = [p4c, "--arch", "v1model", "-I", str(pp.source.parent / "include"), "-o", str(out_json),
               "--p4runtime-files", str(out_info), str(pp.source)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProgramError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        os.replace(out_info, pp.p4info)
        os.replace(out_json, pp.json)
