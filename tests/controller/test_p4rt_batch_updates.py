"""The batch writers' Updates, filled in place (P4InfoHelper.table_update_raw / register_update_raw), are the
messages the general builders make (P4InfoHelper.table_entry / register_entry), byte for byte."""

import pytest
from ctl_p4info_fixture import make_p4info
from p4.v1 import p4runtime_pb2 as pb

from controller.p4rt.p4info import P4InfoError, P4InfoHelper

MATCH = {"hdr.ipv4.src_addr": "10.0.0.1", "hdr.ipv4.dst_addr": "10.0.0.2", "meta.l4_sport": 5}
PARAMS = {"port": 3, "dmac": "00:00:00:00:00:02"}


@pytest.fixture
def helper():
    return P4InfoHelper(make_p4info())


def _update(utype: int, **entity) -> pb.Update:
    up = pb.Update(type=utype)
    for field, msg in entity.items():
        getattr(up.entity, field).CopyFrom(msg)
    return up


def test_table_update_equals_the_general_builder(helper):
    for utype in (pb.Update.INSERT, pb.Update.MODIFY):
        got = helper.table_update_raw(utype, "flow_forwarding", MATCH, "set_egress", PARAMS)
        want = _update(utype, table_entry=helper.table_entry("flow_forwarding", MATCH, "set_egress", PARAMS))
        assert got == want
        assert got.SerializeToString() == want.SerializeToString()
    got = helper.table_update_raw(pb.Update.DELETE, "flow_forwarding", MATCH)
    assert not got.entity.table_entry.HasField("action")
    assert got == _update(pb.Update.DELETE, table_entry=helper.table_entry("flow_forwarding", MATCH))


def test_table_update_refuses_bad_input(helper):
    with pytest.raises(P4InfoError, match="params"):
        helper.table_update_raw(pb.Update.INSERT, "flow_forwarding", MATCH, "set_egress", {"port": 3})
    with pytest.raises(P4InfoError, match="no match field"):
        helper.table_update_raw(pb.Update.INSERT, "flow_forwarding", {"bogus": 1})


def test_register_update_equals_the_general_builder(helper):
    for index in (0, 1023):
        got = helper.register_update_raw("tcp_next_seq_fwd", index, 0x0102)
        assert got.entity.register_entry.HasField("index")  # index 0 is a cell, not "every cell"
        want = _update(pb.Update.MODIFY, register_entry=helper.register_entry("tcp_next_seq_fwd", index, 0x0102))
        assert got == want
        assert got.SerializeToString() == want.SerializeToString()
