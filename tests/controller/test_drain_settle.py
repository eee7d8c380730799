"""Settling a lossless flip by the gateway driver's own counts (``GatewayDriver.drained_counted``: one
barrier round trip) agrees with the device's drain registers, on the virtual fig2 with traffic running:
a flow the counts call drained is drained on the device, for good; flows outside FORWARD pass-through
are left to the registers (None). The migration finishes with nothing lost or reordered. A flow left
draining in the background keeps its data-plane lease renewed while the settling waits, and once
nobody renews it the gateway forwards it by itself."""

from __future__ import annotations

import time

from test_migration_steps import _check_delivery, _flows, _target_for  # vf, ctrl: conftest.py
from test_migration_vfabric import Traffic, wait_learned  # the project's own: no skip
from vfabric import udp_frame

from controller.gateway import SUSPEND_PUNT, FiveTuple
from controller.migration import Plan, Step, protocol_steps
from controller.migrator import Migrator


class CheckCounts(Step):
    """After the flip: the counted view against the registers, on every gateway of the batch."""

    name = "check_counts"
    undoable = False

    def __init__(self) -> None:
        self.rounds: dict[str, int] = {}

    def do(self, ctx) -> None:
        for g, ts in ctx.gw_tuples.items():
            drv = ctx.ctrl.gateway(g)
            tuples = list(ts)
            deadline = time.monotonic() + 2.0
            rounds = 0
            while True:
                counted = drv.drained_counted(tuples)
                rounds += 1
                assert counted is not None, f"{g}: flows in FORWARD pass-through are judged by the counts"
                on_device = set(drv.drained(tuples))   # read after the barrier: drained stays drained
                assert set(counted) <= on_device, f"{g}: counted drained but not on the device"
                if len(counted) == len(tuples) or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            assert len(counted) == len(tuples), f"{g}: {len(tuples) - len(counted)} flows never drained"
            self.rounds[g] = rounds


def test_counted_drain_agrees_with_the_registers(vf, ctrl):  # noqa: F811 - fixtures
    flows = _flows(8)
    tr = Traffic(vf, flows, pps=400)
    recs = wait_learned(ctrl, flows)
    where = {r.key: r.device for r in recs}
    movers = [k for k, d in where.items() if d != _target_for(where)]
    m = Migrator(ctrl)
    ctx = m.context(movers, _target_for(where))
    check = CheckCounts()
    steps = protocol_steps(lossless=True)
    i = [s.name for s in steps].index("redirect") + 1
    assert m.run(Plan([*steps[:i], check, *steps[i:]]), ctx), ctx.rec.summary()
    assert ctx.rec.outcome == "ok" and not ctx.rec.reason, ctx.rec.summary()
    assert set(check.rounds) == set(ctx.gw_tuples)
    for g in ctx.gw_tuples:   # settled: back on set_nic_port, out of buffering
        drv = ctrl.gateway(g)
        assert all(drv.entries[t][0] == "set_nic_port" for t in ctx.gw_tuples[g])
        assert drv.drained_counted(list(ctx.gw_tuples[g])) is None
    _check_delivery(vf, flows, tr)


def test_flows_not_in_forward_pass_through_are_left_to_the_registers(ctrl):  # noqa: F811 - fixture
    drv = ctrl.gateway("gwA")
    t = FiveTuple(0x0A0000FE, 0x0A0000FD, 17, 1, 2)
    assert drv.drained_counted([t]) is None            # not buffered
    drv.start_buffering([t])
    try:
        assert drv.drained_counted([t]) is None        # buffered, not passed through
        drv.pass_through([t], 2)                       # DIRECT pass-through: no drain count behind it
        assert drv.drained_counted([t]) is None
    finally:
        drv.stop_buffering([t])


LEASE = 0.3   # generous for a busy machine: renewals every 0.15 s, packets checked well past the lease


def test_background_settling_renews_the_lease_until_it_gives_up(vf, ctrl):  # noqa: F811 - fixtures
    """A flow on forward_after_drain with a punt never replayed cannot drain: the background settling
    renews its lease (new generations, seen by the gateway) and the flow's packets keep being punted
    for several leases; after the settling gave up nobody renews, and the gateway forwards the flow to
    the entry's port by itself (hostB receives it)."""
    drv = ctrl.gateway("gwA")
    sport = _flows(1)[0]
    t = FiveTuple(0x0A000001, 0x0A000002, 17, sport, 9000)
    port = drv.port_of("nic1")
    (drain,) = drv.alloc_drains([t]).values()
    gid = drv.helper.get_id("register", "drain_lease_gen")

    def send(i: int) -> None:
        vf.send("hostA", udp_frame("hostA", "hostB", sport, 9000, i.to_bytes(4, "big")))

    def delivered() -> list[int]:
        with vf.inbox_cv:
            return [int.from_bytes(f[-4:], "big") for f in vf.inboxes["hostB"] if f[34:36] == sport.to_bytes(2, "big")]

    drv.start_buffering([t])
    try:
        drv.apply({t: drv.leased("suspend_flow", LEASE, mode=SUSPEND_PUNT, port=port, drain=drain)})
        send(0)
        deadline = time.monotonic() + 2.0
        while drv.punts([t]) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert drv.punts([t]) == 1
        # the flip with that punt outstanding (never replayed: the flow cannot drain)
        drv.apply({t: drv.leased("forward_after_drain", LEASE, port=port, drain=drain)})
        gens = {drv.entries[t][1]["lease_gen"]}
        th = drv.settle_drains_later([t], port, wait=4 * LEASE, lease=LEASE)
        sent = 1
        while th.is_alive():
            send(sent)
            sent += 1
            gens.add(drv.entries[t][1]["lease_gen"])
            time.sleep(LEASE / 4)
        th.join()
        time.sleep(0.1)
        assert delivered() == [], "a renewed lease expired"
        assert drv.punts([t]) == sent, "every packet punted while the settling renewed the lease"
        assert len(gens) >= 4, f"renewed every lease/2 over 4 leases: {len(gens) - 1} renewals"
        assert drv.entries[t][0] == "forward_after_drain" and t in drv.settling   # given up, left as is
        last = drv.entries[t][1]["lease_gen"]
        assert drv.regs.read([(gid, drain)])[(gid, drain)] == last, "the gateway's lease runs under the last gen"
        # nobody renews any more: past the lease the gateway forwards the flow itself
        time.sleep(2 * LEASE)
        send(sent)
        deadline = time.monotonic() + 2.0
        while not delivered() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delivered() == [sent]
        assert drv.punts([t]) == sent
    finally:
        drv.apply({t: None})
        drv.stop_buffering([t])
        drv.settling.discard(t)
        drv.free_drains([t])
