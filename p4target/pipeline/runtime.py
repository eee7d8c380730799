"""Runtime support for generated pipeline code: the exceptions it raises and the helpers it
calls for the rare operations (header stack shifts, runtime stack indexes, lookahead, log_msg
formatting) that are not worth inlining."""

from __future__ import annotations

from typing import Any

__all__ = ["CORE_ERRORS", "AssertionFailed", "StackError", "ParserAbort", "HELPERS"]

CORE_ERRORS = {"NoError": 0, "PacketTooShort": 1, "NoMatch": 2, "StackOutOfBounds": 3,
               "HeaderTooShort": 4, "ParserTimeout": 5, "ParserInvalidArgument": 6}


class AssertionFailed(Exception):
    """An assert/assume primitive failed (BMv2 aborts; we drop the packet and log)."""


class StackError(Exception):
    """A header stack was indexed out of bounds at run time."""


class ParserAbort(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# ---- runtime helpers visible to generated code ----
def _rget(cells: list[int], i: int) -> int:
    return cells[i] if 0 <= i < len(cells) else 0


def _shl(a: int, b: int) -> int:
    return a << b if b < 4096 else 0


def _sidx(base: int, stride: int, size: int, i: int) -> int:
    if not 0 <= i < size:
        raise StackError(f"header stack index {i} out of bounds (size {size})")
    return base + i * stride


def _heq(F: list[int], a: int, b: int, n: int) -> bool:  # noqa: N803
    return F[a:a + n] == F[b:b + n]


def _push(F: list[int], base: int, stride: int, size: int, nxt: int, n: int) -> None:  # noqa: N803
    n = min(n, size)
    if n <= 0:
        return
    F[base + n * stride:base + size * stride] = F[base:base + (size - n) * stride]
    F[base:base + n * stride] = [0] * (n * stride)
    F[nxt] = min(F[nxt] + n, size)


def _pop(F: list[int], base: int, stride: int, size: int, nxt: int, n: int) -> None:  # noqa: N803
    n = min(n, size)
    if n <= 0:
        return
    F[base:base + (size - n) * stride] = F[base + n * stride:base + size * stride]
    F[base + (size - n) * stride:base + size * stride] = [0] * (n * stride)
    F[nxt] = max(F[nxt] - n, 0)


def _fmt(fmt: str, values: tuple[int, ...]) -> str:
    parts = fmt.split("{}")
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append(str(values[i]) if i < len(values) else "{}")
        out.append(part)
    return "".join(out)


def _la(P: Any, d: bytes, off: int, bitoff: int, width: int) -> int:  # noqa: N803
    nbytes = (bitoff + width + 7) // 8
    if off + nbytes > len(d):
        P.off = off  # what the state extracted before the lookahead is parsed (BMv2's bytes_parsed)
        raise ParserAbort(1)
    v = int.from_bytes(d[off:off + nbytes], "big")
    return (v >> (nbytes * 8 - bitoff - width)) & ((1 << width) - 1)


HELPERS: dict[str, Any] = {
    "_rget": _rget, "_shl": _shl, "_sidx": _sidx, "_heq": _heq, "_push": _push, "_pop": _pop,
    "_fmt": _fmt, "_la": _la, "_AssertionFailed": AssertionFailed, "_ParserAbort": ParserAbort,
}
