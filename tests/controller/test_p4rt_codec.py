import pytest

from controller.p4rt import codec


@pytest.mark.parametrize("value,width,wire", [
    (0, 8, b"\x00"), (1, 9, b"\x01"), (255, 9, b"\xff"), (256, 9, b"\x01\x00"),
    (0x0A000001, 32, b"\x0a\x00\x00\x01"), (0x0000_0001_0000, 48, b"\x01\x00\x00"),
])
def test_encode_is_canonical(value, width, wire):
    assert codec.encode_int(value, width) == wire
    assert codec.decode_int(wire, width) == value


def test_decode_accepts_padded():
    assert codec.decode_int(b"\x00\x00\x00\x05", 32) == 5
    assert codec.decode_int(b"\x00\x00", 16) == 0


def test_roundtrip_many_widths():
    for width in (1, 7, 8, 9, 16, 31, 32, 48, 64, 128):
        for v in (0, 1, (1 << width) - 1, (1 << (width - 1))):
            assert codec.decode_int(codec.encode_int(v, width), width) == v


def test_out_of_range_refused():
    with pytest.raises(codec.CodecError):
        codec.encode_int(512, 9)
    with pytest.raises(codec.CodecError):
        codec.encode_int(-1, 8)
    with pytest.raises(codec.CodecError):
        codec.decode_int(b"\x02\x00", 9)
    with pytest.raises(codec.CodecError):
        codec.decode_int(b"", 8)


def test_parse_user_values():
    assert codec.encode("10.0.0.1", 32) == b"\x0a\x00\x00\x01"
    assert codec.encode("02:00:0a:00:00:01", 48) == b"\x02\x00\x0a\x00\x00\x01"
    assert codec.encode("0x10", 16) == b"\x10"
    assert codec.encode(b"\x00\x07", 16) == b"\x07"
    assert codec.parse_value("::1", 128) == 1
    with pytest.raises(codec.CodecError):
        codec.encode("10.0.0.300", 32)
    with pytest.raises(codec.CodecError):
        codec.encode("banana", 16)


def test_masks_and_format():
    assert codec.lpm_mask(8, 32) == 0xFF000000
    assert codec.lpm_mask(0, 32) == 0
    with pytest.raises(codec.CodecError):
        codec.lpm_mask(33, 32)
    assert codec.format_value(0x0A000002, 32) == "10.0.0.2"
    assert codec.format_value(0x02000A000001, 48) == "02:00:0a:00:00:01"
