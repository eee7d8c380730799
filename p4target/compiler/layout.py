"""Storage layout: where every P4 value lives in BMv2 (header instances, stacks, scalar fields).

- the headers struct H: one header instance per header field, named by its path (``ipv4``,
  ``inner.ipv4``), one stack per header stack (elements ``name[i]``);
- user metadata M: scalar fields ``userMetadata.<path>`` of the ``scalars`` instance;
- standard_metadata: the ``standard_metadata`` instance;
- local variables and compiler temporaries: scalar fields ``<name>_<n>`` (headers: own instances).
Metadata header types are padded to a whole number of bytes like p4c does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import BitsT, BoolT, EnumT, ErrorT, StackT, StructT, Type, width_of


@dataclass
class ScalarStore:
    inst: str
    field: str
    type: Type


@dataclass
class HeaderStore:
    inst: str
    type: StructT


@dataclass
class StackStore:
    name: str
    type: StackT
    elems: list[HeaderStore]


@dataclass
class StructStore:
    type: StructT
    fields: dict[str, Any]


Store = ScalarStore | HeaderStore | StackStore | StructStore


@dataclass
class Layout:
    header_types: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    header_stacks: list[dict[str, Any]] = field(default_factory=list)
    scalars: list[list[Any]] = field(default_factory=list)
    _htype_names: dict[int, str] = field(default_factory=dict)
    _scalar_names: set[str] = field(default_factory=set)
    _inst_names: set[str] = field(default_factory=set)
    _tmp: int = 0

    def __post_init__(self) -> None:
        self.header_types.append({"name": "scalars_0", "id": 0, "fields": self.scalars})
        self.headers.append({"name": "scalars", "id": 0, "header_type": "scalars_0", "metadata": True,
                             "pi_omit": True})
        self._inst_names.add("scalars")

    def header_type(self, t: StructT, metadata: bool = False) -> str:
        key = id(t)
        if key in self._htype_names:
            return self._htype_names[key]
        name = t.name
        fields: list[list[Any]] = []
        for fname, ft in t.fields:
            if isinstance(ft, StructT):
                raise ValueError("nested struct in header type")
            fields.append([fname, width_of(ft), isinstance(ft, BitsT) and ft.signed])
        if metadata:
            total = sum(f[1] for f in fields)
            if total % 8:
                fields.append(["_padding", 8 - total % 8, False])
        self.header_types.append({"name": name, "id": len(self.header_types), "fields": fields})
        self._htype_names[key] = name
        return name

    def add_header(self, inst: str, t: StructT, metadata: bool = False) -> HeaderStore:
        if inst in self._inst_names:
            raise ValueError(f"duplicate header instance {inst}")
        self._inst_names.add(inst)
        ht = self.header_type(t, metadata)
        self.headers.append({"name": inst, "id": len(self.headers), "header_type": ht,
                             "metadata": metadata, "pi_omit": True})
        return HeaderStore(inst, t)

    def add_scalar(self, name: str, t: Type) -> ScalarStore:
        base = name
        n = 0
        while name in self._scalar_names:
            name = f"{base}_{n}"
            n += 1
        self._scalar_names.add(name)
        w = width_of(t)
        self.scalars.append([name, w, isinstance(t, BitsT) and t.signed])
        return ScalarStore("scalars", name, t)

    def temp(self, t: Type, prefix: str = "tmp") -> ScalarStore:
        return self.add_scalar(prefix, t)

    def build(self, t: Type, path: list[str], kind: str) -> Store:
        """Storage for a value of type t rooted at path; kind: headers | meta | local."""
        if isinstance(t, StructT) and t.kind == "header":
            name = ".".join(path) if kind == "headers" else (
                "userMetadata." + ".".join(path) if kind == "meta" else "_".join(path))
            return self.add_header(name, t)
        if isinstance(t, StructT) and t.kind == "header_union":
            raise ValueError("header unions")
        if isinstance(t, StackT):
            name = ".".join(path) if kind == "headers" else "_".join(path)
            elems = [self.add_header(f"{name}[{i}]", t.elem) for i in range(t.size)]
            self.header_stacks.append({
                "name": name, "id": len(self.header_stacks), "header_type": self.header_type(t.elem),
                "size": t.size, "header_ids": [self._header_id(e.inst) for e in elems]})
            return StackStore(name, t, elems)
        if isinstance(t, StructT):
            return StructStore(t, {fn: self.build(ft, path + [fn], kind) for fn, ft in t.fields})
        if isinstance(t, (BitsT, BoolT, EnumT, ErrorT)):
            if kind == "meta":
                return self.add_scalar("userMetadata." + ".".join(path), t)
            if kind == "headers":
                return self.add_scalar("_".join(path), t)
            return self.add_scalar(".".join(path), t)
        raise ValueError(f"cannot store a value of type {t}")

    def _header_id(self, inst: str) -> int:
        for h in self.headers:
            if h["name"] == inst:
                return int(h["id"])
        raise KeyError(inst)

    def finish(self) -> None:
        total = sum(f[1] for f in self.scalars)
        if total % 8:
            self.scalars.append(["_padding_0", 8 - total % 8, False])


def standard_metadata(layout: Layout, t: StructT) -> StructStore:
    layout.header_type(t, metadata=True)
    # rename the header type to what BMv2 and p4c call it
    for ht in layout.header_types:
        if ht["name"] == t.name:
            ht["name"] = "standard_metadata"
    layout._htype_names[id(t)] = "standard_metadata"
    layout._inst_names.add("standard_metadata")
    layout.headers.append({"name": "standard_metadata", "id": len(layout.headers),
                           "header_type": "standard_metadata", "metadata": True, "pi_omit": True})
    return StructStore(t, {fn: ScalarStore("standard_metadata", fn, ft) for fn, ft in t.fields})


def iter_headers(s: Store) -> list[HeaderStore]:
    """Header instances of a store in declaration order (stacks expanded)."""
    if isinstance(s, HeaderStore):
        return [s]
    if isinstance(s, StackStore):
        return list(s.elems)
    if isinstance(s, StructStore):
        out: list[HeaderStore] = []
        for v in s.fields.values():
            out += iter_headers(v)
        return out
    return []


def iter_scalars(s: Store) -> list[ScalarStore]:
    if isinstance(s, ScalarStore):
        return [s]
    if isinstance(s, StructStore):
        out: list[ScalarStore] = []
        for v in s.fields.values():
            out += iter_scalars(v)
        return out
    return []
