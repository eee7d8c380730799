"""Regenerate the installed ``p4runtime`` package's ``*_pb2.py`` modules with protoc.

The p4runtime wheels on PyPI (1.4.1 up to 1.6.0) carry gencode from protoc < 3.19, which builds its
descriptors directly; protobuf >= 4 with the upb runtime refuses that at import ("Descriptors cannot
be created directly ... regenerate with protoc >= 3.19.0"). Each old module holds its serialized
FileDescriptorProto, so this script reads it out of the source (without importing it), hands protoc the
descriptor set (``--descriptor_set_in``, grpcio-tools' bundled protoc) and writes protoc's modules over
the old ones. The ``*_pb2_grpc.py`` service modules only use the message classes and are kept.

Idempotent: modules already in the current form are left alone. Run by ``make install`` in the main
venv: ``.venv/bin/python tools/p4runtime_gencode.py``; exits non-zero with one line on failure.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

log = logging.getLogger("p4runtime_gencode")


class GencodeError(RuntimeError):
    pass


def package_dir(name: str = "p4") -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise GencodeError(f"package {name!r} is not installed (pip install p4runtime)")
    return Path(next(iter(spec.submodule_search_locations)))


def serialized_descriptor(source: str) -> bytes | None:
    """The ``serialized_pb`` of an old-style module's ``FileDescriptor(...)`` call; None for a module that
    protoc >= 3.20 wrote (it calls ``AddSerializedFile`` instead)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "FileDescriptor":
            for kw in node.keywords:
                if kw.arg == "serialized_pb":
                    value = ast.literal_eval(kw.value)
                    if isinstance(value, bytes):
                        return value
    return None


def _dependency_file(name: str) -> descriptor_pb2.FileDescriptorProto:
    """A dependency outside p4 (google/protobuf/any.proto, google/rpc/status.proto) from its installed
    module, which is current gencode (protobuf, googleapis-common-protos)."""
    module = importlib.import_module(name.removesuffix(".proto").replace("/", ".") + "_pb2")
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    return fdp


def descriptor_set(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> descriptor_pb2.FileDescriptorSet:
    """``files`` plus their transitive dependencies, dependencies first."""
    out = descriptor_pb2.FileDescriptorSet()
    done: set[str] = set()

    def add(name: str) -> None:
        if name in done:
            return
        done.add(name)
        fdp = files[name] if name in files else _dependency_file(name)
        for dep in fdp.dependency:
            add(dep)
        out.file.append(fdp)

    for name in sorted(files):
        add(name)
    return out


def regenerate(root: Path) -> list[Path]:
    """Rewrite every old-style ``*_pb2.py`` under ``root`` (the ``p4`` package); returns the rewritten paths."""
    old: dict[str, tuple[Path, descriptor_pb2.FileDescriptorProto]] = {}
    for path in sorted(root.rglob("*_pb2.py")):
        blob = serialized_descriptor(path.read_text())
        if blob is None:
            continue
        fdp = descriptor_pb2.FileDescriptorProto.FromString(blob)
        expected = path.relative_to(root.parent).as_posix().removesuffix("_pb2.py") + ".proto"
        if fdp.name != expected:
            raise GencodeError(f"{path}: descriptor names {fdp.name!r}, expected {expected!r}")
        old[fdp.name] = (path, fdp)
    if not old:
        return []
    with tempfile.TemporaryDirectory(prefix="p4rt-gencode-") as tmp:
        set_path = Path(tmp) / "p4runtime.pb"
        set_path.write_bytes(descriptor_set({n: f for n, (_p, f) in old.items()}).SerializeToString())
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={set_path}",
               f"--python_out={out_dir}", *sorted(old)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            hint = " (pip install grpcio-tools)" if "No module named" in res.stderr else ""
            raise GencodeError(f"protoc failed{hint}: {res.stderr.strip()}")
        for name, (path, _fdp) in old.items():
            new = out_dir / (name.removesuffix(".proto") + "_pb2.py")
            tmp_path = path.with_suffix(".py.new")
            tmp_path.write_bytes(new.read_bytes())
            tmp_path.replace(path)
            for cached in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
                cached.unlink()
    return [p for p, _f in old.values()]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = package_dir()
        done = regenerate(root)
        check = subprocess.run([sys.executable, "-c", "import p4.v1.p4runtime_pb2, p4.v1.p4runtime_pb2_grpc"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise GencodeError(f"p4runtime modules still fail to import: {check.stderr.strip().splitlines()[-1]}")
    except (GencodeError, OSError, SyntaxError, ValueError) as exc:
        print(f"p4runtime_gencode: error: {exc}", file=sys.stderr)
        return 1
    if done:
        log.info("p4runtime_gencode: regenerated %d module(s) under %s with protoc", len(done), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
