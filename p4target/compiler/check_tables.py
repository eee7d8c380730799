"""Table checking (mixin of :class:`check.Checker`): keys and match kinds, action lists with scopes,
default actions, size, direct counters/meters, const entries and their keysets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ast as A
from .errors import CompileError, unsupported
from .names import expr_str, key_name
from .types import ActionSym, BitsT, BoolT, EnumT, ErrorT, InstanceSym

if TYPE_CHECKING:
    from .scope import Scope


@dataclass
class TableInfo:
    keys: list[tuple[A.Expr, str, str]] = field(default_factory=list)     # expr, match kind, name
    actions: list[tuple[ActionSym, list[A.Annotation], A.Expr]] = field(default_factory=list)
    default: tuple[ActionSym, list[A.Expr], bool] | None = None           # action, args, const
    size: int | None = None
    counters: InstanceSym | None = None
    meters: InstanceSym | None = None
    timeout: bool = False
    entries: list[A.TableEntry] | None = None
    entries_const: bool = False
    largest_priority_wins: bool = True


class TableChecker:
    """Tables and keysets; relies on the Checker for expressions and types."""

    match_kinds: set[str]

    # ------------------------------------------------------------------ tables
    def check_table(self, d: A.TableDecl, scope: Scope) -> TableInfo:
        info = TableInfo()
        seen = set()
        for p in d.props:
            if p.name in seen:
                raise CompileError(f"{p.name}: duplicate table property", p.loc)
            seen.add(p.name)
            if p.name == "key":
                for k in p.value:
                    self.expr(k.expr, scope)
                    if not isinstance(k.expr.ty, (BitsT, BoolT, EnumT, ErrorT)):
                        raise CompileError(f"key {expr_str(k.expr)}: cannot match on a value of type {k.expr.ty}",
                                           k.loc)
                    if k.match_kind not in self.match_kinds:
                        raise CompileError(f"{k.match_kind}: unknown match kind", k.loc)
                    if k.match_kind == "selector":
                        raise unsupported("selector match kind (action selectors)", k.loc)
                    na = A.anno(k.annos, "name")
                    kname = na.args[0].value if na and na.args and isinstance(na.args[0], A.StrLit) \
                        else key_name(k.expr)
                    info.keys.append((k.expr, k.match_kind, kname))
                if sum(1 for _, mk, _ in info.keys if mk == "lpm") > 1:
                    raise CompileError("a table may have at most one lpm key", p.loc)
            elif p.name == "actions":
                for ar in p.value:
                    act, args = self.action_ref(ar.expr, scope, table_list=True)
                    if any(a is act for a, _, _ in info.actions):
                        raise CompileError(f"{act.name}: duplicate action in table", ar.loc)
                    info.actions.append((act, ar.annos, ar.expr))
            elif p.name == "default_action":
                act, args = self.action_ref(p.value, scope, table_list=False)
                info.default = (act, args, p.is_const)
            elif p.name == "size":
                self.expr(p.value, scope)
                if not isinstance(p.value.const, int):
                    raise CompileError("size must be a compile-time constant", p.value.loc)
                info.size = p.value.const
            elif p.name in ("counters", "meters"):
                self.expr(p.value, scope)
                sym = p.value.ref
                want = "direct_counter" if p.name == "counters" else "direct_meter"
                if not (isinstance(sym, InstanceSym) and sym.type.name == want):
                    raise CompileError(f"{p.name} must name a {want} instance", p.value.loc)
                if p.name == "counters":
                    info.counters = sym
                else:
                    info.meters = sym
            elif p.name == "support_timeout":
                self.expr(p.value, scope)
                info.timeout = bool(p.value.const)
            elif p.name == "entries":
                info.entries = p.value
                info.entries_const = p.is_const
            elif p.name == "largest_priority_wins":
                self.expr(p.value, scope)
                info.largest_priority_wins = bool(p.value.const)
            elif p.name in ("implementation", "psa_implementation"):
                raise unsupported("table implementation (action profiles/selectors)", p.loc)
            elif p.name == "priority_delta":
                raise unsupported("priority_delta", p.loc)
            else:
                raise unsupported(f"table property '{p.name}'", p.loc)
        if "actions" not in seen:
            raise CompileError(f"{d.name}: table has no actions property", d.loc)
        if info.default is None:
            self._implicit_no_action(d, info, scope)
        else:
            act = info.default[0]
            if not any(a is act for a, _, _ in info.actions):
                raise CompileError(f"{act.name}: default action is not in the table's action list", d.loc)
            for a, annos, _ in info.actions:
                if a is act and A.anno(annos, "tableonly"):
                    raise CompileError(f"{act.name}: @tableonly action used as default action", d.loc)
        if info.entries is not None:
            kinds = [mk for _, mk, _ in info.keys]
            for ent in info.entries:
                if len(ent.keys) != len(kinds):
                    raise CompileError(f"entry has {len(ent.keys)} keys, table has {len(kinds)}", ent.loc)
                for ke, (kexpr, mk, _) in zip(ent.keys, info.keys, strict=True):
                    self.keyset_elem(ke, kexpr.ty, scope)
                    if isinstance(ke, A.Binary) and ke.op == ".." and mk != "range":
                        raise CompileError("range keyset on a non-range key", ke.loc)
                    if isinstance(ke, A.Binary) and ke.op == "&&&" and mk not in ("ternary", "lpm"):
                        raise CompileError("mask keyset on an exact key", ke.loc)
                act, args = self.action_ref(ent.action, scope, table_list=False)
                if not any(a is act for a, _, _ in info.actions):
                    raise CompileError(f"{act.name}: action is not in the table's action list", ent.loc)
                if ent.priority is not None:
                    self.expr(ent.priority, scope)
        return info

    def _implicit_no_action(self, d: A.TableDecl, info: TableInfo, scope: Scope) -> None:
        """As p4c's CreateBuiltins: a table without a default action gets ``default_action =
        NoAction()`` (not const), NoAction being added to its actions as ``@defaultonly`` if absent."""
        root = scope
        while root.parent is not None:
            root = root.parent
        sym = root.names.get("NoAction")
        if not isinstance(sym, ActionSym) or sym.decl.params:
            raise CompileError("Declaration of the action NoAction not found; did you include core.p4?", d.loc)
        if not any(a is sym for a, _, _ in info.actions):
            ref = A.Name(d.loc, name="NoAction")
            ref.ref = sym
            ref.ty = sym.type
            info.actions.append((sym, [A.Annotation("defaultonly", [], d.loc)], ref))
        info.default = (sym, [], False)

    def action_ref(self, e: A.Expr, scope: Scope, table_list: bool) -> tuple[ActionSym, list[A.Expr]]:
        if isinstance(e, A.Call):
            fn, args = e.func, e.args
        else:
            fn, args = e, []
        if not isinstance(fn, A.Name):
            raise CompileError(f"{expr_str(e)}: expected an action", e.loc)
        sym = scope.lookup(fn.name)
        if sym is None:
            raise CompileError(f"{fn.name}: declaration not found", fn.loc)
        if not isinstance(sym, ActionSym):
            raise CompileError(f"{fn.name}: is not an action", fn.loc)
        fn.ref = sym
        fn.ty = sym.type
        params = sym.decl.params
        ndir = sum(1 for p in params if p.direction)
        need = ndir if table_list else len(params)
        if table_list and isinstance(e, A.Name) and ndir:
            raise CompileError(f"{fn.name}: action with directional parameters needs arguments", e.loc)
        if (isinstance(e, A.Call) or not table_list) and len(args) != need:
            raise CompileError(f"{fn.name}: expected {need} arguments, got {len(args)}", e.loc)
        for a, p in zip(args, params, strict=False):
            self.expr(a, scope)
            self.coerce(a, self.resolve_type(p.type, scope))
            if not table_list and not p.direction and a.const is None:
                raise CompileError("action data in default actions and entries must be constant", a.loc)
        return sym, args

    # ------------------------------------------------------------------ statements
