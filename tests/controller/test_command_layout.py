"""``Command.unpack``'s struct layout (the fast path for batch replies) decodes exactly as the
bit-by-bit path over ``dataplane.COMMAND_FIELDS`` does, and ``with_request_id`` copies."""

from __future__ import annotations

import random

import pytest

from controller import commands as C


def test_struct_layout_matches_the_bit_by_bit_decoding(monkeypatch):
    assert C._LAYOUT is not None, "COMMAND_FIELDS fit the struct layout (8/16/24/32/48/64-bit fields)"
    rnd = random.Random(7)
    frames = [rnd.randbytes(C.HEADER_LEN) for _ in range(500)] + [bytes(C.HEADER_LEN), b"\xff" * C.HEADER_LEN]
    fast = [C.Command.unpack(b) for b in frames]
    monkeypatch.setattr(C, "_LAYOUT", None)
    slow = [C.Command.unpack(b) for b in frames]
    assert fast == slow
    assert all(c.pack()[:4] == b[:4] for c, b in zip(fast, frames, strict=True))   # version..kind as sent
    with pytest.raises(C.CommandError, match="truncated"):
        C.Command.unpack(bytes(C.HEADER_LEN - 1))


def test_with_request_id_copies():
    cmd = C.Command(opcode=C.SUSPEND, slot=9, packets=5)
    out = cmd.with_request_id(77)
    assert out.request_id == 77 and cmd.request_id == 0
    assert out == C.Command(opcode=C.SUSPEND, slot=9, packets=5, request_id=77)
