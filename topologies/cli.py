"""``flowmig``, the installed command: the controller's CLI (``controller.cli``) plus ``run``.

Scenarios (topology + traffic + fault + expectation) live in ``topologies.scenarios``, above the
controller, so the controller's CLI does not know them: this module adds ``run`` to it as a
``controller.cli.Subcommand``. ``flowmig run --scenario S [--target T] [--report F] [--plot P]``;
``python -m topologies.cli`` is the same command.
"""

from __future__ import annotations

import sys

from controller import cli as controller_cli
from topologies import scenarios

__all__ = ["RUN", "main"]

RUN = controller_cli.Subcommand(
    name="run", help="run a scenario (topology + traffic + fault + expectation)",
    add_arguments=scenarios.add_arguments, run=scenarios.run)


def main(argv: list[str] | None = None) -> int:
    """``flowmig``: every subcommand of the controller's CLI, and ``run``."""
    return controller_cli.main(argv, extra=[RUN])


if __name__ == "__main__":
    sys.exit(main())
