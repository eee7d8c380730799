"""Inventory: RoCE QPs keyed as the NIC keys them, with their UDP ports from digests."""

from controller.flowstate import FlowKey, parse_reference
from controller.inventory import Inventory

A, B = 0x0A000001, 0x0A000002


def test_roce_ports_kept_from_digest_and_not_lost_by_a_scan():
    inv = Inventory()
    qp = FlowKey("roce", A, B, 0, 0, 0x11)
    inv.learn(qp, "nic2", 5, (49153, 4791))
    rec = inv.learn(qp, "nic2", 5)                   # a register scan: no ports
    assert rec.udp_ports == (49153, 4791)
    # the textual form with ports finds the same record
    assert inv.get(parse_reference("roce:10.0.0.1:49153-10.0.0.2:4791:qp0x11")) is rec
    assert inv.get(parse_reference("roce:10.0.0.1-10.0.0.2:qp0x11")) is rec
    assert len(inv) == 1 and rec.key == qp
    assert rec.reference() == "roce:10.0.0.1:49153-10.0.0.2:4791:qp0x11"
    assert inv.get(parse_reference(rec.reference())) is rec


def test_qps_sharing_a_five_tuple():
    inv = Inventory()
    a = inv.learn(FlowKey("roce", A, B, 0, 0, 1), "nic2", 1, (50000, 4791))
    b = inv.learn(FlowKey("roce", A, B, 0, 0, 2), "nic2", 2, (50000, 4791))
    c = inv.learn(FlowKey("roce", A, B, 0, 0, 3), "nic2", 3, (50001, 4791))
    d = inv.learn(FlowKey("roce", B, A, 0, 0, 4), "nic2", 4, (50000, 4791))
    assert inv.sharing_tuple(a) == [b]
    assert inv.sharing_tuple(c) == [] and inv.sharing_tuple(d) == []


def test_a_scan_forgets_references_whose_slots_were_emptied_but_not_newer_ones():
    import time as _time

    inv = Inventory()
    a, b, c = (FlowKey("udp", 1, 2, p, 9) for p in (1, 2, 3))
    inv.learn(a, "nic1", 10)
    inv.learn(b, "nic1", 11)
    inv.learn(c, "nic2", 12)
    t0 = _time.time() + 1e-3
    _time.sleep(0.002)
    late = FlowKey("udp", 1, 2, 4, 9)
    inv.learn(late, "nic1", 13)             # a digest during the scan: kept
    assert inv.forget_missing("nic1", {a}, t0) == 1   # b's slot was emptied
    assert inv.find(b) is None and inv.find(a) and inv.find(late) and inv.find(c)
    assert inv.count_on("nic1") == 2 and inv.slots_on("nic1") == {10, 13}
