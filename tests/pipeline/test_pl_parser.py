"""Parser state machine: stacks, lookahead, verify, select masks/concatenation, errors, value sets,
and header stack operations in actions."""

from pl_jsonkit import (
    ETHERNET,
    IPV4,
    Doc,
    action_program,
    ex,
    extract,
    extract_stack,
    fld,
    hdr,
    hexv,
    prim,
    recorder,
    state,
    trans,
)
from scapy.all import IP, Ether, raw

from p4target.pipeline import Pipeline

MPLS = [["label", 20, False], ["tc", 3, False], ["bos", 1, False], ["ttl", 8, False]]


def mpls_doc(size=3):
    doc = Doc({"ethernet": ETHERNET}, scalars=[["idx", 8, False], ["tmp", 32, False]])
    doc.stack("mpls", MPLS, size)
    doc.header("ipv4", IPV4)
    doc.d["errors"] = doc.d["errors"] + [["BadTtl", 7]]
    doc.parser([
        state("start", [extract("ethernet")], [fld("ethernet", "etherType")],
              [trans(0x8847, "parse_mpls"), trans(None, None)]),
        state("parse_mpls", [extract_stack("mpls"),
                             {"op": "verify", "parameters": [
                                 ex("!=", {"type": "stack_field", "value": ["mpls", "ttl"]}, hexv(0)),
                                 hexv(7)]}],
              [{"type": "stack_field", "value": ["mpls", "bos"]}],
              [trans(0, "parse_mpls", nbytes=1), trans(1, "parse_ipv4", nbytes=1)]),
        state("parse_ipv4", [extract("ipv4")]),
    ])
    doc.deparser(["ethernet", "mpls[0]", "mpls[1]", "mpls[2]", "ipv4"][: 1 + size] + ["ipv4"])
    return doc


def mpls_pkt(labels, payload=b"\x45" + bytes(19) + b"data"):
    out = raw(Ether(dst="00:00:00:00:00:01", src="00:00:00:00:00:02", type=0x8847))
    for i, (label, ttl) in enumerate(labels):
        bos = 1 if i == len(labels) - 1 else 0
        out += ((label << 12) | (bos << 8) | ttl).to_bytes(4, "big")
    return out + payload


STACK_REC = [fld("standard_metadata", "parser_error"),
             ex("last_stack_index", None, {"type": "header_stack", "value": "mpls"}),
             fld("mpls[0]", "label"), fld("mpls[1]", "label"),
             ex("b2d", None, ex("valid", None, hdr("ipv4"))),
             ex("size_stack", None, {"type": "header_stack", "value": "mpls"})]


def test_stack_extraction_and_stack_field_select():
    doc = action_program(recorder(STACK_REC), doc=mpls_doc(), registers={"rec": (8, 32)})
    p = Pipeline(doc.d)
    data = mpls_pkt([(100, 5), (200, 6)])
    out = p.process(1, data)
    assert out == [(0, data)]
    cells = p.registers["rec"].cells
    assert cells[:6] == [0, 1, 100, 200, 1, 2]


def test_stack_overflow_is_stack_out_of_bounds():
    p = Pipeline(action_program(recorder(STACK_REC), doc=mpls_doc(size=3), registers={"rec": (8, 32)}).d)
    p.process(1, mpls_pkt([(1, 5), (2, 5), (3, 5), (4, 5)]))
    assert p.registers["rec"].cells[0] == 3             # StackOutOfBounds
    assert p.registers["rec"].cells[5] == 3             # three headers extracted


def test_verify_sets_custom_error_and_keeps_earlier_headers():
    p = Pipeline(action_program(recorder(STACK_REC), doc=mpls_doc(), registers={"rec": (8, 32)}).d)
    p.process(1, mpls_pkt([(100, 5), (200, 0)]))
    cells = p.registers["rec"].cells
    assert cells[0] == 7                                 # error BadTtl
    assert cells[2] == 100 and cells[5] == 2


def test_packet_too_short_and_no_match():
    p = Pipeline(action_program(recorder(STACK_REC), doc=mpls_doc(), registers={"rec": (8, 32)}).d)
    p.process(1, mpls_pkt([(100, 5)])[:20])
    assert p.registers["rec"].cells[0] == 1              # PacketTooShort
    # bos=0 then 0xff as the next byte is not a transition value -> NoMatch... select on bos
    # only has 0/1 values so NoMatch needs another program: etherType select without default
    doc = Doc({"ethernet": ETHERNET})
    doc.parser([state("start", [extract("ethernet")], [fld("ethernet", "etherType")], [trans(0x0800, None)])])
    doc.deparser(["ethernet"])
    action_program(recorder([fld("standard_metadata", "parser_error")]), doc=doc, registers={"rec": (1, 32)})
    p2 = Pipeline(doc.d)
    p2.process(1, raw(Ether(type=0x86DD)))
    assert p2.registers["rec"].cells[0] == 2              # NoMatch


def test_lookahead_select_and_set():
    doc = Doc({"ethernet": ETHERNET}, scalars=[["peek", 16, False], ["tmp", 32, False]])
    doc.parser([
        state("start", [{"op": "set", "parameters": [fld("scalars", "peek"),
                                                     {"type": "lookahead", "value": [96, 16]}]}],
              [{"type": "lookahead", "value": [0, 8]}],
              [trans(0x01, "eth", mask=0x01, nbytes=1), trans(None, None)]),
        state("eth", [extract("ethernet")]),
    ])
    doc.deparser(["ethernet"])
    action_program(recorder([fld("scalars", "peek"), ex("b2d", None, ex("valid", None, hdr("ethernet")))]),
                   doc=doc, registers={"rec": (2, 32)})
    p = Pipeline(doc.d)
    p.process(1, raw(Ether(dst="01:00:00:00:00:00", type=0xABCD)))     # multicast bit set
    assert p.registers["rec"].cells == [0xABCD, 1]
    p.process(1, raw(Ether(dst="02:00:00:00:00:00", type=0x1111)))
    assert p.registers["rec"].cells == [0x1111, 0]


def test_select_on_concatenated_padded_fields_with_mask():
    doc = Doc({"ethernet": ETHERNET, "ipv4": IPV4})
    doc.parser([
        state("start", [extract("ethernet")], [fld("ethernet", "etherType")],
              [trans(0x0800, "ip"), trans(None, None)]),
        # version (4 bits) and ihl (4 bits), each padded to one byte: 0x0405 = v4 without options
        state("ip", [extract("ipv4")], [fld("ipv4", "version"), fld("ipv4", "ihl")],
              [trans(0x0405, None), trans(0x0400, "opts", mask=0xFF00), trans(None, None)]),
        state("opts", [{"op": "verify", "parameters": [{"type": "bool", "value": False}, hexv(9)]}]),
    ])
    doc.deparser(["ethernet", "ipv4"])
    action_program(recorder([fld("standard_metadata", "parser_error")]), doc=doc, registers={"rec": (1, 32)})
    p = Pipeline(doc.d)
    p.process(1, raw(Ether() / IP(dst="1.1.1.1")))
    assert p.registers["rec"].cells == [0]
    p.process(1, raw(Ether() / IP(dst="1.1.1.1", options=b"\x01\x01\x01\x01")))
    assert p.registers["rec"].cells == [9]


def test_parse_value_set():
    doc = Doc({"ethernet": ETHERNET, "ipv4": IPV4})
    doc.d["parse_vsets"] = [{"name": "types", "id": 0, "compressed_bitwidth": 16}]
    doc.parser([
        state("start", [extract("ethernet")], [fld("ethernet", "etherType")],
              [{"type": "parse_vset", "value": "types", "mask": None, "next_state": "ip"}, trans(None, None)]),
        state("ip", [extract("ipv4")]),
    ])
    doc.deparser(["ethernet", "ipv4"])
    action_program(recorder([ex("b2d", None, ex("valid", None, hdr("ipv4")))]), doc=doc,
                   registers={"rec": (1, 32)})
    p = Pipeline(doc.d)
    pkt = raw(Ether(type=0x0800) / IP())
    p.process(1, pkt)
    assert p.registers["rec"].cells == [0]
    p.parse_vsets["types"].append(0x0800)
    p.process(1, pkt)
    assert p.registers["rec"].cells == [1]


def test_stack_push_pop_and_runtime_index():
    stack = {"type": "header_stack", "value": "mpls"}
    elem = ex("dereference_header_stack", stack, fld("scalars", "idx"))
    prims = [
        prim("assign", fld("scalars", "idx"), hexv(1)),
        prim("assign", ex("access_field", elem, 0), hexv(777)),     # mpls[idx].label = 777
        prim("pop", stack, hexv(1)),                                 # drop mpls[0]
        prim("push", stack, hexv(2)),                                # two new invalid heads
        prim("add_header", hdr("mpls[0]")),
        prim("assign", fld("mpls[0]", "label"), hexv(5)),
        prim("assign", fld("mpls[0]", "ttl"), hexv(64)),
    ]
    p = Pipeline(action_program(prims, doc=mpls_doc()).d)
    data = mpls_pkt([(100, 5), (200, 6)])
    (port, out), = p.process(1, data)
    # after pop: [200->777 (bos)], after push 2: [new, invalid, 777]; deparse skips the invalid one
    expect = data[:14] + ((5 << 12) | 64).to_bytes(4, "big") + ((777 << 12) | (1 << 8) | 6).to_bytes(4, "big")
    assert out == expect + data[22:]


def test_parser_primitive_op_and_advance():
    doc = Doc({"ethernet": ETHERNET}, scalars=[["seen", 8, False], ["tmp", 32, False]])
    doc.parser([
        state("start", [
            {"op": "advance", "parameters": [hexv(16)]},          # skip a 2-byte preamble
            extract("ethernet"),
            {"op": "primitive", "parameters": [
                prim("assign", fld("scalars", "seen"), ex("&", fld("ethernet", "etherType"), hexv(0xFF)))]},
        ]),
    ])
    doc.deparser(["ethernet"])
    action_program(recorder([fld("scalars", "seen"), fld("ethernet", "etherType")]), doc=doc,
                   registers={"rec": (2, 32)})
    p = Pipeline(doc.d)
    frame = raw(Ether(type=0x0842)) + b"tail"
    (port, out), = p.process(1, b"\xaa\xbb" + frame)
    assert p.registers["rec"].cells == [0x42, 0x0842]
    assert out == frame                       # advanced bytes are not deparsed
