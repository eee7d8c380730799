"""The controller config a lab writes and the initial table plan derived from it (no root)."""

import pytest

from controller.labconfig import LabConfig
from topologies.description import load
from topologies.network import build_config
from topologies.tables import EntrySpec, PopulateError, plan


def _config(name: str) -> LabConfig:
    topo = load(name)
    described = {s: {"grpc_addr": f"127.0.0.1:{50001 + i}", "device_id": 0, "program": spec.program,
                     "role": spec.role, "cpu_port": 255, "p4info": None, "json": None, "thrift_port": 9090 + i}
                 for i, (s, spec) in enumerate(topo.switches.items())}
    return build_config(topo, described)


def test_config_is_readable_by_the_controller(tmp_path):
    import json

    from controller.config import load_config

    cfg = _config("fig2")
    path = cfg.save(tmp_path / "config.json")
    ctl = load_config(path, env={})
    assert set(ctl.switches) == {"gwA", "gwB", "nic1", "nic2", "nic3"}
    assert ctl.switch("gwA").address == "127.0.0.1:50001" and ctl.switch("gwA").device_id == 0
    assert ctl.by_role("nic") == ["nic1", "nic2", "nic3"]
    assert ctl.lab == cfg and ctl.key is None          # build_config named no key file
    raw = json.loads(path.read_text())                # the file's JSON form (docs/internals.md)
    assert raw["switches"]["gwB"]["nic_group"] == [{"port": 2, "nic": "nic1"}, {"port": 3, "nic": "nic2"},
                                                    {"port": 4, "nic": "nic3"}]
    assert raw["switches"]["gwB"]["grpc_addr"] == "127.0.0.1:50002"
    assert raw["switches"]["nic1"]["gateway_ports"] == {"gwA": 1, "gwB": 2}
    assert raw["hosts"]["hostB"] == {"ip": "10.0.0.2", "prefix_len": 24, "mac": "02:00:0a:00:00:02",
                                     "switch": "gwB", "port": 1}
    assert ctl.hosts["hostB"] == raw["hosts"]["hostB"]
    assert "hmac_key_file" not in raw


def test_build_config_names_the_key_file_and_runtime_host_state(tmp_path):
    import json

    from topologies.description import TOPOLOGY_DIR, from_dict

    data = json.loads((TOPOLOGY_DIR / "fig2.json").read_text())
    data["links"].append(["hostB", "gwA:5"])                # hostB: a VM with a standby attachment
    topo = from_dict(data)
    described = {s: {"grpc_addr": f"127.0.0.1:{50001 + i}", "role": spec.role, "program": spec.program,
                     "ports": {"1": f"{s}-eth1"}}
                 for i, (s, spec) in enumerate(topo.switches.items())}
    cfg = build_config(topo, described, {"hostB": {"switch": "gwA", "port": 5, "intf": "hostB-eth1", "pid": 7}},
                       run_dir=tmp_path, hmac_key_file=tmp_path / "hmac.key")
    assert cfg.hmac_key_file == str(tmp_path / "hmac.key")
    assert (cfg.hosts["hostB"].switch, cfg.hosts["hostB"].port, cfg.hosts["hostB"].intf) == ("gwA", 5, "hostB-eth1")
    assert cfg.hosts["hostB"].attachments == ("gwB:1", "gwA:5")
    assert cfg.switches["gwA"].ports == {1: "gwA-eth1"}
    assert LabConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="nic3"):
        build_config(topo, {k: v for k, v in described.items() if k != "nic3"})


def test_fig2_plan():
    p = plan(_config("fig2"))
    assert p["gwA"] == [
        EntrySpec("nic_group", {"index": 0}, "set_group_port", {"port": 2}),
        EntrySpec("nic_group", {"index": 1}, "set_group_port", {"port": 3}),
        EntrySpec("nic_group", {"index": 2}, "set_group_port", {"port": 4}),
        # drain markers are accepted from the NIC-facing ports only
        EntrySpec("nic_facing_ports", {"ingress_port": 2}, "nic_facing"),
        EntrySpec("nic_facing_ports", {"ingress_port": 3}, "nic_facing"),
        EntrySpec("nic_facing_ports", {"ingress_port": 4}, "nic_facing"),
        EntrySpec("ipv4_routes", {"dst_addr": ("10.0.0.1", 32)}, "route_to_port", {"port": 1}),
        EntrySpec("ipv4_routes", {"dst_addr": ("10.0.0.2", 32)}, "route_via_nics", {"group_size": 3}),
    ]
    assert p["gwB"][6:] == [
        EntrySpec("ipv4_routes", {"dst_addr": ("10.0.0.1", 32)}, "route_via_nics", {"group_size": 3}),
        EntrySpec("ipv4_routes", {"dst_addr": ("10.0.0.2", 32)}, "route_to_port", {"port": 1}),
    ]
    # same NIC order on both gateways (the symmetric hash's index means the same NIC both ways)
    assert [e.params for e in p["gwA"][:3]] == [e.params for e in p["gwB"][:3]]
    for nic in ("nic1", "nic2", "nic3"):
        assert p[nic] == [EntrySpec("nic_ports", {"ingress_port": 1}, "set_egress_port", {"port": 2}),
                          EntrySpec("nic_ports", {"ingress_port": 2}, "set_egress_port", {"port": 1})]


def test_fig3_plan_routes_every_host():
    p = plan(_config("fig3"))
    gw1 = {e.match["dst_addr"][0]: (e.action, e.params) for e in p["gw1"] if e.table == "ipv4_routes"}
    assert gw1["10.0.0.11"] == ("route_to_port", {"port": 3})
    assert gw1["10.0.0.21"] == ("route_via_nics", {"group_size": 2})
    assert len(gw1) == 6


def test_plan_rejects_a_nic_without_two_gateway_ports():
    cfg = _config("fig2").to_dict()
    cfg["switches"]["nic1"]["gateway_ports"] = {"gwA": 1}
    with pytest.raises(PopulateError, match="nic1"):
        plan(cfg)
