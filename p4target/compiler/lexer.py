"""Lexer of P4_16 source text into tokens that remember their file, line and column.

Preprocessor directives (lines starting with ``#``) are returned as single ``directive`` tokens holding
the rest of the logical line; :mod:`preprocess` interprets them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CompileError, Loc

# Longest first: the lexer tries these in order.
PUNCT = [
    "&&&", "|+|", "|-|", "<<=", ">>=",
    "++", "&&", "||", "==", "!=", "<=", "<<", "..", "+=", "-=", "*=", "/=", "&=", "|=", "^=",
    "{", "}", "(", ")", "[", "]", ";", ":", ",", ".", "<", ">", "=", "+", "-", "*", "/", "%",
    "&", "|", "^", "~", "!", "?", "@", "#",
]
# '>' is always lexed alone: '>>' is recognised by the parser from two adjacent '>' tokens, so that
# nested type arguments (bit<8>> ...) lex correctly.

_INT_RE = re.compile(
    r"(?:(\d+)([ws]))?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|0[dD][0-9_]+|[0-9][0-9_]*)"
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Token:
    """One token. ``kind`` is one of id, int, str, op, directive, eof."""

    kind: str
    value: object
    loc: Loc
    end: int = 0          # offset just past the token in its file (to detect adjacency)
    start: int = 0
    width: int | None = None    # for int tokens with a width prefix (8w5)
    signed: bool = False
    file_id: int = 0

    def is_op(self, op: str) -> bool:
        return self.kind == "op" and self.value == op

    def __repr__(self) -> str:
        return f"Token({self.kind},{self.value!r},{self.loc})"


def parse_int_literal(text: str) -> tuple[int, int | None, bool]:
    """Value, width and signedness of a P4 integer literal such as ``8w0x0F`` or ``1_000``."""
    m = _INT_RE.fullmatch(text)
    if not m:
        raise ValueError(text)
    width = int(m.group(1)) if m.group(1) else None
    signed = m.group(2) == "s"
    body = m.group(3).replace("_", "")
    if body[:2] in ("0x", "0X"):
        value = int(body[2:], 16)
    elif body[:2] in ("0b", "0B"):
        value = int(body[2:], 2)
    elif body[:2] in ("0o", "0O"):
        value = int(body[2:], 8)
    elif body[:2] in ("0d", "0D"):
        value = int(body[2:], 10)
    else:
        value = int(body, 10)
    return value, width, signed


_file_ids: dict[str, int] = {}


def tokenize(text: str, filename: str) -> list[Token]:
    """Split one file into tokens (directives included, comments dropped, no eof token)."""
    fid = _file_ids.setdefault(filename, len(_file_ids) + 1)
    toks: list[Token] = []
    i = 0
    n = len(text)
    line = 1
    line_start = 0
    at_line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            line_start = i
            at_line_start = True
            continue
        if c in " \t\r\f\v":
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise CompileError("unterminated comment", Loc(filename, line, i - line_start + 1))
            line += text.count("\n", i, j)
            k = text.rfind("\n", i, j)
            if k >= 0:
                line_start = k + 1
            i = j + 2
            continue
        loc = Loc(filename, line, i - line_start + 1)
        if c == "#" and at_line_start:
            # directive: up to end of logical line (backslash continuations), comments stripped
            j = i + 1
            buf = []
            while j < n:
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "\n":
                    j += 2
                    line += 1
                    line_start = j
                    continue
                if text[j] == "\n":
                    break
                if text.startswith("//", j):
                    while j < n and text[j] != "\n":
                        j += 1
                    break
                if text.startswith("/*", j):
                    k = text.find("*/", j + 2)
                    if k < 0:
                        raise CompileError("unterminated comment", loc)
                    line += text.count("\n", j, k)
                    j = k + 2
                    buf.append(" ")
                    continue
                buf.append(text[j])
                j += 1
            toks.append(Token("directive", "".join(buf).strip(), loc, j, i, file_id=fid))
            i = j
            continue
        at_line_start = False
        if c.isdigit():
            m = _INT_RE.match(text, i)
            assert m is not None
            value, width, signed = parse_int_literal(m.group(0))
            toks.append(Token("int", value, loc, m.end(), i, width, signed, fid))
            i = m.end()
            continue
        if c.isalpha() or c == "_":
            m = _IDENT_RE.match(text, i)
            assert m is not None
            toks.append(Token("id", m.group(0), loc, m.end(), i, file_id=fid))
            i = m.end()
            continue
        if c == '"':
            j = i + 1
            out = []
            while j < n and text[j] != '"':
                if text[j] == "\n":
                    raise CompileError("unterminated string literal", loc)
                if text[j] == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            if j >= n:
                raise CompileError("unterminated string literal", loc)
            toks.append(Token("str", "".join(out), loc, j + 1, i, file_id=fid))
            i = j + 1
            continue
        for p in PUNCT:
            if text.startswith(p, i):
                toks.append(Token("op", p, loc, i + len(p), i, file_id=fid))
                i += len(p)
                break
        else:
            raise CompileError(f"unexpected character {c!r}", loc)
    return toks
