import pytest
from ctl_p4info_fixture import make_p4info
from p4.v1 import p4data_pb2, p4runtime_pb2

from controller.p4rt import codec
from controller.p4rt.p4info import P4InfoError, P4InfoHelper


@pytest.fixture
def helper():
    return P4InfoHelper(make_p4info())


def test_names_and_ids(helper):
    assert helper.get_id("table", "MyIngress.flow_forwarding") == 33554433
    assert helper.get_id("table", "flow_forwarding") == 33554433
    assert helper.get_name(16777217) == "MyIngress.set_egress"
    assert helper.match_field("flow_forwarding", "hdr.ipv4.dst_addr").id == 2
    assert helper.match_field("flow_forwarding", "l4_sport").id == 3
    assert helper.action_param("set_egress", "dmac").bitwidth == 48
    assert helper.register_width("tcp_next_seq_fwd") == 32
    assert helper.get("digest", "new_flow_t").fields["src_addr"].bitwidth == 32


def test_unknown_names_are_clear(helper):
    with pytest.raises(P4InfoError, match="unknown table 'nope'.*flow_forwarding"):
        helper.get_id("table", "nope")
    with pytest.raises(P4InfoError, match="no match field"):
        helper.match_field("flow_forwarding", "bogus")
    with pytest.raises(P4InfoError, match="missing params"):
        helper.action("set_egress", {"port": 1})


def test_table_entry_builder_is_canonical(helper):
    te = helper.table_entry("flow_forwarding",
                            {"hdr.ipv4.src_addr": "10.0.0.1", "hdr.ipv4.dst_addr": "10.0.0.2",
                             "meta.l4_sport": 5},
                            "set_egress", {"port": 3, "dmac": "00:00:00:00:00:02"})
    assert te.table_id == 33554433
    assert [m.exact.value for m in te.match] == [b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\x05"]
    assert [p.value for p in te.action.action.params] == [b"\x03", b"\x02"]
    assert helper.decode_match(te) == {"hdr.ipv4.src_addr": 0x0A000001, "hdr.ipv4.dst_addr": 0x0A000002,
                                       "meta.l4_sport": 5}
    assert helper.decode_action(te) == ("MyIngress.set_egress", {"port": 3, "dmac": 2})


def test_lpm_and_ternary(helper):
    te = helper.table_entry("ipv4_lpm", {"hdr.ipv4.dst_addr": "10.1.2.3/8"}, "set_egress",
                            {"port": 1, "dmac": 0})
    assert te.match[0].lpm.value == b"\x0a\x00\x00\x00" and te.match[0].lpm.prefix_len == 8
    te = helper.table_entry("acl", {"hdr.ethernet.dst_addr": (0x0102, 0xFF)}, "set_egress",
                            {"port": 1, "dmac": 0}, priority=10)
    assert te.match[0].ternary.value == b"\x02" and te.match[0].ternary.mask == b"\xff"


def test_register_entry_and_packet_out(helper):
    re_ = helper.register_entry("tcp_next_seq_fwd", 7, 0x1000)
    assert re_.index.index == 7 and re_.data.bitstring == b"\x10\x00"
    with pytest.raises(P4InfoError):
        helper.register_entry("tcp_next_seq_fwd", 5000)
    po = helper.packet_out(b"abc", {"opcode": 2})
    assert [(m.metadata_id, m.value) for m in po.metadata] == [(1, b"\x00"), (2, b"\x02")]
    with pytest.raises(P4InfoError):
        helper.packet_out(b"abc", {"bogus": 1})


def test_decode_packet_in_and_digest(helper):
    pin = p4runtime_pb2.PacketIn(payload=b"x")
    pin.metadata.add(metadata_id=1, value=b"\x00\x05")  # padded: accepted
    pin.metadata.add(metadata_id=2, value=b"\x03")
    assert helper.packet_metadata("packet_in", pin.metadata) == {"ingress_port": 5, "reason": 3}
    data = p4data_pb2.P4Data()
    data.struct.members.add(bitstring=codec.encode_int(9, 16))
    data.struct.members.add(bitstring=codec.encode_int(0x0A000001, 32))
    assert helper.digest_members(385875969, data) == {"slot": 9, "src_addr": 0x0A000001}


def test_cookie_depends_on_config(helper):
    assert helper.cookie(b"a") != helper.cookie(b"b")
    assert helper.cookie(b"a") == P4InfoHelper(make_p4info()).cookie(b"a")
