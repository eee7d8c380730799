"""Lowering of checked expressions and statements to BMv2 JSON expression trees and primitives.

Expression nodes follow p4c-bm2-ss: ``{"type": "expression", "value": {"op", "left", "right"}}``;
arithmetic results are masked to their width with ``&`` (``two_comp_mod`` for signed), booleans are
converted with ``d2b``/``b2d`` where they meet fields, action data inside expressions is
``{"type": "local"}`` and ``{"type": "runtime_data"}`` as a direct primitive argument.
"""
from __future__ import annotations

from typing import Any

from . import ast as A
from .errors import CompileError, unsupported
from .jsonexpr import ex, field_ref, hexstr, hexv, mask_to, to_data, top  # noqa: F401 - re-exported
from .layout import HeaderStore, Layout, ScalarStore, StackStore, Store, StructStore
from .lower_externs import HASH_ALGOS, ExternLowering, _enum_member, _flatten_fields  # noqa: F401
from .names import expr_str
from .types import (
    ActionParamSym,
    ActionSym,
    BitsT,
    BoolT,
    EnumT,
    ExternFuncSym,
    FunctionSym,
    InstanceSym,
    IntT,
    ListT,
    ParamSym,
    StackT,
    StructT,
    VarSym,
    width_of,
)

Json = dict[str, Any]



class Ctx(ExternLowering):
    """Per-block lowering context: storage roots and action-parameter bindings."""

    def __init__(self, layout: Layout, roots: dict[str, Store], program: Any) -> None:
        self.layout = layout
        self.roots = roots                  # role -> store
        # id(VarSym) -> store, shared by every context of the program (one storage per variable)
        self.vars: dict[int, Store] = program.var_stores if program is not None else {}
        self.env: dict[int, Any] = {}       # id(ActionParamSym) -> ("rt", index) | ("expr", Expr, Ctx env)
        self.program = program              # the BMv2 emitter (calculations, learn lists...)
        self.in_parser = False
        self.ret_patches: list[list[Json]] = []   # pending '_jump's of 'return' per action body
        self.ret_targets: list[Store | None] = []  # where a function's 'return value' goes
        # where a pure function called inside a larger expression is inlined (into a temporary) before
        # the statement being lowered; None where no statement is (then such a call is unsupported)
        self.hoist_out: list[Json] | None = None

    # ------------------------------------------------------------------ storage
    def var_store(self, sym: VarSym) -> Store:
        st = self.vars.get(id(sym))
        if st is None:
            st = self.layout.build(sym.type, [sym.unique], "local")
            self.vars[id(sym)] = st
        return st

    def _in_binding_env(self, binding: tuple, fn: Any) -> Any:
        """``fn`` of an inlined parameter's argument expression (binding ("expr", arg, env)), evaluated in
        the caller's environment ``env`` it was bound in."""
        saved = self.env
        self.env = binding[2]
        try:
            return fn(binding[1])
        finally:
            self.env = saved

    def store(self, e: A.Expr) -> Store | None:
        """Storage an l-value-like expression denotes, or None if it is not storage."""
        if isinstance(e, _StoreRef):
            return e.store_
        if isinstance(e, A.Name):
            sym = e.ref
            b = self.env.get(id(sym))
            if b is not None and b[0] == "store":
                return b[1]
            if isinstance(sym, (ParamSym, ActionParamSym)) and b is not None and b[0] == "expr":
                return self._in_binding_env(b, self.store)
            if isinstance(sym, ParamSym):
                return self.roots.get(sym.role)
            if isinstance(sym, VarSym):
                return self.var_store(sym)
            return None
        if isinstance(e, A.Member):
            base = self.store(e.expr)
            if isinstance(base, StructStore):
                return base.fields.get(e.name)
            if isinstance(base, HeaderStore):
                ft = base.type.field(e.name)
                if ft is None:
                    return None
                return ScalarStore(base.inst, e.name, ft)
            if isinstance(base, StackStore) and e.name in ("next", "last"):
                return None
            return None
        if isinstance(e, A.Index):
            base = self.store(e.expr)
            if isinstance(base, StackStore):
                return base.elems[e.index.const]
        return None

    # ------------------------------------------------------------------ r-values
    def rv(self, e: A.Expr) -> Json:  # noqa: C901 - one dispatch over expression kinds
        t = e.ty
        if e.const is not None and not isinstance(e, A.StrLit):
            if isinstance(t, BoolT):
                return {"type": "bool", "value": bool(e.const)}
            if isinstance(t, IntT):
                return hexv(e.const)
            return hexv(e.const & ((1 << width_of(t)) - 1) if not (isinstance(t, BitsT) and t.signed)
                        else e.const, width_of(t))
        if isinstance(e, A.Name) and isinstance(e.ref, (ActionParamSym, ParamSym)) and (
                isinstance(e.ref, ActionParamSym) or id(e.ref) in self.env):
            b = self.env.get(id(e.ref))
            if b is None:
                raise CompileError(f"{e.name}: parameter not bound", e.loc)
            if b[0] == "store":
                node = field_ref(b[1]) if isinstance(b[1], ScalarStore) else None
                if node is None:
                    raise unsupported(f"use of '{e.name}' as a value", e.loc)
                return ex("d2b", None, node) if isinstance(t, BoolT) else node
            if b[0] == "rt":
                node = {"type": "local", "value": b[1]}
                return ex("d2b", None, node) if isinstance(t, BoolT) else node
            return self._in_binding_env(b, self.rv)
        if isinstance(e, A.Member) and isinstance(e.expr, A.Call) and isinstance(e.expr.func, A.Member) \
                and e.expr.func.name == "lookahead" and self.in_parser and isinstance(e.expr.ty, StructT):
            off = 0
            for fn, ft in e.expr.ty.fields:
                if fn == e.name:
                    break
                off += width_of(ft)
            node = {"type": "lookahead", "value": [off, width_of(t)]}
            return ex("d2b", None, node) if isinstance(t, BoolT) else node
        if isinstance(e, _StoreRef):
            node = field_ref(e.store_)
            return ex("d2b", None, node) if isinstance(t, BoolT) else node
        dyn = self.dynamic_field(e)
        if dyn is not None:
            return ex("d2b", None, dyn) if isinstance(t, BoolT) else dyn
        if isinstance(e, A.Member) and e.name == "lastIndex" and isinstance(e.expr.ty, StackT):
            st = self.store(e.expr)
            if not isinstance(st, StackStore):
                raise unsupported(f"{expr_str(e)} as a value", e.loc)
            return ex("last_stack_index", None, {"type": "header_stack", "value": st.name})
        if isinstance(e, (A.Name, A.Member, A.Index)):
            if isinstance(e, A.Member) and isinstance(e.expr.ty, StackT) and e.expr.ty is not None \
                    and e.name == "last":
                raise unsupported("header stack .last as a value", e.loc)
            if isinstance(e, A.Member) and isinstance(e.expr, A.Member) and e.expr.name == "last" \
                    and isinstance(e.expr.expr.ty, StackT):
                st = self.store(e.expr.expr)
                if not self.in_parser or not isinstance(st, StackStore):
                    raise unsupported("header stack .last outside a parser", e.loc)
                node = {"type": "stack_field", "value": [st.name, e.name]}
                return ex("d2b", None, node) if isinstance(t, BoolT) else node
            s = self.store(e)
            if isinstance(s, ScalarStore):
                node = field_ref(s)
                return ex("d2b", None, node) if isinstance(t, BoolT) else node
            if isinstance(s, HeaderStore):
                return {"type": "header", "value": s.inst}
            if isinstance(s, StackStore):
                return {"type": "header_stack", "value": s.name}
            raise unsupported(f"use of '{expr_str(e)}' as a value", e.loc)
        if isinstance(e, A.Unary):
            v = self.rv(e.expr)
            if e.op == "!":
                return ex("not", None, v)
            if e.op == "~":
                return mask_to(ex("~", None, v), t)
            return mask_to(ex("-", hexv(0, width_of(t)), v), t)
        if isinstance(e, A.Binary):
            return self.binary(e)
        if isinstance(e, A.Ternary):
            return ex("?", self.rv(e.then), self.rv(e.other), cond=self.rv(e.cond))
        if isinstance(e, A.Slice):
            v = self.rv(e.expr)
            lo = e.lo.const
            if lo:
                v = ex(">>", v, hexv(lo, 8))
            return mask_to(v, t)
        if isinstance(e, A.Cast):
            return self.cast(e)
        if isinstance(e, A.Call):
            f = e.func
            if isinstance(f, A.Member) and f.name == "isValid":
                s = self.store(f.expr)
                if isinstance(s, HeaderStore):
                    return ex("d2b", None, {"type": "field", "value": [s.inst, "$valid$"]})
                raise unsupported(f"isValid() on {expr_str(f.expr)}", e.loc)
            if isinstance(f, A.Member) and f.name == "lookahead" and self.in_parser:
                return {"type": "lookahead", "value": [0, width_of(t)]}
            if isinstance(e.ref, FunctionSym) and self.hoist_out is not None and not self.in_parser \
                    and _pure(e.ref) and isinstance(t, (BitsT, BoolT, EnumT)):
                tmp = self.layout.temp(t, "tmp")
                self.inline_function(e.ref, e.args, tmp, self.hoist_out)
                node = field_ref(tmp)
                return ex("d2b", None, node) if isinstance(t, BoolT) else node
            raise unsupported(f"call '{expr_str(f)}' inside an expression", e.loc)
        raise unsupported(f"expression '{expr_str(e)}'", e.loc)

    def dynamic_field(self, e: A.Expr) -> Json | None:
        """stack[i].f with a run-time index: access_field(dereference_header_stack(stack, i), offset)."""
        if not (isinstance(e, A.Member) and isinstance(e.expr, A.Index) and e.expr.index.const is None):
            return None
        st = self.store(e.expr.expr)
        if not isinstance(st, StackStore):
            raise unsupported(f"run-time index into '{expr_str(e.expr.expr)}'", e.loc)
        names = [fn for fn, _ in st.type.elem.fields]
        hdr = ex("dereference_header_stack", {"type": "header_stack", "value": st.name}, self.rv(e.expr.index))
        return {"type": "expression", "value": {"op": "access_field", "left": hdr, "right": names.index(e.name)}}

    def data(self, e: A.Expr) -> Json:
        """The value of e as data (booleans converted to 0/1)."""
        return to_data(self.rv(e), e.ty)

    def binary(self, e: A.Binary) -> Json:
        op, t = e.op, e.ty
        a, b = e.left, e.right
        if op in ("&&", "||"):
            return ex("and" if op == "&&" else "or", self.rv(a), self.rv(b))
        if op in ("==", "!="):
            if isinstance(a.ty, StructT):       # header == header (checked: same header type)
                return ex(op, self.rv(a), self.rv(b))
            return ex(op, self.data(a), self.data(b))
        if op in ("<", ">", "<=", ">="):
            return ex(op, self.rv(a), self.rv(b))
        if op == "++":
            wb = width_of(b.ty)
            return ex("|", ex("<<", self.rv(a), hexv(wb, 8)), self.rv(b))
        la, rb = self.rv(a), self.rv(b)
        if op in ("&", "|", "^"):
            return ex(op, la, rb)
        if op == ">>":
            return ex(">>", la, rb)
        if op in ("+", "-", "*", "<<"):
            return mask_to(ex(op, la, rb), t)
        if op in ("|+|", "|-|"):
            if not isinstance(t, BitsT):
                raise unsupported("saturating arithmetic on untyped values", e.loc)
            if t.signed:
                hi, lo = (1 << (t.width - 1)) - 1, -(1 << (t.width - 1))
            else:
                hi, lo = (1 << t.width) - 1, 0
            raw = ex("+" if op == "|+|" else "-", la, rb)
            return ex("?", hexv(hi, t.width),
                      ex("?", hexv(lo, t.width) if lo >= 0 else {"type": "hexstr", "value": hexstr(lo)},
                         raw, cond=ex("<", raw, hexv(lo, t.width) if lo >= 0 else
                                      {"type": "hexstr", "value": hexstr(lo)})),
                      cond=ex(">", raw, hexv(hi, t.width)))
        if op in ("/", "%"):
            d = b.const
            if isinstance(d, int) and d > 0 and d & (d - 1) == 0:
                k = d.bit_length() - 1
                if op == "/":
                    return ex(">>", la, hexv(k, 8))
                return ex("&", la, hexv(d - 1, width_of(t)))
            raise unsupported(f"'{op}' by a value that is not a constant power of two", e.loc)
        raise unsupported(f"operator {op}", e.loc)

    def cast(self, e: A.Cast) -> Json:
        t, st = e.ty, e.expr.ty
        v = self.rv(e.expr)
        if isinstance(t, BoolT):
            return v if isinstance(st, BoolT) else ex("d2b", None, v)
        if isinstance(st, BoolT):
            return ex("b2d", None, v)
        if isinstance(t, BitsT) and isinstance(st, BitsT):
            if t.signed != st.signed:
                return mask_to(v, t)
            if t.width < st.width:
                return mask_to(v, t)
            return v
        return v

    # ------------------------------------------------------------------ statements -> primitives
    def prim(self, op: str, params: list[Json], node: Any) -> Json:
        loc = node.loc
        frag = ""
        if isinstance(node, A.Assign):
            frag = f"{expr_str(node.lhs)} = {expr_str(node.rhs)}"
        elif isinstance(node, A.CallStmt):
            frag = expr_str(node.call)
        return {"op": op, "parameters": params,
                "source_info": {"filename": loc.file, "line": loc.line, "column": loc.col,
                                "source_fragment": frag[:80]}}

    def assign_store(self, dst: Store, rhs: A.Expr, node: Any, out: list[Json]) -> None:
        if isinstance(dst, ScalarStore):
            out.append(self.prim("assign", [field_ref(dst), top(to_data(self.rv(rhs), rhs.ty))], node))
            return
        if isinstance(dst, HeaderStore):
            if isinstance(rhs, A.ListExpr):
                out.append(self.prim("add_header", [{"type": "header", "value": dst.inst}], node))
                for (fn, ft), it in zip(dst.type.fields, rhs.items, strict=True):
                    self.assign_store(ScalarStore(dst.inst, fn, ft), it, node, out)
                return
            src = self.store(rhs)
            if not isinstance(src, HeaderStore):
                raise unsupported(f"header assignment from '{expr_str(rhs)}'", rhs.loc)
            out.append(self.prim("assign_header", [{"type": "header", "value": dst.inst},
                                                   {"type": "header", "value": src.inst}], node))
            return
        if isinstance(dst, StructStore):
            if isinstance(rhs, A.ListExpr):
                for (fn, _), it in zip(dst.type.fields, rhs.items, strict=True):
                    self.assign_store(dst.fields[fn], it, node, out)
                return
            src = self.store(rhs)
            if not isinstance(src, StructStore):
                raise unsupported(f"struct assignment from '{expr_str(rhs)}'", rhs.loc)
            self.copy_store(dst, src, node, out)
            return
        if isinstance(dst, StackStore):
            src = self.store(rhs)
            if not isinstance(src, StackStore):
                raise unsupported("header stack assignment", node.loc)
            out.append(self.prim("assign_header_stack", [{"type": "header_stack", "value": dst.name},
                                                         {"type": "header_stack", "value": src.name}], node))
            return
        raise unsupported("assignment target", node.loc)

    def copy_store(self, dst: Store, src: Store, node: Any, out: list[Json]) -> None:
        if isinstance(dst, ScalarStore) and isinstance(src, ScalarStore):
            out.append(self.prim("assign", [field_ref(dst), field_ref(src)], node))
        elif isinstance(dst, HeaderStore) and isinstance(src, HeaderStore):
            out.append(self.prim("assign_header", [{"type": "header", "value": dst.inst},
                                                   {"type": "header", "value": src.inst}], node))
        elif isinstance(dst, StructStore) and isinstance(src, StructStore):
            for fn in dst.fields:
                self.copy_store(dst.fields[fn], src.fields[fn], node, out)
        elif isinstance(dst, StackStore) and isinstance(src, StackStore):
            out.append(self.prim("assign_header_stack", [{"type": "header_stack", "value": dst.name},
                                                         {"type": "header_stack", "value": src.name}], node))
        else:
            raise unsupported("copy between different kinds of storage", node.loc)

    def assign(self, s: A.Assign, out: list[Json]) -> None:
        lhs, rhs = s.lhs, s.rhs
        if isinstance(rhs, A.Call) and isinstance(rhs.ref, FunctionSym):
            dst = self.store(lhs)
            if isinstance(dst, ScalarStore):
                self.inline_function(rhs.ref, rhs.args, dst, out)
                return
            tmp = self.layout.temp(rhs.ref.ret, "retval")
            self.inline_function(rhs.ref, rhs.args, tmp, out)
            self.assign(A.Assign(s.loc, lhs, _StoreRef(s.loc, tmp)), out)
            return
        if isinstance(rhs, A.Call) and isinstance(rhs.func, A.Member) and rhs.func.name == "read" \
                and isinstance(rhs.func.expr.ref, InstanceSym):
            dst = self.store(lhs)
            if not isinstance(dst, ScalarStore):
                raise unsupported("register read into this target", s.loc)
            inst = rhs.func.expr.ref
            out.append(self.prim("register_read", [field_ref(dst), {"type": "register_array", "value": inst.fqname},
                                                   top(self.rv(rhs.args[0]))], s))
            return
        if isinstance(lhs, A.Slice):
            dst = self.store(lhs.expr)
            if not isinstance(dst, ScalarStore):
                raise unsupported("slice assignment target", s.loc)
            w = width_of(dst.type)
            lo, hi = lhs.lo.const, lhs.hi.const
            m = ((1 << (hi - lo + 1)) - 1) << lo
            keep = ex("&", field_ref(dst), hexv(((1 << w) - 1) ^ m, w))
            new = ex("&", ex("<<", self.rv(rhs), hexv(lo, 8)), hexv(m, w))
            out.append(self.prim("assign", [field_ref(dst), top(ex("|", keep, new))], s))
            return
        dyn = self.dynamic_field(lhs)
        if dyn is not None:
            out.append(self.prim("assign", [{"type": "expression", "value": dyn}, top(self.data(rhs))], s))
            return
        dst = self.store(lhs)
        if dst is None:
            raise unsupported(f"assignment to '{expr_str(lhs)}'", s.loc)
        self.assign_store(dst, rhs, s, out)

    def header_of(self, e: A.Expr) -> HeaderStore:
        s = self.store(e)
        if not isinstance(s, HeaderStore):
            raise unsupported(f"header operation on '{expr_str(e)}'", e.loc)
        return s

    def call_stmt(self, s: A.CallStmt, out: list[Json]) -> None:  # noqa: C901
        c = s.call
        f = c.func
        a = c.args
        if isinstance(f, A.Member):
            m = f.name
            bt = f.expr.ty
            if isinstance(bt, StructT) and m in ("setValid", "setInvalid"):
                h = self.header_of(f.expr)
                out.append(self.prim("add_header" if m == "setValid" else "remove_header",
                                     [{"type": "header", "value": h.inst}], s))
                return
            if isinstance(bt, StackT) and m in ("push_front", "pop_front"):
                st = self.store(f.expr)
                assert isinstance(st, StackStore)
                out.append(self.prim("push" if m == "push_front" else "pop",
                                     [{"type": "header_stack", "value": st.name}, hexv(a[0].const, 32)], s))
                return
            inst = f.expr.ref
            if isinstance(inst, InstanceSym):
                kind = inst.type.name
                if kind == "register" and m == "read":
                    dst = self.store(a[0])
                    if not isinstance(dst, ScalarStore):
                        raise unsupported("register read target", s.loc)
                    out.append(self.prim("register_read", [field_ref(dst), {"type": "register_array",
                                                                            "value": inst.fqname},
                                                           top(self.rv(a[1]))], s))
                    return
                if kind == "register" and m == "write":
                    out.append(self.prim("register_write", [{"type": "register_array", "value": inst.fqname},
                                                            top(self.rv(a[0])), top(self.data(a[1]))], s))
                    return
                if kind == "counter":
                    out.append(self.prim("count", [{"type": "counter_array", "value": inst.fqname},
                                                   top(self.rv(a[0]))], s))
                    return
                if kind == "direct_counter":
                    return          # counted by the table's direct counter
                if kind == "meter":
                    dst = self.store(a[1])
                    if not isinstance(dst, ScalarStore):
                        raise unsupported("meter result target", s.loc)
                    out.append(self.prim("execute_meter", [{"type": "meter_array", "value": inst.fqname},
                                                           top(self.rv(a[0])), field_ref(dst)], s))
                    return
                if kind == "direct_meter":
                    dst = self.store(a[0])
                    if not isinstance(dst, ScalarStore):
                        raise unsupported("meter result target", s.loc)
                    self.program.direct_meter_result(inst, dst, s)
                    return
            raise unsupported(f"call '{expr_str(f)}'", s.loc)
        sym = f.ref
        if isinstance(sym, ActionSym):
            self.inline_action(sym, a, out)
            return
        if isinstance(sym, FunctionSym):
            self.inline_function(sym, a, None, out)
            return
        if isinstance(sym, ExternFuncSym):
            self.extern_call(sym.name, c, s, out)
            return
        raise unsupported(f"call '{expr_str(f)}'", s.loc)

    def _bind_args(self, params: list, psyms: list, args: list[A.Expr], out: list[Json]) -> dict:
        """The environment of an inlined action or function body: in/directionless scalar arguments
        are copied in (evaluated once, at the call, into a temporary); the others stand for the
        argument expression itself, evaluated in the caller's environment."""
        saved = self.env
        env = dict(saved)
        for p, psym, a in zip(params, psyms, args, strict=True):
            if p.direction in ("", "in") and a.const is None and isinstance(psym.type, (BitsT, BoolT, EnumT)):
                tmp = self.layout.temp(psym.type, p.name)
                out.append(self.prim("assign", [field_ref(tmp), top(self.data(a))], a))
                env[id(psym)] = ("store", tmp)
            else:
                env[id(psym)] = ("expr", a, saved)
        return env

    def inline_action(self, sym: ActionSym, args: list[A.Expr], out: list[Json]) -> None:
        saved = self.env
        params = sym.decl.params
        env = self._bind_args(params, [self.param_sym(sym, p.name) for p in params], args, out)
        self.env = env
        self.ret_patches.append([])
        try:
            self.stmts(sym.decl.body.stmts, out)
        finally:
            self.env = saved
            for j in self.ret_patches.pop():
                j["parameters"][0] = hexv(len(out), 32)

    def inline_function(self, sym: FunctionSym, args: list[A.Expr], dst: Store | None, out: list[Json]) -> None:
        """Inline a P4 function; 'return v' assigns dst and jumps past the inlined body."""
        saved = self.env
        params = sym.decl.params
        env = self._bind_args(params, [sym.decl._param_syms[p.name] for p in params], args, out)
        start = len(out)
        self.env = env
        self.ret_patches.append([])
        self.ret_targets.append(dst)
        try:
            self.stmts(sym.decl.body.stmts, out)
        finally:
            self.env = saved
            self.ret_targets.pop()
            for j in self.ret_patches.pop():
                j["parameters"][0] = hexv(len(out), 32)
        if self.in_parser and any(p["op"] in ("_jump", "_jump_if_zero") for p in out[start:]):
            raise unsupported(f"function {sym.name} with control flow called from a parser", args[0].loc
                              if args else sym.decl.loc)

    @staticmethod
    def param_sym(sym: ActionSym, name: str) -> ActionParamSym:
        cache = getattr(sym.decl, "_param_syms", None)
        if cache is None:
            cache = {}
            sym.decl._param_syms = cache
        return cache[name]

    def stmts(self, stmts: list[A.Stmt], out: list[Json]) -> None:
        for st in stmts:
            self.stmt(st, out)

    def stmt(self, s: A.Stmt, out: list[Json]) -> None:
        saved = self.hoist_out
        self.hoist_out = out
        try:
            self._stmt(s, out)
        finally:
            self.hoist_out = saved

    def _stmt(self, s: A.Stmt, out: list[Json]) -> None:  # noqa: C901 - one dispatch over statements
        if isinstance(s, A.Assign):
            self.assign(s, out)
        elif isinstance(s, A.CallStmt):
            self.call_stmt(s, out)
        elif isinstance(s, A.Block):
            self.stmts(s.stmts, out)
        elif isinstance(s, A.VarDecl):
            if s.is_const:
                return
            st = self.var_store(s.sym)
            if isinstance(s.init, A.Call) and isinstance(s.init.ref, FunctionSym) and isinstance(st, ScalarStore):
                self.inline_function(s.init.ref, s.init.args, st, out)
            elif s.init is not None:
                self.assign_store(st, s.init, s, out)
        elif isinstance(s, A.If):
            # _jump_if_zero cond, else_label; then...; _jump end; else...
            j = self.prim("_jump_if_zero", [top(ex("b2d", None, self.rv(s.cond))), hexv(0, 32)], s)
            out.append(j)
            self.stmt(s.then, out)
            if s.other is not None:
                jend = self.prim("_jump", [hexv(0, 32)], s)
                out.append(jend)
                j["parameters"][1] = hexv(len(out), 32)
                self.stmt(s.other, out)
                jend["parameters"][0] = hexv(len(out), 32)
            else:
                j["parameters"][1] = hexv(len(out), 32)
        elif isinstance(s, A.Exit):
            out.append(self.prim("exit", [], s))
        elif isinstance(s, A.Return):
            if not self.ret_patches:
                raise unsupported("return here", s.loc)
            if s.value is not None:
                dst = self.ret_targets[-1] if self.ret_targets else None
                if dst is not None:
                    self.assign_store(dst, s.value, s, out)
            j = self.prim("_jump", [hexv(0, 32)], s)
            self.ret_patches[-1].append(j)
            out.append(j)
        elif isinstance(s, A.Empty):
            pass
        else:
            raise unsupported(f"statement {type(s).__name__} here", s.loc)


class _StoreRef(A.Expr):
    """An already-lowered storage location used as an expression."""

    def __init__(self, loc: Any, store: ScalarStore) -> None:
        super().__init__(loc)
        self.store_ = store
        self.ty = store.type


__all__ = ["Ctx", "hexstr", "hexv", "ex", "field_ref", "top", "to_data", "ListT"]


def _pure(sym: FunctionSym, depth: int = 0) -> bool:
    """A function without side effects (only in/directionless parameters, no extern or method calls
    besides isValid() and other pure functions): inlining it ahead of its statement keeps the meaning
    even under && / || / ?: short-circuits."""
    if depth > 16 or any(p.direction in ("out", "inout") for p in sym.decl.params):
        return False
    for node in _walk(sym.decl.body):
        if isinstance(node, A.Call):
            f = node.func
            if isinstance(f, A.Member) and f.name == "isValid":
                continue
            if not (isinstance(node.ref, FunctionSym) and _pure(node.ref, depth + 1)):
                return False
    return True


def _walk(node: Any) -> Any:
    """Every AST node under ``node`` (dataclass fields, lists)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
            continue
        if not hasattr(n, "__dataclass_fields__"):
            continue
        yield n
        for name in n.__dataclass_fields__:
            v = getattr(n, name, None)
            if isinstance(v, list) or hasattr(v, "__dataclass_fields__"):
                stack.append(v)
