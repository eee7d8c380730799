"""Where p4runtime-shell lives: its own venv, apart from the controller's.

p4runtime-shell 0.0.6 pins protobuf<3.21, p4runtime 1.4.1, ipython 7 and jedi 0.17, which would hold the
controller's environment to the pure-Python protobuf; so ``make install`` puts it in ``.venv-shell/`` at
the repository root. ``flowmig shell`` and the tests that drive the switches with p4runtime-shell run
that venv's Python. ``FLOWMIG_SHELL_VENV`` names another venv.
"""

from __future__ import annotations

import os
from pathlib import Path

SHELL_VENV_ENV = "FLOWMIG_SHELL_VENV"
DEFAULT_SHELL_VENV = Path(__file__).resolve().parents[1] / ".venv-shell"


class ShellEnvError(RuntimeError):
    """The p4runtime-shell venv is missing or lacks p4runtime-shell."""


def shell_venv() -> Path:
    return Path(os.environ.get(SHELL_VENV_ENV) or DEFAULT_SHELL_VENV)


def shell_python() -> Path:
    """The Python of the p4runtime-shell venv; ShellEnvError (saying how to make it) when it is not there."""
    venv = shell_venv()
    python = venv / "bin" / "python"
    how = f"run 'make install' in the repository, or point {SHELL_VENV_ENV} at a venv with p4runtime-shell"
    if not python.exists():
        raise ShellEnvError(f"no p4runtime-shell venv at {venv} ({how})")
    if not any(venv.glob("lib/python3*/site-packages/p4runtime_sh/__init__.py")):
        raise ShellEnvError(f"{venv} has no p4runtime-shell ({how})")
    return python
