import struct

import pytest

from controller import commands as C
from controller.commands import Command, CommandError
from controller.flowstate import FlowState, RoceState, TcpState, UdpState, parse_reference


def test_header_layout_offsets():
    c = Command(opcode=C.LOAD, status=0, kind=1, slot=0x01020304, request_id=0xAABBCCDD, key_addr_lo=0x0A000001,
                key_addr_hi=0x0A000002, key_port_lo=0x1111, key_port_hi=0x2222, key_proto=6, key_qpn=0x123456,
                flags=3, tcp_phase=3, tcp_wscale_fwd=7, tcp_wscale_rev=8, tcp_next_seq_fwd=0x10,
                tcp_next_seq_rev=0x20, tcp_max_ack_fwd=0x30, tcp_max_ack_rev=0x40, tcp_max_window_fwd=0x50,
                tcp_max_window_rev=0x60, roce_expected_psn=0xABCDEF, roce_acked_psn=0x010203, roce_oos_count=9,
                packets=1 << 40, bytes=2 << 40, first_seen=0x0000FFFFFFFFFFFF, last_seen=0x123456789ABC)
    raw = c.pack()
    assert len(raw) == 92
    assert raw[0] == 1 and raw[1] == C.LOAD and raw[3] == 1
    assert raw[4:8] == b"\x01\x02\x03\x04" and raw[8:12] == b"\xaa\xbb\xcc\xdd"
    assert raw[20:22] == b"\x11\x11" and raw[24] == 6 and raw[25:28] == b"\x12\x34\x56"
    assert raw[28] == 3 and raw[29] == 3 and raw[30] == 7 and raw[31] == 8
    assert struct.unpack("!I", raw[32:36])[0] == 0x10 and struct.unpack("!H", raw[48:50])[0] == 0x50
    assert raw[52] == 0 and raw[53:56] == b"\xab\xcd\xef" and raw[57:60] == b"\x01\x02\x03"
    assert struct.unpack("!Q", raw[64:72])[0] == 1 << 40
    assert raw[86:92] == bytes.fromhex("123456789abc")
    assert Command.unpack(raw) == c
    frame = c.frame()
    assert frame[12:14] == b"\x88\xb5" and Command.from_frame(frame) == c


def test_truncated_and_foreign_frames():
    with pytest.raises(CommandError):
        Command.unpack(b"\x01" * 40)
    with pytest.raises(CommandError):
        Command.from_frame(b"\x00" * 12 + b"\x08\x00" + b"\x00" * 92)


@pytest.mark.parametrize("fs", [
    FlowState(parse_reference("tcp:10.0.0.1:40000-10.0.0.2:5001"),
              TcpState(3, 100, 200, 300, 7, 400, 500, 600, 8, 10, 1000, 5, 6), source_device="nic1",
              source_slot=4),
    FlowState(parse_reference("udp:10.0.0.1:1-10.0.0.2:2"), UdpState(1, 2, 3, 4), source_device="nic1",
              source_slot=5),
    FlowState(parse_reference("roce:10.0.0.2:49152-10.0.0.1:4791:qp0x12"), RoceState(7, 6, 0, 9, 900, 1, 2),
              source_device="nic1", source_slot=6),
])
def test_flowstate_through_load_command(fs):
    cmd = Command.load(fs, fs.source_slot)
    back = Command.unpack(cmd.pack()).flow_state("nic1")
    back.saved_at = fs.saved_at
    assert back == fs
    assert cmd.flags == C.SLOT_VALID
    assert Command.load(fs, 1, suspended=True).flags == C.SLOT_VALID | C.SLOT_SUSPENDED


def test_batch_frames():
    cmds = [Command(opcode=C.SAVE, slot=i, request_id=100 + i) for i in range(3)]
    frame = C.batch_frame(cmds)
    assert frame[12:14] == b"\x88\xb6" and frame[14:18] == bytes([3, 0, 0, 0])
    assert len(frame) == 18 + 3 * C.HEADER_LEN
    # the NIC's reply: done == count, every record a reply
    reply = frame[:15] + bytes([3]) + frame[16:]
    assert [r.request_id for r in C.replies_of_frame(reply)] == [100, 101, 102]
    assert C.replies_of_frame(frame) == []                     # nothing executed yet
    assert C.replies_of_frame(cmds[0].frame()) == [cmds[0]]   # single-command frames too
    with pytest.raises(CommandError):
        C.replies_of_frame(reply[:-10])
    with pytest.raises(CommandError):
        C.batch_frame([])
    with pytest.raises(CommandError):
        C.batch_frame([Command()] * (C.BATCH_MAX + 1))


def test_expected_commands_as_batches_are_answered_by_one_reply_per_frame():
    """``expect(batch=True)`` (a batched path save): the frames the caller sends are batches of up to
    BATCH_MAX records, and a NIC's reply to each (one PacketIn, done == count) answers all of them."""
    from controller.p4rt.connection import PacketIn

    class Conn:
        name, subs = "nic1", []

        def subscribe_packets(self, cb):
            self.subs.append(cb)
            return lambda: None

        def packet_out_many(self, packets):   # the NIC: answers batches as it executes them
            for frame, _ in packets:
                self.answer(frame)

        def answer(self, frame):
            if frame[12:14] == b"\x88\xb6":
                frame = frame[:15] + bytes([frame[14]]) + frame[16:]
            for cb in self.subs:
                cb(PacketIn(frame, {"reason": C.PACKET_IN_COMMAND_REPLY}, "nic1", 0.0))

    conn = Conn()
    ch = C.CommandChannel(conn)
    cmds = [Command(opcode=C.SAVE, slot=i) for i in range(C.BATCH_MAX + 3)]
    pending = ch.expect(cmds, batch=True)
    assert [len(f) for f in pending.frames] == [18 + C.BATCH_MAX * C.HEADER_LEN, 18 + 3 * C.HEADER_LEN]
    for f in pending.frames:
        conn.answer(f)
    assert [r.slot for r in pending.wait(1.0)] == list(range(C.BATCH_MAX + 3))
    single = ch.expect(cmds[:2])                       # without batch: one frame per command
    assert len(single.frames) == 2 and all(f[12:14] == b"\x88\xb5" for f in single.frames)
    single.cancel()
