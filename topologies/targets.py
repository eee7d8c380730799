"""Which P4 target runs: ``embedded`` (this repository's p4target) or ``bmv2`` (p4c + BMv2).

``auto`` — the default of ``make``, ``flowmig run`` and the lab — is bmv2 when the real tools are on
``PATH`` (a P4 lab VM: ``p4c-bm2-ss`` and ``simple_switch_grpc``), else embedded. The choice is made
once, here, and the name of the target that actually runs is what reports and banners print.
"""

from __future__ import annotations

import shutil

TARGETS = ("embedded", "bmv2")
CHOICES = ("auto", *TARGETS)
BMV2_TOOLS = ("p4c-bm2-ss", "simple_switch_grpc")


class TargetError(RuntimeError):
    """A target was asked for that cannot run here; the message says what is missing."""


def bmv2_missing() -> list[str]:
    """The BMv2 tools that are not on PATH (empty: the bmv2 target can run)."""
    return [tool for tool in BMV2_TOOLS if shutil.which(tool) is None]


def resolve(target: str | None) -> str:
    """``auto``/None -> bmv2 or embedded by what is installed; a named target is checked to be runnable."""
    target = target or "auto"
    if target == "auto":
        return "embedded" if bmv2_missing() else "bmv2"
    if target not in TARGETS:
        raise TargetError(f"unknown target {target!r} (one of {', '.join(CHOICES)})")
    if target == "bmv2":
        missing = bmv2_missing()
        if missing:
            raise TargetError(f"target bmv2 needs {' and '.join(missing)} on PATH (not found); "
                              f"use --target embedded")
    return target
