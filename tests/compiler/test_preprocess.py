"""Preprocessor and lexer: macros, conditionals, includes, literals, locations."""
from __future__ import annotations

from pathlib import Path

import pytest

from p4target.compiler import CompileError
from p4target.compiler.lexer import parse_int_literal, tokenize
from p4target.compiler.preprocess import Preprocessor


def values(path: Path, **defines: str) -> list[object]:
    pp = Preprocessor()
    for k, v in defines.items():
        pp.define_cmdline(k, v)
    return [t.value for t in pp.run(str(path))]


def test_int_literals() -> None:
    assert parse_int_literal("8w0x0F") == (15, 8, False)
    assert parse_int_literal("16s5") == (5, 16, True)
    assert parse_int_literal("0b1010_1010") == (0xAA, None, False)
    assert parse_int_literal("1_000") == (1000, None, False)
    assert parse_int_literal("0o17") == (15, None, False)


def test_tokens_keep_locations_across_comments() -> None:
    toks = tokenize("a /* x\n y */ b // c\n  c", "f.p4")
    assert [(t.value, t.loc.line, t.loc.col) for t in toks] == [("a", 1, 1), ("b", 2, 7), ("c", 3, 3)]


def test_function_like_macro_and_if(tmp_path: Path) -> None:
    src = tmp_path / "m.p4"
    src.write_text("#define ADD(a, b) (a + b)\n#define N 3\n"
                   "#if defined(N) && N > 2 || 0\nyes ADD(1, N)\n#elif 1\nno\n#else\nno\n#endif\n"
                   "#ifndef N\nno\n#endif\n#undef N\n#ifdef N\nno\n#endif\n")
    assert values(src) == ["yes", "(", 1, "+", 3, ")"]


def test_command_line_define_overrides(tmp_path: Path) -> None:
    src = tmp_path / "m.p4"
    src.write_text("#ifndef W\n#define W 8\n#endif\nW\n")
    assert values(src) == [8]
    assert values(src, W="16") == [16]


def test_include_quoted_then_dirs_then_builtin(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.p4").write_text("from_dir\n")
    (tmp_path / "b.p4").write_text("local\n")
    src = tmp_path / "top.p4"
    src.write_text('#include "b.p4"\n#include <a.p4>\n#include <core.p4>\n')
    pp = Preprocessor(include_dirs=[str(tmp_path / "inc")])
    toks = pp.run(str(src))
    assert [t.value for t in toks[:2]] == ["local", "from_dir"]
    assert toks[0].loc.file.endswith("b.p4") and toks[1].loc.file.endswith("a.p4")
    assert any(t.value == "packet_in" for t in toks)


@pytest.mark.parametrize("text,msg", [
    ('#include "missing.p4"\n', "cannot find include file 'missing.p4'"),
    ("#if 1\nx\n", "unterminated #if"),
    ("#endif\n", "#endif without #if"),
    ("#error stop here\n", "#error stop here"),
    ("/* never closed\n", "unterminated comment"),
])
def test_preprocessor_errors(tmp_path: Path, text: str, msg: str) -> None:
    src = tmp_path / "e.p4"
    src.write_text(text)
    with pytest.raises(CompileError, match=msg) as ei:
        Preprocessor().run(str(src))
    assert str(ei.value).startswith(str(src))
