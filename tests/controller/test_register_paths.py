"""Register access by capability, on real switches over gRPC: the embedded target serves P4Runtime
RegisterEntry, simple_switch_grpc answers UNIMPLEMENTED and ``RegisterAccess`` falls back to BMv2's
Thrift API. On both targets the register path and the in-band commands must give the same FlowState,
and cells written through ``RegisterAccess`` read back identically through either way.

Each case starts its own switch (no data ports) running p4src/flow_nic.p4 compiled by the target's
compiler (p4target.compiler / p4c-bm2-ss)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from controller import commands as C
from controller.commands import Command
from controller.flowstate import FlowKey
from controller.nic import NicDriver
from controller.p4rt.connection import SwitchConnection, SwitchOptions
from controller.p4rt.p4info import load_p4info
from controller.p4rt.registers import RegisterAccess
from controller.p4rt.thrift import BmThrift, ThriftError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "ptf"))

from harness import compile_program, free_port, start_switch, stop_process  # noqa: E402

TARGETS = [pytest.param("embedded", id="embedded"), pytest.param("bmv2", id="bmv2", marks=pytest.mark.bmv2)]
KEY = FlowKey("tcp", 0x0A000001, 0x0A000002, 40000, 5001)


@pytest.fixture(params=TARGETS)
def nic(request, tmp_path):
    target = request.param
    json_path, p4info_path = compile_program(REPO / "p4src" / "flow_nic.p4", tmp_path,
                                             [str(REPO / "p4src" / "include")], target=target)
    grpc_port, thrift_port = free_port(), free_port()
    proc = start_switch([], grpc_port, thrift_port, tmp_path / "switch.log", json_path=json_path, target=target)
    conn = SwitchConnection(SwitchOptions("nic", f"127.0.0.1:{grpc_port}", log_dir=None,
                                          extra={"thrift_port": thrift_port}))
    try:
        conn.connect(timeout=10)
        conn.ensure_pipeline(load_p4info(p4info_path), json_path.read_bytes())
        yield target, conn, thrift_port
    finally:
        conn.close()
        stop_process(proc)


def _state(slot: int) -> Command:
    c = Command.for_key(C.NOP, KEY, slot)
    return replace(c, flags=C.SLOT_VALID, tcp_phase=3, tcp_wscale_fwd=7, tcp_next_seq_fwd=0xFFFF_FF00,
                   tcp_next_seq_rev=901, tcp_max_ack_fwd=901, tcp_max_ack_rev=0xFFFF_FF00,
                   tcp_max_window_fwd=64240, tcp_max_window_rev=501, packets=12, bytes=(1 << 40) + 5,
                   first_seen=(1 << 47) + 1, last_seen=(1 << 47) + 99)


def test_capability_picks_the_path_and_both_paths_agree(nic):
    target, conn, _ = nic
    regs = RegisterAccess(conn)
    assert regs.available()
    assert regs.via == ("p4runtime" if target == "embedded" else "thrift")
    drv = NicDriver(conn, "auto", registers=regs)
    assert drv.registers_ok
    # the transfer path: registers only where P4Runtime serves them; in-band on BMv2
    assert drv.path == ("registers" if target == "embedded" else "inband")

    drv._write_registers([_state(9)])                      # through RegisterAccess
    drv.path = "inband"
    by_commands = drv.save([(KEY, 9)], suspend=False)[0]
    drv.path = "registers"
    by_registers = drv.save([(KEY, 9)], suspend=False)[0]
    by_registers.saved_at = by_commands.saved_at
    assert by_commands == by_registers
    st = by_commands.state
    assert (st.phase, st.fwd_next_seq, st.packets, st.bytes) == (3, 0xFFFF_FF00, 12, (1 << 40) + 5)
    assert [c.slot for c in drv.scan()] == [9]             # scans need register reads: both targets have them


def test_cells_read_back_the_same_both_ways(nic):
    target, conn, thrift_port = nic
    regs = RegisterAccess(conn)
    h = conn.helper
    name = next(n for n in h.names("register") if n.endswith("flow_last_seen"))      # 48-bit cells
    rid = h.get_id("register", name)
    regs.write([(name, i, (1 << 47) + i) for i in (1, 2, 3, 10)])
    regs.write([(name, i, 0) for i in range(100, 200)])      # a run: one write_range on Thrift
    got = regs.read([(rid, i) for i in (1, 2, 3, 10, 150)])
    assert got == {(rid, 1): (1 << 47) + 1, (rid, 2): (1 << 47) + 2, (rid, 3): (1 << 47) + 3,
                   (rid, 10): (1 << 47) + 10, (rid, 150): 0}
    whole = regs.read([(rid, None)])
    assert len(whole) == h.get("register", name).size and whole[(rid, 10)] == (1 << 47) + 10
    if target == "bmv2":
        with BmThrift(port=thrift_port) as client:              # what simple_switch_CLI would show
            assert client.register_read(name, 3) == (1 << 47) + 3
            with pytest.raises(ThriftError, match="INVALID_INDEX"):
                client.register_read(name, 1 << 20)
    else:
        assert conn.read_registers([(rid, 3)]) == {(rid, 3): (1 << 47) + 3}


@pytest.mark.parametrize("nic", [TARGETS[1]], indirect=True)
def test_no_register_path_keeps_unimplemented(nic):
    """A P4Runtime server without registers and no Thrift: the UNIMPLEMENTED error stays, so callers
    fall back to in-band commands (the NIC driver does)."""
    _, conn, _ = nic
    bare = SwitchConnection(SwitchOptions("nic-bare", conn.options.address, log_dir=None,
                                          election_id=(0, 50)))
    try:
        bare.connect(timeout=10)
        bare.helper = conn.helper
        regs = RegisterAccess(bare)
        assert not regs.available() and regs.via == "none"
        drv = NicDriver(bare, "auto", registers=regs)
        assert drv.path == "inband" and not drv.registers_ok
    finally:
        bare.close()
