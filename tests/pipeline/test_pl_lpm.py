"""IPv4 LPM forwarding (tutorials' basic.p4 as hand-written BMv2 JSON) through the pipeline."""

import pytest
from pl_jsonkit import lpm_program
from scapy.all import ARP, IP, TCP, UDP, Ether, raw

from p4target.pipeline import Match, Pipeline, PipelineError

FWD = "MyIngress.ipv4_forward"


@pytest.fixture
def pipe():
    p = Pipeline(lpm_program())
    t = p.tables["MyIngress.ipv4_lpm"]
    t.add([Match("lpm", 0x0A000000, prefix_len=8)], FWD, [0x0000000000AA, 2])
    t.add([Match("lpm", 0x0A000100, prefix_len=24)], FWD, [0x0000000000BB, 3])
    t.add([Match("lpm", 0x0A000105, prefix_len=32)], FWD, [0x0000000000CC, 4])
    return p


def pkt(dst, ttl=64, payload=b"payload-bytes"):
    return raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:09") /
               IP(src="192.168.0.1", dst=dst, ttl=ttl, id=7) / UDP(sport=1000, dport=2000) / payload)


def test_longest_prefix_wins_and_packet_is_rewritten(pipe):
    out = pipe.process(1, pkt("10.0.1.7"))
    expected = raw(Ether(dst="00:00:00:00:00:bb", src="00:00:00:00:00:01") /
                   IP(src="192.168.0.1", dst="10.0.1.7", ttl=63, id=7) / UDP(sport=1000, dport=2000) /
                   b"payload-bytes")
    assert out == [(3, expected)]
    assert pipe.process(1, pkt("10.0.1.5"))[0][0] == 4
    assert pipe.process(1, pkt("10.9.9.9"))[0][0] == 2


def test_ipv4_checksum_is_recomputed(pipe):
    port, data = pipe.process(1, pkt("10.0.1.5", ttl=10))[0]
    got = Ether(data)
    ck = got[IP].chksum
    del got[IP].chksum
    assert IP(raw(got[IP]))[IP].chksum == ck
    assert got[IP].ttl == 9


def test_miss_runs_default_drop(pipe):
    assert pipe.process(1, pkt("11.0.0.1")) == []


def test_non_ipv4_goes_to_port_0_like_bmv2(pipe):
    # no table applies, egress_spec stays 0: BMv2 sends the packet to port 0 unchanged
    arp = raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="00:00:00:00:00:09") / ARP(pdst="10.0.0.1"))
    assert pipe.process(5, arp) == [(0, arp)]


def test_delete_and_default_change(pipe):
    t = pipe.tables["MyIngress.ipv4_lpm"]
    t.delete([Match("lpm", 0x0A000105, prefix_len=32)])
    assert pipe.process(1, pkt("10.0.1.5"))[0][0] == 3
    t.set_default(FWD, [0x0000000000DD, 9])
    assert pipe.process(1, pkt("99.0.0.1"))[0][0] == 9
    assert t.get_default() == (FWD, [0xDD, 9])
    t.reset_default()
    assert pipe.process(1, pkt("99.0.0.1")) == []


def test_truncated_ipv4_is_parser_error_not_drop(pipe):
    data = pkt("10.0.1.5")[:20]      # ethernet + 6 bytes of IPv4
    # ipv4 invalid -> no table, egress_spec 0, the bytes are carried through
    assert pipe.process(1, data) == [(0, data)]


def test_trace_only_when_log_sink_set(pipe):
    assert "LOG(" not in pipe.generated_source
    lines = []
    pipe.log_sink = lines.append
    pipe.process(1, pkt("10.0.1.7"))
    text = "\n".join(lines)
    assert "Parser 'parser' entering state 'parse_ipv4'" in text
    assert "Extracting header 'ipv4'" in text
    assert "Applying table 'MyIngress.ipv4_lpm'" in text
    assert "hit with handle" in text
    assert "Action MyIngress.ipv4_forward" in text
    assert "Transmitting packet of size" in text
    pipe.log_sink = None
    lines.clear()
    pipe.process(1, pkt("10.0.1.7"))
    assert lines == []


def test_tcp_payload_is_carried(pipe):
    data = raw(Ether() / IP(dst="10.0.1.5") / TCP(sport=1, dport=2, flags="PA") / (b"x" * 1000))
    (port, out), = pipe.process(1, data)
    assert port == 4 and len(out) == len(data) and out[-1000:] == b"x" * 1000


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", '{"header_types": 5}'])
def test_bad_json_is_a_pipeline_error(bad):
    with pytest.raises(PipelineError):
        Pipeline(bad)


def test_json_bytes_accepted():
    import json
    p = Pipeline(json.dumps(lpm_program()).encode())
    assert "MyIngress.ipv4_lpm" in p.tables
