"""Hand-written recursive-descent parser for the P4_16 subset used by v1model programs.

Input: the preprocessed token list; output: :class:`ast.Program`. Type names are tracked while
parsing (P4 declares before use), which resolves the declaration/expression ambiguities of the grammar.
"""
from __future__ import annotations

from typing import Any

from . import ast as A
from .errors import CompileError, Loc, unsupported
from .lexer import Token
from .parser_expr import BINARY_PREC, ExprParser  # noqa: F401 - BINARY_PREC re-exported

BUILTIN_TYPES = {"bit", "int", "varbit", "bool", "error", "string", "void", "match_kind", "packet_in",
                 "packet_out"}
KEYWORDS = {"action", "apply", "bit", "bool", "const", "control", "default", "else", "enum", "error",
            "exit", "extern", "false", "header", "header_union", "if", "in", "inout", "int",
            "match_kind", "out", "package", "parser", "return", "select", "state", "struct", "switch",
            "table", "transition", "true", "tuple", "typedef", "type", "varbit", "void", "entries",
            "key", "actions", "list"}


class Parser(ExprParser):
    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0
        last = toks[-1].loc if toks else Loc("<input>", 1, 1)
        self.eof = Token("eof", None, last)
        self.type_names: set[str] = set(BUILTIN_TYPES) | {"packet_in", "packet_out"}

    # ------------------------------------------------------------------ helpers
    def peek(self, k: int = 0) -> Token:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else self.eof

    def next(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def at_op(self, op: str, k: int = 0) -> bool:
        return self.peek(k).is_op(op)

    def at_id(self, name: str | None = None, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == "id" and (name is None or t.value == name)

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.i += 1
            return True
        return False

    def accept_id(self, name: str) -> bool:
        if self.at_id(name):
            self.i += 1
            return True
        return False

    def error(self, msg: str, t: Token | None = None) -> CompileError:
        t = t or self.peek()
        return CompileError(msg, t.loc)

    def expect_op(self, op: str) -> Token:
        t = self.peek()
        if not t.is_op(op):
            raise self.error(f"syntax error, expected '{op}' but found {self.describe(t)}")
        self.i += 1
        return t

    def expect_id(self, what: str = "identifier") -> Token:
        t = self.peek()
        if t.kind != "id":
            raise self.error(f"syntax error, expected {what} but found {self.describe(t)}")
        self.i += 1
        return t

    def expect_kw(self, kw: str) -> Token:
        t = self.peek()
        if not (t.kind == "id" and t.value == kw):
            raise self.error(f"syntax error, expected '{kw}' but found {self.describe(t)}")
        self.i += 1
        return t

    @staticmethod
    def describe(t: Token) -> str:
        if t.kind == "eof":
            return "end of file"
        if t.kind == "str":
            return f'"{t.value}"'
        return f"'{t.value}'"

    def name_token(self) -> Token:
        """An identifier, also allowing the few keywords that are valid names (key, actions...)."""
        return self.expect_id("name")

    # ------------------------------------------------------------------ program
    def parse_program(self) -> A.Program:
        decls = []
        while self.peek().kind != "eof":
            if self.accept_op(";"):
                continue
            decls.append(self.declaration())
        return A.Program(decls)

    def annotations(self) -> list[A.Annotation]:
        annos = []
        while self.at_op("@"):
            at = self.next()
            name = self.expect_id("annotation name").value
            args: list[Any] = []
            if name == "pragma":
                # @pragma takes the rest of its line, unparsed
                while self.peek().kind != "eof" and self.peek().loc.line == at.loc.line \
                        and self.peek().loc.file == at.loc.file:
                    args.append(self.next().value)
                annos.append(A.Annotation(name, args, at.loc))
                continue
            if self.at_op("("):
                self.next()
                args = self.annotation_body()
            annos.append(A.Annotation(name, args, at.loc))
        return annos

    def annotation_body(self) -> list[Any]:
        """Annotation arguments up to the matching ')': expressions where they parse, else tokens."""
        start = self.i
        depth = 0
        end = start
        while True:
            t = self.peek(end - start)
            if t.kind == "eof":
                raise self.error("unterminated annotation")
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                if depth == 0:
                    break
                depth -= 1
            end += 1
        toks = self.toks[start:end]
        self.i = end + 1
        if not toks:
            return []
        sub = Parser(toks)
        sub.type_names = self.type_names
        try:
            args = [sub.expression()]
            while sub.accept_op(","):
                args.append(sub.expression())
            if sub.peek().kind == "eof":
                return args
        except CompileError:
            pass
        return [t.value for t in toks]

    def declaration(self) -> Any:
        annos = self.annotations()
        t = self.peek()
        if t.kind != "id":
            raise self.error(f"syntax error, unexpected {self.describe(t)}")
        kw = t.value
        if kw in ("header", "struct", "header_union"):
            return self.header_decl(annos)
        if kw in ("typedef", "type"):
            return self.typedef_decl(annos)
        if kw == "const":
            return self.const_decl(annos)
        if kw == "enum":
            return self.enum_decl(annos)
        if kw == "error":
            return self.members_decl(A.ErrorDecl, "error")
        if kw == "match_kind":
            return self.members_decl(A.MatchKindDecl, "match_kind")
        if kw == "extern":
            return self.extern_decl(annos)
        if kw == "action":
            return self.action_decl(annos)
        if kw == "parser":
            return self.parser_decl(annos)
        if kw == "control":
            return self.control_decl(annos)
        if kw == "package":
            return self.package_decl(annos)
        if kw in self.type_names or self.at_op("<", 1):
            # function declaration or instantiation
            save = self.i
            ty = self.type_ref()
            if self.at_id() and self.at_op("(", 1):
                return self.function_decl(annos, ty, save)
            self.i = save
            return self.instantiation(annos)
        raise self.error(f"syntax error, unexpected '{kw}'")

    def header_decl(self, annos: list[A.Annotation]) -> A.HeaderDecl:
        kw = self.next()
        name = self.expect_id("type name")
        self.type_names.add(name.value)
        if self.at_op("<"):
            raise unsupported("generic structs/headers", self.peek().loc)
        self.expect_op("{")
        fields = []
        while not self.accept_op("}"):
            fa = self.annotations()
            ft = self.type_ref()
            fn = self.name_token()
            self.expect_op(";")
            fields.append(A.FieldDecl(fn.value, ft, fa, fn.loc))
        return A.HeaderDecl(name.loc, name.value, annos, fields, kw.value)

    def typedef_decl(self, annos: list[A.Annotation]) -> A.TypedefDecl:
        kw = self.next()
        ty = self.type_ref()
        name = self.expect_id("type name")
        self.expect_op(";")
        self.type_names.add(name.value)
        return A.TypedefDecl(name.loc, name.value, annos, ty, kw.value == "type")

    def const_decl(self, annos: list[A.Annotation]) -> A.ConstDecl:
        self.expect_kw("const")
        ty = self.type_ref()
        name = self.name_token()
        self.expect_op("=")
        val = self.expression()
        self.expect_op(";")
        return A.ConstDecl(name.loc, name.value, annos, ty, val)

    def enum_decl(self, annos: list[A.Annotation]) -> A.EnumDecl:
        self.expect_kw("enum")
        base = None
        if self.at_id("bit") or self.at_id("int"):
            base = self.type_ref()
        name = self.expect_id("enum name")
        self.type_names.add(name.value)
        self.expect_op("{")
        members, values = [], []
        while not self.accept_op("}"):
            m = self.expect_id("enum member")
            members.append(m.value)
            values.append(self.expression() if self.accept_op("=") else None)
            if not self.accept_op(","):
                self.expect_op("}")
                break
        return A.EnumDecl(name.loc, name.value, annos, members, values, base)

    def members_decl(self, cls: type, kw: str) -> Any:
        t = self.expect_kw(kw)
        self.expect_op("{")
        members = []
        while not self.accept_op("}"):
            members.append(self.expect_id().value)
            if not self.accept_op(","):
                self.expect_op("}")
                break
        return cls(t.loc, kw, [], members)

    def type_params(self) -> list[str]:
        out = []
        if self.accept_op("<"):
            while True:
                n = self.expect_id("type parameter").value
                out.append(n)
                self.type_names.add(n)
                if not self.accept_op(","):
                    break
            self.expect_op(">")
        return out

    def extern_decl(self, annos: list[A.Annotation]) -> A.ExternDecl:
        self.expect_kw("extern")
        # extern function: 'extern' type name<...>(params);   extern object: 'extern' name<...> { ... }
        if self.at_id() and (self.at_op("{", 1) or (self.at_op("<", 1) and self._extern_object_ahead())):
            name = self.expect_id()
            self.type_names.add(name.value)
            tps = self.type_params()
            self.expect_op("{")
            methods = []
            while not self.accept_op("}"):
                self.annotations()
                self.accept_id("abstract")
                # constructor: Name(params);  method: type name<T>(params);
                if self.at_id(name.value) and self.at_op("(", 1):
                    self.next()
                    params = self.params()
                    self.expect_op(";")
                    methods.append(("__ctor__", params))
                    continue
                self.type_ref()
                mname = self.expect_id("method name").value
                self.type_params()
                params = self.params()
                self.expect_op(";")
                methods.append((mname, params))
            return A.ExternDecl(name.loc, name.value, annos, tps, methods)
        self.type_ref()
        name = self.expect_id("function name")
        tps = self.type_params()
        params = self.params()
        self.expect_op(";")
        return A.ExternDecl(name.loc, name.value, annos, tps, [], True, params)

    def _extern_object_ahead(self) -> bool:
        j = 1
        depth = 0
        while True:
            t = self.peek(j)
            if t.kind == "eof":
                return False
            if t.is_op("<"):
                depth += 1
            elif t.is_op(">"):
                depth -= 1
                if depth == 0:
                    return self.peek(j + 1).is_op("{")
            j += 1

    def params(self) -> list[A.Param]:
        self.expect_op("(")
        out: list[A.Param] = []
        if self.accept_op(")"):
            return out
        while True:
            pa = self.annotations()
            d = ""
            if self.at_id("in") or self.at_id("out") or self.at_id("inout"):
                d = self.next().value
            ty = self.type_ref()
            n = self.name_token()
            default = self.expression() if self.accept_op("=") else None
            out.append(A.Param(d, ty, n.value, n.loc, pa, default))
            if not self.accept_op(","):
                break
        self.expect_op(")")
        return out

    def action_decl(self, annos: list[A.Annotation]) -> A.ActionDecl:
        self.expect_kw("action")
        name = self.name_token()
        params = self.params()
        body = self.block()
        return A.ActionDecl(name.loc, name.value, annos, params, body)

    def function_decl(self, annos: list[A.Annotation], ret: A.TypeRef, save: int) -> A.FunctionDecl:
        name = self.expect_id()
        params = self.params()
        if self.at_op(";"):
            raise unsupported("function prototype outside extern", name.loc)
        body = self.block()
        return A.FunctionDecl(name.loc, name.value, annos, ret, params, body)

    def package_decl(self, annos: list[A.Annotation]) -> A.PackageDecl:
        self.expect_kw("package")
        name = self.expect_id()
        self.type_names.add(name.value)
        tps = self.type_params()
        params = self.params()
        self.expect_op(";")
        return A.PackageDecl(name.loc, name.value, annos, params, tps)

    def parser_decl(self, annos: list[A.Annotation]) -> A.ParserDecl:
        self.expect_kw("parser")
        name = self.expect_id("parser name")
        tps = self.type_params()
        params = self.params()
        if self.accept_op(";"):
            self.type_names.add(name.value)
            return A.ParserDecl(name.loc, name.value, annos, params, type_params=tps, is_type=True)
        ctor = self.params() if self.at_op("(") else []
        self.expect_op("{")
        locals_: list[Any] = []
        states: list[A.ParserState] = []
        while not self.accept_op("}"):
            sa = self.annotations()
            if self.at_id("state"):
                states.append(self.parser_state(sa))
            else:
                locals_.append(self.local_decl(sa))
        return A.ParserDecl(name.loc, name.value, annos, params, ctor, locals_, states, tps)

    def parser_state(self, annos: list[A.Annotation]) -> A.ParserState:
        self.expect_kw("state")
        name = self.name_token()
        self.expect_op("{")
        stmts = []
        while not self.at_id("transition") and not self.at_op("}"):
            stmts.append(self.statement())
        trans: Any = A.Name(name.loc, name="reject")
        if self.accept_id("transition"):
            if self.at_id("select"):
                trans = self.select_expr()
            else:
                tn = self.name_token()
                trans = A.Name(tn.loc, name=tn.value)
                self.expect_op(";")
        # no transition statement: the state implicitly transitions to reject (P4_16 spec)
        self.expect_op("}")
        return A.ParserState(name.value, stmts, trans, name.loc, annos)

    def select_expr(self) -> A.Select:
        t = self.expect_kw("select")
        self.expect_op("(")
        exprs = [self.expression()]
        while self.accept_op(","):
            exprs.append(self.expression())
        self.expect_op(")")
        self.expect_op("{")
        cases = []
        while not self.accept_op("}"):
            kt = self.peek()
            ks = self.keyset()
            self.expect_op(":")
            st = self.name_token()
            self.expect_op(";")
            cases.append(A.SelectCase(ks, st.value, kt.loc))
        return A.Select(exprs, cases, t.loc)

    def keyset(self) -> A.Expr:
        t = self.peek()
        if self.at_op("(") and self._tuple_keyset_ahead():
            self.next()
            items = [self.simple_keyset()]
            while self.accept_op(","):
                items.append(self.simple_keyset())
            self.expect_op(")")
            return A.ListExpr(t.loc, items=items)
        return self.simple_keyset()

    def _tuple_keyset_ahead(self) -> bool:
        depth = 0
        j = 0
        while True:
            t = self.peek(j)
            if t.kind == "eof":
                return False
            if t.is_op("(") or t.is_op("{") or t.is_op("["):
                depth += 1
            elif t.is_op(")") or t.is_op("}") or t.is_op("]"):
                depth -= 1
                if depth == 0:
                    return False
            elif t.is_op(",") and depth == 1:
                return True
            j += 1

    def simple_keyset(self) -> A.Expr:
        t = self.peek()
        if self.accept_id("default") or (t.kind == "id" and t.value == "_" and self.accept_id("_")):
            return A.Default(t.loc)
        e = self.expression()
        if self.accept_op("&&&"):
            m = self.expression()
            return A.Binary(t.loc, op="&&&", left=e, right=m)
        if self.accept_op(".."):
            hi = self.expression()
            return A.Binary(t.loc, op="..", left=e, right=hi)
        return e

    def control_decl(self, annos: list[A.Annotation]) -> A.ControlDecl:
        self.expect_kw("control")
        name = self.expect_id("control name")
        tps = self.type_params()
        params = self.params()
        if self.accept_op(";"):
            self.type_names.add(name.value)
            return A.ControlDecl(name.loc, name.value, annos, params, type_params=tps, is_type=True)
        ctor = self.params() if self.at_op("(") else []
        self.expect_op("{")
        locals_: list[Any] = []
        body = None
        while not self.accept_op("}"):
            la = self.annotations()
            if self.at_id("apply") and self.at_op("{", 1):
                self.next()
                body = self.block()
                continue
            locals_.append(self.local_decl(la))
        if body is None:
            raise CompileError(f"control '{name.value}' has no apply block", name.loc)
        return A.ControlDecl(name.loc, name.value, annos, params, ctor, locals_, body, tps)

    def local_decl(self, annos: list[A.Annotation]) -> Any:
        if self.at_id("action"):
            return self.action_decl(annos)
        if self.at_id("table"):
            return self.table_decl(annos)
        if self.at_id("const"):
            c = self.const_decl(annos)
            return c
        if self.at_id("state"):
            raise self.error("parser state outside a parser")
        if self.at_id("value_set"):
            raise unsupported("parser value sets", self.peek().loc)
        return self.instantiation_or_var(annos)

    def instantiation(self, annos: list[A.Annotation]) -> A.Instance:
        t = self.peek()
        ty = self.type_ref()
        if not self.at_op("("):
            raise self.error(f"syntax error, expected a constructor call after type at {t.value}")
        args, arg_names = self.call_args()
        name = self.name_token()
        if self.at_op("="):
            raise unsupported("extern instance initializer blocks", self.peek().loc)
        self.expect_op(";")
        return A.Instance(name.loc, name.value, annos, ty, args, arg_names)

    def instantiation_or_var(self, annos: list[A.Annotation]) -> Any:
        save = self.i
        ty = self.type_ref()
        if self.at_op("("):
            self.i = save
            return self.instantiation(annos)
        name = self.name_token()
        init = self.expression() if self.accept_op("=") else None
        self.expect_op(";")
        return A.VarDecl(name.loc, ty, name.value, init, annos)

    def table_decl(self, annos: list[A.Annotation]) -> A.TableDecl:
        self.expect_kw("table")
        name = self.name_token()
        self.expect_op("{")
        props = []
        while not self.accept_op("}"):
            pa = self.annotations()
            is_const = self.accept_id("const")
            pn = self.name_token()
            if pn.value == "key":
                self.expect_op("=")
                self.expect_op("{")
                keys = []
                while not self.accept_op("}"):
                    kt = self.peek()
                    e = self.expression()
                    self.expect_op(":")
                    mk = self.expect_id("match kind").value
                    ka = self.annotations()
                    self.expect_op(";")
                    keys.append(A.KeyElement(e, mk, ka, kt.loc))
                props.append(A.TableProperty("key", keys, pn.loc, is_const, pa))
            elif pn.value == "actions":
                self.expect_op("=")
                self.expect_op("{")
                acts = []
                while not self.accept_op("}"):
                    aa = self.annotations()
                    at = self.peek()
                    e = self.expression()
                    self.expect_op(";")
                    acts.append(A.ActionRef(e, aa, at.loc))
                props.append(A.TableProperty("actions", acts, pn.loc, is_const, pa))
            elif pn.value == "entries":
                self.expect_op("=")
                self.expect_op("{")
                entries = []
                while not self.accept_op("}"):
                    et = self.peek()
                    self.annotations()
                    prio = None
                    if self.accept_id("priority"):
                        self.expect_op("=")
                        prio = self.expression()
                        self.expect_op(":")
                    ks = self.keyset()
                    items = ks.items if isinstance(ks, A.ListExpr) else [ks]
                    self.expect_op(":")
                    act = self.expression()
                    self.annotations()
                    self.expect_op(";")
                    entries.append(A.TableEntry(items, act, et.loc, prio))
                props.append(A.TableProperty("entries", entries, pn.loc, is_const, pa))
            else:
                self.expect_op("=")
                val = self.expression()
                self.expect_op(";")
                props.append(A.TableProperty(pn.value, val, pn.loc, is_const, pa))
        return A.TableDecl(name.loc, name.value, annos, props)

    # ------------------------------------------------------------------ statements
    def block(self) -> A.Block:
        t = self.expect_op("{")
        stmts = []
        while not self.accept_op("}"):
            if self.peek().kind == "eof":
                raise self.error("syntax error, missing '}'")
            stmts.append(self.statement())
        return A.Block(t.loc, stmts)

    def statement(self) -> A.Stmt:
        annos = self.annotations()
        t = self.peek()
        if t.is_op("{"):
            return self.block()
        if t.is_op(";"):
            self.next()
            return A.Empty(t.loc)
        if t.kind == "id":
            if t.value == "if":
                self.next()
                self.expect_op("(")
                c = self.expression()
                self.expect_op(")")
                th = self.statement()
                el = self.statement() if self.accept_id("else") else None
                return A.If(t.loc, c, th, el)
            if t.value == "switch":
                return self.switch_stmt()
            if t.value == "exit":
                self.next()
                self.expect_op(";")
                return A.Exit(t.loc)
            if t.value == "return":
                self.next()
                v = None if self.at_op(";") else self.expression()
                self.expect_op(";")
                return A.Return(t.loc, v)
            if t.value == "const":
                c = self.const_decl(annos)
                return A.VarDecl(c.loc, c.type, c.name, c.value, annos, True)
            if self.is_type_start() and self._decl_ahead():
                ty = self.type_ref()
                n = self.name_token()
                init = self.expression() if self.accept_op("=") else None
                self.expect_op(";")
                return A.VarDecl(n.loc, ty, n.value, init, annos)
        e = self.expression()
        if self.accept_op("="):
            rhs = self.expression()
            self.expect_op(";")
            return A.Assign(t.loc, e, rhs)
        for op in ("+=", "-=", "*=", "&=", "|=", "^=", "<<=", ">>="):
            if self.at_op(op):
                raise unsupported(f"compound assignment '{op}'", self.peek().loc)
        if not isinstance(e, A.Call):
            if isinstance(e, A.Name) and self.at_id() and not self.at_op(".", 1):
                # `Foo x ...` where Foo is not a type: the likely mistake is the type name
                raise CompileError(f"{e.name}: unknown type (no type of this name is declared)", e.loc)
            raise self.error(f"syntax error, expected ';' or '=' but found {self.describe(self.peek())}")
        self.expect_op(";")
        return A.CallStmt(t.loc, e)

    def _decl_ahead(self) -> bool:
        """After a type start: is this 'Type name [= ...];' (a declaration)?"""
        save = self.i
        try:
            self.type_ref()
            ok = self.peek().kind == "id" and (self.at_op(";", 1) or self.at_op("=", 1))
        except CompileError:
            ok = False
        self.i = save
        return ok

    def switch_stmt(self) -> A.Switch:
        t = self.expect_kw("switch")
        self.expect_op("(")
        e = self.expression()
        self.expect_op(")")
        self.expect_op("{")
        cases = []
        while not self.accept_op("}"):
            lt = self.peek()
            label: A.Expr | None
            if self.accept_id("default"):
                label = None
            else:
                label = self.expression()
            self.expect_op(":")
            body = self.block() if self.at_op("{") else None
            cases.append(A.SwitchCase(label, body, lt.loc))
        return A.Switch(t.loc, e, cases)

def parse(tokens: list[Token]) -> A.Program:
    """Parse preprocessed tokens into a program."""
    return Parser(tokens).parse_program()
