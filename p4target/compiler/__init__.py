"""p4target.compiler: the embedded P4_16 (v1model) compiler producing BMv2 JSON and P4Info.

Pipeline of passes over one IR (:mod:`ast`): :mod:`preprocess` (#include/#define, locations kept) →
:mod:`parser` (recursive descent) → :mod:`check` (names, types, widths) → :mod:`bmv2` (lowering to
BMv2 JSON, with :mod:`lower` and :mod:`parser_lower`) → :mod:`p4info` (P4Info with p4c's ids).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from p4.config.v1 import p4info_pb2

from .errors import CompileError, Loc

log = logging.getLogger(__name__)

__all__ = ["CompileError", "CompileResult", "Loc", "compile_file", "p4info_text"]


@dataclass
class CompileResult:
    """The two artifacts p4c-bm2-ss produces."""

    bmv2_json: dict[str, Any]
    p4info: p4info_pb2.P4Info


def compile_file(path: str, include_dirs: list[str] | None = None,
                 defines: dict[str, str] | None = None) -> CompileResult:
    """Compile one P4_16 v1model program; raises CompileError("file:line:col: error: ...")."""
    from .bmv2 import Emitter
    from .check import check
    from .p4info import build_p4info
    from .parser import parse
    from .preprocess import Preprocessor
    from .validate import validate

    pp = Preprocessor(include_dirs=list(include_dirs or []))
    for k, v in (defines or {}).items():
        pp.define_cmdline(k, str(v))
    try:
        tokens = pp.run(str(path))
        program = parse(tokens)
        checked = check(program, str(path))
        em = Emitter(checked, str(path))
        bmv2_json = em.run()
        p4info = build_p4info(checked, em)
        problems = validate(bmv2_json)
        if problems:
            raise CompileError("internal compiler error: inconsistent BMv2 JSON: " + "; ".join(problems[:5]),
                               Loc(str(path), 1, 1))
    except CompileError:
        raise
    except RecursionError:
        raise CompileError("program nested too deeply", Loc(str(path), 1, 1)) from None
    except Exception as e:  # noqa: BLE001 - never a traceback for a user program: report it as an error
        log.exception("internal compiler error")
        raise CompileError(f"internal compiler error: {type(e).__name__}: {e} (please report; the program "
                           "may use an unsupported construct)", Loc(str(path), 1, 1)) from e
    log.debug("compiled %s: %d tables, %d actions", path, len(p4info.tables), len(p4info.actions))
    return CompileResult(bmv2_json, p4info)


def p4info_text(p4info: p4info_pb2.P4Info) -> str:
    """P4Info in protobuf text format (what --p4runtime-files writes for .txt/.txtpb)."""
    from google.protobuf import text_format

    return text_format.MessageToString(p4info)
