"""Bad arguments to the flowmig CLI: one line on stderr, exit code 2, nothing contacted."""

import pytest

from controller.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["--config", "/nonexistent/flowmig.json", "flows"], "does not exist"),
    (["--switch", "nic1", "flows"], "bad --switch"),
    (["--switch", "nic1=127.0.0.1:1", "--election-id", "x", "flows"], "bad --election-id"),
    (["flows"], "no switches"),
])
def test_bad_arguments_exit_2(argv, needle, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("FLOWMIG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flowmig: error:") and needle in err[0]


def test_malformed_config_file_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "cfg.json"
    bad.write_text("{not json")
    assert main(["--config", str(bad), "flows"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
