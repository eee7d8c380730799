"""The crash drill on Mininet (root): under live kernel TCP, a controller is SIGKILLed at every step
boundary of a migration and at random instants, and a new one started at once (``flowmig recover``).
Every connection survives (no reset, no byte lost or corrupted: the receivers verify the streams),
nothing is left suspended, each interrupted migration is rolled forward past ``redirect`` and back
before it, and the migrated connection's stall stays bounded by the lease plus TCP's retransmission
timer. Both targets (bmv2 marked ``bmv2``)."""

from __future__ import annotations

import pytest
from test_scenarios_mininet import _mininet_missing  # the project's own: no skip

from topologies.scenarios.crash import STEPS, drill

pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(_mininet_missing() is not None, reason=_mininet_missing() or "")]

LEASE = 0.5
# the lease, then TCP's backed-off retransmission timer (RTO 200 ms doubling: one retransmission lands
# within another 2 leases), then the recovering controller's start (about a second)
STALL_BOUND_MS = (LEASE * 3 + 1.5) * 1000
KILLS = [*STEPS, "after", "random:15", "random:15", "random:15"]
FORWARD = {"redirect", "release", "resume"}


@pytest.mark.parametrize("target", ["embedded", pytest.param("bmv2", marks=pytest.mark.bmv2)])
def test_a_controller_killed_at_every_step_costs_no_connection(target, tmp_path):
    lines: list[str] = []
    res = drill(target, KILLS, lease=LEASE, streams=4, work=tmp_path, progress=lines.append)
    conns = res["connections"]
    assert len(conns) == 4, res
    bad = [c for c in conns if not c["ok"] or c["gaps"] or c["corrupt"]]
    assert not bad, f"connections hurt: {bad}\n" + "\n".join(lines)
    for row in res["kills"]:
        at = row["at"]
        assert not row["problems"], row
        if not at.startswith("random"):
            assert row["killed"], row
            if at == "after":
                assert row["decisions"] == [], row
            else:
                assert row["decisions"] == ["forward" if at in FORWARD else "back"], row
        assert row["stall_ms"] is not None and row["stall_ms"] < STALL_BOUND_MS, (row, lines)
