"""The data-plane contract: what p4src/include/ declares, the Python side must say the same.

Parses ``defines.p4`` (``const`` and ``#define``), ``headers.p4`` (header types, with the typedefs)
and ``flow_state.p4`` (``compute_hash_slots``), and fails when ``controller.dataplane`` (the
controller's single statement of the contract), the command codec, the drivers' P4Info-derived
sizes or the PTF tests' written-out constants disagree with them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from controller import commands as C
from controller import dataplane as D
from controller import gateway, nic

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "p4src" / "include"
PTF = REPO / "tests" / "dataplane" / "ptftests"


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", re.sub(r"//[^\n]*", "", text), flags=re.S)


def _int(literal: str) -> int:
    """A P4 integer literal: 255, 0x88B5, 32w0x00000002, 16w0xFA1B."""
    return int(literal.strip().split("w", 1)[-1] if re.match(r"^\d+w", literal.strip()) else literal.strip(), 0)


@pytest.fixture(scope="module")
def p4_consts() -> dict[str, int]:
    text = _strip_comments((INCLUDE / "defines.p4").read_text())
    out = {m[1]: _int(m[2]) for m in re.finditer(r"\bconst\s+\w+(?:<\d+>)?\s+(\w+)\s*=\s*([^;]+);", text)}
    out.update({m[1]: int(m[2], 0) for m in re.finditer(r"^#define\s+(\w+)\s+(\S+)\s*$", text, re.M)
                if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", m[2])})
    assert len(out) > 50, "defines.p4 parsed to almost nothing: the parser is broken"
    return out


@pytest.fixture(scope="module")
def p4_types() -> dict[str, list[tuple[str, int]]]:
    """header/struct name -> [(field, bits)] for fields of bit<N> or typedef'd bit<N> types."""
    text = _strip_comments((INCLUDE / "defines.p4").read_text() + (INCLUDE / "headers.p4").read_text())
    typedefs = {m[2]: int(m[1]) for m in re.finditer(r"typedef\s+bit<(\d+)>\s+(\w+)\s*;", text)}
    types = {}
    for m in re.finditer(r"\b(?:header|struct)\s+(\w+)\s*\{(.*?)\}", text, re.S):
        fields = []
        for f in re.finditer(r"(bit<(\d+)>|\w+)\s+(\w+)\s*;", m[2]):
            bits = int(f[2]) if f[2] else typedefs.get(f[1])
            if bits is not None:
                fields.append((f[3], bits))
        types[m[1]] = fields
    return types


def test_constants_match_defines(p4_consts):
    ours = {n: v for n, v in vars(D).items() if n.isupper() and isinstance(v, int)}
    assert len(ours) > 30
    missing = sorted(n for n in ours if n not in p4_consts and n != "COMMAND_LEN")
    assert not missing, f"controller.dataplane names constants defines.p4 does not declare: {missing}"
    wrong = {n: (v, p4_consts[n]) for n, v in ours.items() if n in p4_consts and p4_consts[n] != v}
    assert not wrong, f"controller.dataplane (python, p4) disagree: {wrong}"


def test_every_opcode_status_reason_and_mode_is_known(p4_consts):
    """A new opcode, status, PacketIn reason, suspend mode or packet-out mode in the P4 must reach the
    controller too (the listed prefixes are the ones the controller acts on)."""
    for prefix in ("CMD_", "STATUS_", "PACKET_IN_", "PACKET_OUT_", "SUSPEND_", "KIND_", "SLOT_"):
        p4 = {n for n in p4_consts if n.startswith(prefix)}
        assert p4, prefix
        assert p4 <= set(vars(D)), f"{prefix}*: {sorted(p4 - set(vars(D)))} missing from controller.dataplane"
    assert set(C.STATUS_NAMES) == {v for n, v in p4_consts.items() if n.startswith("STATUS_")}
    assert {C.NOP, C.SUSPEND, C.SAVE, C.LOAD, C.RESUME, C.CLEAR} == \
        {v for n, v in p4_consts.items() if n.startswith("CMD_")}


def test_command_header_layout(p4_types):
    assert list(D.COMMAND_FIELDS) == p4_types["flowmig_cmd_t"]
    assert list(D.BATCH_HEADER_FIELDS) == p4_types["flowmig_batch_t"]
    assert p4_types["flowmig_raw_t"] == [("data", D.COMMAND_LEN * 8)]   # an executed batch record
    assert D.COMMAND_LEN == C.HEADER_LEN == 92


def test_codec_puts_each_field_where_the_p4_reads_it(p4_types):
    layout = p4_types["flowmig_cmd_t"]
    values = {name: (i * 0x9E3779B1 + 1) % (1 << bits) for i, (name, bits) in enumerate(layout)
              if not name.startswith("_")}
    cmd = C.Command(**values)
    raw = int.from_bytes(cmd.pack(), "big")
    pos = sum(bits for _, bits in layout)
    for name, bits in layout:
        pos -= bits
        got = (raw >> pos) & ((1 << bits) - 1)
        assert got == (0 if name.startswith("_") else values[name]), name
    assert C.Command.unpack(cmd.pack()) == cmd
    with pytest.raises(C.CommandError, match="key_qpn"):
        C.Command(key_qpn=1 << 24).pack()


def test_packet_io_headers(p4_types):
    assert p4_types["packet_in_header_t"] == [("ingress_port", 9), ("_pad0", 7), ("reason", 8)]
    assert [n for n, _ in p4_types["packet_out_header_t"]] == ["egress_port", "_pad0", "ingress_port", "_pad1",
                                                             "mode"]


def test_hash_slot_inputs(p4_types):
    text = _strip_comments((INCLUDE / "flow_state.p4").read_text())
    body = re.search(r"action\s+compute_hash_slots\s*\(\s*\)\s*\{(.*?)\n\s*\}", text, re.S)[1]
    calls = re.findall(r"hash\(\s*meta\.(\w+)\s*,\s*HashAlgorithm\.(\w+)\s*,[^,]+,\s*\{([^}]*)\}\s*,\s*(\w+)\s*\)",
                       body)
    assert [c[0] for c in calls] == ["hash_slot1", "hash_slot2"]
    meta = dict(p4_types["local_metadata_t"])

    def fields(group: str) -> tuple[str, ...]:
        names = [f.strip().removeprefix("meta.") for f in group.split(",")]
        for n in names:       # the metadata the P4 hashes is as wide as the command field we hash
            assert meta[n] == D.FIELD_BITS["kind" if n == "flow_kind" else n], n
        return tuple("kind" if n == "flow_kind" else n for n in names)

    assert (fields(calls[0][2]), calls[0][1], calls[0][3]) == (D.HASH_SLOT1_FIELDS, D.HASH_SLOT1_ALGO, "FLOW_SLOTS")
    assert (fields(calls[1][2]), calls[1][1], calls[1][3]) == (D.HASH_SLOT2_FIELDS, D.HASH_SLOT2_ALGO, "FLOW_SLOTS")


@pytest.fixture(scope="module")
def compiled():
    from controller.p4rt.p4info import P4InfoHelper
    from p4target.compiler import compile_file
    return {p: P4InfoHelper(compile_file(str(REPO / "p4src" / f"{p}.p4"), include_dirs=[str(INCLUDE)]).p4info)
            for p in ("flow_nic", "gateway")}


def test_sizes_come_from_p4info(compiled, p4_consts):
    gw, fn = compiled["gateway"], compiled["flow_nic"]
    assert gateway.drain_slots(gw) == p4_consts["DRAIN_SLOTS"] == gw.get("register", "drain_punted").size
    name = next(n for n in fn.names("register") if n.endswith("slot_flags"))
    assert fn.get("register", name).size == p4_consts["FLOW_SLOTS"] == nic.FLOW_SLOTS
    meta = {m.name: m.bitwidth for c in fn.p4info.controller_packet_metadata for m in c.metadata}
    assert meta["reason"] == 8 and meta["ingress_port"] == 9


def _ptf_constants(path: Path) -> dict[str, object]:
    """Module-level NAME = literal (and NAME, ... = range(...)) assignments of a PTF test module."""
    out: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        names = [e.id for e in target.elts] if isinstance(target, ast.Tuple) else [getattr(target, "id", "")]
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "range":
            vals: list[object] = list(range(*[ast.literal_eval(a) for a in value.args]))
        else:
            try:
                lit = ast.literal_eval(value)
            except ValueError:
                continue
            vals = list(lit) if isinstance(target, ast.Tuple) else [lit]
        out.update(zip(names, vals, strict=True))
    return out


PTF_NAMES = {   # the PTF tests' short names -> defines.p4
    "NOP": "CMD_NOP", "SUSPEND": "CMD_SUSPEND", "SAVE": "CMD_SAVE", "LOAD": "CMD_LOAD", "RESUME": "CMD_RESUME",
    "CLEAR": "CMD_CLEAR", "OK": "STATUS_OK", "BAD_SLOT": "STATUS_BAD_SLOT", "NOT_FOUND": "STATUS_NOT_FOUND",
    "KEY_MISMATCH": "STATUS_KEY_MISMATCH", "SLOT_BUSY": "STATUS_SLOT_BUSY", "BAD_KIND": "STATUS_BAD_KIND",
    "BAD_OPCODE": "STATUS_BAD_OPCODE", "BAD_VERSION": "STATUS_BAD_VERSION", "VALID": "SLOT_VALID",
    "SUSPENDED": "SLOT_SUSPENDED", "BATCH_MAX": "FLOWMIG_BATCH_MAX", "EV_LEARNED": "EVENT_LEARNED",
    "EV_COLLISION": "EVENT_COLLISION", "EV_SUSPENDED_PASS": "EVENT_SUSPENDED_PASS",
    "EV_ROCE_OOS": "EVENT_ROCE_OUT_OF_SEQ", "EV_REINCARNATED": "EVENT_TCP_REINCARNATED",
    "EV_COMMAND": "EVENT_COMMAND", "EV_COMMAND_ERROR": "EVENT_COMMAND_ERROR",
    **{p: f"TCP_PHASE_{p}" for p in ("SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_FWD", "FIN_WAIT_REV",
                                     "CLOSING", "CLOSED")},
}


@pytest.mark.parametrize("module", ["flow_nic/flow_nic.py", "gateway/gateway.py"])
def test_ptf_tests_write_the_same_numbers(module, p4_consts, p4_types):
    consts = _ptf_constants(PTF / module)
    checked = 0
    for name, value in consts.items():
        p4name = PTF_NAMES.get(name, name)
        if p4name in p4_consts and isinstance(value, int):
            assert value == p4_consts[p4name], f"{module}: {name} = {value}, defines.p4 {p4name} = {p4_consts[p4name]}"
            checked += 1
    if "CMD_FIELDS" in consts:     # written in bytes there
        assert [(n, b * 8) for n, b in consts["CMD_FIELDS"]] == p4_types["flowmig_cmd_t"]
        checked += 1
    assert checked >= 4, f"{module}: almost no constant checked — renamed?"
