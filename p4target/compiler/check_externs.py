"""v1model extern checking (mixin of :class:`check.Checker`): register/counter/meter methods and the
extern functions (hash, digest, clone, checksums, ...) with p4c's typing rules: fixed-type parameters
are not widened implicitly, generic ones need sized values, indices are bit<32> in the default v1model."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import ast as A
from .errors import CompileError, unsupported
from .names import expr_str
from .types import BitsT, BoolT, EnumT, ErrorT, ExternT, IntT, ListT, StructT, Type, VoidT

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .scope import Scope


class ExternChecker:
    """Extern methods and functions; relies on the Checker for expressions, types and l-values."""

    ctx: str
    expr: Any
    coerce: Any
    same_type: Any
    check_lvalue: Any
    assign_compat: Any
    resolve_type: Any

    def extern_method(self, e: A.Call, bt: ExternT, m: str) -> Type:
        args = e.args
        if bt.name == "register":
            vt = bt.type_args[0]
            if m == "read":
                if len(args) == 1:      # v1model's register has no value-returning read (p4c rejects it)
                    raise CompileError("register.read returns nothing in v1model: use read(result, index)", e.loc)
                if len(args) != 2:
                    raise CompileError("register.read expects (result, index)", e.loc)
                self.check_lvalue(args[0])
                if not self.same_type(args[0].ty, vt):
                    raise CompileError(f"register.read: result has type {args[0].ty}, register holds {vt}",
                                       args[0].loc)
                self._index(args[1], bt)
                return VoidT()
            if len(args) != 2:
                raise CompileError("register.write expects (index, value)", e.loc)
            self._index(args[0], bt)
            self.assign_compat(args[1], vt, args[1].loc)
            return VoidT()
        if bt.name == "counter":
            if len(args) != 1:
                raise CompileError("counter.count expects (index)", e.loc)
            self._index(args[0], bt)
            return VoidT()
        if bt.name == "direct_counter":
            if args:
                raise CompileError("direct_counter.count takes no arguments", e.loc)
            if self.ctx != "action":
                raise CompileError("direct_counter.count can only be called from an action", e.loc)
            return VoidT()
        if bt.name == "meter":
            if len(args) != 2:
                raise CompileError("meter.execute_meter expects (index, result)", e.loc)
            self._index(args[0], bt)
            self.check_lvalue(args[1])
            return VoidT()
        if bt.name == "direct_meter":
            if len(args) != 1:
                raise CompileError("direct_meter.read expects (result)", e.loc)
            self.check_lvalue(args[0])
            return VoidT()
        raise unsupported(f"{bt.name}.{m}", e.loc)

    def _index(self, a: A.Expr, bt: ExternT) -> None:
        """Index of a register/counter/meter: bit<32> in p4c's default v1model (``register<T>``,
        ``counter``, ``meter``); the index type argument I with V1MODEL_VERSION >= 20200408
        (``register<T, I>``, ``counter<I>``, ``meter<I>``). As p4c, no implicit width conversion."""
        n = 2 if bt.name == "register" else 1
        it = bt.type_args[n - 1] if len(bt.type_args) >= n else BitsT(32)
        if isinstance(a.ty, IntT):
            self.coerce(a, it)
        elif not self.same_type(a.ty, it):
            raise CompileError(f"{bt.name} index has type {a.ty}, expected {it} (p4c does not convert it"
                               f" implicitly: cast it, e.g. ({it})...)", a.loc)

    def _n(self, e: A.Call, name: str, n: int | tuple[int, ...]) -> None:
        ns = n if isinstance(n, tuple) else (n,)
        if len(e.args) not in ns:
            raise CompileError(f"{name}: expected {' or '.join(map(str, ns))} arguments, got {len(e.args)}", e.loc)

    def extern_function(self, e: A.Call, name: str, scope: Scope) -> Type:  # noqa: C901
        a = e.args
        ctx = self.ctx
        if name == "verify":
            if ctx != "parser":
                raise CompileError("verify can only be used in a parser", e.loc)
            self._n(e, name, 2)
            if not isinstance(a[0].ty, BoolT) or not isinstance(a[1].ty, ErrorT):
                raise CompileError("verify expects (bool, error)", e.loc)
            return VoidT()
        if name in ("verify_checksum", "update_checksum", "verify_checksum_with_payload",
                    "update_checksum_with_payload"):
            want = "verify" if name.startswith("verify") else "compute"
            if ctx != want:
                raise CompileError(f"{name} can only be used in the {'VerifyChecksum' if want == 'verify' else 'ComputeChecksum'}"
                                   " control", e.loc)
            self._n(e, name, 4)
            if not isinstance(a[0].ty, BoolT):
                raise CompileError(f"{name}: condition must be a bool", a[0].loc)
            self._algo(a[3])
            if not isinstance(a[2].ty, BitsT):
                raise CompileError(f"{name}: checksum must be a bit-string field", a[2].loc)
            self._sized(a[1])
            return VoidT()
        if ctx in ("verify", "compute", "deparser", "parser"):
            raise unsupported(f"{name} in a {ctx}", e.loc)
        if name == "mark_to_drop":
            self._n(e, name, (0, 1))
            if not a:       # deprecated in p4c's v1model, still accepted; same effect on standard_metadata
                log.warning("%s: warning: mark_to_drop() is deprecated; use mark_to_drop(standard_metadata)", e.loc)
                return VoidT()
            if not (isinstance(a[0].ty, StructT) and a[0].ty.name == "standard_metadata_t"):
                raise CompileError("mark_to_drop expects standard_metadata", a[0].loc)
            return VoidT()
        if name == "hash":
            self._n(e, name, 5)
            self.check_lvalue(a[0])
            if not isinstance(a[0].ty, BitsT):
                raise CompileError("hash: result must be a bit-string", a[0].loc)
            self._algo(a[1])
            # base, data and max are generic (T, D, M): as p4c, an unsized integer there has no width
            for x in (a[2], a[4]):
                self._sized(x)
            if not isinstance(a[3].ty, (ListT, StructT, BitsT)):
                raise CompileError("hash: data must be a list, struct or bit-string", a[3].loc)
            self._sized(a[3])
            return VoidT()
        if name == "random":
            self._n(e, name, 3)
            self.check_lvalue(a[0])
            for x in a[1:]:
                self._arg(x, a[0].ty, "random")
            return VoidT()
        if name == "digest":
            self._n(e, name, 2)
            self._arg(a[0], BitsT(32), "digest receiver")
            if len(e.type_args) == 1:
                t = self.resolve_type(e.type_args[0], scope)
                if not isinstance(t, StructT):
                    raise CompileError("digest<T>: T must be a struct", e.loc)
                if isinstance(a[1], A.ListExpr):
                    self.assign_compat(a[1], t, a[1].loc)
                elif not self.same_type(a[1].ty, t):
                    raise CompileError(f"digest: data has type {a[1].ty}, expected {t}", a[1].loc)
                e.digest_type = t
            else:
                if not isinstance(a[1].ty, StructT):
                    raise unsupported("digest of a list without a struct type argument (use digest<T>)",
                                      a[1].loc)
                e.digest_type = a[1].ty
            return VoidT()
        if name == "clone":
            self._n(e, name, 2)
            self._enum(a[0], "CloneType")
            self._arg(a[1], BitsT(32), "clone session")
            return VoidT()
        if name == "clone_preserving_field_list":
            self._n(e, name, 3)
            self._enum(a[0], "CloneType")
            self._arg(a[1], BitsT(32), "clone session")
            self._arg(a[2], BitsT(8), "field list index")
            if a[2].const is None:
                raise CompileError("field list index must be a constant", a[2].loc)
            return VoidT()
        if name in ("resubmit", "recirculate", "clone3"):
            # v1model still declares them (deprecated), but p4c-bm2-ss rejects them: so do we
            replacement = "clone_preserving_field_list" if name == "clone3" else f"{name}_preserving_field_list"
            raise CompileError(f"{name}: unknown extern function (deprecated and not supported by the BMv2 "
                               f"backend; use {replacement} with a @field_list annotation)", e.loc)
        if name in ("resubmit_preserving_field_list", "recirculate_preserving_field_list"):
            self._n(e, name, 1)
            self._arg(a[0], BitsT(8), "field list index")
            if a[0].const is None:
                raise CompileError("field list index must be a constant", a[0].loc)
            return VoidT()
        if name == "truncate":
            self._n(e, name, 1)
            self._arg(a[0], BitsT(32), "truncate length")
            return VoidT()
        if name in ("assert", "assume"):
            self._n(e, name, 1)
            if not isinstance(a[0].ty, BoolT):
                raise CompileError(f"{name} expects a bool", a[0].loc)
            return VoidT()
        if name == "log_msg":
            self._n(e, name, (1, 2))
            if not isinstance(a[0], A.StrLit):
                raise CompileError("log_msg expects a string literal", a[0].loc)
            return VoidT()
        raise unsupported(f"extern function {name}", e.loc)

    def _arg(self, a: A.Expr, t: Type, what: str) -> None:
        """An extern argument of a fixed type: untyped integers take it, anything else must have it
        (p4c does not widen or narrow implicitly)."""
        if isinstance(a.ty, IntT):
            self.coerce(a, t)
        elif not self.same_type(a.ty, t):
            raise CompileError(f"{what} has type {a.ty}, expected {t}", a.loc)

    def _sized(self, a: A.Expr) -> None:
        """An argument for a generic extern parameter: p4c rejects an unsized integer (in a list too)
        with "could not infer a width"; write 32w0 or (bit<32>)0."""
        for x in (a.items if isinstance(a, A.ListExpr) else [a]):
            if isinstance(x.ty, IntT):
                raise CompileError(f"{expr_str(x)}: could not infer a width (p4c requires a sized value here,"
                                   f" e.g. (bit<32>){expr_str(x)})", x.loc)

    def _algo(self, a: A.Expr) -> None:
        self._enum(a, "HashAlgorithm")

    def _enum(self, a: A.Expr, name: str) -> None:
        if not (isinstance(a.ty, EnumT) and a.ty.name == name and a.const is not None):
            raise CompileError(f"expected a {name} constant", a.loc)
