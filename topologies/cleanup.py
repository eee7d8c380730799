"""Remove what lab runs left behind: switch daemons, host shells and their namespaces, interfaces.

Like ``mn -c`` but without Open vSwitch, and narrow: only processes that carry our environment tag
(``FLOWMIG_LAB=<run>``) or that the run registry recorded (verified against /proc before killing),
processes still inside a recorded host namespace, and the recorded root-namespace interfaces. A
Mininet host's namespace disappears with the last process in it, and a veth pair with its namespace.

``cleanup()`` (``make clean``) removes runs whose owner process has exited; ``cleanup(everything=True)``
also runs still owned by a live process; ``cleanup(run=ID)`` one run (test finalizers).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from topologies import registry

log = logging.getLogger(__name__)


def _environ_tag(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{registry.ENV_TAG}=".encode()
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _protected() -> set[int]:
    """This process and its ancestors: never killed (the tag is inherited from the builder)."""
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def tagged_processes(run: str | None = None) -> list[int]:
    """Pids carrying the lab tag (of one run, or of any run)."""
    protected = _protected()
    out = []
    for pid in _all_pids():
        tag = _environ_tag(pid)
        if tag is not None and (run is None or tag == run) and pid not in protected:
            out.append(pid)
    return out


def processes_in_netns(netns: set[str]) -> list[int]:
    protected = _protected()
    return [pid for pid in _all_pids() if pid not in protected and registry.netns_of(pid) in netns]


def existing_interfaces(names: list[str]) -> list[str]:
    return [n for n in names if Path(f"/sys/class/net/{n}").exists()]


def _kill(pids: list[int], grace: float = 2.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(registry.pid_alive(p) and not _zombie(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if registry.pid_alive(pid) and not _zombie(pid):
            log.warning("killing %d (%s)", pid, _cmdline(pid)[:80])
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def leftovers(run: str) -> dict[str, list]:
    """What of a run still exists: tagged processes, processes in its host namespaces, interfaces."""
    data = registry.read(run)
    netns = {h["netns"] for h in data.get("hosts", {}).values() if h.get("netns")}
    recorded = [int(p) for p, info in data.get("processes", {}).items()
                if registry.pid_alive(int(p)) and not _zombie(int(p))
                and info.get("cmd") and info["cmd"][0] in _cmdline(int(p))]
    return {
        "processes": sorted(set(tagged_processes(run)) | set(recorded)),
        "netns_processes": processes_in_netns(netns) if netns else [],
        "interfaces": existing_interfaces(data.get("interfaces", [])),
    }


def cleanup_run(run: str) -> dict[str, list]:
    """Remove one run's leftovers; returns what was found (empty lists when it was already clean)."""
    found = leftovers(run)
    data = registry.read(run)
    # Host namespaces: only trust a recorded namespace while its recorded shell still holds it
    # (a freed namespace inode can be reused by someone else's namespace).
    live_ns = {h["netns"] for h in data.get("hosts", {}).values()
               if h.get("netns") and registry.netns_of(h.get("pid", 0)) == h["netns"]}
    victims = set(found["processes"]) | (set(processes_in_netns(live_ns)) if live_ns else set())
    if victims:
        log.info("run %s: stopping %d processes", run, len(victims))
        _kill(sorted(victims))
    for name in existing_interfaces(data.get("interfaces", [])):
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    registry.remove(run)
    return found


def cleanup(everything: bool = False, run: str | None = None) -> dict[str, dict[str, list]]:
    """Clean lab leftovers. Returns {run id: what was found} for the runs it cleaned."""
    report: dict[str, dict[str, list]] = {}
    if run is not None:
        report[run] = cleanup_run(run)
        return report
    for rid in registry.runs():
        owner = registry.read(rid).get("owner")
        if everything or owner == os.getpid() or not registry.pid_alive(owner):
            report[rid] = cleanup_run(rid)
    # Tagged processes whose run has no registry file (e.g. the file was deleted) or a dead owner.
    known_live = {rid for rid in registry.runs()}
    strays = [pid for pid in tagged_processes() if _environ_tag(pid) not in known_live]
    if strays:
        log.info("stopping %d stray tagged processes", len(strays))
        _kill(strays)
        report.setdefault("<untracked>", {"processes": strays, "netns_processes": [], "interfaces": []})
    return report


def main() -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Remove leftovers of flowmig lab runs (mn -c without OVS).")
    ap.add_argument("--all", action="store_true", help="also runs whose owner process is still alive")
    ap.add_argument("--run", help="only this run id")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(cleanup(everything=args.all, run=args.run), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
