"""Lowering of v1model extern calls to BMv2 primitives (mixin of :class:`lower.Ctx`): hash,
random, digest, clone/resubmit/recirculate (preserving @field_list fields), truncate, assert/assume, log_msg."""
from __future__ import annotations

from typing import Any

from . import ast as A
from .errors import unsupported
from .jsonexpr import field_ref, hexstr, hexv, to_data, top
from .layout import HeaderStore, ScalarStore, StackStore, Store, StructStore, iter_headers
from .names import expr_str
from .types import BitsT, BoolT, EnumT, ErrorT, StructT

Json = dict[str, Any]

HASH_ALGOS = {"crc32": "crc32", "crc32_custom": "crc32_custom", "crc16": "crc16",
              "crc16_custom": "crc16_custom", "random": "random", "identity": "identity",
              "csum16": "csum16", "xor16": "xor16"}


class ExternLowering:
    """Extern functions; uses the expression lowering of the Ctx it is mixed into."""

    layout: Any
    program: Any

    def extern_call(self, name: str, c: A.Call, s: A.Stmt, out: list[Json]) -> None:  # noqa: C901
        a = c.args
        if name == "mark_to_drop":
            out.append(self.prim("mark_to_drop", [{"type": "header", "value": "standard_metadata"}], s))
        elif name == "hash":
            dst = self.store(a[0])
            if not isinstance(dst, ScalarStore):
                raise unsupported("hash result target", s.loc)
            algo = HASH_ALGOS[_enum_member(a[1])]
            calc = self.program.calculation(algo, self.calc_inputs(a[3], s, out), s)
            out.append(self.prim("modify_field_with_hash_based_offset",
                                 [field_ref(dst), top(self.rv(a[2])), {"type": "calculation", "value": calc},
                                  top(self.rv(a[4]))], s))
        elif name == "random":
            dst = self.store(a[0])
            if not isinstance(dst, ScalarStore):
                raise unsupported("random result target", s.loc)
            out.append(self.prim("modify_field_rng_uniform", [field_ref(dst), top(self.rv(a[1])),
                                                              top(self.rv(a[2]))], s))
        elif name == "digest":
            lid = self.program.learn_list(c.digest_type, self.digest_fields(c.digest_type, a[1], s, out), s)
            out.append(self.prim("generate_digest", [top(self.rv(a[0])), hexv(lid, 32)], s))
        elif name == "clone":
            op = "clone_ingress_pkt_to_egress" if _enum_member(a[0]) == "I2E" else "clone_egress_pkt_to_egress"
            out.append(self.prim(op, [top(self.rv(a[1])), hexv(0, 32)], s))
        elif name == "clone_preserving_field_list":
            op = "clone_ingress_pkt_to_egress" if _enum_member(a[0]) == "I2E" else "clone_egress_pkt_to_egress"
            fl = self.program.field_list(a[2].const)
            out.append(self.prim(op, [top(self.rv(a[1])), hexv(fl, 32)], s))
        elif name in ("resubmit_preserving_field_list", "recirculate_preserving_field_list"):
            fl = self.program.field_list(a[0].const)
            out.append(self.prim("resubmit" if name.startswith("resubmit") else "recirculate",
                                 [hexv(fl, 32)], s))
        elif name == "truncate":
            out.append(self.prim("truncate", [top(self.rv(a[0]))], s))
        elif name in ("assert", "assume"):
            # BMv2's assert/assume take data: the condition goes through b2d (as p4c's convertBool)
            out.append(self.prim(name, [top(to_data(self.rv(a[0]), a[0].ty))], s))
        elif name == "log_msg":
            vals: list[Json] = []
            if len(a) == 2:
                st = self.store(a[1])
                if isinstance(st, (StructStore, HeaderStore)):
                    vals = _flatten_fields(st)
                else:
                    items = a[1].items if isinstance(a[1], A.ListExpr) else [a[1]]
                    vals = [top(self.data(x)) for x in items]
            out.append(self.prim("log_msg", [{"type": "string", "value": a[0].value},
                                             {"type": "parameters_vector", "value": vals}], s))
        else:
            raise unsupported(f"extern {name} here", s.loc)

    def calc_inputs(self, data: A.Expr, s: A.Stmt, out: list[Json] | None) -> list[Json]:
        """Field references for a hash/checksum input list; non-field values go through temporaries."""
        items = data.items if isinstance(data, A.ListExpr) else [data]
        res: list[Json] = []
        for it in items:
            st = self.store(it)
            if isinstance(st, ScalarStore):
                res.append(field_ref(st))
            elif isinstance(st, (HeaderStore, StructStore, StackStore)):
                for h in _flatten_fields(st):
                    res.append(h)
            elif it.const is not None and isinstance(it.ty, BitsT):
                res.append({"type": "hexstr", "value": hexstr(it.const, it.ty.width), "bitwidth": it.ty.width})
            elif out is not None and it.ty is not None and isinstance(it.ty, (BitsT, BoolT)):
                tmp = self.layout.temp(it.ty)
                out.append(self.prim("assign", [field_ref(tmp), top(self.data(it))], s))
                res.append(field_ref(tmp))
            else:
                raise unsupported(f"'{expr_str(it)}' in a checksum field list (use a field or constant)",
                                  it.loc)
        return res

    def digest_fields(self, t: StructT, data: A.Expr, s: A.Stmt, out: list[Json]) -> list[Json]:
        """Copy the digest data into the digest's own scalars (one set per digest type), so the learn
        list carries the values of the call even if the sources change later in ingress."""
        temps = self.program.digest_temps.get(id(t))
        if temps is None:
            temps = []
            for fn, ft in t.fields:
                if not isinstance(ft, (BitsT, BoolT, EnumT, ErrorT)):
                    raise unsupported("nested structs in digest data", data.loc)
                temps.append(self.layout.add_scalar(f"{t.name}.{fn}", ft))
            self.program.digest_temps[id(t)] = temps
        if isinstance(data, A.ListExpr):
            for tmp, it in zip(temps, data.items, strict=True):
                out.append(self.prim("assign", [field_ref(tmp), top(self.data(it))], s))
        else:
            st = self.store(data)
            if not isinstance(st, StructStore):
                raise unsupported("digest data", data.loc)
            for tmp, (fn, _) in zip(temps, t.fields, strict=True):
                src = st.fields[fn]
                if not isinstance(src, ScalarStore):
                    raise unsupported("nested structs in digest data", data.loc)
                out.append(self.prim("assign", [field_ref(tmp), field_ref(src)], s))
        return [field_ref(tmp) for tmp in temps]


def _enum_member(e: A.Expr) -> str:
    assert isinstance(e, A.Member)
    return e.name


def _flatten_fields(st: Store) -> list[Json]:
    if isinstance(st, ScalarStore):
        return [field_ref(st)]
    if isinstance(st, HeaderStore):
        return [{"type": "field", "value": [st.inst, fn]} for fn, _ in st.type.fields]
    if isinstance(st, StructStore):
        out: list[Json] = []
        for v in st.fields.values():
            out += _flatten_fields(v)
        return out
    if isinstance(st, StackStore):
        out = []
        for h in iter_headers(st):
            out += _flatten_fields(h)
        return out
    return []
