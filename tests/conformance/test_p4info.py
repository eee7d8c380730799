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

# p4c-bm2-ss 1.2.4.8 rejects these programs, so there is no P4Info to compare with
# (docs/compiler.md: resubmit/recirculate/clone3 with data).
P4C_REJECTS = {"legacy_ops"}
PROGRAMS = programs()
COMPARED = [p for p in PROGRAMS if p.stem not in P4C_REJECTS]


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


# ---------------------------------------------------------------- known differences (docs/compiler.md)
@pytest.mark.bmv2
@pytest.mark.parametrize("stem", sorted(P4C_REJECTS))
def test_p4c_rejects_legacy_extern_functions(stem: str, out_dir: Path) -> None:
    with pytest.raises(P4cError, match="unknown extern function"):
        compile_p4c(program(stem), out_dir / "p4c")


@pytest.mark.xfail(strict=True, reason="docs/compiler.md: the embedded compiler accepts resubmit/recirculate/"
                                       "clone3 with data, which p4c-bm2-ss 1.2.4.8 rejects")
@pytest.mark.parametrize("stem", sorted(P4C_REJECTS))
def test_embedded_rejects_what_p4c_rejects(stem: str, out_dir: Path) -> None:
    with pytest.raises(CompileError, match="unknown extern function"):
        compile_embedded(program(stem), out_dir / "embedded")
