"""Name resolution and type checking of a parsed program (the v1model architecture is built in).

Annotates the tree in place: every expression gets ``ty`` (a :mod:`types` type), ``ref`` (the symbol a
name or member resolves to) and ``const`` (its value when known at compile time); untyped integer
literals are given the width their context requires. Declarations get a ``sym``. Rejects what p4c
rejects in this subset (undeclared names, mismatched widths and types, wrong argument counts).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from . import ast as A
from . import named_args
from .check_expr import EXTERN_METHODS, ExprChecker, children, sat, wrap  # noqa: F401 - re-exported helpers
from .check_tables import TableChecker, TableInfo  # noqa: F401 - TableInfo re-exported
from .errors import CompileError, Loc, unsupported
from .names import control_plane_name, expr_str, key_name, param_name, type_ref_str  # noqa: F401 - re-exported
from .scope import Scope
from .types import (
    ActionParamSym,
    ActionSym,
    BitsT,
    BlockSym,
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
    MatchKindT,
    ObjT,
    ParamSym,
    StackT,
    StringT,
    StructT,
    Sym,
    TableSym,
    Type,
    TypeSym,
    VarSym,
    VoidT,
)

ROLES = {
    "parser": ["packet_in", "headers", "meta", "standard_metadata"],
    "verify": ["headers", "meta"],
    "ingress": ["headers", "meta", "standard_metadata"],
    "egress": ["headers", "meta", "standard_metadata"],
    "compute": ["headers", "meta"],
    "deparser": ["packet_out", "headers"],
}
BLOCK_ORDER = ["parser", "verify", "ingress", "egress", "compute", "deparser"]

@dataclass
class Checked:
    program: A.Program
    blocks: dict[str, A.Any]                # role -> ParserDecl/ControlDecl
    headers_t: StructT
    meta_t: StructT
    std_t: StructT
    errors: dict[str, int]
    enums: dict[str, EnumT]
    globals: dict[str, Sym]
    struct_types: dict[str, StructT]
    main_loc: Loc | None = None


class Checker(TableChecker, ExprChecker):
    def __init__(self, prog: A.Program, main_file: str = "") -> None:
        self.prog = prog
        self.main_file = main_file
        self.glob = Scope()
        self.errors: dict[str, int] = {}
        self.match_kinds: set[str] = set()
        self.enums: dict[str, EnumT] = {}
        self.structs: dict[str, StructT] = {}
        self.externs: dict[str, A.ExternDecl] = {}
        self.ctx = ""          # action, control, parser, deparser, verify, compute
        self.var_counter: dict[str, int] = {}
        self.all_vars: list[VarSym] = []
        self.pristine: dict[str, Any] = {}
        self.depth = 0

    def next_order(self) -> int:
        self._order = getattr(self, "_order", 0) + 1
        return self._order

    # ------------------------------------------------------------------ globals
    def run(self) -> Checked:
        main = None
        for d in self.prog.decls:
            self.declare_global(d)
            if isinstance(d, A.Instance) and d.name == "main":
                main = d
        if main is None:
            own = [d.loc for d in self.prog.decls if d.loc.file == self.main_file]
            raise CompileError("no 'main' package instance (expected V1Switch(...) main;)",
                               own[-1] if own else Loc(self.main_file or "<input>", 1, 1))
        if not (isinstance(main.type, A.NamedTypeRef) and main.type.name == "V1Switch"):
            raise unsupported("architectures other than v1model V1Switch", main.loc)
        pkg = next((d for d in self.prog.decls if isinstance(d, A.PackageDecl) and d.name == "V1Switch"), None)
        if pkg is not None:
            main.args = named_args.bind(main.args, main.arg_names, pkg.params, "V1Switch", main.loc)
        if len(main.args) != 6:
            raise CompileError("V1Switch expects 6 arguments (parser, verifyChecksum, ingress, egress,"
                               " computeChecksum, deparser)", main.loc)
        blocks: dict[str, Any] = {}
        for role, arg in zip(BLOCK_ORDER, main.args, strict=True):
            if not (isinstance(arg, A.Call) and isinstance(arg.func, A.Name) and not arg.args):
                raise CompileError("V1Switch arguments must be parser/control instantiations like "
                                   "MyParser()", arg.loc)
            sym = self.glob.lookup(arg.func.name)
            if not isinstance(sym, BlockSym):
                raise CompileError(f"{arg.func.name}: declaration not found", arg.loc)
            want = A.ParserDecl if role == "parser" else A.ControlDecl
            if not isinstance(sym.decl, want) or sym.decl.is_type:
                raise CompileError(f"{arg.func.name}: expected a {'parser' if role == 'parser' else 'control'}"
                                   f" for argument {role}", arg.loc)
            blocks[role] = sym.decl
        h_t, m_t = self.block_types(blocks)
        std_t = self.glob.lookup("standard_metadata_t")
        assert isinstance(std_t, TypeSym) and isinstance(std_t.type, StructT)
        for role in BLOCK_ORDER:
            d = blocks[role]
            if isinstance(d, A.ParserDecl):
                self.check_parser(d)
            else:
                self.check_control(d, role)
        return Checked(self.prog, blocks, h_t, m_t, std_t.type, self.errors, self.enums,
                       self.glob.names, self.structs, main.loc)

    def block_types(self, blocks: dict[str, Any]) -> tuple[StructT, StructT]:
        found: dict[str, Type] = {}
        for role in BLOCK_ORDER:
            d = blocks[role]
            roles = ROLES[role]
            if len(d.params) != len(roles):
                raise CompileError(f"{d.name}: expected {len(roles)} parameters for the v1model {role} block",
                                   d.loc)
            for p, r in zip(d.params, roles, strict=True):
                t = self.resolve_type(p.type)
                if r in ("headers", "meta"):
                    if not isinstance(t, StructT) or t.kind != "struct":
                        raise CompileError(f"{p.name}: {r} parameter must be a struct", p.loc)
                    if r in found and found[r] is not t:
                        raise CompileError(f"{p.name}: type {t} does not match {found[r]} used by the other "
                                           "blocks", p.loc)
                    found[r] = t
                elif r == "standard_metadata" and not (isinstance(t, StructT) and t.name == "standard_metadata_t"):
                    raise CompileError(f"{p.name}: expected standard_metadata_t", p.loc)
        return found["headers"], found["meta"]   # type: ignore[return-value]

    def declare_global(self, d: Any) -> None:
        g = self.glob
        if isinstance(d, A.HeaderDecl):
            if d.kind == "header_union":
                raise unsupported("header unions", d.loc)
            st = StructT(d.name, d.kind, [], d)
            g.add(TypeSym(d.name, st), d.loc)
            names = set()
            for f in d.fields:
                if f.name in names:
                    raise CompileError(f"{f.name}: duplicate field", f.loc)
                names.add(f.name)
                ft = self.resolve_type(f.type)
                if d.kind == "header" and not isinstance(ft, (BitsT, BoolT, EnumT)):
                    raise CompileError(f"{f.name}: header fields must be bit<>, int<> or serializable enums "
                                       f"(got {ft})", f.loc)
                st.fields.append((f.name, ft))
            self.structs[d.name] = st
        elif isinstance(d, A.TypedefDecl):
            g.add(TypeSym(d.name, self.resolve_type(d.type)), d.loc)
        elif isinstance(d, A.ConstDecl):
            t = self.resolve_type(d.type)
            self.expr(d.value, g)
            self.coerce(d.value, t)
            if d.value.const is None:
                raise CompileError(f"{d.name}: initializer is not a compile-time constant", d.value.loc)
            g.add(ConstSym(d.name, t, d.value.const), d.loc)
        elif isinstance(d, A.EnumDecl):
            base = self.resolve_type(d.base) if d.base else None
            members: dict[str, int] = {}
            for i, (m, v) in enumerate(zip(d.members, d.values, strict=True)):
                if base is not None:
                    if v is None:
                        raise CompileError(f"{m}: serializable enum members need a value", d.loc)
                    self.expr(v, g)
                    if v.const is None:
                        raise CompileError(f"{m}: enum value is not constant", v.loc)
                    members[m] = v.const
                else:
                    members[m] = i
            et = EnumT(d.name, members, base if isinstance(base, BitsT) else None)
            et.decl = d
            self.enums[d.name] = et
            g.add(TypeSym(d.name, et), d.loc)
        elif isinstance(d, A.ErrorDecl):
            for m in d.members:
                self.errors.setdefault(m, len(self.errors))
        elif isinstance(d, A.MatchKindDecl):
            self.match_kinds.update(d.members)
        elif isinstance(d, A.ExternDecl):
            if d.is_function:
                if d.name not in g.names:
                    g.add(ExternFuncSym(d.name, ObjT("function", d.name), d), d.loc)
            else:
                self.externs[d.name] = d
                g.add(TypeSym(d.name, ExternT(d.name)), d.loc)
        elif isinstance(d, A.ActionDecl):
            sym = ActionSym(d.name, ObjT("action", d.name), d, control_plane_name(d, ""), None)
            sym.order = self.next_order()
            d.sym = sym
            g.add(sym, d.loc)
            self.check_action_decl(d, g)
        elif isinstance(d, (A.ParserDecl, A.ControlDecl)):
            if d.is_type:
                g.add(TypeSym(d.name, ObjT("blocktype", d.name)), d.loc)
            else:
                if d.type_params:
                    raise unsupported("generic parsers/controls", d.loc)
                if d.ctor_params:
                    raise unsupported("parsers/controls with constructor parameters", d.loc)
                self.pristine[d.name] = copy.deepcopy(d)
                g.add(BlockSym(d.name, ObjT("block", d.name), d), d.loc)
        elif isinstance(d, A.PackageDecl):
            g.add(TypeSym(d.name, ObjT("package", d.name)), d.loc)
        elif isinstance(d, A.Instance):
            if d.name == "main":
                return
            sym = self.instance(d, g, "")
            g.add(sym, d.loc)
        elif isinstance(d, A.FunctionDecl):
            ret = self.resolve_type(d.ret)
            if not isinstance(ret, (VoidT, BitsT, BoolT, EnumT)):
                raise unsupported(f"functions returning {ret}", d.loc)
            sym = FunctionSym(d.name, ObjT("function", d.name), d, ret)
            d.sym = sym
            g.add(sym, d.loc)
            s = Scope(g)
            d._param_syms = {}
            for i, p in enumerate(d.params):
                pt = self.resolve_type(p.type)
                psym = ActionParamSym(p.name, pt, i, p.direction or "in", d)
                s.add(psym, p.loc)
                d._param_syms[p.name] = psym
            old = self.ctx
            self.ctx, self.fn_ret = "function", ret
            self.stmt(d.body, s)
            self.ctx = old
        else:
            raise unsupported(f"declaration {type(d).__name__}", getattr(d, "loc", None))

    # ------------------------------------------------------------------ types
    def resolve_type(self, t: A.TypeRef | None, scope: Scope | None = None) -> Type:
        if t is None:
            raise CompileError("missing type")
        if isinstance(t, A.BitTypeRef):
            if t.kind == "varbit":
                raise unsupported("varbit fields", t.loc)
            self.expr(t.width, scope or self.glob)
            w = t.width.const
            if not isinstance(w, int) or w <= 0:
                raise CompileError("width must be a positive compile-time constant", t.loc)
            return BitsT(w, t.signed)
        if isinstance(t, A.SimpleTypeRef):
            return {"bool": BoolT(), "error": ErrorT(), "string": StringT(), "void": VoidT(),
                    "match_kind": MatchKindT(), "int": IntT(), "_": DontCareT(),
                    "packet_in": ObjT("packet_in"), "packet_out": ObjT("packet_out")}[t.name]
        if isinstance(t, A.StackTypeRef):
            base = self.resolve_type(t.base, scope)
            if not (isinstance(base, StructT) and base.kind == "header"):
                raise unsupported("stacks of non-header types", t.loc)
            self.expr(t.size, scope or self.glob)
            if not isinstance(t.size.const, int) or t.size.const <= 0:
                raise CompileError("header stack size must be a positive constant", t.loc)
            return StackT(base, t.size.const)
        if isinstance(t, A.NamedTypeRef):
            sym = (scope or self.glob).lookup(t.name)
            if sym is None:
                raise CompileError(f"{t.name}: declaration not found", t.loc)
            if not isinstance(sym, TypeSym):
                raise CompileError(f"{t.name}: is not a type", t.loc)
            if isinstance(sym.type, ExternT):
                return ExternT(sym.type.name, [self.resolve_type(a, scope) for a in t.args])
            return sym.type
        if isinstance(t, A.TupleTypeRef):
            return ListT(tuple(self.resolve_type(a, scope) for a in t.args))
        raise unsupported(f"type {type(t).__name__}", t.loc)

    # ------------------------------------------------------------------ instances / blocks
    def instance(self, d: A.Instance, scope: Scope, prefix: str) -> InstanceSym:
        if isinstance(d.type, A.NamedTypeRef) and d.type.name == "value_set":
            raise unsupported("parser value sets", d.loc)
        t = self.resolve_type(d.type, scope)
        if not isinstance(t, ExternT):
            raise unsupported(f"instantiation of {t}", d.loc)
        if t.name in ("action_profile", "action_selector"):
            raise unsupported(f"{t.name} (table implementations)", d.loc)
        if t.name not in EXTERN_METHODS:
            raise unsupported(f"extern {t.name}", d.loc)
        self._check_index_type_args(t, d)
        if named_args.is_named(d.arg_names):
            ctors = [ps for dd in self.prog.decls if isinstance(dd, A.ExternDecl) and dd.name == t.name
                     for m, ps in dd.methods if m == "__ctor__"]
            params = named_args.pick_overload(ctors, d.arg_names)
            if params is None:
                raise CompileError(f"{t.name}: no constructor takes the arguments {d.arg_names}", d.loc)
            d.args = named_args.bind(d.args, d.arg_names, params, t.name, d.loc)
        for a in d.args:
            self.expr(a, scope)
            if a.const is None:
                raise CompileError("extern constructor arguments must be compile-time constants", a.loc)
        expected = {"register": 1, "counter": 2, "direct_counter": 1, "meter": 2, "direct_meter": 1,
                    "Checksum16": 0}[t.name]
        if len(d.args) != expected:
            raise CompileError(f"{t.name}: constructor expects {expected} arguments", d.loc)
        if t.name == "register" and not t.type_args:
            raise CompileError("register: missing type argument (register<bit<W>>(size))", d.loc)
        if t.name == "register" and not isinstance(t.type_args[0], (BitsT, BoolT)):
            raise unsupported(f"registers of type {t.type_args[0]}", d.loc)
        sym = InstanceSym(d.name, t, d, control_plane_name(d, prefix), d.args)
        d.sym = sym
        return sym

    def _check_index_type_args(self, t: ExternT, d: A.Instance) -> None:
        """register/counter/meter type arguments as p4c's v1model declares them: register<T>, counter and
        meter by default; register<T, I>, counter<I>, meter<I> when V1MODEL_VERSION >= 20200408."""
        if t.name not in ("register", "counter", "meter"):
            return
        vsym = self.glob.lookup("__v1model_version")
        typed = isinstance(vsym, ConstSym) and isinstance(vsym.value, int) and vsym.value >= 20200408
        want = (1 if t.name == "register" else 0) + (1 if typed else 0)
        if len(t.type_args) != want:
            sig = {"register": "register<T, I>" if typed else "register<T>",
                   "counter": "counter<I>" if typed else "counter", "meter": "meter<I>" if typed else "meter"}
            raise CompileError(f"{t.name}: expected {want} type argument(s), got {len(t.type_args)} (v1model"
                               f" {'>= 20200408' if typed else 'default version'} declares {sig[t.name]};"
                               " #define V1MODEL_VERSION 20200408 before including v1model.p4 for index types)",
                               d.loc)

    def check_parser(self, d: A.ParserDecl) -> None:
        scope = Scope(self.glob)
        for p, r in zip(d.params, ROLES["parser"], strict=True):
            scope.add(ParamSym(p.name, self.resolve_type(p.type), r, p.direction), p.loc)
        self.ctx = "parser"
        self.block_name = d.name
        for loc_d in d.locals:
            self.local(loc_d, scope, d.name)
        states: set[str] = set()
        for s in d.states:
            if s.name in states or s.name in ("accept", "reject"):
                raise CompileError(f"{s.name}: re-declaration of a parser state", s.loc)
            states.add(s.name)
        if "start" not in states:
            raise CompileError(f"{d.name}: parser has no 'start' state", d.loc)
        for s in d.states:
            if s.name in ("accept", "reject"):
                raise CompileError(f"{s.name}: cannot declare a state named accept or reject", s.loc)
            st_scope = Scope(scope)
            for stmt in s.stmts:
                self.stmt(stmt, st_scope)
            tr = s.transition
            targets = []
            if isinstance(tr, A.Name):
                targets.append((tr.name, tr.loc))
            else:
                types = []
                for e in tr.exprs:
                    types.append(self.expr(e, st_scope))
                    if not isinstance(e.ty, (BitsT, BoolT, EnumT, ErrorT)):
                        raise CompileError(f"select expression must be a bit-string, got {e.ty}", e.loc)
                for c in tr.cases:
                    items = c.keyset.items if isinstance(c.keyset, A.ListExpr) else [c.keyset]
                    if isinstance(c.keyset, A.Default):
                        items = [c.keyset] * len(tr.exprs)
                    if len(items) != len(tr.exprs):
                        raise CompileError(f"keyset has {len(items)} elements but select has {len(tr.exprs)}",
                                           c.loc)
                    for it, se in zip(items, tr.exprs, strict=True):
                        self.keyset_elem(it, se.ty, st_scope)
                    targets.append((c.state, c.loc))
            for name, loc in targets:
                if name not in states and name not in ("accept", "reject"):
                    raise CompileError(f"{name}: state not found", loc)

    def keyset_elem(self, it: A.Expr, t: Type, scope: Scope) -> None:
        if isinstance(it, A.Default):
            it.ty = DontCareT()
            return
        if isinstance(it, A.Binary) and it.op in ("&&&", ".."):
            for sub in (it.left, it.right):
                self.expr(sub, scope)
                self.coerce(sub, t)
                if sub.const is None:
                    raise unsupported("non-constant keyset", sub.loc)
            it.ty = t
            return
        self.expr(it, scope)
        self.coerce(it, t)
        if it.const is None:
            raise unsupported("non-constant keyset (value sets)", it.loc)

    def check_control(self, d: A.ControlDecl, role: str) -> None:
        scope = Scope(self.glob)
        for p, r in zip(d.params, ROLES[role], strict=True):
            scope.add(ParamSym(p.name, self.resolve_type(p.type), r, p.direction), p.loc)
        self.block_name = d.name
        self.ctx = "control"
        for loc_d in d.locals:
            self.local(loc_d, scope, d.name)
        self.ctx = {"verify": "verify", "compute": "compute", "deparser": "deparser"}.get(role, "control")
        self.stmt(d.body, scope)
        self.ctx = "control"

    def local(self, d: Any, scope: Scope, prefix: str) -> None:
        if isinstance(d, A.ActionDecl):
            sym = ActionSym(d.name, ObjT("action", d.name), d, control_plane_name(d, prefix), prefix)
            sym.order = self.next_order()
            d.sym = sym
            scope.add(sym, d.loc)
            self.check_action_decl(d, scope)
        elif isinstance(d, A.TableDecl):
            sym = TableSym(d.name, ObjT("table", d.name), d, control_plane_name(d, prefix))
            sym.order = self.next_order()
            d.sym = sym
            scope.add(sym, d.loc)
            sym.info = self.check_table(d, scope)
        elif isinstance(d, A.Instance):
            if isinstance(d.type, A.NamedTypeRef) and isinstance(scope.lookup(d.type.name), BlockSym):
                scope.add(self.sub_control(d, scope, prefix), d.loc)
            else:
                scope.add(self.instance(d, scope, prefix), d.loc)
        elif isinstance(d, A.VarDecl):
            self.stmt(d, scope)
        elif isinstance(d, A.ConstDecl):
            t = self.resolve_type(d.type, scope)
            self.expr(d.value, scope)
            self.coerce(d.value, t)
            if d.value.const is None:
                raise CompileError(f"{d.name}: initializer is not a compile-time constant", d.value.loc)
            scope.add(ConstSym(d.name, t, d.value.const), d.loc)
        else:
            raise unsupported(f"local declaration {type(d).__name__}", getattr(d, "loc", None))

    def sub_control(self, d: A.Instance, scope: Scope, prefix: str) -> InstanceSym:
        """A control instantiated inside a control: checked as its own copy, inlined when applied."""
        bsym = scope.lookup(d.type.name)
        assert isinstance(bsym, BlockSym)
        if not isinstance(bsym.decl, A.ControlDecl):
            raise unsupported("parser instantiation inside a control", d.loc)
        if d.args:
            raise unsupported("control constructor arguments", d.loc)
        self.depth += 1
        if self.depth > 32:
            raise CompileError(f"{d.type.name}: controls instantiated recursively", d.loc)
        sub = copy.deepcopy(self.pristine[bsym.decl.name])
        fq = control_plane_name(d, prefix)
        s2 = Scope(self.glob)
        sub._param_syms = {}
        for p in sub.params:
            psym = ParamSym(p.name, self.resolve_type(p.type), "sub", p.direction)
            s2.add(psym, p.loc)
            sub._param_syms[p.name] = psym
        saved = (self.ctx, getattr(self, "block_name", ""))
        self.ctx = "control"
        for loc_d in sub.locals:
            self.local(loc_d, s2, fq)
        self.stmt(sub.body, s2)
        self.ctx, self.block_name = saved
        self.depth -= 1
        sym = InstanceSym(d.name, ObjT("control_inst", bsym.decl.name), d, fq, [])
        sym.sub = sub
        d.sym = sym
        return sym

    def check_action_decl(self, d: A.ActionDecl, scope: Scope) -> None:
        s = Scope(scope)
        seen_dirless = False
        for i, p in enumerate(d.params):
            t = self.resolve_type(p.type, scope)
            if p.direction == "":
                seen_dirless = True
                if not isinstance(t, (BitsT, BoolT, EnumT)):
                    raise unsupported(f"action data parameter of type {t}", p.loc)
            elif seen_dirless:
                raise CompileError(f"{p.name}: directional parameters must precede action data parameters",
                                   p.loc)
            psym = ActionParamSym(p.name, t, i, p.direction, d)
            s.add(psym, p.loc)
            d._param_syms = getattr(d, "_param_syms", None) or {}
            d._param_syms[p.name] = psym
        old = self.ctx
        self.ctx = "action"
        self.stmt(d.body, s)
        self.ctx = old

    def stmt(self, s: A.Stmt, scope: Scope) -> None:
        if isinstance(s, A.Block):
            inner = Scope(scope)
            for x in s.stmts:
                self.stmt(x, inner)
        elif isinstance(s, A.Assign):
            lt = self.expr(s.lhs, scope)
            self.check_lvalue(s.lhs)
            self.expr(s.rhs, scope)
            self.assign_compat(s.rhs, lt, s.loc)
        elif isinstance(s, A.CallStmt):
            self.expr(s.call, scope, stmt=True)
        elif isinstance(s, A.If):
            if self.ctx in ("deparser", "verify", "compute"):
                raise unsupported(f"if statements in a {self.ctx}", s.loc)
            self.expr(s.cond, scope)
            if not isinstance(s.cond.ty, BoolT):
                raise CompileError(f"condition must be a bool, got {s.cond.ty}", s.cond.loc)
            self.stmt(s.then, Scope(scope))
            if s.other is not None:
                self.stmt(s.other, Scope(scope))
        elif isinstance(s, A.Switch):
            if self.ctx != "control":
                raise unsupported(f"switch statements in a {self.ctx}", s.loc)
            self.expr(s.expr, scope)
            if isinstance(s.expr.ty, (BitsT, EnumT)):
                seen_vals = set()
                for c in s.cases:
                    if c.label is not None:
                        self.expr(c.label, scope)
                        self.coerce(c.label, s.expr.ty)
                        if c.label.const is None:
                            raise CompileError("switch label must be a compile-time constant", c.label.loc)
                        if c.label.const in seen_vals:
                            raise CompileError("duplicate switch label", c.label.loc)
                        seen_vals.add(c.label.const)
                    if c.body is not None:
                        self.stmt(c.body, Scope(scope))
                return
            if not (isinstance(s.expr.ty, ObjT) and s.expr.ty.kind == "action_run"):
                raise unsupported(f"switch on a value of type {s.expr.ty}", s.loc)
            table: TableSym = s.expr.ref
            names = set()
            for c in s.cases:
                if c.label is not None:
                    if not isinstance(c.label, A.Name):
                        raise CompileError("switch label must be an action name", c.loc)
                    sym = scope.lookup(c.label.name)
                    if not any(a is sym for a, _, _ in table.info.actions):
                        raise CompileError(f"{c.label.name}: not an action of table {table.name}", c.label.loc)
                    if c.label.name in names:
                        raise CompileError(f"{c.label.name}: duplicate switch label", c.label.loc)
                    names.add(c.label.name)
                    c.label.ref = sym
                if c.body is not None:
                    self.stmt(c.body, Scope(scope))
        elif isinstance(s, A.VarDecl):
            t = self.resolve_type(s.type, scope)
            if isinstance(t, ListT) and not s.is_const:
                raise unsupported(f"local variables of tuple type {t}", s.loc)
            if s.init is not None:
                self.expr(s.init, scope)
                self.assign_compat(s.init, t, s.loc)
            if s.is_const:
                if s.init is None or s.init.const is None:
                    raise CompileError(f"{s.name}: initializer is not a compile-time constant", s.loc)
                scope.add(ConstSym(s.name, t, s.init.const), s.loc)
                return
            if not isinstance(t, (BitsT, BoolT, EnumT, ErrorT, StructT)):
                raise unsupported(f"local variables of type {t}", s.loc)
            n = self.var_counter.get(s.name, 0)
            self.var_counter[s.name] = n + 1
            sym = VarSym(s.name, t, s, f"{s.name}_{n}")
            s.sym = sym
            self.all_vars.append(sym)
            scope.add(sym, s.loc)
        elif isinstance(s, A.Exit):
            if self.ctx not in ("control", "action"):
                raise unsupported(f"exit in a {self.ctx}", s.loc)
        elif isinstance(s, A.Return):
            if self.ctx == "function":
                if (s.value is None) != isinstance(self.fn_ret, VoidT):
                    raise CompileError("return value does not match the function's return type", s.loc)
                if s.value is not None:
                    self.expr(s.value, scope)
                    self.assign_compat(s.value, self.fn_ret, s.loc)
            elif self.ctx not in ("control", "action") or s.value is not None:
                raise unsupported(f"return statements in a {self.ctx or 'declaration'}", s.loc)
        elif isinstance(s, A.Empty):
            pass
        else:
            raise unsupported(f"statement {type(s).__name__}", s.loc)

    def check_lvalue(self, e: A.Expr) -> None:
        if isinstance(e, A.Name):
            sym = e.ref
            if isinstance(sym, (VarSym,)):
                return
            if isinstance(sym, ParamSym) and sym.direction in ("out", "inout"):
                return
            if isinstance(sym, ActionParamSym) and sym.direction in ("out", "inout"):
                return
            raise CompileError(f"{e.name}: cannot be assigned (not an l-value)", e.loc)
        if isinstance(e, A.Member):
            if isinstance(e.expr.ty, (StructT, StackT)) and not isinstance(e.ty, ObjT):
                return self.check_lvalue(e.expr)
            raise CompileError(f"{expr_str(e)}: not an l-value", e.loc)
        if isinstance(e, (A.Index, A.Slice)):
            return self.check_lvalue(e.expr)
        raise CompileError(f"{expr_str(e)}: not an l-value", e.loc)

    def assign_compat(self, rhs: A.Expr, t: Type, loc: Loc) -> None:
        rt = rhs.ty
        if isinstance(rhs, A.ListExpr) and isinstance(t, StructT):
            if rhs.names is not None:
                order = [n for n, _ in t.fields]
                if sorted(rhs.names) != sorted(order):
                    raise CompileError(f"struct initializer fields {rhs.names} do not match {t}", rhs.loc)
                by_name = dict(zip(rhs.names, rhs.items, strict=True))
                rhs.items = [by_name[n] for n in order]
                rhs.names = None
            if len(rhs.items) != len(t.fields):
                raise CompileError(f"cannot assign a list of {len(rhs.items)} values to {t} "
                                   f"({len(t.fields)} fields)", rhs.loc)
            for it, (_, ft) in zip(rhs.items, t.fields, strict=True):
                self.assign_compat(it, ft, it.loc)
            rhs.ty = t
            return
        if isinstance(rt, IntT) and isinstance(t, BitsT):
            self.coerce(rhs, t)
            return
        if self.same_type(rt, t):
            return
        raise CompileError(f"cannot assign a value of type {rt} to {t}", loc)

    @staticmethod
    def same_type(a: Type, b: Type) -> bool:
        if isinstance(a, (StructT, EnumT)) or isinstance(b, (StructT, EnumT)):
            return a is b
        return a == b

    # ------------------------------------------------------------------ expressions


def check(prog: A.Program, main_file: str = "") -> Checked:
    """Resolve and type-check a program (main_file: the top-level source, for whole-program errors)."""
    return Checker(prog, main_file).run()
