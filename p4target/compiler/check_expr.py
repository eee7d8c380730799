"""Expression typing for the checker (mixin of :class:`check.Checker`): literals and width inference,
operators, members, method and extern calls with v1model's signatures, constant folding."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import ast as A
from . import named_args
from .check_externs import ExternChecker
from .errors import CompileError, Loc, unsupported
from .names import expr_str
from .types import (
    ActionSym,
    BitsT,
    BoolT,
    ConstSym,
    DontCareT,
    EnumT,
    ErrorT,
    ExternFuncSym,
    ExternT,
    FunctionSym,
    InstanceSym,
    IntT,
    ListT,
    ObjT,
    StackT,
    StringT,
    StructT,
    Type,
    TypeSym,
    VoidT,
    width_of,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .scope import Scope

EXTERN_METHODS = {
    "register": {"read", "write"}, "counter": {"count"}, "direct_counter": {"count"},
    "meter": {"execute_meter"}, "direct_meter": {"read"}, "Checksum16": {"get"},
}


class ExprChecker(ExternChecker):
    """Typing of expressions; relies on the Checker for scopes, types and l-value checks."""

    glob: Any
    errors: dict[str, int]
    ctx: str

    def coerce(self, e: A.Expr, t: Type) -> None:
        """Give an untyped integer expression the type its context requires (or check the type)."""
        if isinstance(e.ty, IntT) and isinstance(t, (BitsT, IntT)):
            e.ty = t
            if isinstance(t, BitsT) and e.const is not None:
                e.const = wrap(e.const, t)
            for sub in children(e):
                if isinstance(sub.ty, IntT):
                    self.coerce(sub, t if not (isinstance(e, A.Binary) and e.op in ("<<", ">>")
                                               and sub is e.right) else sub.ty)
            return
        if isinstance(e, A.ListExpr) and isinstance(t, StructT):
            self.assign_compat(e, t, e.loc)
            return
        if isinstance(t, DontCareT) or isinstance(e.ty, DontCareT):
            return
        if not self.same_type(e.ty, t):
            raise CompileError(f"type mismatch: expected {t}, got {e.ty}", e.loc)

    def unify(self, a: A.Expr, b: A.Expr, loc: Loc, op: str) -> Type:
        ta, tb = a.ty, b.ty
        if isinstance(ta, IntT) and isinstance(tb, IntT):
            return IntT()
        if isinstance(ta, IntT):
            self.coerce(a, tb)
            return tb
        if isinstance(tb, IntT):
            self.coerce(b, ta)
            return ta
        if self.same_type(ta, tb):
            return ta
        raise CompileError(f"{op}: cannot operate on values with different types {ta} and {tb}", loc)

    def expr(self, e: A.Expr, scope: Scope, stmt: bool = False) -> Type:
        t = self._expr(e, scope, stmt)
        e.ty = t
        return t

    def _expr(self, e: A.Expr, scope: Scope, stmt: bool) -> Type:  # noqa: C901 - one dispatch
        if isinstance(e, A.IntLit):
            if e.width is not None:
                t = BitsT(e.width, e.signed)
                if e.value >= (1 << e.width):      # p4c: WARN_MISMATCH, the value is truncated
                    log.warning("%s: warning: %s: value does not fit in %d bits", e.loc, e.value, e.width)
                e.const = wrap(e.value, t)
                return t
            e.const = e.value
            return IntT()
        if isinstance(e, A.BoolLit):
            e.const = e.value
            return BoolT()
        if isinstance(e, A.StrLit):
            return StringT()
        if isinstance(e, A.Default):
            return DontCareT()
        if isinstance(e, A.Name):
            if e.name == "error":
                return ObjT("errortype")
            sym = (self.glob if e.dotted else scope).lookup(e.name)
            if sym is None:
                raise CompileError(f"{e.name}: declaration not found", e.loc)
            e.ref = sym
            if isinstance(sym, ConstSym):
                e.const = sym.value
            if isinstance(sym, TypeSym):
                return ObjT("type", e.name)
            return sym.type
        if isinstance(e, A.Member):
            return self.member(e, scope)
        if isinstance(e, A.Index):
            bt = self.expr(e.expr, scope)
            self.expr(e.index, scope)
            if not isinstance(bt, StackT):
                raise CompileError(f"{expr_str(e.expr)}: indexing a non-stack value", e.loc)
            if e.index.const is None:
                if not isinstance(e.index.ty, (BitsT, IntT)):
                    raise CompileError(f"stack index must be a bit-string, got {e.index.ty}", e.index.loc)
                return bt.elem
            if not 0 <= e.index.const < bt.size:
                raise CompileError(f"index {e.index.const} out of bounds for {bt}", e.index.loc)
            return bt.elem
        if isinstance(e, A.Slice):
            bt = self.expr(e.expr, scope)
            self.expr(e.hi, scope)
            self.expr(e.lo, scope)
            if not isinstance(bt, (BitsT, IntT)):
                raise CompileError(f"cannot slice a value of type {bt}", e.loc)
            hi, lo = e.hi.const, e.lo.const
            if not isinstance(hi, int) or not isinstance(lo, int):
                raise CompileError("slice bounds must be compile-time constants", e.loc)
            if hi < lo or lo < 0 or (isinstance(bt, BitsT) and hi >= bt.width):
                raise CompileError(f"invalid slice [{hi}:{lo}] of {bt}", e.loc)
            t = BitsT(hi - lo + 1)
            if e.expr.const is not None:
                e.const = (e.expr.const >> lo) & ((1 << t.width) - 1)
            return t
        if isinstance(e, A.Unary):
            t = self.expr(e.expr, scope)
            if e.op == "!":
                if not isinstance(t, BoolT):
                    raise CompileError(f"!: expected a bool, got {t}", e.loc)
                if e.expr.const is not None:
                    e.const = not e.expr.const
                return t
            if not isinstance(t, (BitsT, IntT)):
                raise CompileError(f"{e.op}: expected a bit-string, got {t}", e.loc)
            if e.op == "~" and isinstance(t, IntT):
                raise CompileError("~: operand width unknown (use a typed constant)", e.loc)
            if e.expr.const is not None:
                v = e.expr.const
                e.const = wrap(~v if e.op == "~" else -v, t)
            return t
        if isinstance(e, A.Binary):
            return self.binary(e, scope)
        if isinstance(e, A.Ternary):
            self.expr(e.cond, scope)
            if not isinstance(e.cond.ty, BoolT):
                raise CompileError(f"?: condition must be a bool, got {e.cond.ty}", e.cond.loc)
            self.expr(e.then, scope)
            self.expr(e.other, scope)
            t = self.unify(e.then, e.other, e.loc, "?:")
            if e.cond.const is not None and e.then.const is not None and e.other.const is not None:
                e.const = e.then.const if e.cond.const else e.other.const
            return t
        if isinstance(e, A.Cast):
            t = self.resolve_type(e.type, scope)
            st = self.expr(e.expr, scope)
            ok = (isinstance(t, BitsT) and isinstance(st, (BitsT, IntT, BoolT, EnumT))) or \
                 (isinstance(t, BoolT) and (isinstance(st, BoolT) or (isinstance(st, BitsT) and st.width == 1)
                                            or isinstance(st, IntT))) or \
                 (isinstance(t, EnumT) and t.base is not None and isinstance(st, (BitsT, IntT))) or \
                 (isinstance(t, IntT) and isinstance(st, IntT))
            if isinstance(t, BitsT) and isinstance(st, BoolT) and t.width != 1:
                ok = False
            if isinstance(t, BitsT) and isinstance(st, EnumT) and st.base is None:
                ok = False
            if isinstance(t, BitsT) and isinstance(st, BitsT) and t.signed != st.signed and t.width != st.width:
                ok = False      # p4c: a cast changes the width or the signedness, not both at once
            if not ok:
                raise CompileError(f"illegal cast from {st} to {t}", e.loc)
            if isinstance(st, IntT):
                self.coerce(e.expr, t if isinstance(t, BitsT) else IntT())
            v = e.expr.const
            if v is not None:
                if isinstance(t, BoolT):
                    e.const = bool(v)
                elif isinstance(t, BitsT):
                    e.const = wrap(int(v), t)
                else:
                    e.const = v
            return t
        if isinstance(e, A.ListExpr):
            ts = tuple(self.expr(i, scope) for i in e.items)
            return ListT(ts)
        if isinstance(e, A.Call):
            return self.call(e, scope, stmt)
        if isinstance(e, A.TypeExpr):
            return ObjT("type")
        raise unsupported(f"expression {type(e).__name__}", e.loc)

    def binary(self, e: A.Binary, scope: Scope) -> Type:
        op = e.op
        ta = self.expr(e.left, scope)
        tb = self.expr(e.right, scope)
        a, b = e.left, e.right
        if op in ("&&", "||"):
            for x in (a, b):
                if not isinstance(x.ty, BoolT):
                    raise CompileError(f"{op}: expected bool operands, got {x.ty}", x.loc)
            if a.const is not None and b.const is not None:
                e.const = (a.const and b.const) if op == "&&" else (a.const or b.const)
            return BoolT()
        if op in ("==", "!="):
            if isinstance(ta, StructT) and ta.kind == "header" and isinstance(tb, StructT) and tb.kind == "header":
                if not self.same_type(ta, tb):
                    raise CompileError(f"{op}: cannot compare headers of types {ta} and {tb}", e.loc)
                return BoolT()          # BMv2 EQ_HEADER: both invalid, or both valid with equal fields
            if isinstance(ta, (StructT, StackT, ListT)) or isinstance(tb, (StructT, StackT, ListT)):
                raise unsupported("comparison of structs, stacks or lists", e.loc)
            self.unify(a, b, e.loc, op)
            if a.const is not None and b.const is not None:
                e.const = (a.const == b.const) == (op == "==")
            return BoolT()
        if op in ("<", ">", "<=", ">="):
            t = self.unify(a, b, e.loc, op)
            if not isinstance(t, (BitsT, IntT)):
                raise CompileError(f"{op}: cannot compare values of type {t}", e.loc)
            if a.const is not None and b.const is not None:
                e.const = {"<": a.const < b.const, ">": a.const > b.const,
                           "<=": a.const <= b.const, ">=": a.const >= b.const}[op]
            return BoolT()
        if op == "++":
            if not isinstance(ta, BitsT) or not isinstance(tb, BitsT):
                raise CompileError(f"++: operands must have a known width (got {ta} and {tb})", e.loc)
            t = BitsT(ta.width + tb.width, ta.signed)
            if a.const is not None and b.const is not None:
                e.const = (a.const << tb.width) | b.const
            return t
        if op in ("<<", ">>"):
            if not isinstance(ta, (BitsT, IntT)) or not isinstance(tb, (BitsT, IntT)):
                raise CompileError(f"{op}: operands must be bit-strings", e.loc)
            if isinstance(tb, BitsT) and tb.signed:
                raise CompileError(f"{op}: shift amount must be unsigned", e.loc)
            if isinstance(ta, IntT) and b.const is None:
                raise CompileError(f"{op}: width of the shifted value cannot be inferred", e.loc)
            if a.const is not None and b.const is not None:
                e.const = wrap(a.const << b.const if op == "<<" else a.const >> b.const, ta)
            return ta
        if op in ("+", "-", "*", "/", "%", "&", "|", "^", "|+|", "|-|"):
            t = self.unify(a, b, e.loc, op)
            if not isinstance(t, (BitsT, IntT)):
                raise CompileError(f"{op}: operands must be bit-strings, got {t}", e.loc)
            if a.const is not None and b.const is not None:
                x, y = a.const, b.const
                if op in ("/", "%") and y == 0:
                    raise CompileError("division by zero", e.loc)
                r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x // y,
                     "%": lambda: x % y, "&": lambda: x & y, "|": lambda: x | y, "^": lambda: x ^ y,
                     "|+|": lambda: sat(x + y, t), "|-|": lambda: sat(x - y, t)}[op]()
                e.const = wrap(r, t)
            return t
        if op in ("&&&", ".."):
            raise CompileError(f"{op}: only allowed in select cases and table entries", e.loc)
        raise unsupported(f"operator {op}", e.loc)

    def member(self, e: A.Member, scope: Scope) -> Type:
        base = e.expr
        if isinstance(base, A.Name) and base.name == "error":
            if e.name not in self.errors:
                raise CompileError(f"error.{e.name}: declaration not found", e.loc)
            e.const = self.errors[e.name]
            return ErrorT()
        bt = self.expr(base, scope)
        if isinstance(bt, ObjT) and bt.kind == "type":
            sym = base.ref
            if isinstance(sym, TypeSym) and isinstance(sym.type, EnumT):
                if e.name not in sym.type.members:
                    raise CompileError(f"{e.name}: not a member of enum {sym.type.name}", e.loc)
                e.const = sym.type.members[e.name]
                return sym.type
            raise CompileError(f"{expr_str(e)}: invalid member access on a type", e.loc)
        if isinstance(bt, StructT):
            if bt.kind in ("header", "header_union") and e.name in ("isValid", "setValid", "setInvalid"):
                return ObjT("method", e.name)
            if e.name in ("minSizeInBits", "minSizeInBytes") and bt.field(e.name) is None:
                return ObjT("method", e.name)
            ft = bt.field(e.name)
            if ft is None:
                raise CompileError(f"{e.name}: no such field in {bt.name}", e.loc)
            return ft
        if isinstance(bt, StackT):
            if e.name in ("next", "last"):
                if self.ctx != "parser":
                    raise unsupported(f"header stack .{e.name} outside a parser", e.loc)
                return bt.elem
            if e.name in ("size", "lastIndex"):
                if e.name == "size":
                    e.const = bt.size
                return BitsT(32)
            if e.name in ("push_front", "pop_front"):
                return ObjT("method", e.name)
            raise CompileError(f"{e.name}: no such member of a header stack", e.loc)
        if isinstance(bt, ExternT):
            if e.name not in EXTERN_METHODS.get(bt.name, set()):
                raise CompileError(f"{e.name}: no such method of {bt.name}", e.loc)
            return ObjT("method", e.name)
        if isinstance(bt, ObjT):
            if bt.kind in ("table", "control_inst") and e.name == "apply":
                return ObjT("method", "apply")
            if bt.kind == "apply_result":
                e.ref = base.ref
                if e.name in ("hit", "miss"):
                    return BoolT()
                if e.name == "action_run":
                    return ObjT("action_run")
            if bt.kind in ("packet_in", "packet_out"):
                ok = {"packet_in": {"extract", "lookahead", "advance", "length"},
                      "packet_out": {"emit"}}[bt.kind]
                if e.name not in ok:
                    raise CompileError(f"{e.name}: no such method of {bt.kind}", e.loc)
                if e.name == "length":
                    raise unsupported("packet_in.length()", e.loc)
                return ObjT("method", e.name)
        raise CompileError(f"{expr_str(e)}: no member '{e.name}' in a value of type {bt}", e.loc)

    def bind_named(self, e: A.Call, scope: Scope) -> None:
        """Reorder a call's named arguments into parameter order (see named_args)."""
        f = e.func
        cands: list[list[A.Param]] = []
        what = expr_str(f)
        if isinstance(f, A.Name):
            sym = scope.lookup(f.name)
            if isinstance(sym, (ActionSym, FunctionSym)):
                cands = [sym.decl.params]
            elif isinstance(sym, ExternFuncSym):
                cands = [d.params for d in self.prog.decls
                         if isinstance(d, A.ExternDecl) and d.is_function and d.name == f.name]
        elif isinstance(f, A.Member):
            self.expr(f.expr, scope)
            bt = f.expr.ty
            ext = bt.name if isinstance(bt, ExternT) else \
                bt.kind if isinstance(bt, ObjT) and bt.kind in ("packet_in", "packet_out") else None
            if ext is not None:
                cands = [ps for d in self.prog.decls if isinstance(d, A.ExternDecl) and d.name == ext
                         for m, ps in d.methods if m == f.name]
            elif isinstance(bt, ObjT) and bt.kind == "control_inst" and f.name == "apply":
                decl = getattr(f.expr.ref, "decl", None)
                if isinstance(decl, A.Instance) and isinstance(decl.type, A.NamedTypeRef):
                    bsym = scope.lookup(decl.type.name)
                    decl = getattr(bsym, "decl", None)
                if isinstance(decl, A.ControlDecl):
                    cands = [decl.params]
            elif isinstance(bt, StackT) and f.name in ("push_front", "pop_front"):
                cands = [[A.Param("in", A.NamedTypeRef(f.loc, name="int"), "count", f.loc)]]
        params = cands[0] if len(cands) == 1 else named_args.pick_overload(cands, e.arg_names) if cands else None
        if params is None:
            if cands:
                raise CompileError(f"{what}: no overload takes arguments named "
                                   f"{', '.join(str(n) for n in e.arg_names)}", e.loc)
            raise unsupported(f"named arguments in a call of {what}", e.loc)
        e.args = named_args.bind(e.args, e.arg_names, params, what, e.loc)
        e.arg_names = [None] * len(e.args)

    def call(self, e: A.Call, scope: Scope, stmt: bool) -> Type:  # noqa: C901
        f = e.func
        if named_args.is_named(e.arg_names):
            self.bind_named(e, scope)
        if isinstance(f, A.Member):
            self.expr(f, scope)
            base = f.expr
            bt = base.ty
            m = f.name
            if isinstance(bt, ObjT) and bt.kind == "table":
                if self.ctx != "control":
                    raise CompileError("tables can only be applied in a control's apply block", e.loc)
                e.ref = base.ref
                if getattr(base.ref, "_applied", False):
                    raise CompileError(f"{base.ref.name}: table is applied more than once", e.loc)
                base.ref._applied = True
                return ObjT("apply_result", base.ref.name)
            if isinstance(bt, ObjT) and bt.kind == "control_inst":
                return self.sub_apply(e, base.ref, scope)
            for a in e.args:
                self.expr(a, scope)
            if isinstance(bt, StructT):          # header methods
                if e.args:
                    raise CompileError(f"{m}: takes no arguments", e.loc)
                if m in ("minSizeInBits", "minSizeInBytes"):     # compile-time constants (no varbit here)
                    bits = width_of(bt)
                    e.const = bits if m == "minSizeInBits" else (bits + 7) // 8
                    return IntT()
                if m != "isValid":
                    self.check_lvalue(base)
                return BoolT() if m == "isValid" else VoidT()
            if isinstance(bt, StackT):
                if len(e.args) != 1 or e.args[0].const is None:
                    raise CompileError(f"{m}: expects one constant argument", e.loc)
                self.coerce(e.args[0], IntT())
                return VoidT()
            if isinstance(bt, ObjT) and bt.kind == "packet_in":
                if self.ctx != "parser":
                    raise CompileError(f"packet_in.{m} used outside a parser", e.loc)
                if m == "extract":
                    if len(e.args) != 1:
                        raise unsupported("extract with a variable-size field length", e.loc)
                    if not (isinstance(e.args[0].ty, StructT) and e.args[0].ty.kind == "header"):
                        raise CompileError("extract expects a header", e.args[0].loc)
                    return VoidT()
                if m == "lookahead":
                    if len(e.type_args) != 1 or e.args:
                        raise CompileError("lookahead<T>() expects one type argument", e.loc)
                    t = self.resolve_type(e.type_args[0], scope)
                    if not isinstance(t, BitsT) and not (isinstance(t, StructT) and t.kind == "header"):
                        raise unsupported(f"lookahead of type {t}", e.loc)
                    return t
                if m == "advance":
                    if len(e.args) != 1:
                        raise CompileError("advance expects one argument", e.loc)
                    self._arg(e.args[0], BitsT(32), "advance size")
                    return VoidT()
            if isinstance(bt, ObjT) and bt.kind == "packet_out":
                if self.ctx != "deparser":
                    raise CompileError("packet_out.emit used outside a deparser", e.loc)
                if len(e.args) != 1 or not isinstance(e.args[0].ty, (StructT, StackT)):
                    raise CompileError("emit expects a header, header stack or struct of headers", e.loc)
                return VoidT()
            if isinstance(bt, ExternT):
                return self.extern_method(e, bt, m)
            raise CompileError(f"{expr_str(f)}: cannot be called", e.loc)
        if not isinstance(f, A.Name):
            raise CompileError(f"{expr_str(f)}: cannot be called", e.loc)
        sym = scope.lookup(f.name)
        if sym is None:
            raise CompileError(f"{f.name}: declaration not found", f.loc)
        f.ref = sym
        f.ty = sym.type
        if isinstance(sym, ActionSym):
            if self.ctx not in ("control", "action"):
                raise CompileError(f"{f.name}: actions can only be called from controls and actions", e.loc)
            params = sym.decl.params
            if len(e.args) != len(params):
                raise CompileError(f"{f.name}: expected {len(params)} arguments, got {len(e.args)}", e.loc)
            for a, p in zip(e.args, params, strict=True):
                self.expr(a, scope)
                self.coerce(a, self.resolve_type(p.type, scope))
                if p.direction in ("out", "inout"):
                    self.check_lvalue(a)
            e.ref = sym
            return VoidT()
        if isinstance(sym, FunctionSym):
            params = sym.decl.params
            if len(e.args) != len(params):
                raise CompileError(f"{f.name}: expected {len(params)} arguments, got {len(e.args)}", e.loc)
            for a, p in zip(e.args, params, strict=True):
                self.expr(a, scope)
                self.coerce(a, sym.decl._param_syms[p.name].type)
                if p.direction in ("out", "inout"):
                    self.check_lvalue(a)
            e.ref = sym
            return sym.ret
        if isinstance(sym, ExternFuncSym):
            for a in e.args:
                if not isinstance(a, A.Default):
                    self.expr(a, scope)
            e.ref = sym
            return self.extern_function(e, f.name, scope)
        raise CompileError(f"{f.name}: is not a function or action", e.loc)

    def sub_apply(self, e: A.Call, inst: InstanceSym, scope: Scope) -> Type:
        if self.ctx != "control":
            raise CompileError("controls can only be applied from a control's apply block", e.loc)
        if getattr(inst, "_applied", False) and _has_tables(inst.sub):
            # p4c inlines each apply: the copies' tables would share one control-plane name
            raise unsupported(f"{inst.name}: applying a control instance that has tables more than once",
                              e.loc)
        inst._applied = True
        params = inst.sub.params
        if len(e.args) != len(params):
            raise CompileError(f"{inst.name}.apply: expected {len(params)} arguments, got {len(e.args)}", e.loc)
        for a, p in zip(e.args, params, strict=True):
            self.expr(a, scope)
            pt = inst.sub._param_syms[p.name].type
            if isinstance(a.ty, IntT) and isinstance(pt, BitsT):
                self.coerce(a, pt)
            elif not self.same_type(a.ty, pt) and not (isinstance(a, A.ListExpr) and isinstance(pt, StructT)):
                raise CompileError(f"{p.name}: argument has type {a.ty}, parameter has type {pt}", a.loc)
            if p.direction in ("out", "inout"):
                self.check_lvalue(a)
        e.ref = inst
        return VoidT()


def wrap(v: int | bool, t: Type) -> int:
    if isinstance(t, BitsT):
        v = int(v) & ((1 << t.width) - 1)
        if t.signed and v >= 1 << (t.width - 1):
            v -= 1 << t.width
    return int(v)


def sat(v: int, t: Type) -> int:
    if not isinstance(t, BitsT):
        return v
    lo, hi = (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, (1 << t.width) - 1)
    return max(lo, min(hi, v))


def children(e: A.Expr) -> list[A.Expr]:
    if isinstance(e, A.Binary):
        return [e.left, e.right]
    if isinstance(e, A.Unary):
        return [e.expr]
    if isinstance(e, A.Ternary):
        return [e.then, e.other]
    return []


def _has_tables(sub: A.ControlDecl) -> bool:
    """Whether a (checked) sub-control declares tables, directly or in its own sub-controls."""
    for d in sub.locals:
        if isinstance(d, A.TableDecl):
            return True
        sym = getattr(d, "sym", None)
        inner = getattr(sym, "sub", None)
        if isinstance(inner, A.ControlDecl) and _has_tables(inner):
            return True
    return False
