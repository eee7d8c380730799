"""P4Info of the embedded compiler = p4c-bm2-ss's, for every corpus and p4src program.

The comparison is protobuf equality of the whole message after removing only the fields that differ
by p4c version (docs/compiler.md, "Conformance with p4c"): ``initial_default_action`` in tables (later
p4c releases emit it, 1.2.4.8 does not) and an empty ``type_info`` (1.2.4.8 always emits one).
On a difference the failure names each differing entity with both versions.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from p4target.compiler import CompileError

from .build import P4cError, compile_embedded, compile_p4c, programs

PROGRAMS = programs()
COMPARED = PROGRAMS


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


def load(path: Path) -> p4info_pb2.P4Info:
    msg = p4info_pb2.P4Info()
    text_format.Parse(path.read_text(), msg)
    return msg


def normalized(info: p4info_pb2.P4Info) -> p4info_pb2.P4Info:
    """``info`` without the documented version-dependent fields."""
    out = p4info_pb2.P4Info()
    out.CopyFrom(info)
    for t in out.tables:
        t.ClearField("initial_default_action")
    if out.HasField("type_info") and not out.type_info.ByteSize():
        out.ClearField("type_info")
    return out


def differences(mine: p4info_pb2.P4Info, ref: p4info_pb2.P4Info) -> list[str]:
    """Human-readable differences, entity by entity (both sides in one-line text format)."""
    def one(m: object) -> str:
        return text_format.MessageToString(m, as_one_line=True) if m is not None else "(absent)"

    out = []
    for fd in p4info_pb2.P4Info.DESCRIPTOR.fields:
        a, b = getattr(mine, fd.name), getattr(ref, fd.name)
        if a == b:
            continue
        if fd.label != fd.LABEL_REPEATED:
            out.append(f"{fd.name}:\n  embedded: {one(a)}\n  p4c:      {one(b)}")
            continue
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                out.append(f"{fd.name}[{i}]:\n  embedded: {one(x)}\n  p4c:      {one(y)}")
    return out


def both(prog: Path, out_dir: Path) -> tuple[p4info_pb2.P4Info, p4info_pb2.P4Info]:
    _, mine = compile_embedded(prog, out_dir / "embedded")
    _, ref = compile_p4c(prog, out_dir / "p4c")
    return load(mine), load(ref)


def program(stem: str) -> Path:
    (p,) = [p for p in PROGRAMS if p.stem == stem]
    return p


@pytest.mark.bmv2
@pytest.mark.parametrize("prog", COMPARED, ids=lambda p: p.stem)
def test_p4info_equals_p4c(prog: Path, out_dir: Path) -> None:
    mine, ref = both(prog, out_dir)
    diffs = differences(normalized(mine), normalized(ref))
    assert not diffs, f"{prog.name}: P4Info differs from p4c-bm2-ss's:\n" + "\n".join(diffs)


def test_program_list_covers_corpus_and_p4src() -> None:
    stems = {p.stem for p in PROGRAMS}
    assert {"flow_nic", "gateway", "basic", "calc"} <= stems
    assert len(PROGRAMS) >= 20


@pytest.mark.bmv2
def test_only_documented_fields_are_removed(out_dir: Path) -> None:
    # The normalization removes only initial_default_action and an empty type_info: a table's other
    # fields and a non-empty type_info stay compared.
    mine, _ = both(program("calc"), out_dir)
    assert any(t.HasField("initial_default_action") for t in mine.tables)
    norm = normalized(mine)
    assert not any(t.HasField("initial_default_action") for t in norm.tables)
    for a, b in zip(mine.tables, norm.tables, strict=True):
        b.initial_default_action.CopyFrom(a.initial_default_action)
        assert a == b
    digests, _ = both(program("l2_learning"), out_dir)
    assert digests.type_info.ByteSize() and normalized(digests).type_info == digests.type_info


# ---------------------------------------------------------------- the three divergences of issue #12
@pytest.mark.bmv2
@pytest.mark.parametrize("name", ["fetch_state", "probe_slot", "store_state", "drop_invalid"])
def test_directly_called_actions_are_listed(name: str, out_dir: Path) -> None:
    # p4c lists the actions a control calls directly (flow_nic's fetch_state, probe_slot, store_state)
    mine, ref = both(program("flow_nic"), out_dir)
    fq = f"FlowNicIngress.flow_state.{name}"
    (a,) = [a for a in mine.actions if a.preamble.name == fq]
    (b,) = [b for b in ref.actions if b.preamble.name == fq]
    assert a == b


@pytest.mark.bmv2
def test_directly_called_action_has_no_parameters_like_p4c(out_dir: Path) -> None:
    # drop_invalid(bit<32> reason) is only called directly (with a constant): p4c's
    # RemoveActionParameters turns its parameter into a local, so P4Info lists it without params.
    mine, ref = both(program("flow_nic"), out_dir)
    fq = "FlowNicIngress.flow_state.drop_invalid"
    (a,) = [a for a in mine.actions if a.preamble.name == fq]
    (b,) = [b for b in ref.actions if b.preamble.name == fq]
    assert not b.params and not a.params and a == b


@pytest.mark.bmv2
@pytest.mark.parametrize("stem,table", [("calc", "MyIngress.calculate"), ("features", "MyIngress.forward")])
def test_const_table_has_initial_entries(stem: str, table: str, out_dir: Path) -> None:
    mine, ref = both(program(stem), out_dir)
    (a,) = [t for t in mine.tables if t.preamble.name == table]
    (b,) = [t for t in ref.tables if t.preamble.name == table]
    assert b.is_const_table and b.has_initial_entries
    assert a.is_const_table and a.has_initial_entries
    a.ClearField("initial_default_action")
    assert a == b


# ---------------------------------------------------------------- what p4c rejects, we reject
LEGACY = """#include <core.p4>
#include <v1model.p4>
struct m_t { bit<8> x; }
struct h_t { }
parser P(packet_in p, out h_t h, inout m_t m, inout standard_metadata_t sm) { state start { transition accept; } }
control V(inout h_t h, inout m_t m) { apply { } }
control I(inout h_t h, inout m_t m, inout standard_metadata_t sm) { apply { CALL; } }
control E(inout h_t h, inout m_t m, inout standard_metadata_t sm) { apply { } }
control C(inout h_t h, inout m_t m) { apply { } }
control D(packet_out p, in h_t h) { apply { } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


@pytest.mark.bmv2
@pytest.mark.parametrize("call", ["clone3(CloneType.I2E, 5, { m.x })", "resubmit(m)", "recirculate(m)"])
def test_deprecated_externs_with_data_are_rejected_by_both(call: str, tmp_path: Path) -> None:
    # v1model.p4 still declares them (@deprecated), but p4c-bm2-ss has no backend for them
    src = tmp_path / "legacy.p4"
    src.write_text(LEGACY.replace("CALL", call))
    name = call.split("(")[0]
    with pytest.raises(P4cError, match=f"{name}: unknown extern function"):
        compile_p4c(src, tmp_path / "p4c")
    with pytest.raises(CompileError, match=rf"legacy.p4:7:\d+: error: {name}: unknown extern function"):
        compile_embedded(src, tmp_path / "embedded")
