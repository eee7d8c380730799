"""``flowmig`` = the controller's CLI + ``run`` added by topologies (the controller never imports topologies)."""

import subprocess
import sys
from pathlib import Path

import pytest

from controller import cli as controller_cli
from topologies import cli

REPO = Path(__file__).resolve().parents[2]


def test_controller_cli_alone_has_no_run(capsys):
    with pytest.raises(SystemExit) as exc:
        controller_cli.main(["run", "--scenario", "degrade"])
    assert exc.value.code == 2
    assert "invalid choice: 'run'" in capsys.readouterr().err


def test_run_unknown_scenario_exit_2(capsys):
    assert cli.main(["run", "--scenario", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'nope'" in err and "degrade" in err


def test_run_is_listed_with_the_controller_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("flows", "migrate", "monitor", "shell", "save", "restore", "run"):
        assert name in out


def test_run_options_reach_the_scenario_runner(monkeypatch):
    seen = {}

    def fake_run(args):
        seen.update(vars(args))
        return 7

    monkeypatch.setattr(cli, "RUN", controller_cli.Subcommand("run", "", cli.RUN.add_arguments, fake_run))
    rc = cli.main(["run", "--scenario", "degrade", "--target", "embedded", "--report", "r.json", "--plot", "p.png",
                   "--", "--interval", "0.2"])
    assert rc == 7
    assert (seen["scenario"], seen["target"], seen["report"], seen["plot"]) == ("degrade", "embedded", "r.json",
                                                                                "p.png")
    assert seen["extra"] == ["--", "--interval", "0.2"]


def test_a_subcommand_may_not_shadow_the_controllers():
    dup = controller_cli.Subcommand("flows", "", lambda ap: None, lambda args: 0)
    with pytest.raises(ValueError, match="flows"):
        controller_cli.main(["flows"], extra=[dup])


def test_installed_flowmig_is_topologies_cli():
    script = Path(sys.executable).parent / "flowmig"
    if not script.exists():
        pytest.fail(f"{script} missing: run 'make install'")
    p = subprocess.run([str(script), "run", "--scenario", "nope"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "unknown scenario 'nope'" in p.stderr
