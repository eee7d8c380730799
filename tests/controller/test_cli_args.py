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


# ---- the FlowState HMAC key: no default; bad or missing keys refused before anything is contacted ----
KEY_HEX = "00112233445566778899aabbccddeeff"


@pytest.fixture
def no_key_env(monkeypatch, tmp_path):
    for var in ("FLOWMIG_CONFIG", "FLOWMIG_HMAC_KEY", "FLOWMIG_HMAC_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flowmig: error:") and needle in err[0], err


SW = ["--switch", "nic1=127.0.0.1:1", "--timeout", "0.3"]      # nothing listens there: contacting it fails (1)


@pytest.mark.parametrize("cmd", [["migrate", "--device", "nic1", "--to", "nic2"], ["save", "tcp:10.0.0.1:1-10.0.0.2:2",
                                                                                   "-o", "s.json"],
                                 ["restore", "s.json", "--to", "nic2"]])
def test_commands_that_sign_refuse_without_a_key(cmd, capsys, no_key_env):
    assert main([*SW, *cmd]) == 2
    _one_error_line(capsys, f"{cmd[0]}: no HMAC key")


@pytest.mark.parametrize("env,needle", [
    ({"FLOWMIG_HMAC_KEY": ""}, "$FLOWMIG_HMAC_KEY: the HMAC key is empty"),
    ({"FLOWMIG_HMAC_KEY": "00112233"}, "is 4 bytes; it needs at least 16"),
    ({"FLOWMIG_HMAC_KEY": "flowmig-lab-key-change-me"}, "is not hex"),
    ({"FLOWMIG_HMAC_KEY": KEY_HEX, "FLOWMIG_HMAC_KEY_FILE": "k"}, "both"),
    ({"FLOWMIG_HMAC_KEY_FILE": "missing.key"}, "cannot read the key file"),
])
def test_bad_keys_exit_2_for_every_command(env, needle, capsys, no_key_env):
    for k, v in env.items():
        no_key_env.setenv(k, v)
    assert main([*SW, "flows"]) == 2
    _one_error_line(capsys, needle)


def test_key_file_option(tmp_path, capsys, no_key_env):
    key = tmp_path / "k.hex"
    key.write_text(KEY_HEX)
    key.chmod(0o644)
    assert main([*SW, "--hmac-key-file", str(key), "save", "tcp:10.0.0.1:1-10.0.0.2:2", "-o", "s.json"]) == 2
    _one_error_line(capsys, "readable by others")
    key.chmod(0o600)
    # a good key: the command gets past the key and fails on the unreachable switch instead (1)
    assert main([*SW, "--hmac-key-file", str(key), "save", "tcp:10.0.0.1:1-10.0.0.2:2", "-o", "s.json"]) == 1
    assert "no HMAC key" not in capsys.readouterr().err


def test_hmac_key_on_the_command_line_is_refused(capsys, no_key_env):
    assert main([*SW, "--hmac-key", KEY_HEX * 2, "flows"]) == 2
    _one_error_line(capsys, "--hmac-key is gone")


def test_flows_needs_no_key(capsys, no_key_env):
    assert main([*SW, "flows"]) == 1           # refused by the unreachable switch, not for want of a key
    assert "HMAC" not in capsys.readouterr().err


def test_extra_subcommands_without_a_key_refuse_the_key_options(capsys, no_key_env, tmp_path):
    from controller.cli import Subcommand
    ran = []
    run = Subcommand("run", "a lab of its own", lambda p: None, lambda a: ran.append(a) or 0)
    key = tmp_path / "k.hex"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    assert main(["--hmac-key-file", str(key), "run"], extra=[run]) == 2
    _one_error_line(capsys, "run does not read --hmac-key-file")
    assert main(["--hmac-key", KEY_HEX, "run"], extra=[run]) == 2
    _one_error_line(capsys, "--hmac-key is gone")
    assert not ran and main(["run"], extra=[run]) == 0 and ran
