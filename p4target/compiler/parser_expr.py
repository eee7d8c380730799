"""Expression and type grammar of the P4_16 parser (mixin of :class:`parser.Parser`)."""
from __future__ import annotations

from typing import Any

from . import ast as A
from .errors import CompileError

BINARY_PREC = [
    ["||"], ["&&"], ["==", "!="], ["<", ">", "<=", ">="], ["|"], ["^"], ["&"],
    ["<<", ">>"], ["++", "+", "-", "|+|", "|-|"], ["*", "/", "%"],
]


class ExprParser:
    """Types and expressions; uses the token helpers of the Parser it is mixed into."""

    type_names: set[str]
    toks: list[Any]
    i: int

    # ------------------------------------------------------------------ types
    def is_type_start(self, k: int = 0) -> bool:
        t = self.peek(k)
        if t.kind != "id":
            return False
        if t.value in ("bit", "int", "varbit", "bool", "error", "string", "tuple", "void"):
            return True
        return t.value in self.type_names

    def type_ref(self) -> A.TypeRef:
        t = self.peek()
        if t.kind == "op" and t.value == ".":
            self.next()
            t = self.peek()
        if t.kind != "id":
            raise self.error(f"syntax error, expected a type but found {self.describe(t)}")
        self.next()
        base: A.TypeRef
        if t.value in ("bit", "int", "varbit"):
            width = None
            if self.accept_op("<"):
                if self.at_op("("):
                    self.next()
                    width = self.expression()
                    self.expect_op(")")
                else:
                    w = self.next()
                    if w.kind == "int":
                        width = A.IntLit(w.loc, value=w.value)
                    elif w.kind == "id":
                        width = A.Name(w.loc, name=w.value)
                    else:
                        raise self.error("syntax error, expected a width", w)
                self.expect_op(">")
            elif t.value == "bit":
                width = A.IntLit(t.loc, value=1)
            if width is None:
                base = A.SimpleTypeRef(t.loc, name="int")
            else:
                base = A.BitTypeRef(t.loc, width, t.value == "int", t.value)
        elif t.value in ("bool", "error", "string", "void", "match_kind", "packet_in", "packet_out"):
            base = A.SimpleTypeRef(t.loc, name=t.value)
        elif t.value == "tuple":
            self.expect_op("<")
            args = [self.type_ref()]
            while self.accept_op(","):
                args.append(self.type_ref())
            self.expect_op(">")
            base = A.TupleTypeRef(t.loc, args)
        elif t.value == "_":
            base = A.SimpleTypeRef(t.loc, name="_")
        else:
            args = []
            if self.at_op("<") and t.value in self.type_names:
                self.next()
                args.append(self.type_ref())
                while self.accept_op(","):
                    args.append(self.type_ref())
                self.expect_op(">")
            base = A.NamedTypeRef(t.loc, t.value, args)
        while self.at_op("[") :
            self.next()
            size = self.expression()
            self.expect_op("]")
            base = A.StackTypeRef(t.loc, base, size)
        return base

    # ------------------------------------------------------------------ expressions
    def expression(self) -> A.Expr:
        return self.ternary()

    def ternary(self) -> A.Expr:
        c = self.binary(0)
        if self.at_op("?"):
            t = self.next()
            a = self.expression()
            self.expect_op(":")
            b = self.expression()
            return A.Ternary(t.loc, c, a, b)
        return c

    def _peek_binop(self) -> str | None:
        t = self.peek()
        if t.kind != "op":
            return None
        if t.value == ">" and self.at_op(">", 1) and self.peek(1).start == t.end:
            return ">>"
        if t.value == ">" and self.at_op("=", 1) and self.peek(1).start == t.end:
            return ">="
        return t.value

    def binary(self, level: int) -> A.Expr:
        if level >= len(BINARY_PREC):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            op = self._peek_binop()
            if op is None or op not in BINARY_PREC[level]:
                return left
            self.next()
            if op in (">>", ">="):
                self.next()
            right = self.binary(level + 1)
            left = A.Binary(left.loc, op=op, left=left, right=right)

    def unary(self) -> A.Expr:
        t = self.peek()
        if t.kind == "op" and t.value in ("!", "~", "-", "+"):
            self.next()
            e = self.unary()
            if t.value == "+":
                return e
            return A.Unary(t.loc, op=t.value, expr=e)
        if t.is_op("(") and self._cast_ahead():
            self.next()
            ty = self.type_ref()
            self.expect_op(")")
            e = self.unary()
            return A.Cast(t.loc, ty, e)
        return self.postfix(self.primary())

    def _cast_ahead(self) -> bool:
        if not self.is_type_start(1):
            return False
        nm = self.peek(1).value
        if nm in ("bit", "int", "varbit", "bool"):
            return True
        # (T) where T is a type name and followed by ')'
        save = self.i
        self.i += 1
        try:
            self.type_ref()
            ok = self.at_op(")")
        except CompileError:
            ok = False
        self.i = save
        return ok

    def primary(self) -> A.Expr:
        t = self.next()
        if t.kind == "int":
            return A.IntLit(t.loc, value=t.value, width=t.width, signed=t.signed)
        if t.kind == "str":
            return A.StrLit(t.loc, value=t.value)
        if t.kind == "id":
            if t.value == "true":
                return A.BoolLit(t.loc, value=True)
            if t.value == "false":
                return A.BoolLit(t.loc, value=False)
            if t.value in ("bit", "int", "varbit", "tuple") and self.at_op("<"):
                self.i -= 1
                ty = self.type_ref()
                return A.TypeExpr(t.loc, type=ty)
            if t.value in self.type_names and self.at_op("<") and t.value not in ("error",):
                # generic type used as constructor: register<bit<32>>(...)
                self.i -= 1
                ty = self.type_ref()
                return A.TypeExpr(t.loc, type=ty)
            return A.Name(t.loc, name=t.value)
        if t.is_op("."):
            n = self.expect_id()
            return A.Name(n.loc, name=n.value, dotted=True)
        if t.is_op("("):
            e = self.expression()
            self.expect_op(")")
            return e
        if t.is_op("{"):
            items: list[A.Expr] = []
            names: list[str] | None = None
            if self.accept_op("}"):
                return A.ListExpr(t.loc, items=items)
            if self.at_id() and self.at_op("=", 1):
                names = []
            while True:
                if names is not None:
                    names.append(self.expect_id().value)
                    self.expect_op("=")
                items.append(self.expression())
                if not self.accept_op(","):
                    break
                if self.at_op("}"):
                    break
            self.expect_op("}")
            return A.ListExpr(t.loc, items=items, names=names)
        raise CompileError(f"syntax error, unexpected {self.describe(t)}", t.loc)

    def call_args(self) -> tuple[list[A.Expr], list[str | None]]:
        self.expect_op("(")
        args: list[A.Expr] = []
        names: list[str | None] = []
        if self.accept_op(")"):
            return args, names
        while True:
            if self.at_id() and self.at_op("=", 1):
                names.append(self.next().value)
                self.next()
            else:
                names.append(None)
            if self.at_id("_") and (self.at_op(",", 1) or self.at_op(")", 1)):
                dt = self.next()
                args.append(A.Default(dt.loc))
            else:
                args.append(self.expression())
            if not self.accept_op(","):
                break
        self.expect_op(")")
        return args, names

    def postfix(self, e: A.Expr) -> A.Expr:
        while True:
            t = self.peek()
            if t.is_op("."):
                self.next()
                n = self.expect_id("member name")
                e = A.Member(e.loc, expr=e, name=n.value)
            elif t.is_op("["):
                self.next()
                a = self.expression()
                if self.accept_op(":"):
                    b = self.expression()
                    self.expect_op("]")
                    e = A.Slice(e.loc, expr=e, hi=a, lo=b)
                else:
                    self.expect_op("]")
                    e = A.Index(e.loc, expr=e, index=a)
            elif t.is_op("<") and self._type_args_call_ahead():
                self.next()
                targs = [self.type_ref()]
                while self.accept_op(","):
                    targs.append(self.type_ref())
                self.expect_op(">")
                args, names = self.call_args()
                e = A.Call(e.loc, func=e, type_args=targs, args=args, arg_names=names)
            elif t.is_op("("):
                args, names = self.call_args()
                e = A.Call(e.loc, func=e, args=args, arg_names=names)
            else:
                return e

    def _type_args_call_ahead(self) -> bool:
        """'<' starts explicit type arguments of a call (f<T>(...)) rather than less-than."""
        if not self.is_type_start(1):
            return False
        save = self.i
        self.i += 1
        try:
            self.type_ref()
            while self.accept_op(","):
                self.type_ref()
            ok = self.at_op(">") and self.at_op("(", 1)
        except CompileError:
            ok = False
        self.i = save
        return ok
