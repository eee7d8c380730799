"""Migration steps and their undo on the virtual fig2 (real switches, pipelines, P4Runtime; wires in
Python): a failure injected at every step boundary through the migrator's public seam, a rollback
after a completed redirect, and a VM move (host, routes and VM file) that rolls back with the rest.
The receiver side checks that no packet is lost or reordered."""

from __future__ import annotations

import json
import struct
import time

import pytest
from p4.v1 import p4runtime_pb2
from test_migration_vfabric import Traffic, received, wait_learned  # the project's own: no skip
from vfabric import udp_frame

from controller import commands as C
from controller.gateway import MARKER
from controller.migration import Plan, Step, protocol_steps, steps
from controller.migrator import Migrator
from controller.nic import NicError

BASE = 41000
UNDOABLE = ["warm", "suspend", "quiesce", "save", "validate", "load", "redirect"]




def _flows(n: int) -> list[int]:
    """A fresh block of source ports per test (the fabric is shared by the module)."""
    global BASE
    BASE += 20
    return list(range(BASE, BASE + n))


def _check_delivery(vf, flows: list[int], tr: Traffic) -> None:
    time.sleep(0.3)
    sent = tr.stop()
    got = received(vf, flows, sent)
    lost = {f: sent[f] - len(set(got[f])) for f in flows if sent[f] != len(set(got[f]))}
    reordered = sum(1 for f in flows for a, b in zip(got[f], got[f][1:], strict=False) if b < a)
    dups = sum(len(got[f]) - len(set(got[f])) for f in flows)
    assert not lost, f"packets lost: {lost}"
    assert reordered == 0 and dups == 0, (reordered, dups)


def _assert_on_old_device(ctrl, where: dict) -> None:
    """Still tracked (not suspended) on the original NIC; the gateways no longer suspend them."""
    for k, dev in where.items():
        r = ctrl.inventory.get(k)
        assert r.device == dev
        rep = ctrl.nic(dev).run(C.SAVE, [(k, r.slot)])[0]
        assert rep.status == C.STATUS_OK and not rep.flags & C.SLOT_SUSPENDED, k
    for g in ("gwA", "gwB"):
        left = {t: a for t, (a, _) in ctrl.gateway(g).entries.items()
                if t != MARKER and a in ("suspend_flow", "forward_after_drain")}
        assert not left, f"{g}: {left}"


def _target_for(where: dict) -> str:
    used = set(where.values())
    return next((n for n in ("nic3", "nic2", "nic1") if n not in used), "nic3")


def _movers(recs) -> tuple[dict, str, list]:
    """Where each learned reference is, a NIC to move them to, and those not already there."""
    where = {r.key: r.device for r in recs}
    target = _target_for(where)
    return where, target, [k for k, d in where.items() if d != target]


@pytest.mark.parametrize("step", [*UNDOABLE, "release", "resume"])
def test_a_failure_at_any_step_boundary(vf, ctrl, step):
    flows = _flows(6)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    where, target, movers = _movers(recs)
    slots = {r.key: r.slot for r in recs}
    m = Migrator(ctrl)
    m.inject_failure(step, NicError(f"injected at {step}"))
    record = m.migrate(movers, target)
    assert not m.before_step, "the one-shot hook is spent"
    if step in UNDOABLE:
        assert record.outcome == "rolled_back", record.summary()
        assert record.failed_step == step and f"injected at {step}" in record.reason
        assert set(record.steps_ms) == set(UNDOABLE[:UNDOABLE.index(step) + 1])   # the plan stopped there
        assert record.moved == [] and record.downtime_ms == 0.0
        assert record.packets_buffered == record.packets_replayed   # all replayed toward the old NIC
        assert not [k for k in ctrl.nic(target).placed if k in movers]
        _assert_on_old_device(ctrl, {k: where[k] for k in movers})
    else:
        # after the point of no return: reported, not rolled back
        assert record.outcome == "ok" and record.failed_step == "", record.summary()
        assert f"injected at {step}" in record.reason
        assert record.downtime_ms > 0
        assert all(ctrl.inventory.get(k).device == target for k in movers)
        if step == "release":   # the sources were not cleared: their stale state is still there
            assert "stale state left on the source" in record.reason
            assert all(ctrl.nic(where[k]).run(C.SAVE, [(k, slots[k])])[0].status == C.STATUS_OK for k in movers)
    _check_delivery(vf, flows, tr)


def test_undo_after_a_completed_redirect_restores_the_old_path(vf, ctrl):
    """The protocol's last undoable step is redirect; a step failing after it (here an added one)
    undoes the flip too: entries back to the old NIC, the target cleared, nothing lost or reordered."""

    class FailAfterFlip(Step):
        name = "fail_after_flip"

        def do(self, ctx) -> None:
            time.sleep(0.05)       # packets flow to the target meanwhile
            raise RuntimeError("failing after the flip")

    flows = _flows(6)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    where, target, movers = _movers(recs)
    before = {g: ctrl.gateway(g).snapshot(ctrl.gateway(g).entries) for g in ("gwA", "gwB")}
    m = Migrator(ctrl)
    ctx = m.context(movers, target)
    steps = [s for s in protocol_steps(lossless=True) if s.undoable]
    redirect = steps[-1]
    assert redirect.name == "redirect"
    assert not m.run(Plan([*steps, FailAfterFlip()]), ctx)
    rec = ctx.rec
    assert rec.outcome == "rolled_back" and rec.failed_step == "fail_after_flip", rec.summary()
    assert redirect.flipped == {}    # undone (and a second undo is a no-op)
    redirect.undo(ctx)
    assert json.dumps([s.describe() for s in steps])   # what each step changed is JSON-able
    for g, snap in before.items():
        assert {t: e for t, e in ctrl.gateway(g).entries.items() if t in snap} == snap
    assert not [k for k in ctrl.nic(target).placed if k in movers]
    _assert_on_old_device(ctrl, {k: where[k] for k in movers})
    _check_delivery(vf, flows, tr)


def test_plan_rules_and_bad_step_names(ctrl):
    class Undoable(Step):
        name = "undoable_x"

        def do(self, ctx) -> None:
            pass
    with pytest.raises(ValueError, match="after the point of no return"):
        Plan([*protocol_steps(lossless=True), Undoable()])
    with pytest.raises(ValueError, match="unknown migration step 'lod'"):
        Migrator(ctrl).inject_failure("lod")


def _route(ctrl, gw: str, ip: str) -> tuple[str, dict[str, int]]:
    import ipaddress
    h = ctrl.gateway(gw).helper
    want = int(ipaddress.IPv4Address(ip))
    for e in ctrl.fabric[gw].read([p4runtime_pb2.TableEntry(table_id=h.get_id("table", "ipv4_routes"))]):
        m = {k.rsplit(".", 1)[-1]: v for k, v in h.decode_match(e.table_entry).items()}
        if m["dst_addr"] == (want, 32):
            action, params = h.decode_action(e.table_entry)
            return action.rsplit(".", 1)[-1], params
    raise AssertionError(f"{gw}: no route for {ip}")


@pytest.mark.parametrize("fault", ["load", "tampered_vm_config"])
def test_vm_move_failure_rolls_back_host_routes_and_file(vf, ctrl, tmp_path, fault):
    from controller.policies import VmMigration, VmMoveError
    flows = _flows(2)   # on at most 2 NICs: all frozen while the host moves (none already on the target)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    ip = ctrl.hosts["hostB"]["ip"]
    vm_file = tmp_path / "vm-hostB.json"
    m = Migrator(ctrl)
    vm = VmMigration(ctrl, m, vf.move_host)
    where = {k: ctrl.inventory.get(k).device for k in vm.references_of("hostB")}
    target = _target_for({r.key: r.device for r in recs})
    assert all(r.device != target for r in recs)
    moved_meanwhile: list[tuple] = []

    def watch(step, ctx) -> None:
        if step.name == "load":
            moved_meanwhile.append((vf.attached["hostB"], _route(ctrl, "gwB", ip), vm_file.exists()))
    m.before_step.append(watch)
    if fault == "load":
        m.inject_failure("load", NicError("injected at load"))
    else:
        def tamper(step, ctx) -> None:
            if step.name == "vm_check":
                doc = json.loads(vm_file.read_text())
                doc["flows"][0]["saved_at"] += 1      # covered by the HMAC tag
                vm_file.write_text(json.dumps(doc))
        m.before_step.append(tamper)
    with pytest.raises(VmMoveError, match="load" if fault == "load" else "vm_check"):
        vm.migrate("hostB", "gwB", 5, target, vm_file)
    # the host was moved and its route rewritten while its references were frozen...
    if fault == "load":
        assert moved_meanwhile == [(("gwB", 5), ("route_to_port", {"port": 5}), True)]
    # ...and all of it is undone
    assert vf.attached["hostB"] == ("gwB", 1)
    assert _route(ctrl, "gwB", ip) == ("route_to_port", {"port": 1})
    assert _route(ctrl, "gwA", ip)[0] == "route_via_nics"
    assert not vm_file.exists()
    assert ctrl.hosts["hostB"]["port"] == 1
    _assert_on_old_device(ctrl, where)
    _check_delivery(vf, flows, tr)


def test_vm_move_and_back(vf, ctrl, tmp_path):
    from controller.policies import VmMigration
    flows = _flows(2)   # on at most 2 NICs: all frozen while the host moves (none already on the target)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    ip = ctrl.hosts["hostB"]["ip"]
    m = Migrator(ctrl)
    seen: list[Step] = []
    m.before_step.append(lambda step, ctx: seen.append(step))
    vm = VmMigration(ctrl, m, vf.move_host)
    target = _target_for({r.key: r.device for r in recs})
    assert all(r.device != target for r in recs)
    out = vm.migrate("hostB", "gwB", 5, target, tmp_path / "vm.json")
    assert out["migration"]["outcome"] == "ok", out
    # each step says what it changed, JSON-able (what a journal would keep)
    said = {s.name: s.describe() for s in seen}
    json.dumps(said)
    n = len(out["migration"]["moved"])
    assert len(said["load"]["loaded"]) == n and len(said["suspend"]["gateways"]["gwA"]["tuples"]) == n
    assert said["move_host"]["moved"] and said["move_host"]["to"] == ["gwB", 5]
    assert {"vm_config", "move_host", "routes", "vm_check"} <= set(out["migration"]["steps_ms"])
    assert set(out["timings_ms"]) == {"save_vm_config_ms", "move_host_ms", "routes_ms", "check_vm_config_ms"}
    doc = json.loads((tmp_path / "vm.json").read_text())
    assert doc["from"] == {"switch": "gwB", "port": 1} and doc["to"] == {"switch": "gwB", "port": 5, "nic": target}
    assert len(doc["flows"]) == len(out["migration"]["moved"]) > 0
    assert vf.attached["hostB"] == ("gwB", 5) and _route(ctrl, "gwB", ip) == ("route_to_port", {"port": 5})
    assert all(ctrl.inventory.get(r.key).device == target for r in recs)
    time.sleep(0.3)
    other = next(n for n in ("nic1", "nic2", "nic3") if n != target)   # frozen again while the host moves
    back = vm.migrate("hostB", "gwB", 1, other, tmp_path / "vm-back.json")
    assert back["migration"]["outcome"] == "ok", back
    assert "load" in back["migration"]["steps_ms"] and back["migration"]["moved"]
    assert vf.attached["hostB"] == ("gwB", 1) and _route(ctrl, "gwB", ip) == ("route_to_port", {"port": 1})
    _check_delivery(vf, flows, tr)   # delivered through both moves: the routes followed the host


@pytest.mark.parametrize("wait", [0.0, 1.0])
def test_old_path_drain_markers(vf, ctrl, wait):
    """Drain markers go down every old path at the suspension and come back from the far gateway.
    Switching at once (wait 0): no old_path step, the record still learns when the old paths were
    empty. With a bounded wait: the flip happens after they are back (after_flip_ms == 0)."""
    flows = _flows(4)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    _, target, movers = _movers(recs)
    record = Migrator(ctrl, old_path_wait=wait).migrate(movers, target)
    assert record.outcome == "ok", record.summary()
    assert ("old_path" in record.steps_ms) == (wait > 0)
    assert record.drain_tokens and all(record.drain_tokens)
    deadline = time.monotonic() + 2
    while record.old_path()["drained_ms"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    old = record.to_dict()["old_path"]
    assert old["drained_ms"] is not None and old["drained_ms"] > 0, old
    if wait:
        assert old["after_flip_ms"] == 0.0 and 0 <= record.old_path_wait_ms < 1000, (old, record.old_path_wait_ms)
    else:
        assert record.old_path_wait_ms is None
    _check_delivery(vf, flows, tr)


def test_marker_board_is_bounded_and_wakes_waiters():
    from controller.gateway import MarkerBoard
    board = MarkerBoard(keep=3)
    for t in range(5):
        board.arrived(t)
    assert board.arrival(0) is None and board.arrival(4) is not None   # the oldest forgotten
    assert not board.wait([99], 0.01)
    import threading
    threading.Timer(0.05, board.arrived, args=(99,)).start()
    assert board.wait([4, 99], 2.0)


def test_a_suspension_near_its_lease_is_rolled_back_not_flipped(vf, ctrl):
    """Past 80 % of the lease before the flip, the gateways would soon let the flow through to the old
    NIC by themselves (where its state is frozen): the migration is rolled back instead."""
    flows = _flows(1)
    tr = Traffic(vf, flows, pps=100)
    (rec,) = wait_learned(ctrl, flows)
    m = Migrator(ctrl, lease=0.5)   # 0.42 s before load: past 80 %, short of the lease itself
    m.before_step.append(lambda step, ctx: time.sleep(0.42) if step.name == "load" else None)
    record = m.migrate([rec.key], _target_for({rec.key: rec.device}))
    assert record.outcome == "rolled_back" and record.failed_step == "redirect", record.summary()
    assert "lease" in record.reason
    _assert_on_old_device(ctrl, {rec.key: rec.device})
    _check_delivery(vf, flows, tr)


def _source_flags(ctrl, where: dict, slots: dict) -> dict:
    """Each reference's slot flags on its source, read by a SAVE from the controller."""
    return {k: ctrl.nic(where[k]).run(C.SAVE, [(k, slots[k])])[0].flags for k in where}


@pytest.mark.parametrize("path_saves", [True, False])
def test_small_batches_read_their_sources_by_path_saves(vf, ctrl, path_saves, monkeypatch):
    """Path saves (a SAVE out of each gateway, behind its packets toward the old NIC) give the states
    in the quiesce's round trip and freeze nothing; without them the path markers come back and the
    Save step freezes the sources (SUSPEND, on the in-band path forced here: the register path reads
    without freezing). Nothing is lost or reordered either way."""
    for n in ("nic1", "nic2", "nic3"):   # drv.path = "inband", undone after the test
        drv = ctrl.nic(n)
        for attr, value in (("_path", "inband"), ("transfer_path", "inband"), ("batch_threshold", None)):
            monkeypatch.setattr(drv, attr, value)
    flows = _flows(4)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    where, target, movers = _movers(recs)
    movers = movers[:steps.PATH_SAVE_MAX]
    slots = {r.key: r.slot for r in recs}
    seen: dict = {}
    m = Migrator(ctrl, path_saves=path_saves)
    m.before_step.append(lambda step, ctx: seen.update(_source_flags(ctrl, {k: where[k] for k in movers}, slots))
                         if step.name == "load" else None)
    record = m.migrate(movers, target)
    assert record.outcome == "ok" and record.reason == "", record.summary()
    assert record.saved_by == ("path" if path_saves else "markers")
    assert set(seen) == set(movers)
    frozen = {k for k, f in seen.items() if f & C.SLOT_SUSPENDED}
    assert frozen == (set() if path_saves else set(movers))
    _check_delivery(vf, flows, tr)


def test_the_nics_batch_support_is_probed_before_the_suspension(vf, ctrl, monkeypatch):
    """The path saves go as command batches; whether a NIC executes batches is asked once per channel,
    by the warm step, not by the first path save while the flows are held."""
    for n in ("nic1", "nic2", "nic3"):
        monkeypatch.setattr(ctrl.nic(n).channel, "batch_max", None)
    flows = _flows(3)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    where, target, movers = _movers(recs)
    probed: dict = {}
    m = Migrator(ctrl)
    m.before_step.append(lambda step, ctx: probed.update({n: ctrl.nic(n).channel.batch_max for n in ctx.by_src})
                         if step.name == "suspend" else None)
    record = m.migrate(movers, target)
    assert record.outcome == "ok" and record.saved_by == "path", record.summary()
    assert probed and all(v == C.BATCH_MAX for v in probed.values()), probed
    _check_delivery(vf, flows, tr)


def test_a_batch_over_the_path_save_limit_uses_path_markers(vf, ctrl, monkeypatch):
    monkeypatch.setattr(steps, "PATH_SAVE_MAX", 1)
    flows = _flows(6)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    _, target, movers = _movers(recs)
    assert len(movers) > 1
    record = Migrator(ctrl).migrate(movers, target)
    assert record.outcome == "ok" and record.saved_by == "markers", record.summary()
    _check_delivery(vf, flows, tr)


def test_unanswered_path_saves_fall_back_to_sampled_counters(vf, ctrl, monkeypatch):
    """Path saves that never reach the old NIC (here: not sent) leave the quiesce to the counters, as
    lost path markers do; the migration still moves the flows with nothing lost."""
    for g in ("gwA", "gwB"):
        monkeypatch.setattr(ctrl.gateway(g), "send_frames", lambda port, frames: None)
    flows = _flows(3)
    tr = Traffic(vf, flows, pps=300)
    recs = wait_learned(ctrl, flows)
    _, target, movers = _movers(recs)
    movers = movers[:steps.PATH_SAVE_MAX]
    record = Migrator(ctrl, quiesce_timeout=0.05).migrate(movers, target)
    assert record.outcome == "ok" and record.saved_by == "counters", record.summary()
    assert all(ctrl.inventory.get(k).device == target for k in movers)
    _check_delivery(vf, flows, tr)


def test_a_packet_past_the_suspension_after_the_path_save_is_reported(vf, ctrl):
    """Path saves freeze nothing: a packet that reaches the old NIC past the gateways' suspension (here
    injected on the NIC's wire from gwA) after its path save is counted there; Release's CLEAR reply
    shows it and the record says so."""
    flows = _flows(1)
    tr = Traffic(vf, flows, pps=200)
    (rec,) = wait_learned(ctrl, flows)
    src, target = rec.device, _target_for({rec.key: rec.device})
    tr.stop()

    def stray(step, ctx):
        if step.name == "validate":
            vf._queues[src].put((1, udp_frame("hostA", "hostB", flows[0], 9000, struct.pack("!I", 10 ** 6))))
            time.sleep(0.1)
    m = Migrator(ctrl)
    m.before_step.append(stray)
    record = m.migrate([rec.key], target)
    assert record.outcome == "ok" and record.saved_by == "path", record.summary()
    assert "counted packets on their source after the path save" in record.reason, record.reason
    assert str(rec.key) in record.reason


def test_the_latest_path_save_of_a_reference_read_on_two_paths_is_kept():
    """A reference both gateways send toward its NIC is read once per path; the later read (more
    packets counted: the counter only grows) has seen both paths' packets, whichever came back first."""
    from types import SimpleNamespace

    from controller.flowstate import FlowKey
    from controller.migration.steps import Quiesce

    k1, k2 = FlowKey("udp", 1, 2, 3, 4), FlowKey("udp", 1, 2, 3, 5)

    class Pending:
        def __init__(self, replies):
            self.replies, self.cancelled = replies, False

        def wait(self, timeout):
            return self.replies

        def cancel(self):
            self.cancelled = True

    def reply(n):
        return C.Command(status=C.STATUS_OK, packets=n, bytes=10 * n)
    via_a = Pending([reply(7), reply(3)])            # gwA's path: k1 then k2
    via_b = Pending([reply(5)])                      # gwB's path: k1 only, read before gwA's
    nic = SimpleNamespace(check=lambda replies, items, what: None)
    ctx = SimpleNamespace(quiesce_timeout=1.0, ctrl=SimpleNamespace(nic=lambda name: nic),
                          by_src={"nic1": [(k1, 10), (k2, 11)]},
                          path_saves=[("nic1", [(k1, 10)], via_b), ("nic1", [(k1, 10), (k2, 11)], via_a)])
    got = Quiesce._wait_path_saves(ctx)
    assert [r.packets for r in got["nic1"]] == [7, 3]
    # one path not answered: no states (the counters decide), the rest no longer awaited
    late = Pending([reply(1)])

    def timeout(t):
        raise C.CommandError("no reply")
    late.wait = timeout
    rest = Pending([reply(2)])
    ctx.path_saves = [("nic1", [(k1, 10)], late), ("nic1", [(k2, 11)], rest)]
    assert Quiesce._wait_path_saves(ctx) == {} and rest.cancelled and ctx.path_saves == []


def test_the_trusted_buffer_is_tagged_when_asked_for(vf, ctrl):
    """The migration loads the FlowStates themselves; their HMAC-tagged records (the trusted buffer)
    are made on first use, off the suspension: ``last_states`` verifies with the lab's key."""
    from controller.flowstate import FlowState
    flows = _flows(2)
    tr = Traffic(vf, flows, pps=200)
    recs = wait_learned(ctrl, flows)
    _, target, movers = _movers(recs)
    m = Migrator(ctrl)
    assert m.last_states == []
    record = m.migrate(movers, target)
    assert record.outcome == "ok", record.summary()
    assert m._last.tagged == []                       # nothing tagged while the flows were held
    states = [FlowState.from_dict(d, ctrl.config.hmac_key) for d in m.last_states]
    assert sorted(str(s.key) for s in states) == sorted(str(k) for k in movers)
    assert m.last_states is m.last_states            # made once
    _check_delivery(vf, flows, tr)
