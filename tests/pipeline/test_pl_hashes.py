"""Hash algorithms against independently published check values."""

import zlib

from p4target.pipeline.hashes import (
    ALGORITHMS,
    crc16,
    crc32,
    crc_ccitt,
    csum16,
    identity,
    pack_bits,
    xor16,
)

CHECK = b"123456789"


def test_crc16_is_crc16_arc():
    assert crc16(CHECK) == 0xBB3D          # CRC-16/ARC catalogue check value
    assert crc16(b"") == 0


def test_crc32_matches_zlib_and_catalogue():
    assert crc32(CHECK) == 0xCBF43926
    for data in (b"", b"\x00", b"flowmig", bytes(range(256))):
        assert crc32(data) == zlib.crc32(data)


def test_crc_ccitt_false():
    assert crc_ccitt(CHECK) == 0x29B1


def test_csum16_rfc1071_example():
    # RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to 0xddf2 (after carries)
    assert csum16(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF ^ 0xDDF2


def test_csum16_ipv4_header():
    # classic example header (Wikipedia "IPv4 header checksum"): checksum 0xb861
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert csum16(hdr) == 0xB861
    with_ck = hdr[:10] + b"\xb8\x61" + hdr[12:]
    assert csum16(with_ck) == 0


def test_csum16_odd_length_pads_with_zero():
    assert csum16(b"\x01") == 0xFFFF ^ 0x0100


def test_xor16_and_identity():
    assert xor16(bytes.fromhex("12345678")) == 0x1234 ^ 0x5678
    assert xor16(bytes.fromhex("ff")) == 0xFF00
    assert identity(bytes.fromhex("0a000001")) == 0x0A000001
    assert identity(bytes(range(1, 11))) == 0x0102030405060708


def test_pack_bits_is_msb_first_and_zero_padded():
    # 4-bit 0xa, 12-bit 0xbcd -> 0xabcd; then 3 bits 0b101 -> one extra byte 0b10100000
    assert pack_bits([(0xA, 4), (0xBCD, 12)]) == b"\xab\xcd"
    assert pack_bits([(0xA, 4), (0xBCD, 12), (0b101, 3)]) == b"\xab\xcd\xa0"
    assert pack_bits([(0x1FF, 8)]) == b"\xff"


def test_algorithm_names_as_bmv2():
    for name in ("crc16", "crc32", "crc16_custom", "crc32_custom", "csum16", "xor16", "identity", "crcCCITT"):
        assert name in ALGORITHMS


def _rfc1071(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_csum16_matches_rfc1071_loop_on_many_inputs():
    import random
    rng = random.Random(7)
    cases = [b"", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff", b"\x00\x01\xff\xfe"]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(300)]
    for data in cases:
        assert csum16(data) == _rfc1071(data), data.hex()


def _crc16_bitwise(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_crc16_matches_bitwise_reference():
    import random
    rng = random.Random(3)
    for n in list(range(0, 12)) + [17, 64, 99]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16(data) == _crc16_bitwise(data), data.hex()
