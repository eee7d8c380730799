import json

import pytest

from controller.flowstate import (
    FlowKey,
    FlowState,
    FlowStateError,
    RoceState,
    TcpState,
    UdpState,
    dump_many,
    load_many,
    parse_reference,
)

KEY = b"k" * 32


def tcp_state():
    k = parse_reference("tcp:10.0.0.1:40000-10.0.0.2:5001")
    return FlowState(k, TcpState(phase=3, fwd_next_seq=1000, fwd_max_ack=5, fwd_max_window=65535, fwd_wscale=7,
                                 rev_next_seq=5, rev_max_ack=1000, rev_max_window=5000, rev_wscale=7,
                                 packets=10, bytes=10_000, first_seen=1, last_seen=2),
                     source_device="nic1", source_slot=17)


def test_reference_roundtrip_and_canonical():
    for text in ("tcp:10.0.0.1:40000-10.0.0.2:5001", "udp:10.0.0.2:53-10.0.0.1:999", "roce:10.0.0.1:49152-10.0.0.2:4791:qp0x12"):
        assert str(parse_reference(text)) == text
    k = parse_reference("tcp:10.0.0.2:5001-10.0.0.1:40000")
    assert str(k.canonical()) == "tcp:10.0.0.1:40000-10.0.0.2:5001"
    assert k.reversed().canonical() == k.canonical()
    assert parse_reference("roce:10.0.0.1-10.0.0.2:qp18") == FlowKey("roce", 0x0A000001, 0x0A000002, 0, 4791, 18)
    with pytest.raises(FlowStateError):
        parse_reference("tcp:10.0.0.1-10.0.0.2")
    with pytest.raises(FlowStateError):
        FlowKey("sctp", 1, 2)
    with pytest.raises(FlowStateError):
        FlowKey("tcp", 1, 2, 70000, 1)


def test_json_roundtrip_all_kinds():
    states = [tcp_state(),
              FlowState(parse_reference("udp:10.0.0.1:1-10.0.0.2:2"), UdpState(3, 300, 1, 2)),
              FlowState(parse_reference("roce:10.0.0.1-10.0.0.2:qp0x11"), RoceState(100, 99, 0, 5, 500, 1, 2))]
    for s in states:
        back = FlowState.from_json(s.to_json(KEY), KEY, program="flow_nic", program_version=1)
        assert back == s
    assert load_many(dump_many(states, KEY), KEY) == states


def test_tampered_record_refused():
    d = tcp_state().to_dict(KEY)
    d["state"]["fwd_next_seq"] += 1
    with pytest.raises(FlowStateError, match="integrity"):
        FlowState.from_dict(d, KEY)
    with pytest.raises(FlowStateError, match="integrity"):
        FlowState.from_json(tcp_state().to_json(KEY), b"other-key" * 4)
    d = tcp_state().to_dict(KEY)
    del d["hmac_sha256"]
    with pytest.raises(FlowStateError, match="no integrity tag"):
        FlowState.from_dict(d, KEY)


def test_version_and_corruption_errors():
    text = tcp_state().to_json(KEY)
    with pytest.raises(FlowStateError, match="program version"):
        FlowState.from_json(text, KEY, program_version=2)
    with pytest.raises(FlowStateError, match="program"):
        FlowState.from_json(text, KEY, program="gateway")
    with pytest.raises(FlowStateError, match="not JSON"):
        FlowState.from_json(text[:-5], KEY)
    # a record re-tagged with the right key but with a wrong field set is still refused
    from controller.flowstate import _tag
    d = json.loads(text)
    d.pop("hmac_sha256")
    d["state"].pop("phase")
    d["hmac_sha256"] = _tag(d, KEY)
    with pytest.raises(FlowStateError, match="do not match"):
        FlowState.from_dict(d, KEY)
    d["state"]["phase"] = 999
    d.pop("hmac_sha256")
    d["hmac_sha256"] = _tag(d, KEY)
    with pytest.raises(FlowStateError, match="phase"):
        FlowState.from_dict(d, KEY)


def test_load_many_is_all_or_nothing():
    good = json.loads(dump_many([tcp_state(), tcp_state()], KEY))
    good["flows"][1]["state"]["packets"] = 0
    with pytest.raises(FlowStateError, match="record 1"):
        load_many(json.dumps(good), KEY)


def test_state_class_must_match_kind_and_key_canonical():
    with pytest.raises(FlowStateError):
        FlowState(parse_reference("udp:10.0.0.1:1-10.0.0.2:2"), TcpState())
    with pytest.raises(FlowStateError, match="canonical"):
        FlowState(parse_reference("udp:10.0.0.2:1-10.0.0.1:2"), UdpState())


def test_short_or_missing_keys_refused():
    for key in (b"", b"k" * 15, None, "k" * 32):
        with pytest.raises(FlowStateError, match="at least 16 bytes"):
            tcp_state().to_json(key)
        with pytest.raises(FlowStateError, match="at least 16 bytes"):
            FlowState.from_json(tcp_state().to_json(KEY), key)
