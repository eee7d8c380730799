"""The lab config schema (controller.labconfig) and the FlowState HMAC key (controller.config): no root."""

import json
import os
import stat

import pytest

from controller.config import (
    ENV_KEY,
    ENV_KEY_FILE,
    ConfigError,
    ControllerConfig,
    load_config,
    parse_key,
    read_key_file,
    resolve_key,
    write_key_file,
)
from controller.labconfig import HostEntry, LabConfig, NicMember

KEY_HEX = "00112233445566778899aabbccddeeff"          # 16 bytes: the shortest key accepted


def _doc() -> dict:
    return {"version": 1, "topology": "t", "switches": {
        "gwA": {"grpc_addr": "127.0.0.1:50001", "role": "gateway", "program": "gateway",
                "p4info": "gateway.p4info.txtpb", "json": "gateway.json", "ports": {"1": "gwA-eth1"},
                "nic_group": [{"port": 2, "nic": "nic1"}], "peers": {"1": "hostA:0", "2": "nic1:1"}},
        "nic1": {"address": "127.0.0.1:50003", "device_id": 1, "role": "nic", "gateway_ports": {"gwA": 1}}},
        "hosts": {"hostA": {"ip": "10.0.0.1", "switch": "gwA", "port": 1, "mac": "02:00:0a:00:00:01"}},
        "links": [["hostA:0", "gwA:1"]]}


def _key_file(path, text=KEY_HEX, mode=0o600):
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


# ---- schema ------------------------------------------------------------------------------------------
def test_round_trip_and_typed_entries():
    cfg = LabConfig.from_dict(_doc(), "cfg.json")
    gw, nic = cfg.switches["gwA"], cfg.switches["nic1"]
    assert (gw.address, gw.nic_group, gw.ports, gw.peers[2]) == \
        ("127.0.0.1:50001", (NicMember(2, "nic1"),), {1: "gwA-eth1"}, "nic1:1")
    assert (nic.address, nic.device_id, nic.gateway_ports) == ("127.0.0.1:50003", 1, {"gwA": 1})
    assert cfg.hosts["hostA"] == HostEntry("hostA", "10.0.0.1", "gwA", 1, 24, "02:00:0a:00:00:01")
    assert cfg.by_role("nic") == ["nic1"]
    out = cfg.to_dict()
    assert out["switches"]["nic1"]["grpc_addr"] == "127.0.0.1:50003" and "address" not in out["switches"]["nic1"]
    assert LabConfig.from_dict(json.loads(json.dumps(out))) == cfg


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["switches"]["gwA"].update(device_id="0"), "cfg.json: switch 'gwA': 'device_id' must be an integer"),
    (lambda d: d["switches"]["gwA"].update(grcp_addr="x"), "switch 'gwA': unknown key(s) 'grcp_addr'"),
    (lambda d: d["switches"]["gwA"].pop("grpc_addr"), "switch 'gwA': missing 'grpc_addr'"),
    (lambda d: d["switches"]["gwA"].update(grpc_addr="localhost"), "switch 'gwA': address 'localhost' is not HOST:PORT"),
    (lambda d: d["switches"]["gwA"].update(address="127.0.0.1:1"), "give one of 'grpc_addr', 'address'"),
    (lambda d: d["switches"]["gwA"].update(nic_group=[{"port": 2}]), "switch 'gwA': nic_group[0]: missing 'nic'"),
    (lambda d: d["switches"]["gwA"].update(nic_group=[{"port": 2, "nic": "nic9"}]), "names 'nic9'"),
    (lambda d: d["switches"]["gwA"].update(ports={"x": "gwA-eth1"}), "switch 'gwA': 'ports' maps port numbers"),
    (lambda d: d["switches"]["nic1"].update(gateway_ports={"gwA": "1"}), "switch 'nic1': 'gateway_ports'"),
    (lambda d: d["switches"].update(nic2=[]), "switch 'nic2' must be an object"),
    (lambda d: d["hosts"]["hostA"].update(ip="10.0.0"), "host 'hostA': 'ip' '10.0.0' is not an IPv4 address"),
    (lambda d: d["hosts"]["hostA"].update(switch="gwZ"), "host 'hostA' is attached to 'gwZ'"),
    (lambda d: d["hosts"]["hostA"].pop("port"), "host 'hostA': missing 'port'"),
    (lambda d: d.update(links=[["a:1"]]), "links[0] must be"),
    (lambda d: d.update(version=2), "config version 2"),
    (lambda d: d.update(hmac_key="secret"), "'hmac_key' in a config file is no longer read"),
    (lambda d: d.update(hmac_key_file=7), "'hmac_key_file' must be a string"),
    (lambda d: d.update(election_id=[1]), "'election_id' must be [HIGH, LOW]"),
    (lambda d: d.update(tls={"ca": "x"}), "tls: unknown key(s) 'ca'"),
    (lambda d: d.update(gwB={"grpc_addr": "127.0.0.1:1"}), "the top level: unknown key(s) 'gwB'"),
    (lambda d: d.pop("switches"), "cfg.json: missing 'switches'"),
])
def test_invalid_configs_name_the_file_and_the_item(edit, needle):
    doc = _doc()
    edit(doc)
    with pytest.raises(ConfigError) as exc:
        LabConfig.from_dict(doc, "cfg.json")
    assert needle in str(exc.value) and str(exc.value).startswith("cfg.json")


def test_load_resolves_paths_against_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sub = tmp_path / "run"
    sub.mkdir()
    (tmp_path / "hmac.key").write_text("not this one")       # a key in the working directory is never taken
    doc = dict(_doc(), hmac_key_file="hmac.key")
    cfg = LabConfig.from_dict(doc).save(sub / "config.json")
    lab = LabConfig.load(cfg)
    assert lab.hmac_key_file == str(sub / "hmac.key")
    assert lab.switches["gwA"].json == str(sub / "gateway.json")
    assert not list(sub.glob(".*tmp"))                       # saved aside, then renamed


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        LabConfig.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"bad.json: the top level must be an object"):
        LabConfig.load(tmp_path / "bad.json")


# ---- the HMAC key ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,needle", [
    ("", "is empty"), ("   \n", "is empty"), ("00112233", "is 4 bytes; it needs at least 16"),
    ("flowmig-lab-key-change-me", "is not hex"), (KEY_HEX[:-2], "is 15 bytes"),
])
def test_bad_keys_are_refused(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_key(text, "$FLOWMIG_HMAC_KEY")


def test_key_file_must_be_private_and_readable(tmp_path):
    assert read_key_file(_key_file(tmp_path / "k"), "x") == bytes.fromhex(KEY_HEX)
    with pytest.raises(ConfigError, match="readable by others .mode 644.; chmod 600"):
        read_key_file(_key_file(tmp_path / "open", mode=0o644), "x")
    with pytest.raises(ConfigError, match="cannot read the key file"):
        read_key_file(tmp_path / "missing", "x")
    with pytest.raises(ConfigError, match="no file named"):
        read_key_file("", "$FLOWMIG_HMAC_KEY_FILE")
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    (tmp_path / "bin").chmod(0o600)
    with pytest.raises(ConfigError, match="not hex text"):
        read_key_file(tmp_path / "bin", "x")


def test_write_key_file_is_random_hex_0600(tmp_path):
    old = os.umask(0)                          # even with a permissive umask
    try:
        a = write_key_file(tmp_path / "hmac.key")
        first = a.read_text()
        (tmp_path / "hmac.key").chmod(0o644)   # a stale looser file is replaced, not reused
        write_key_file(tmp_path / "hmac.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert len(read_key_file(a, "x")) == 32 and a.read_text() != first


def test_key_precedence(tmp_path):
    cli, env_file, lab_file = (_key_file(tmp_path / n, h * 16) for n, h in (("c", "11"), ("e", "22"), ("l", "33")))
    lab = LabConfig.from_dict(dict(_doc(), hmac_key_file=str(lab_file)))
    assert resolve_key(str(cli), {ENV_KEY: "44" * 16}, lab)[0] == b"\x11" * 16
    assert resolve_key(None, {ENV_KEY: "44" * 16}, lab) == (b"\x44" * 16, "$FLOWMIG_HMAC_KEY")
    assert resolve_key(None, {ENV_KEY_FILE: str(env_file)}, lab)[0] == b"\x22" * 16
    assert resolve_key(None, {}, lab)[0] == b"\x33" * 16
    assert resolve_key(None, {}, None) == (None, "")
    with pytest.raises(ConfigError, match="both"):
        resolve_key(None, {ENV_KEY: "44" * 16, ENV_KEY_FILE: str(env_file)}, lab)
    with pytest.raises(ConfigError, match=r"\$FLOWMIG_HMAC_KEY: the HMAC key is empty"):
        resolve_key(None, {ENV_KEY: ""}, lab)           # an empty key never falls back to another


def test_no_key_means_no_signing(tmp_path):
    path = LabConfig.from_dict(_doc()).save(tmp_path / "config.json")
    cfg = load_config(path, env={})
    assert cfg.key is None
    with pytest.raises(ConfigError, match="no HMAC key"):
        _ = cfg.hmac_key
    assert ControllerConfig(key=b"k" * 16).hmac_key == b"k" * 16


def test_load_config_reads_the_labs_key_and_merges_switch_args(tmp_path):
    write_key_file(tmp_path / "hmac.key")
    path = LabConfig.from_dict(dict(_doc(), hmac_key_file="hmac.key")).save(tmp_path / "config.json")
    cfg = load_config(path, ["nic1=127.0.0.1:6000:3"], env={})
    assert cfg.hmac_key == read_key_file(tmp_path / "hmac.key", "x")
    assert cfg.key_source.endswith(str(tmp_path / "hmac.key"))
    nic = cfg.switch("nic1")
    assert (nic.address, nic.device_id, nic.role, nic.gateway_ports) == ("127.0.0.1:6000", 3, "nic", {"gwA": 1})
    assert cfg.hosts["hostA"]["ip"] == "10.0.0.1"
    (tmp_path / "hmac.key").unlink()
    with pytest.raises(ConfigError, match="hmac_key_file .*cannot read the key file"):
        load_config(path, env={})
