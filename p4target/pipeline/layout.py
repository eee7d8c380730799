"""Packet header vector layout: every header field of the BMv2 JSON gets one slot in a flat list
of ints (``F``), each header's validity bit sits right after its fields, and the elements of a
header stack are laid out contiguously with a fixed stride so a runtime index can address them.

A header is therefore addressed by its base slot: field j of header h is ``F[h.base + j]`` and its
validity ``F[h.base + h.nfields]``. Stacks keep their "next index" in one more slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import PipelineError

__all__ = ["HeaderInfo", "StackInfo", "Layout"]


@dataclass
class HeaderInfo:
    name: str
    type_name: str
    metadata: bool
    names: list[str]
    widths: list[int]
    signed: list[bool]
    base: int = 0

    @property
    def nfields(self) -> int:
        return len(self.names)

    @property
    def valid(self) -> int:
        return self.base + len(self.names)

    @property
    def stride(self) -> int:
        return len(self.names) + 1

    @property
    def bits(self) -> int:
        return sum(self.widths)

    @property
    def nbytes(self) -> int:
        return self.bits // 8


@dataclass
class StackInfo:
    name: str
    type_name: str
    headers: list[HeaderInfo]
    next_slot: int = 0
    field_names: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.headers)

    @property
    def base(self) -> int:
        return self.headers[0].base

    @property
    def stride(self) -> int:
        return self.headers[0].stride


class Layout:
    """Slot assignment for one BMv2 JSON (headers, stacks, aliases)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        types: dict[str, tuple[list[str], list[int], list[bool]]] = {}
        for ht in doc.get("header_types", []):
            names, widths, signed = [], [], []
            for f in ht.get("fields", []):
                if f[1] == "*":
                    raise PipelineError(f"header type '{ht['name']}': variable-length field "
                                        f"'{f[0]}' (varbit) is not supported by this target")
                names.append(f[0])
                widths.append(int(f[1]))
                signed.append(bool(f[2]) if len(f) > 2 else False)
            types[ht["name"]] = (names, widths, signed)
        self.header_types = types
        by_id: dict[int, dict[str, Any]] = {}
        self.headers: dict[str, HeaderInfo] = {}
        for h in doc.get("headers", []):
            tname = h["header_type"]
            if tname not in types:
                raise PipelineError(f"header '{h['name']}' has unknown type '{tname}'")
            names, widths, signed = types[tname]
            info = HeaderInfo(h["name"], tname, bool(h.get("metadata")), list(names), list(widths),
                              list(signed))
            self.headers[h["name"]] = info
            by_id[h["id"]] = h
        self.stacks: dict[str, StackInfo] = {}
        slot = 0
        placed: set[str] = set()
        for s in doc.get("header_stacks", []):
            members = []
            for hid in s.get("header_ids", []):
                if hid not in by_id:
                    raise PipelineError(f"header stack '{s['name']}' refers to unknown header id {hid}")
                info = self.headers[by_id[hid]["name"]]
                info.base = slot
                slot += info.stride
                placed.add(info.name)
                members.append(info)
            if not members:
                raise PipelineError(f"header stack '{s['name']}' is empty")
            st = StackInfo(s["name"], s["header_type"], members, field_names=list(members[0].names))
            st.next_slot = slot
            slot += 1
            self.stacks[s["name"]] = st
        for info in self.headers.values():
            if info.name not in placed:
                info.base = slot
                slot += info.stride
        self.scratch = slot        # write-only sink for intrinsic fields a program does not declare
        slot += 1
        self.nslots = slot
        self.aliases: dict[str, tuple[str, str]] = {}
        for alias, target in doc.get("field_aliases", []):
            self.aliases[alias] = (target[0], target[1])
        if doc.get("header_unions") or doc.get("header_union_stacks"):
            raise PipelineError("header unions are not supported by this target")

    def header(self, name: str) -> HeaderInfo:
        try:
            return self.headers[name]
        except KeyError:
            raise PipelineError(f"unknown header '{name}'") from None

    def stack(self, name: str) -> StackInfo:
        try:
            return self.stacks[name]
        except KeyError:
            raise PipelineError(f"unknown header stack '{name}'") from None

    def field(self, hname: str, fname: str) -> tuple[int, int, bool]:
        """(slot, bitwidth, signed) of a field; `$valid$` is the header's validity slot."""
        alias = self.aliases.get(f"{hname}.{fname}")
        if alias is not None:
            hname, fname = alias
        h = self.header(hname)
        if fname == "$valid$":
            return h.valid, 1, False
        try:
            j = h.names.index(fname)
        except ValueError:
            raise PipelineError(f"header '{hname}' has no field '{fname}'") from None
        return h.base + j, h.widths[j], h.signed[j]

    def intrinsic(self, fname: str) -> int | None:
        """Slot of a v1model intrinsic field (standard_metadata, or its BMv2 alias names)."""
        for cand in (f"standard_metadata.{fname}", f"intrinsic_metadata.{fname}",
                     f"queueing_metadata.{fname}"):
            hname, f = cand.split(".")
            alias = self.aliases.get(cand)
            if alias is not None:
                hname, f = alias
            h = self.headers.get(hname)
            if h is not None and f in h.names:
                return h.base + h.names.index(f)
        return None

    def initial_vector(self) -> list[int]:
        """A fresh PHV: all fields zero, metadata valid, packet headers invalid."""
        vec = [0] * self.nslots
        for h in self.headers.values():
            if h.metadata:
                vec[h.valid] = 1
        return vec

    def metadata_slots(self) -> list[int]:
        out = []
        for h in self.headers.values():
            if h.metadata:
                out.extend(range(h.base, h.base + h.nfields))
        return out
