"""Build helpers of the differential conformance suite: the program list and both compilers.

Every program of the compiler corpus (``tests/compiler/corpus/*.p4``) and of ``p4src/`` is compiled
once per pytest session with the embedded compiler (in process) and once with the real
``p4c-bm2-ss`` (subprocess). Each compile writes ``<name>.json`` and ``<name>.p4info.txtpb`` into the
directory the caller gives; later calls for the same program reuse the first build (copying the two
files when the caller asks for another directory).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from p4target.compiler import compile_file, p4info_text

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "compiler" / "corpus"
P4SRC = ROOT / "p4src"
P4C = "p4c-bm2-ss"
P4C_TIMEOUT_S = 120.0

_cache: dict[tuple[str, Path], tuple[Path, Path]] = {}


class P4cError(RuntimeError):
    """p4c-bm2-ss is missing or failed on a program (the message carries its stderr)."""


def programs() -> list[Path]:
    """Every program the suite compares: the compiler corpus, then p4src (sorted by name)."""
    return sorted(CORPUS.glob("*.p4")) + sorted(P4SRC.glob("*.p4"))


def include_dirs(prog: Path) -> list[str]:
    """The -I directories a program needs (p4src's programs include from p4src/include)."""
    prog = Path(prog).resolve()
    if prog.parent == P4SRC:
        return [str(P4SRC / "include")]
    return [str(prog.parent)]


def _outputs(prog: Path, out_dir: Path) -> tuple[Path, Path]:
    return out_dir / f"{prog.stem}.json", out_dir / f"{prog.stem}.p4info.txtpb"


def _cached(kind: str, prog: Path, out_dir: Path) -> tuple[Path, Path] | None:
    hit = _cache.get((kind, prog))
    if hit is None or not all(p.exists() for p in hit):
        return None
    want = _outputs(prog, out_dir)
    if want != hit:
        out_dir.mkdir(parents=True, exist_ok=True)
        for src, dst in zip(hit, want, strict=True):
            shutil.copyfile(src, dst)
    return want


def compile_embedded(prog: Path, out_dir: Path) -> tuple[Path, Path]:
    """Compile ``prog`` with the embedded compiler into ``out_dir``; returns (json, p4info txtpb).

    Raises :class:`p4target.compiler.CompileError` when the program does not compile.
    """
    prog, out_dir = Path(prog).resolve(), Path(out_dir)
    hit = _cached("embedded", prog, out_dir)
    if hit is not None:
        return hit
    res = compile_file(str(prog), include_dirs=include_dirs(prog))
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, info_path = _outputs(prog, out_dir)
    json_path.write_text(json.dumps(res.bmv2_json, indent=2) + "\n")
    info_path.write_text(p4info_text(res.p4info))
    _cache[("embedded", prog)] = (json_path, info_path)
    return json_path, info_path


def compile_p4c(prog: Path, out_dir: Path) -> tuple[Path, Path]:
    """Compile ``prog`` with p4c-bm2-ss into ``out_dir``; returns (json, p4info txtpb).

    Raises :class:`P4cError` (with p4c's stderr) when p4c-bm2-ss is not on PATH or fails.
    """
    prog, out_dir = Path(prog).resolve(), Path(out_dir)
    hit = _cached("p4c", prog, out_dir)
    if hit is not None:
        return hit
    exe = shutil.which(P4C)
    if exe is None:
        raise P4cError(f"{P4C} not on PATH (needed to compile {prog.name} with p4c)")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, info_path = _outputs(prog, out_dir)
    cmd = [exe, "--arch", "v1model", "--p4v", "16"]
    for d in include_dirs(prog):
        cmd += ["-I", d]
    cmd += ["-o", str(json_path), "--p4runtime-files", str(info_path), str(prog)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=P4C_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise P4cError(f"{P4C} timed out after {P4C_TIMEOUT_S:.0f} s on {prog.name}") from e
    if proc.returncode != 0 or not json_path.exists() or not info_path.exists():
        raise P4cError(f"{P4C} failed on {prog.name} (exit {proc.returncode}):\n{proc.stderr.strip()}")
    _cache[("p4c", prog)] = (json_path, info_path)
    return json_path, info_path
