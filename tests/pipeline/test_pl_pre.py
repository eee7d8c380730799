"""simple_switch packet replication semantics: multicast, I2E/E2E clones with preserved field
lists, resubmit, recirculate, digests, drops, truncation, timestamps and queue metadata."""

from pl_jsonkit import ETHERNET, Doc, eth_doc, ex, extract, fld, hexv, prim, recorder, state
from scapy.all import Ether, raw

from p4target.pipeline import Pipeline

SM = "standard_metadata"
REG = {"type": "register_array", "value": "rec"}
PKT = raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=0x1111)) + b"payload!"


def sm(f):
    return fld(SM, f)


def base(ingress, egress=None, scalars=(("tmp", 32, False), ("x", 8, False)), field_lists=None):
    doc = eth_doc([list(s) for s in scalars])
    doc.d["register_arrays"].append({"name": "rec", "id": 0, "size": 16, "bitwidth": 64})
    if field_lists:
        doc.d["field_lists"] = field_lists
    doc.action("ing", [], ingress)
    doc.call("ingress", "tbl_ing", "ing")
    # egress stamps instance_type / egress_rid / egress_port into the source MAC
    stamp = prim("assign", fld("ethernet", "srcAddr"),
                 ex("|", ex("|", ex("<<", sm("instance_type"), hexv(32)), ex("<<", sm("egress_rid"), hexv(16))),
                    sm("egress_port")))
    doc.action("egr", [], (egress or []) + [stamp])
    doc.call("egress", "tbl_egr", "egr")
    return doc


def stamps(outs):
    res = []
    for port, data in outs:
        src = int.from_bytes(data[6:12], "big")
        res.append((port, src >> 32, (src >> 16) & 0xFFFF, src & 0xFFFF))
    return sorted(res)


def test_multicast_replicates_with_rid_and_instance_type():
    p = Pipeline(base([prim("assign", sm("mcast_grp"), hexv(5))]).d)
    p.set_mc_group(5, [(1, 10), (2, 20), (3, 30)])
    outs = p.process(0, PKT)
    assert stamps(outs) == [(1, 5, 10, 1), (2, 5, 20, 2), (3, 5, 30, 3)]
    assert all(d[12:] == PKT[12:] for _, d in outs)
    p.set_mc_group(5, [])
    assert p.process(0, PKT) == []


def test_mark_to_drop_clears_multicast_and_drops():
    p = Pipeline(base([prim("assign", sm("mcast_grp"), hexv(5)), prim("mark_to_drop", {"type": "header", "value": SM})]).d)
    p.set_mc_group(5, [(1, 1)])
    assert p.process(0, PKT) == []


def test_mark_to_drop_in_egress_drops():
    p = Pipeline(base([prim("assign", sm("egress_spec"), hexv(4))],
                      egress=[prim("mark_to_drop", {"type": "header", "value": SM})]).d)
    assert p.process(0, PKT) == []


def test_normal_unicast_instance_type_zero():
    p = Pipeline(base([prim("assign", sm("egress_spec"), hexv(4))]).d)
    assert stamps(p.process(0, PKT)) == [(4, 0, 0, 4)]


def test_i2e_clone_reparses_original_and_preserves_field_list():
    fl = [{"id": 1, "name": "fl", "elements": [{"type": "field", "value": ["scalars", "tmp"]}]}]
    ingress = [prim("clone_ingress_pkt_to_egress", hexv(7), hexv(1)),
               prim("assign", fld("scalars", "tmp"), hexv(99)),           # after the call: still preserved
               prim("assign", fld("scalars", "x"), hexv(7)),              # not in the list: reset
               prim("assign", fld("ethernet", "dstAddr"), hexv(0xAAAAAAAAAAAA)),
               prim("assign", sm("egress_spec"), hexv(2))]
    egress = [prim("register_write", REG, sm("instance_type"), fld("scalars", "tmp")),
              prim("register_write", REG, ex("+", sm("instance_type"), hexv(4)), fld("scalars", "x"))]
    p = Pipeline(base(ingress, egress, field_lists=fl).d)
    p.set_clone_session(7, [(9, 0)])
    outs = dict((port, data) for port, data in p.process(1, PKT))
    assert set(outs) == {2, 9}
    assert outs[2][:6] == b"\xaa" * 6                         # original: modified by ingress
    assert outs[9][:6] == PKT[:6] and outs[9][12:] == PKT[12:]  # clone: the packet as received
    assert stamps([(9, outs[9])]) == [(9, 1, 0, 9)]           # instance_type INGRESS_CLONE
    cells = p.registers["rec"].cells
    assert (cells[0], cells[4]) == (99, 7)        # original
    assert (cells[1], cells[5]) == (99, 0)        # clone: tmp preserved, x reset


def test_clone_to_unconfigured_session_is_ignored_and_truncation_applies():
    p = Pipeline(base([prim("clone_ingress_pkt_to_egress", hexv(3)), prim("assign", sm("egress_spec"), hexv(2))]).d)
    assert [port for port, _ in p.process(1, PKT)] == [2]
    p.set_clone_session(3, [(5, 1), (6, 2)], packet_length_bytes=16)
    outs = dict(p.process(1, PKT))
    assert len(outs[5]) == 16 and len(outs[6]) == 16 and len(outs[2]) == len(PKT)


def test_e2e_clone_carries_egress_changes():
    doc = base([prim("assign", sm("egress_spec"), hexv(2))])
    doc.action("clone_e2e", [], [prim("assign", fld("ethernet", "etherType"), hexv(0xBEEF)),
                                 prim("clone_egress_pkt_to_egress", hexv(8), hexv(0))])
    doc.table("egress", "tbl_clone", [], ["clone_e2e"], default=("clone_e2e", []), base_next="tbl_egr",
              const_default=True)
    doc.cond("egress", "is_normal", ex("==", sm("instance_type"), hexv(0)), "tbl_clone", "tbl_egr")
    doc.init("egress", "is_normal")
    p = Pipeline(doc.d)
    p.set_clone_session(8, [(6, 0)])
    outs = p.process(1, PKT)
    assert stamps(outs) == [(2, 0, 0, 2), (6, 2, 0, 6)]
    assert all(d[12:14] == b"\xbe\xef" for _, d in outs)


def test_resubmit_preserves_field_list_and_reruns_ingress():
    fl = [{"id": 1, "name": "fl", "elements": [{"type": "field", "value": ["scalars", "tmp"]}]}]
    doc = base([], field_lists=fl)
    doc.action("first", [], [prim("assign", fld("scalars", "tmp"), hexv(5)),
                             prim("resubmit_preserving_field_list", hexv(1))])
    doc.action("second", [], [prim("assign", sm("egress_spec"), fld("scalars", "tmp")),
                              prim("register_write", REG, hexv(0), sm("instance_type")),
                              prim("register_write", REG, hexv(1), sm("ingress_port"))])
    doc.table("ingress", "tbl_first", [], ["first"], default=("first", []), const_default=True)
    doc.table("ingress", "tbl_second", [], ["second"], default=("second", []), const_default=True)
    doc.cond("ingress", "again", ex("==", sm("instance_type"), hexv(6)), "tbl_second", "tbl_first")
    doc.init("ingress", "again")
    p = Pipeline(doc.d)
    outs = p.process(3, PKT)
    assert stamps(outs) == [(5, 0, 0, 5)]
    assert p.registers["rec"].cells[:2] == [6, 0]      # BMv2 resets ingress_port too


def test_recirculate_reinjects_deparsed_packet():
    fl = [{"id": 2, "name": "fl", "elements": [{"type": "field", "value": ["scalars", "tmp"]}]}]
    doc = base([], field_lists=fl)
    doc.action("route", [], [prim("assign", sm("egress_spec"), ex("+", fld("scalars", "tmp"), hexv(10))),
                             prim("register_write", REG, hexv(0), sm("instance_type"))])
    doc.call("ingress", "tbl_route", "route")
    doc.action("recirc", [], [prim("assign", fld("scalars", "tmp"), hexv(3)),
                              prim("assign", fld("ethernet", "etherType"), hexv(0x0101)),
                              prim("recirculate_preserving_field_list", hexv(2))])
    doc.table("egress", "tbl_recirc", [], ["recirc"], default=("recirc", []), const_default=True)
    # BMv2 resets instance_type to NORMAL at the end of ingress, so egress tells passes apart by
    # the preserved metadata
    doc.cond("egress", "first_pass", ex("==", fld("scalars", "tmp"), hexv(0)), "tbl_recirc", "tbl_egr")
    doc.init("egress", "first_pass")
    doc.init("ingress", "tbl_route")
    p = Pipeline(doc.d)
    outs = p.process(1, PKT)
    assert [port for port, _ in outs] == [13]
    assert outs[0][1][12:14] == b"\x01\x01"
    assert p.registers["rec"].cells[0] == 4                     # RECIRC seen by the second ingress


def test_digest_samples_fields_at_end_of_ingress():
    doc = base([prim("generate_digest", hexv(0), hexv(1)),
                prim("assign", fld("ethernet", "srcAddr"), hexv(0x0000000000EE)),
                prim("assign", sm("egress_spec"), hexv(1))])
    doc.d["learn_lists"] = [{"id": 1, "name": "mac_learn_digest_t",
                             "elements": [{"type": "field", "value": ["ethernet", "srcAddr"]},
                                          {"type": "field", "value": [SM, "ingress_port"]}]}]
    p = Pipeline(doc.d)
    got = []
    p.digest_sink = lambda *a: got.append(a)
    p.process(7, PKT)
    assert got == [(1, "mac_learn_digest_t", (0xEE, 7))]
    assert p.learn_lists[1].fields == [("ethernet.srcAddr", 48), ("standard_metadata.ingress_port", 9)]


def test_truncate():
    p = Pipeline(base([prim("truncate", hexv(20)), prim("assign", sm("egress_spec"), hexv(1))]).d)
    (port, data), = p.process(0, PKT)
    assert len(data) == 20


def test_timestamps_queue_metadata_and_packet_length():
    ingress = [prim("assign", sm("egress_spec"), hexv(2)),
               prim("register_write", REG, hexv(0), sm("ingress_global_timestamp")),
               prim("register_write", REG, hexv(1), sm("packet_length"))]
    egress = [prim("register_write", REG, hexv(2), sm(f)) for f in ()] + recorder(
        [sm("enq_timestamp"), sm("deq_timedelta"), sm("enq_qdepth"), sm("deq_qdepth"),
         sm("egress_global_timestamp"), sm("packet_length"), sm("ingress_global_timestamp"),
         sm("egress_spec")])
    # shift the egress recorder to cells 2..9
    for i, pr in enumerate(egress):
        pr["parameters"][1] = hexv(i + 2)
    p = Pipeline(base(ingress, egress).d)
    jobs = p.ingress(1, PKT, 1_000)
    assert [(j.egress_port, j.length) for j in jobs] == [(2, len(PKT))]
    outs, more = p.egress(jobs[0], 1_500, 1_740, 3, 2)
    assert more == [] and outs[0][0] == 2
    assert p.registers["rec"].cells[:10] == [1_000, len(PKT), 1_500, 240, 3, 2, 1_740, len(PKT), 1_000, 0]


def test_setvalid_adjusts_packet_length_seen_in_egress():
    doc = Doc({"ethernet": ETHERNET, "extra": [["v", 32, False]]})
    doc.parser([state("start", [extract("ethernet")])])
    doc.deparser(["ethernet", "extra"])
    doc.d["register_arrays"].append({"name": "rec", "id": 0, "size": 1, "bitwidth": 64})
    doc.action("ing", [], [prim("add_header", {"type": "header", "value": "extra"}),
                           prim("assign", fld("extra", "v"), hexv(0xDEADBEEF)),
                           prim("assign", sm("egress_spec"), hexv(1))])
    doc.call("ingress", "tbl_ing", "ing")
    doc.action("egr", [], recorder([sm("packet_length")]))
    doc.call("egress", "tbl_egr", "egr")
    p = Pipeline(doc.d)
    (port, data), = p.process(0, PKT)
    assert data == PKT[:14] + b"\xde\xad\xbe\xef" + PKT[14:]
    assert p.registers["rec"].cells[0] == len(PKT) + 4


def test_egress_clone_loop_is_bounded():
    # every copy clones itself again in egress: BMv2 would loop forever, we stop after 32 copies
    p = Pipeline(base([prim("assign", sm("egress_spec"), hexv(2))],
                      egress=[prim("clone_egress_pkt_to_egress", hexv(8), hexv(0))]).d)
    p.set_clone_session(8, [(6, 0)])
    outs = p.process(1, PKT)
    assert len(outs) == 33 and sorted({port for port, _ in outs}) == [2, 6]
