"""Hash and checksum algorithms of BMv2 (src/bm_sim/calculations.cpp), bit-exact, plus the
field-list byte layout BMv2 feeds them.

BMv2 builds a calculation's input by packing the listed fields MSB-first into one bit string and
padding it with zero bits up to a whole byte (``BufBuilder``); `pack_bits` does the same. The
algorithms then work on those bytes and return an unsigned integer.
"""

from __future__ import annotations

import binascii
import sys
import zlib
from array import array
from collections.abc import Callable

__all__ = ["ALGORITHMS", "crc16", "crc32", "crc_ccitt", "csum16", "csum16_int", "xor16", "identity",
           "pack_bits"]


def _reflect(value: int, width: int) -> int:
    out = 0
    for _ in range(width):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def _crc16_table(poly: int) -> list[int]:
    # reflected table for a reflected-in / reflected-out CRC-16
    rpoly = _reflect(poly, 16)
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ rpoly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC16_ARC = _crc16_table(0x8005)


_CRC16_WORD: list[int] = []


def _crc16_word_table() -> list[int]:
    # CRC-16 is linear and its 16-bit state is shifted out by two bytes, so two steps from state
    # `crc` over bytes b0, b1 equal two steps from state crc ^ (b0 | b1 << 8) over zero bytes
    table = _CRC16_ARC
    out = []
    for x in range(1 << 16):
        crc = (x >> 8) ^ table[x & 0xFF]
        out.append((crc >> 8) ^ table[crc & 0xFF])
    return out


def crc16(data: bytes) -> int:
    """BMv2 ``crc16``: CRC-16/ARC (poly 0x8005, reflected, init 0, xorout 0); check 0xBB3D."""
    word = _CRC16_WORD or _fill_word_table()
    crc = 0
    n = len(data) & ~1
    if n:
        words = array("H", data[:n])
        if sys.byteorder == "big":
            words.byteswap()
        for w in words:
            crc = word[crc ^ w]
    if len(data) & 1:
        crc = (crc >> 8) ^ _CRC16_ARC[(crc ^ data[-1]) & 0xFF]
    return crc


def _fill_word_table() -> list[int]:
    _CRC16_WORD.extend(_crc16_word_table())
    return _CRC16_WORD


def crc32(data: bytes) -> int:
    """BMv2 ``crc32``: the IEEE 802.3 CRC (zlib's), check 0xCBF43926."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc_ccitt(data: bytes) -> int:
    """BMv2 ``crcCCITT``: poly 0x1021, not reflected, init 0xFFFF (CRC-16/CCITT-FALSE), check 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


def csum16(data: bytes) -> int:
    """BMv2 ``csum16``: the Internet checksum (RFC 1071), ones' complement of the ones' complement
    sum of 16-bit big-endian words, an odd trailing byte padded with zero."""
    if len(data) & 1:
        data = data + b"\x00"
    return csum16_int(int.from_bytes(data, "big"))


def csum16_int(n: int) -> int:
    """`csum16` of the big-endian bytes of `n` (whole 16-bit words). Since 2^16 = 1 (mod 0xFFFF),
    the end-around-carry sum of the words is n mod 0xFFFF, with a non-zero multiple of 0xFFFF
    summing to 0xFFFF."""
    s = n % 0xFFFF
    if s == 0 and n:
        s = 0xFFFF
    return (~s) & 0xFFFF


def xor16(data: bytes) -> int:
    """BMv2 ``xor16``: XOR of the 16-bit big-endian words (odd trailing byte padded with zero)."""
    if len(data) & 1:
        data = data + b"\x00"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    out = 0
    for w in words:
        out ^= w
    return out


def identity(data: bytes) -> int:
    """BMv2 ``identity``: the first (up to) 8 bytes as a big-endian integer."""
    return int.from_bytes(data[:8], "big")


ALGORITHMS: dict[str, Callable[[bytes], int]] = {
    "crc16": crc16,
    "crc16_custom": crc16,
    "crc32": crc32,
    "crc32_custom": crc32,
    "crcCCITT": crc_ccitt,
    "csum16": csum16,
    "xor16": xor16,
    "identity": identity,
}


def pack_bits(values: list[tuple[int, int]]) -> bytes:
    """Pack (value, bitwidth) pairs MSB-first and pad with zero bits to a whole byte (BMv2 layout)."""
    acc = 0
    nbits = 0
    for value, width in values:
        acc = (acc << width) | (value & ((1 << width) - 1))
        nbits += width
    pad = (-nbits) % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")
