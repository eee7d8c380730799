"""Crash consistency on the virtual fig2 (real switches and P4Runtime; wires in Python): a controller
process is SIGKILLed at every step boundary of a migration (and at random instants) while a
sequence-numbered UDP flow runs; the gateways' lease resumes the flow by itself, and the next
controller's start finishes or undoes the migration. Plus the journal itself: tags, lock, compaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_migration_vfabric import Traffic, _parse, wait_learned  # the project's own: no skip

from controller import commands as C
from controller.config import load_config
from controller.journal import Journal
from controller.recovery import HELD
from controller.runtime import Controller
from topologies.scenarios.crash import run_victim

HERE = Path(__file__).resolve().parent
LEASE = 0.3
COMMITTED = {"redirect", "release", "resume", "after"}
BASE = 47000


# ---- the journal -----------------------------------------------------------------------------------------
def test_journal_records_verify_and_forged_lines_are_ignored(tmp_path):
    j = Journal(tmp_path / "config.journal", b"k" * 32)

    class Ctx:   # the parts of a MigrationContext the begin record reads
        class rec:
            id, mode = 7, "lossless"
        ctrl = None
        target, gw_tuples, by_src, src_of = "nic2", {}, {}, {}
    assert j.try_lock()
    mid = j.begin(Ctx)
    j.step(mid, "suspend")
    j.step(mid, "redirect")
    (open_,) = j.open_migrations()
    assert open_.id == mid and open_.steps == ["suspend", "redirect"] and open_.committed
    assert oct(j.path.stat().st_mode & 0o777) == "0o600"
    # a line signed with another key, and a line that is not JSON, are skipped
    other = Journal(j.path, b"x" * 32)
    other.step(mid, "release")
    with open(j.path, "ab") as f:
        f.write(b"garbage\n")
    assert j.open_migrations()[0].steps == ["suspend", "redirect"]
    j.end(mid, "ok")
    assert j.open_migrations() == [] and j.path.stat().st_size == 0   # emptied by its holder
    j.unlock()


def test_journal_lock_is_held_across_processes_and_dropped_by_death(tmp_path):
    j = Journal(tmp_path / "config.journal", b"k" * 32)
    code = (f"import sys, time; sys.path.insert(0, {str(HERE.parents[1])!r}); "
            f"from controller.journal import Journal; j = Journal({str(j.path)!r}, b'k' * 32); "
            "assert j.try_lock(); print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        assert not j.try_lock()
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        assert j.try_lock()   # the kernel dropped the dead holder's lock
        j.unlock()
    finally:
        p.kill()


# ---- killing the controller ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def observer(cfg_path):
    """A backup controller: reads the switches, never writes (the victims and the recoverers are
    primary)."""
    cfg = load_config(cfg_path)
    cfg.log_dir = None
    cfg.election_id = (0, 5)
    c = Controller(cfg, hosts=cfg.hosts).start()
    yield c
    c.close()


def _flow() -> int:
    global BASE
    BASE += 1
    return BASE


def _victim(cfg_path, flow: int, at: str, mode: str = "lossless") -> tuple[dict, int]:
    return run_victim(cfg_path, f"udp-sport:{flow}", at, mode=mode, lease=LEASE)


def _held(ctrl) -> dict:
    return {(g, t): e for g in ctrl.gateways for t, e in ctrl.gateway(g).entries.items() if e[0] in HELD}


def _where(ctrl, key) -> dict[str, int]:
    """NIC -> flags of the slot holding ``key`` (by its placed or hash slots; SAVE changes nothing)."""
    out = {}
    for name, drv in ctrl.nics.items():
        cand = sorted({*drv.hash_slots(key), *([drv.placed[key]] if key in drv.placed else [])})
        for r in drv.run(C.SAVE, [(key, s) for s in cand]):
            if r.status == C.STATUS_OK:
                out[name] = r.flags
    return out


AT = ["warm", "suspend", "quiesce", "save", "validate", "load", "redirect", "release", "resume", "after",
      "random:15", "random:15", "random:15"]


@pytest.mark.parametrize("at", AT, ids=[f"{a}-{i}" for i, a in enumerate(AT)])
def test_killed_at_every_step_the_lease_then_the_next_controller_recover(vf, cfg_path, observer, at):
    flow = _flow()
    tr = Traffic(vf, [flow], pps=200)
    try:
        wait_learned(observer, [flow])
        info, rc = _victim(cfg_path, flow, at)
        killed = rc == -signal.SIGKILL
        assert killed or at.startswith("random"), rc
        before = len(_parse(vf, [flow])[flow])
        # the lease: with nobody to recover it, the flow gets through again by itself
        time.sleep(LEASE * 2 + 0.3)
        n_lease = len(_parse(vf, [flow])[flow])
        assert n_lease > before + 20, f"nothing delivered {LEASE * 2 + 0.3:.1f} s after the kill ({at})"
        # the next controller
        cfg = load_config(cfg_path)
        cfg.log_dir = None
        t0 = time.monotonic()
        nxt = Controller(cfg, hosts=cfg.hosts).start()
        try:
            rec = nxt.recovery
            assert not rec.problems, rec.lines()
            assert not _held(nxt), _held(nxt)
            nxt.scan()
            key = next((r.key for r in nxt.inventory.all() if str(r.key) == info["reference"]), None)
            assert key is not None, f"{info['reference']} on no NIC after recovery"
            where = _where(nxt, key)
            assert len(where) == 1, f"{info['reference']} on {where} after recovery"
            (nic, flags), = where.items()
            assert not flags & C.SLOT_SUSPENDED, f"left frozen on {nic}"
            if killed and not at.startswith("random"):
                expect = info["target"] if at in COMMITTED else info["source"]
                assert nic == expect, (at, info, rec.lines())
                if at != "after":
                    (m,) = rec.migrations
                    assert m["decision"] == ("forward" if at in COMMITTED else "back"), rec.lines()
            assert nxt.journal is not None and nxt.journal.open_migrations() == []
        finally:
            nxt.close()
        recovered = time.monotonic()
        time.sleep(0.4)
        sent = tr.stop()
        got = _parse(vf, [flow])[flow]
        assert got and got[-1] >= sent[flow] - 30, f"the flow stopped: last {got[-1]} of {sent[flow]}"
        after = got[n_lease:]
        assert all(b > a for a, b in zip(after, after[1:], strict=False)), "reordered after the lease"
        assert recovered - t0 < 10
    finally:
        tr._stop.set()


def test_killed_in_drop_mode_the_lease_forwards_to_the_old_nic(vf, cfg_path, observer):
    flow = _flow()
    tr = Traffic(vf, [flow], pps=200)
    try:
        wait_learned(observer, [flow])
        info, rc = _victim(cfg_path, flow, "save", mode="drop")
        assert rc == -signal.SIGKILL
        before = len(_parse(vf, [flow])[flow])
        time.sleep(LEASE * 2 + 0.3)
        assert len(_parse(vf, [flow])[flow]) > before + 20
        cfg = load_config(cfg_path)
        cfg.log_dir = None
        with Controller(cfg, hosts=cfg.hosts).start() as nxt:
            assert [m["decision"] for m in nxt.recovery.migrations] == ["back"]
            assert not _held(nxt)
    finally:
        tr.stop()


def test_entries_without_a_journal_are_judged_by_what_they_say(vf, cfg_path, observer, tmp_path):
    """A controller killed mid-migration and its journal lost: a controller without any journal
    (``--switch`` arguments) only reports the held entries; one with the lab's (now empty) journal
    settles them by their own ports and resumes the frozen source."""
    flow = _flow()
    tr = Traffic(vf, [flow], pps=200)
    try:
        wait_learned(observer, [flow])
        journal = Path(str(cfg_path)).with_suffix(".journal")
        info, rc = _victim(cfg_path, flow, "load")
        assert rc == -signal.SIGKILL
        # a controller with no journal at all (--switch arguments) has no lock to tell a live migration
        # from a dead one: it reports the held entries and leaves them
        bare = load_config(cfg_path)
        bare.log_dir, bare.journal = None, None
        with Controller(bare, hosts=bare.hosts).start() as c:
            assert c.recovery.skipped.startswith("no journal") and "2 suspended gateway entries" in \
                c.recovery.problems[0], c.recovery
            assert len(_held(c)) == 2
        os.replace(journal, tmp_path / "moved-away.journal")   # the lab's journal lost: judged by the entries
        cfg = load_config(cfg_path)
        cfg.log_dir = None
        with Controller(cfg, hosts=cfg.hosts).start() as nxt:
            rec = nxt.recovery
            assert rec.migrations == [] and sum(rec.entries.values()) >= 1, rec.lines()
            assert not _held(nxt)
            nxt.scan()
            key = next(r.key for r in nxt.inventory.all() if str(r.key) == info["reference"])
            where = _where(nxt, key)
            assert list(where) == [info["source"]] and not where[info["source"]] & C.SLOT_SUSPENDED, where
    finally:
        tr.stop()


def test_cli_recover_reports_and_a_second_run_finds_nothing(vf, cfg_path, observer, capsys):
    from controller.cli import main
    flow = _flow()
    tr = Traffic(vf, [flow], pps=200)
    try:
        wait_learned(observer, [flow])
        info, rc = _victim(cfg_path, flow, "validate")
        assert rc == -signal.SIGKILL
        capsys.readouterr()
        assert main(["--config", str(cfg_path), "recover"]) == 0
        out = capsys.readouterr().out
        assert "rolled back" in out and info["source"] in out, out
        assert main(["--config", str(cfg_path), "recover", "--json"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["migrations"] == [] and not any(rep["entries"].values()) and rep["journal"].endswith(".journal")
        with pytest.raises(SystemExit) as e:
            main(["--config", str(cfg_path), "migrate", info["reference"], "--to", "nic1", "--lease", "0"])
        assert e.value.code == 2
        assert "must be positive" in capsys.readouterr().err
        # the reference migrates again as usual, and the flow keeps flowing
        assert main(["--config", str(cfg_path), "migrate", info["reference"], "--to", info["target"]]) == 0, \
            capsys.readouterr()
        n = len(_parse(vf, [flow])[flow])
        time.sleep(0.5)
        assert len(_parse(vf, [flow])[flow]) > n + 50
    finally:
        tr.stop()
