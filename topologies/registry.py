"""The run registry: what each lab run started, so cleanup can remove exactly that and nothing else.

One JSON file per run in ``$FLOWMIG_LAB_DIR`` (default ``/tmp/flowmig-lab``) records the owner
process, the switch daemons (pid + command), the Mininet host shells with their network-namespace
inodes, and the root-namespace interfaces the run created. Every process a run starts also carries
``FLOWMIG_LAB=<run id>`` in its environment. ``topologies.cleanup`` reads both.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

ENV_TAG = "FLOWMIG_LAB"
_lock = threading.Lock()
_default_run: str | None = None


def registry_dir() -> Path:
    return Path(os.environ.get("FLOWMIG_LAB_DIR", "/tmp/flowmig-lab"))


def new_run_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def run_id() -> str:
    """The run id of this process when no network set one explicitly."""
    global _default_run
    if _default_run is None:
        _default_run = new_run_id()
    return _default_run


def _path(run: str) -> Path:
    return registry_dir() / f"{run}.json"


def read(run: str) -> dict:
    try:
        return json.loads(_path(run).read_text())
    except (OSError, json.JSONDecodeError):
        return {"run": run, "owner": None, "processes": {}, "hosts": {}, "interfaces": []}


def _write(run: str, data: dict) -> None:
    d = registry_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{run}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, _path(run))


def _update(run: str, fn) -> None:
    with _lock:
        data = read(run)
        data.setdefault("owner", os.getpid())
        if data["owner"] is None:
            data["owner"] = os.getpid()
        data.setdefault("created", time.time())
        fn(data)
        _write(run, data)


def record_process(run: str, pid: int, name: str, cmd: list[str]) -> None:
    _update(run, lambda d: d["processes"].__setitem__(str(pid), {"name": name, "cmd": cmd}))


def forget_process(run: str, pid: int) -> None:
    _update(run, lambda d: d["processes"].pop(str(pid), None))


def record_host(run: str, name: str, pid: int, netns: str | None) -> None:
    _update(run, lambda d: d["hosts"].__setitem__(name, {"pid": pid, "netns": netns}))


def record_interfaces(run: str, names: list[str]) -> None:
    def add(d: dict) -> None:
        d["interfaces"] = sorted(set(d["interfaces"]) | set(names))
    _update(run, add)


def remove(run: str) -> None:
    with _lock:
        _path(run).unlink(missing_ok=True)


def runs() -> list[str]:
    d = registry_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def netns_of(pid: int) -> str | None:
    """The network namespace of a process as 'net:[inode]', or None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path() -> Path:
    """One lock per machine, whatever the registry dir: interface names are machine-global."""
    return Path(os.environ.get("FLOWMIG_LAB_LOCK", "/tmp/flowmig-lab.lock"))


class LabBusy(RuntimeError):
    """Another lab holds the lab lock (its node and interface names would collide with ours)."""


class LabLock:
    """A cross-process lock held while a lab runs: Mininet recreates interfaces by name (deleting
    any existing one), so two labs with the same node names must never overlap on one machine.
    The kernel releases it when the holder dies; the holder's description is kept next to it."""

    def __init__(self, what: str, timeout: float = 120.0) -> None:
        self.what, self.timeout = what, timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        path = lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        holder_file = path.with_suffix(".holder")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = holder_file.read_text().strip() if holder_file.exists() else "?"
                    raise LabBusy(f"another lab is running ({holder}); waited {self.timeout:.0f}s. Stop it, "
                                  f"or if it is gone run: python -m topologies.cleanup") from None
                time.sleep(0.2)
        self._fd = fd
        holder_file.write_text(f"pid {os.getpid()}: {self.what}\n")

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            lock_path().with_suffix(".holder").unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
