"""The one codec for P4Runtime bytestrings.

Owns the conversion between Python values and the binary strings P4Runtime carries in match fields,
action parameters, register/packet metadata values and digest members. Encoding is canonical
(P4Runtime 1.3, section 8.4: the shortest big-endian string, a single zero byte for zero); decoding
accepts both canonical and zero-padded strings (the tutorials' p4runtime_lib and BMv2 pad).
Every other module of the controller goes through here instead of calling ``int.to_bytes``.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "CodecError",
    "encode",
    "encode_int",
    "decode_int",
    "parse_value",
    "format_value",
    "lpm_mask",
    "ternary_mask",
    "mac_to_int",
    "int_to_mac",
    "ip_to_int",
    "int_to_ip",
]

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")


class CodecError(ValueError):
    """A value cannot be encoded in (or decoded from) the given bitwidth."""


def encode_int(value: int, bitwidth: int) -> bytes:
    """Encode a non-negative integer as a canonical P4Runtime bytestring of at most ``bitwidth`` bits."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodecError(f"expected an integer, got {value!r}")
    if value < 0:
        raise CodecError(f"negative value {value} cannot be encoded")
    if bitwidth > 0 and value >> bitwidth:
        raise CodecError(f"value {value} does not fit in {bitwidth} bits")
    if value == 0:
        return b"\x00"
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_int(data: bytes, bitwidth: int | None = None) -> int:
    """Decode a canonical or zero-padded bytestring; with ``bitwidth``, refuse values that do not fit."""
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise CodecError("empty bytestring is not a valid P4Runtime value")
    value = int.from_bytes(data, "big")
    if bitwidth is not None and bitwidth > 0 and value >> bitwidth:
        raise CodecError(f"value 0x{data.hex()} does not fit in {bitwidth} bits")
    return value


def mac_to_int(mac: str) -> int:
    if not _MAC_RE.match(mac):
        raise CodecError(f"not a MAC address: {mac!r}")
    return int(mac.replace(":", "").replace("-", ""), 16)


def int_to_mac(value: int) -> str:
    raw = value.to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def ip_to_int(addr: str) -> int:
    try:
        return int(ipaddress.ip_address(addr))
    except ValueError as exc:
        raise CodecError(f"not an IP address: {addr!r}") from exc


def int_to_ip(value: int, bitwidth: int = 32) -> str:
    if bitwidth == 128:
        return str(ipaddress.IPv6Address(value))
    return str(ipaddress.IPv4Address(value))


def parse_value(value: int | str | bytes, bitwidth: int) -> int:
    """Turn a user-facing value into an integer of ``bitwidth`` bits.

    Accepts ints, decimal/hex strings, dotted IPv4 (32-bit fields), IPv6 (128-bit), MAC strings (48-bit)
    and bytes (big-endian, possibly padded).
    """
    if isinstance(value, bool):
        raise CodecError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        out = value
    elif isinstance(value, (bytes, bytearray)):
        out = decode_int(bytes(value))
    elif isinstance(value, str):
        text = value.strip()
        if bitwidth == 48 and _MAC_RE.match(text):
            out = mac_to_int(text)
        elif bitwidth in (32, 128) and ("." in text or ":" in text):
            out = ip_to_int(text)
        else:
            try:
                out = int(text, 0)
            except ValueError as exc:
                raise CodecError(f"cannot parse {value!r} as a {bitwidth}-bit value") from exc
    else:
        raise CodecError(f"unsupported value type {type(value).__name__}")
    if out < 0 or (bitwidth > 0 and out >> bitwidth):
        raise CodecError(f"value {value!r} does not fit in {bitwidth} bits")
    return out


def encode(value: int | str | bytes, bitwidth: int) -> bytes:
    """``parse_value`` then ``encode_int``: the usual path from a user value to the wire."""
    return encode_int(parse_value(value, bitwidth), bitwidth)


def format_value(value: int, bitwidth: int) -> str:
    """Human-readable rendering used by the CLI (MACs and IPv4 addresses by width)."""
    if bitwidth == 48:
        return int_to_mac(value)
    if bitwidth == 32 and value > 0xFFFF:
        return int_to_ip(value)
    return str(value)


def lpm_mask(prefix_len: int, bitwidth: int) -> int:
    if not 0 <= prefix_len <= bitwidth:
        raise CodecError(f"prefix length {prefix_len} outside 0..{bitwidth}")
    return ((1 << prefix_len) - 1) << (bitwidth - prefix_len)


def ternary_mask(mask: int | str | bytes, bitwidth: int) -> int:
    return parse_value(mask, bitwidth)
