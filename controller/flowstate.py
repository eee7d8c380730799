"""FlowState: the protocol-specific state of one network reference, as the controller keeps it.

Owns the reference keys (TCP connection, UDP flow, RoCEv2 queue pair), the per-protocol state records,
their versioned JSON form and its integrity tag (HMAC-SHA256 over the canonical JSON, key from the
controller configuration, at least ``MIN_KEY_BYTES``; there is no default key). ``FlowState.from_json`` validates everything — schema version, program
version, kinds, field ranges, the tag — and raises ``FlowStateError`` before anything is written
to a device. How the fields map onto a device's command packets is ``controller.commands``
(``Command.load`` / ``Command.flow_state``), onto its registers ``controller.nic.REGISTER_FIELDS``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = ["FlowStateError", "FlowKey", "TcpState", "UdpState", "RoceState", "FlowState",
           "SCHEMA_VERSION", "KINDS", "parse_reference"]

SCHEMA_VERSION = 1
MIN_KEY_BYTES = 16      # the shortest HMAC key accepted (controller.config refuses shorter ones first)
KINDS = ("tcp", "udp", "roce")
PROTO = {"tcp": 6, "udp": 17, "roce": 17}


class FlowStateError(ValueError):
    """A FlowState record is invalid, corrupt, tampered with, or for an incompatible program."""


def _ip(value: int | str) -> int:
    return int(ipaddress.IPv4Address(value)) if isinstance(value, str) else int(value)


def _ip_text(value: int) -> str:
    """Dotted quad of a 32-bit address (as ``str(ipaddress.IPv4Address(value))``, ~5x cheaper: the trusted
    buffer of a 1,000-reference batch is on the migration's critical path)."""
    return socket.inet_ntoa(value.to_bytes(4, "big"))


@dataclass(frozen=True, order=True)
class FlowKey:
    """The identity of a reference, as the NIC keys it (``flow_slots`` / command header).

    TCP/UDP: the 5-tuple; ``canonical()`` puts the lower (addr, port) endpoint first (the NIC's "lo",
    whose packets are direction FWD), so both directions give the same key. RoCE: (src IP, dst IP,
    dest QPN) plus the raw UDP ports (not normalized: each direction of a QP is its own reference).
    """

    kind: str
    src_ip: int
    dst_ip: int
    src_port: int = 0
    dst_port: int = 0
    qpn: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FlowStateError(f"unknown reference kind {self.kind!r} (expected one of {KINDS})")
        for name, width in (("src_ip", 32), ("dst_ip", 32), ("src_port", 16), ("dst_port", 16), ("qpn", 24)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0 or v >> width:
                raise FlowStateError(f"{self.kind} key field {name}={v!r} is not a {width}-bit value")

    @property
    def proto(self) -> int:
        return PROTO[self.kind]

    def canonical(self) -> FlowKey:
        if self.kind == "roce":
            return self
        if (self.src_ip, self.src_port) <= (self.dst_ip, self.dst_port):
            return self
        return FlowKey(self.kind, self.dst_ip, self.src_ip, self.dst_port, self.src_port)

    def reversed(self) -> FlowKey:
        return FlowKey(self.kind, self.dst_ip, self.src_ip, self.dst_port, self.src_port, self.qpn)

    def __str__(self) -> str:
        s, d = _ip_text(self.src_ip), _ip_text(self.dst_ip)
        if self.kind == "roce":
            return f"roce:{s}:{self.src_port}-{d}:{self.dst_port}:qp{self.qpn:#x}"
        return f"{self.kind}:{s}:{self.src_port}-{d}:{self.dst_port}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "src_ip": _ip_text(self.src_ip), "dst_ip": _ip_text(self.dst_ip)}
        d["src_port"], d["dst_port"] = self.src_port, self.dst_port
        if self.kind == "roce":
            d["qpn"] = self.qpn
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowKey:
        try:
            return cls(d["kind"], _ip(d["src_ip"]), _ip(d["dst_ip"]), int(d.get("src_port", 0)),
                       int(d.get("dst_port", 0)), int(d.get("qpn", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FlowStateError):
                raise
            raise FlowStateError(f"bad reference key {d!r}: {exc}") from None


_REF_RE = re.compile(r"^(tcp|udp):([\d.]+):(\d+)-([\d.]+):(\d+)$")
_ROCE_RE = re.compile(r"^roce:([\d.]+)(?::(\d+))?-([\d.]+)(?::(\d+))?:qp(0x[0-9a-fA-F]+|\d+)$")


def parse_reference(text: str) -> FlowKey:
    """Parse the textual reference form printed by ``str(FlowKey)``."""
    text = text.strip()
    try:
        m = _REF_RE.match(text)
        if m:
            return FlowKey(m[1], _ip(m[2]), _ip(m[4]), int(m[3]), int(m[5]))
        m = _ROCE_RE.match(text)
        if m:
            return FlowKey("roce", _ip(m[1]), _ip(m[3]), int(m[2] or 0), int(m[4] or 4791), int(m[5], 0))
    except ValueError as exc:
        raise FlowStateError(f"bad reference {text!r}: {exc}") from None
    raise FlowStateError(f"bad reference {text!r}: expected tcp:A:P-B:Q, udp:A:P-B:Q or roce:A[:P]-B[:Q]:qpN")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass
class _State:
    WIDTHS: ClassVar[dict[str, int]] = {}

    def as_dict(self) -> dict[str, int]:
        """The fields in order (``dataclasses.asdict`` without its deep copy: every field is an int)."""
        return {n: getattr(self, n) for n in _field_names(type(self))}

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            width = self.WIDTHS.get(f.name, 64)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >> width:
                raise FlowStateError(f"{type(self).__name__}.{f.name}={v!r} is not a {width}-bit value")


@dataclass
class TcpState(_State):
    """Per direction (fwd = sent by the key's lo endpoint, rev = by hi), as the NIC tracks it."""

    phase: int = 0
    fwd_next_seq: int = 0
    fwd_max_ack: int = 0
    fwd_max_window: int = 0
    fwd_wscale: int = 0
    rev_next_seq: int = 0
    rev_max_ack: int = 0
    rev_max_window: int = 0
    rev_wscale: int = 0
    packets: int = 0
    bytes: int = 0
    first_seen: int = 0
    last_seen: int = 0
    WIDTHS: ClassVar[dict[str, int]] = {"phase": 8, "fwd_next_seq": 32, "fwd_max_ack": 32,
                                        "fwd_max_window": 16, "fwd_wscale": 8, "rev_next_seq": 32,
                                        "rev_max_ack": 32, "rev_max_window": 16, "rev_wscale": 8,
                                        "packets": 64, "bytes": 64, "first_seen": 48, "last_seen": 48}


@dataclass
class UdpState(_State):
    packets: int = 0
    bytes: int = 0
    first_seen: int = 0
    last_seen: int = 0
    WIDTHS: ClassVar[dict[str, int]] = {"packets": 64, "bytes": 64, "first_seen": 48, "last_seen": 48}


@dataclass
class RoceState(_State):
    expected_psn: int = 0
    acked_psn: int = 0
    oos_count: int = 0
    packets: int = 0
    bytes: int = 0
    first_seen: int = 0
    last_seen: int = 0
    WIDTHS: ClassVar[dict[str, int]] = {"expected_psn": 24, "acked_psn": 24, "oos_count": 32, "packets": 64,
                                        "bytes": 64, "first_seen": 48, "last_seen": 48}


STATE_CLASSES: dict[str, type[_State]] = {"tcp": TcpState, "udp": UdpState, "roce": RoceState}


@dataclass
class FlowState:
    """One reference's state, saved from a device. JSON with an HMAC tag is its trusted form."""

    key: FlowKey
    state: TcpState | UdpState | RoceState
    program: str = "flow_nic"
    program_version: int = 1
    source_device: str = ""
    source_slot: int = -1
    saved_at: float = field(default_factory=lambda: round(time.time(), 6))

    def __post_init__(self) -> None:
        if self.key != self.key.canonical():
            raise FlowStateError(f"FlowState key {self.key} is not canonical (lo endpoint first)")
        want = STATE_CLASSES[self.key.kind]
        if not isinstance(self.state, want):
            raise FlowStateError(f"{self.key.kind} reference needs a {want.__name__}, "
                                 f"got {type(self.state).__name__}")
        self.state.validate()

    # ---- JSON ------------------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "program": self.program, "program_version": self.program_version,
                "reference": str(self.key), "key": self.key.to_dict(), "state": self.state.as_dict(),
                "source": {"device": self.source_device, "slot": self.source_slot},
                "saved_at": round(self.saved_at, 6)}

    def to_dict(self, key: bytes) -> dict[str, Any]:
        body = self.body()
        body["hmac_sha256"] = _tag(body, key)
        return body

    def to_json(self, key: bytes) -> str:
        return json.dumps(self.to_dict(key), sort_keys=True, indent=2)

    def expect(self, program: str | None = None, program_version: int | None = None) -> FlowState:
        """Check that this state is for ``program`` at ``program_version`` (FlowStateError, with
        ``from_dict``'s wording, if not); returns it. Ranges and key were checked when it was built."""
        if program is not None and self.program != program:
            raise FlowStateError(f"FlowState was saved from program {self.program!r}, the target runs {program!r}")
        if program_version is not None and self.program_version != program_version:
            raise FlowStateError(f"FlowState program version {self.program_version!r} does not match the "
                                 f"target's version {program_version}")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any], key: bytes, program: str | None = None,
                  program_version: int | None = None) -> FlowState:
        """Validate and decode one record; raises FlowStateError (nothing else) on any problem."""
        if not isinstance(data, dict):
            raise FlowStateError("a FlowState record must be a JSON object")
        body = dict(data)
        tag = body.pop("hmac_sha256", None)
        if not isinstance(tag, str):
            raise FlowStateError("FlowState record has no integrity tag (hmac_sha256); refusing it")
        if not hmac.compare_digest(tag, _tag(body, key)):
            raise FlowStateError(f"FlowState record for {body.get('reference', '?')} failed its integrity "
                                 "check (tampered, or saved with another key); refusing it")
        if body.get("schema") != SCHEMA_VERSION:
            raise FlowStateError(f"FlowState schema {body.get('schema')!r} not supported "
                                 f"(this controller reads schema {SCHEMA_VERSION})")
        if program is not None and body.get("program") != program:
            raise FlowStateError(f"FlowState was saved from program {body.get('program')!r}, "
                                 f"the target runs {program!r}")
        if program_version is not None and body.get("program_version") != program_version:
            raise FlowStateError(f"FlowState program version {body.get('program_version')!r} does not "
                                 f"match the target's version {program_version}")
        try:
            fkey = FlowKey.from_dict(body["key"])
            cls_state = STATE_CLASSES[fkey.kind]
            raw = body["state"]
            names = {f.name for f in fields(cls_state)}
            if not isinstance(raw, dict) or set(raw) != names:
                raise FlowStateError(f"{fkey.kind} state fields {sorted(raw) if isinstance(raw, dict) else raw!r}"
                                     f" do not match {sorted(names)}")
            state = cls_state(**raw)
            src = body.get("source", {})
            return cls(fkey, state, str(body["program"]), int(body["program_version"]),
                       str(src.get("device", "")), int(src.get("slot", -1)), float(body.get("saved_at", 0)))
        except FlowStateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise FlowStateError(f"corrupt FlowState record: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes, key: bytes, **kw: Any) -> FlowState:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FlowStateError(f"corrupt FlowState record (not JSON): {exc}") from None
        return cls.from_dict(data, key, **kw)



def _tag(body: dict[str, Any], key: bytes) -> str:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise FlowStateError(f"the HMAC key of the integrity tags must be at least {MIN_KEY_BYTES} bytes, not "
                             f"{len(key) if isinstance(key, bytes) else type(key).__name__}; refusing to sign "
                             "or check with it")
    msg = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.digest(key, msg, "sha256").hex()   # one-shot: hmac.new(key, msg, sha256).hexdigest()


def dump_many(states: list[FlowState], key: bytes) -> str:
    """A list of records as one JSON document (the buffer saved with a VM's configuration)."""
    return json.dumps({"schema": SCHEMA_VERSION, "flows": [s.to_dict(key) for s in states]}, indent=2,
                      sort_keys=True)


def load_many(text: str | bytes, key: bytes, **kw: Any) -> list[FlowState]:
    """All-or-nothing: one bad record refuses the whole document."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlowStateError(f"corrupt FlowState document (not JSON): {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flows"), list):
        raise FlowStateError("a FlowState document must be {\"schema\": 1, \"flows\": [...]}")
    out = []
    for i, rec in enumerate(data["flows"]):
        try:
            out.append(FlowState.from_dict(rec, key, **kw))
        except FlowStateError as exc:
            raise FlowStateError(f"record {i}: {exc}") from None
    return out
