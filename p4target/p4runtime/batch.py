"""Big requests without big pauses: WriteRequests decoded chunk by chunk, the switch lock held in slices.

* ``WriteBatch.parse`` reads a WriteRequest's header (device id, election id, role, atomicity) and the
  byte offsets of its updates in one pass over the top-level fields (``scan``, a framing splitter),
  without decoding any update. ``WriteBatch.chunks`` then has protobuf decode the updates
  ``CHUNK_UPDATES`` at a time, so a 100k-update batch never exists decoded at once. An update that
  cannot be decoded becomes that update's INVALID_ARGUMENT; a request whose top-level framing is broken
  is INVALID_ARGUMENT as a whole before anything is applied.
  Why a splitter rather than one ``WriteRequest.FromString`` of the whole request: upb parses 10k LPM
  updates at ~0.2 µs each, but the parsed request takes ~6x its wire size (+34 MB for 100k LPM updates,
  5.6 MB on the wire; a 256 MB request would take ~1.5 GB), and one bad update would fail them all.
  Splitting costs ~0.2 µs per update (bench/bench_wire.py's batches); decoding a chunk and reading its
  updates 1.2 µs (register) to 2.7 µs (LPM entry) per update.
* ``LockSlices`` holds a lock for at most ``SLICE_S`` at a time and then hands it over, so the packet
  thread runs between the slices of a long Read or Write (not for DATAPLANE_ATOMIC batches).
* ``trim_memory`` gives freed heap memory back to the OS after a big request (glibc ``malloc_trim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from array import array
from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError
from p4.v1 import p4runtime_pb2

from p4target.p4runtime.errors import P4RTError, invalid

log = logging.getLogger(__name__)

CHUNK_UPDATES = 512          # updates decoded at a time
SLICE_S = 0.002              # longest hold of the switch lock by a Read or a non-atomic Write
HANDOVER_S = 0.0001          # pause between slices: a bare yield does not let the woken waiter run first
BIG_BATCH = 5000             # updates after which the heap is trimmed


class FramingError(ValueError):
    """The top-level protobuf framing of a request is broken."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise FramingError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FramingError("varint longer than 10 bytes")


def scan(buf: bytes, pos: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int, int]]:
    """Top-level fields of a message: (field number, wire type, value or start, end, field start).
    For varints the value is in the third slot; for length-delimited fields (start, end) of the payload.
    One-byte keys and lengths (nearly all of them) skip the ``_varint`` call."""
    end = len(buf) if end is None else end
    while pos < end:
        fstart = pos
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise FramingError("field number 0")
        if wt == 2:
            if pos < end and buf[pos] < 0x80:
                n = buf[pos]
                pos += 1
            else:
                n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise FramingError("length-delimited field overruns the message")
            yield num, wt, pos, pos + n, fstart
            pos += n
        elif wt == 0:
            val, pos = _varint(buf, pos, end)
            yield num, wt, val, pos, fstart
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise FramingError("truncated fixed-size field")
            yield num, wt, pos, pos + size, fstart
            pos += size
        else:
            raise FramingError(f"unsupported wire type {wt}")


class WriteBatch:
    """A WriteRequest as header fields plus the byte spans of its updates (nothing decoded yet)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.device_id = 0
        self.role = ""
        self.election_id: tuple[int, int] | None = None
        self.atomicity = 0
        self.starts = array("q")   # offset of each update field (its tag) ...
        self.ends = array("q")     # ... and of its end

    @classmethod
    def parse(cls, data: bytes) -> WriteBatch:
        """Raises P4RTError(INVALID_ARGUMENT) when the request cannot be decoded."""
        b = cls(data)
        try:
            for num, wt, a, z, fstart in scan(data):
                if num == 4 and wt == 2:
                    b.starts.append(fstart)
                    b.ends.append(z)
                elif num == 1 and wt == 0:
                    b.device_id = a & 0xFFFFFFFFFFFFFFFF
                elif num == 5 and wt == 0:
                    b.atomicity = a
                elif num == 3 and wt == 2:
                    high, low = b.election_id or (0, 0)
                    for n2, w2, v2, _z2, _f2 in scan(data, a, z):
                        if n2 == 1 and w2 == 0:
                            high = v2
                        elif n2 == 2 and w2 == 0:
                            low = v2
                    b.election_id = (high, low)
                elif num == 6 and wt == 2:
                    b.role = data[a:z].decode("utf-8")
                # anything else (deprecated role_id, unknown fields) is skipped, as protobuf does
        except FramingError as exc:
            raise invalid(f"malformed WriteRequest: {exc}") from None
        except UnicodeDecodeError:
            raise invalid("malformed WriteRequest: role is not valid UTF-8") from None
        return b

    def __len__(self) -> int:
        return len(self.starts)

    def chunks(self, size: int = CHUNK_UPDATES) -> Iterator[list[tuple[int, str | None, Any] | P4RTError]]:
        """Decoded updates, ``size`` at a time: (type, entity kind, entity) or the update's P4RTError."""
        data, starts, ends = self.data, self.starts, self.ends
        for i in range(0, len(starts), size):
            spans = list(zip(starts[i:i + size], ends[i:i + size], strict=True))
            chunk = b"".join(data[s:e] for s, e in spans)
            decoded = _decode_updates(chunk)
            if decoded is None:  # one of them is undecodable: decode them one by one
                decoded = []
                for s, e in spans:
                    one = _decode_updates(data[s:e])
                    decoded.append(one[0] if one else invalid(f"undecodable update (bytes {s}..{e})"))
            yield decoded


def _decode_updates(chunk: bytes) -> list | None:
    """Updates of a WriteRequest made of update fields only, as (type, entity kind, entity message); None
    when protobuf cannot decode it. The entity messages are protobuf's, read in place (no copy)."""
    try:
        req = p4runtime_pb2.WriteRequest.FromString(chunk)
    except (DecodeError, UnicodeDecodeError, ValueError):
        return None
    out: list = []
    append = out.append
    for upd in req.updates:
        ent = upd.entity
        which = ent.WhichOneof("entity")
        append((upd.type, which, getattr(ent, which) if which else None))
    return out


class LockSlices:
    """``with LockSlices(lock) as ls:`` … ``ls.tick()`` between items: after ``slice_s`` of holding the
    lock, release it, let waiting threads (the packet loop) take it, and take it back. ``slice_s=None``
    holds it throughout (DATAPLANE_ATOMIC)."""

    def __init__(self, lock: Any, slice_s: float | None = SLICE_S) -> None:
        self.lock = lock
        self.slice_s = slice_s
        self.until = 0.0
        self.handovers = 0

    def __enter__(self) -> LockSlices:
        self.lock.acquire()
        if self.slice_s is not None:
            self.until = time.monotonic() + self.slice_s
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def tick(self) -> None:
        if self.slice_s is None or time.monotonic() < self.until:
            return
        self.lock.release()
        try:
            time.sleep(HANDOVER_S)
        finally:
            self.lock.acquire()
        self.handovers += 1
        self.until = time.monotonic() + self.slice_s


_libc: Any = None


def trim_memory() -> None:
    """Collect garbage and return free heap pages to the OS (after a big batch or read)."""
    global _libc
    gc.collect()
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    if _libc and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


class SharedLock:
    """Many holders in shared mode or one in exclusive mode. CONTINUE_ON_ERROR Writes share it (each
    update is applied under the switch lock, so they may interleave); ROLLBACK_ON_ERROR/DATAPLANE_ATOMIC
    Writes and pipeline changes hold it exclusively (an undo must not clobber another Write's updates)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting_exclusive:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_exclusive += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
