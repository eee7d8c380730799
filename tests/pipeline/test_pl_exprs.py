"""BMv2 expression semantics, evaluated in an action and recorded into a 64-bit register."""

import pytest
from pl_jsonkit import action_program, boolean, eth_doc, ex, fld, hdr, hexv, masked, prim, recorder
from scapy.all import Ether, raw

from p4target.pipeline import Pipeline, PipelineError

SCALARS = [["a", 8, False], ["s", 8, True], ["w", 16, False], ["tmp", 32, False]]


def evaluate(values, pre=()):
    doc = action_program(list(pre) + recorder(values), scalars=SCALARS, registers={"rec": (len(values), 64)})
    p = Pipeline(doc.d)
    p.process(3, raw(Ether(dst="0a:0b:0c:0d:0e:0f", src="00:00:00:00:00:01", type=0x1234)))
    return p.registers["rec"].cells


def b2d(e):
    return ex("b2d", None, e)


def test_arithmetic_is_modulo_the_width_when_masked():
    assert evaluate([masked(ex("+", hexv(0xFF), hexv(2)), 8),
                     masked(ex("-", hexv(1), hexv(2)), 16),
                     masked(ex("*", hexv(0x1234), hexv(0x100)), 16),
                     ex("+", hexv(0xFFFFFFFF), hexv(1))]) == [1, 0xFFFF, 0x3400, 0x100000000]


def test_register_write_truncates_to_register_width():
    assert evaluate([ex("<<", hexv(1), hexv(70)), hexv(-1)]) == [0, (1 << 64) - 1]


def test_two_comp_mod_and_saturating_casts():
    assert evaluate([ex("two_comp_mod", hexv(257), hexv(8)),
                     ex("two_comp_mod", hexv(-129), hexv(8)),
                     ex("usat_cast", hexv(300), hexv(8)),
                     ex("usat_cast", hexv(-5), hexv(8)),
                     ex("sat_cast", hexv(200), hexv(8)),
                     ex("sat_cast", hexv(-200), hexv(8))]) == [1, 127, 255, 0, 127, (1 << 64) - 128]


def test_signed_fields_read_as_twos_complement():
    pre = [prim("assign", fld("scalars", "s"), hexv(-3))]         # stored as 0xfd
    assert evaluate([fld("scalars", "s"),
                     b2d(ex("<", fld("scalars", "s"), hexv(0))),
                     ex("two_comp_mod", ex("+", fld("scalars", "s"), hexv(1)), hexv(8))],
                    pre=pre) == [(1 << 64) - 3, 1, (1 << 64) - 2]


def test_shifts_bitwise_and_slices():
    dst = fld("ethernet", "dstAddr")    # 0x0a0b0c0d0e0f
    assert evaluate([masked(ex(">>", dst, hexv(8)), 8),               # dstAddr[15:8] = 0x0e
                     masked(ex("~", None, fld("ethernet", "etherType")), 16),
                     ex("|", ex("<<", masked(dst, 16), hexv(16)), fld("ethernet", "etherType")),  # concat
                     ex("^", hexv(0xF0), hexv(0xFF)),
                     masked(ex("<<", fld("ethernet", "etherType"), fld("standard_metadata", "ingress_port")), 16),
                     ]) == [0x0E, 0xEDCB, 0x0E0F1234, 0x0F, 0x91A0]


def test_comparisons_logic_and_conditional():
    t, f = boolean(True), boolean(False)
    port = fld("standard_metadata", "ingress_port")
    assert evaluate([b2d(ex("==", port, hexv(3))), b2d(ex("!=", port, hexv(3))),
                     b2d(ex(">=", port, hexv(3))), b2d(ex(">", port, hexv(3))),
                     b2d(ex("<=", port, hexv(2))), b2d(ex("and", t, ex("not", None, f))),
                     b2d(ex("or", f, f)),
                     ex("?", hexv(10), hexv(20), ex("==", port, hexv(3))),
                     ex("?", hexv(10), hexv(20), ex("d2b", None, hexv(0))),
                     b2d(ex("valid", None, hdr("ethernet")))]) == [1, 0, 1, 0, 0, 1, 0, 10, 20, 1]


def test_register_operand_in_expression():
    pre = [prim("register_write", {"type": "register_array", "value": "rec"}, hexv(1), hexv(41))]
    reg = {"type": "register", "value": ["rec", hexv(1)]}
    assert evaluate([ex("+", reg, hexv(1)), hexv(0)], pre=pre)[0] == 42


def test_unknown_operator_is_a_pipeline_error():
    with pytest.raises(PipelineError, match="unsupported expression operator 'frobnicate'"):
        evaluate([ex("frobnicate", hexv(1), hexv(2))])


def test_unknown_primitive_is_a_pipeline_error_naming_the_action():
    doc = action_program([prim("teleport", hexv(1))], doc=eth_doc())
    with pytest.raises(PipelineError, match="action 'ing'.*teleport"):
        Pipeline(doc.d)


def test_p4c_doubly_wrapped_primitive_arguments():
    inner = ex("+", fld("standard_metadata", "ingress_port"), hexv(1))
    wrapped = {"type": "expression", "value": inner}                 # p4c: expression of an expression
    lhs = {"type": "expression", "value": fld("scalars", "w")}
    assert evaluate([fld("scalars", "w")], pre=[prim("assign", lhs, wrapped)]) == [4]
