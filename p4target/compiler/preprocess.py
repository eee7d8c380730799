"""A minimal C preprocessor over tokens: #include, #define (object- and function-like), #undef,
#ifdef/#ifndef/#if/#elif/#else/#endif, #error; #pragma and #line are ignored.

Working on tokens (not text) keeps every token's original file:line:col, so diagnostics point at the
source the user wrote even through includes and macros (macro expansions carry the use site).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import CompileError, Loc
from .lexer import Token, tokenize

BUILTIN_INCLUDE_DIR = Path(__file__).resolve().parent / "p4include"


@dataclass
class Macro:
    name: str
    body: list[Token]
    params: list[str] | None = None  # None: object-like


@dataclass
class Preprocessor:
    include_dirs: list[str] = field(default_factory=list)
    macros: dict[str, Macro] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    depth: int = 0

    def define_cmdline(self, name: str, value: str) -> None:
        self.macros[name] = Macro(name, tokenize(value, "<command-line>"))

    def run(self, path: str) -> list[Token]:
        out: list[Token] = []
        self._file(path, out, Loc("<command-line>", 0, 0))
        return out

    # -- files and directives -----------------------------------------------------------------
    def _file(self, path: str, out: list[Token], where: Loc) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise CompileError(f"cannot read {path}: {e.strerror}", where) from None
        self.depth += 1
        if self.depth > 64:
            raise CompileError("#include nested too deeply", where)
        self.files.append(path)
        toks = tokenize(text, path)
        # conditional stack entries: [active, any_branch_taken, parent_active]
        stack: list[list[bool]] = []
        active = True
        i = 0
        while i < len(toks):
            t = toks[i]
            i += 1
            if t.kind == "directive":
                active = self._directive(t, stack, active, out, path)
                continue
            if not active:
                continue
            if t.kind == "id" and t.value in self.macros:
                i = self._expand(toks, i - 1, out, set())
                continue
            out.append(t)
        if stack:
            raise CompileError("unterminated #if", Loc(path, toks[-1].loc.line if toks else 1, 1))
        self.depth -= 1

    def _directive(self, t: Token, stack: list[list[bool]], active: bool, out: list[Token],
                   path: str) -> bool:
        m = re.match(r"\s*([A-Za-z_]+)\s*(.*)$", t.value, re.S)
        if not m:
            if t.value.strip() == "":
                return active
            raise CompileError(f"invalid preprocessor directive '#{t.value}'", t.loc)
        name, rest = m.group(1), m.group(2).strip()
        if name in ("ifdef", "ifndef"):
            cond = (rest.split()[0] in self.macros) if rest else False
            if name == "ifndef":
                cond = not cond
            stack.append([active and cond, cond, active])
            return active and cond
        if name == "if":
            cond = bool(self._eval_if(rest, t.loc)) if active else False
            stack.append([active and cond, cond, active])
            return active and cond
        if name in ("elif", "else", "endif"):
            if not stack:
                raise CompileError(f"#{name} without #if", t.loc)
            top = stack[-1]
            if name == "endif":
                stack.pop()
                return top[2]
            if name == "else":
                cond = not top[1]
            else:
                cond = (not top[1]) and top[2] and bool(self._eval_if(rest, t.loc))
            top[0] = top[2] and cond
            top[1] = top[1] or cond
            return top[0]
        if not active:
            return active
        if name == "include":
            mm = re.match(r'[<"]([^>"]+)[>"]', rest)
            if not mm:
                raise CompileError("#include expects \"FILE\" or <FILE>", t.loc)
            target = self._find_include(mm.group(1), rest.startswith('"'), path, t.loc)
            self._file(target, out, t.loc)
        elif name == "define":
            self._define(rest, t)
        elif name == "undef":
            self.macros.pop(rest.split()[0] if rest else "", None)
        elif name == "error":
            raise CompileError(f"#error {rest}", t.loc)
        elif name in ("pragma", "line", "warning"):
            pass
        else:
            raise CompileError(f"unknown preprocessor directive '#{name}'", t.loc)
        return active

    def _find_include(self, name: str, quoted: bool, current: str, loc: Loc) -> str:
        cands = []
        if quoted:
            cands.append(os.path.join(os.path.dirname(current), name))
        cands += [os.path.join(d, name) for d in self.include_dirs]
        cands.append(str(BUILTIN_INCLUDE_DIR / name))
        for c in cands:
            if os.path.isfile(c):
                return os.path.normpath(c)
        raise CompileError(f"cannot find include file '{name}'", loc)

    def _define(self, rest: str, t: Token) -> None:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\(([^)]*)\))?\s*(.*)$", rest, re.S)
        if not m:
            raise CompileError("#define expects a macro name", t.loc)
        name = m.group(1)
        params = None
        if m.group(2) is not None:
            params = [p.strip() for p in m.group(3).split(",") if p.strip()]
        body = tokenize(m.group(4), t.loc.file)
        # body tokens get the location of the #define line
        body = [replace(b, loc=Loc(t.loc.file, t.loc.line, t.loc.col)) for b in body]
        self.macros[name] = Macro(name, body, params)

    def _expand(self, toks: list[Token], i: int, out: list[Token], hide: set[str]) -> int:
        """Expand the macro invocation at toks[i]; return the index after it."""
        t = toks[i]
        mac = self.macros[t.value]
        i += 1
        args: list[list[Token]] = []
        if mac.params is not None:
            if i >= len(toks) or not toks[i].is_op("("):
                out.append(t)
                return i
            depth = 0
            cur: list[Token] = []
            i += 1
            while True:
                if i >= len(toks):
                    raise CompileError(f"unterminated invocation of macro '{mac.name}'", t.loc)
                a = toks[i]
                i += 1
                if a.is_op("(") :
                    depth += 1
                elif a.is_op(")"):
                    if depth == 0:
                        args.append(cur)
                        break
                    depth -= 1
                elif a.is_op(",") and depth == 0:
                    args.append(cur)
                    cur = []
                    continue
                cur.append(a)
            if args == [[]] and not mac.params:
                args = []
            if len(args) != len(mac.params):
                raise CompileError(f"macro '{mac.name}' expects {len(mac.params)} arguments", t.loc)
        body: list[Token] = []
        for b in mac.body:
            if mac.params and b.kind == "id" and b.value in mac.params:
                body.extend(args[mac.params.index(b.value)])
            else:
                body.append(replace(b, loc=t.loc))
        hide2 = hide | {mac.name}
        j = 0
        while j < len(body):
            b = body[j]
            if b.kind == "id" and b.value in self.macros and b.value not in hide2:
                j = self._expand(body, j, out, hide2)
                continue
            out.append(b)
            j += 1
        return i

    def _eval_if(self, expr: str, loc: Loc) -> int:
        expr = re.sub(r"defined\s*\(\s*([A-Za-z_]\w*)\s*\)",
                      lambda m: "1" if m.group(1) in self.macros else "0", expr)
        expr = re.sub(r"defined\s+([A-Za-z_]\w*)",
                      lambda m: "1" if m.group(1) in self.macros else "0", expr)

        def ident(m: re.Match[str]) -> str:
            name = m.group(0)
            mac = self.macros.get(name)
            if mac is None or mac.params is not None:
                return "0"
            return " ".join(str(b.value) for b in mac.body) or "0"

        for _ in range(8):
            new = re.sub(r"[A-Za-z_]\w*", ident, expr)
            if new == expr:
                break
            expr = new
        py = expr.replace("&&", " and ").replace("||", " or ")
        py = re.sub(r"!(?!=)", " not ", py)
        if not re.fullmatch(r"[\s0-9a-fA-FxX()+\-*<>=!andortn]*", py):
            raise CompileError(f"cannot evaluate #if expression '{expr}'", loc)
        try:
            return int(eval(py, {"__builtins__": {}}, {}))  # noqa: S307 - digits and operators only
        except Exception:
            raise CompileError(f"cannot evaluate #if expression '{expr}'", loc) from None
