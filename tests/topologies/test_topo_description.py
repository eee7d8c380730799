"""Topology descriptions: the shipped figures and the validator's errors (no root needed)."""

import copy
import json

import pytest

from topologies import description as d
from topologies.description import TopologyError


def test_available_lists_the_figures():
    assert {"fig2", "fig3"} <= set(d.available())


def test_fig2_shape():
    t = d.load("fig2")
    assert t.gateways() == ["gwA", "gwB"]
    assert t.nics() == ["nic1", "nic2", "nic3"]
    assert t.host_attachment("hostA") == d.Endpoint("gwA", 1)
    assert t.host_attachment("hostB") == d.Endpoint("gwB", 1)
    # Both gateways list the NICs in the same order: a symmetric hash picks the same NIC both ways.
    assert [n for _, n in t.gateway_nic_ports("gwA")] == [n for _, n in t.gateway_nic_ports("gwB")] \
        == ["nic1", "nic2", "nic3"]
    for nic in t.nics():
        assert t.nic_ports(nic) == {"gwA": 1, "gwB": 2}
        # each NIC touches exactly the two gateways: the three paths are disjoint
        assert {e.node for e in t.ports_of(nic).values()} == {"gwA", "gwB"}


def test_fig2_host_routes():
    t = d.load("fig2")
    routes = {h.name: port for h, port in t.host_routes("gwA")}
    assert routes == {"hostA": 1, "hostB": None}
    routes = {h.name: port for h, port in t.host_routes("gwB")}
    assert routes == {"hostA": None, "hostB": 1}


def test_fig3_shape():
    t = d.load("fig3")
    assert t.nics() == ["nicA", "nicB"]
    assert t.gateway_nic_ports("gw1") == [(1, "nicA"), (2, "nicB")]
    assert t.gateway_nic_ports("gw2") == [(1, "nicA"), (2, "nicB")]
    clients = [h for h in t.hosts if h.startswith("c")]
    assert len(clients) >= 2 and all(t.host_attachment(c).node == "gw1" for c in clients)
    assert {t.host_attachment(s).node for s in ("srvA", "srvB")} == {"gw2"}


def test_round_trip_through_dict():
    t = d.load("fig2")
    again = d.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again.switches == t.switches and again.hosts == t.hosts and again.links == t.links


def _fig2() -> dict:
    return json.loads((d.TOPOLOGY_DIR / "fig2.json").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t["switches"]["gwA"].update(program="router"), "program 'router'"),
    (lambda t: t["switches"]["gwA"].update(role="spine"), "role 'spine'"),
    (lambda t: t["hosts"]["hostA"].update(ip="10.0.0.300/24"), "bad ip"),
    (lambda t: t["hosts"]["hostA"].update(ip="10.0.0.1"), "needs a prefix length"),
    (lambda t: t["hosts"]["hostA"].update(mac="zz"), "bad mac"),
    (lambda t: t["hosts"]["hostB"].update(ip="10.0.0.1/24"), "duplicate host IP 10.0.0.1"),
    (lambda t: t["links"].append(["gwA:2", "nic2:3"]), "port gwA:2 is already cabled"),
    (lambda t: t["links"].append(["gwA:9", "nicX:1"]), "unknown node 'nicX'"),
    (lambda t: t["links"].append(["gwA", "nic2:3"]), "needs a port number"),
    (lambda t: t["links"].append(["gwA:255", "nic2:3"]), "must be in 1..254"),
    (lambda t: t["links"].append(["hostA", "hostB"]), "must be cabled to switches only"),
    (lambda t: t["links"].remove(["gwB:1", "hostB"]), "host hostB: has no link"),
    (lambda t: t["switches"].update(nic4={"program": "flow_nic"}), "switch nic4: has no links"),
    (lambda t: t["switches"].update({"a-b": {"program": "flow_nic"}}), "bad node name 'a-b'"),
    (lambda t: t.pop("links"), "'links' must be a list"),
])
def test_invalid_descriptions_are_rejected_with_the_culprit(mutate, message):
    data = copy.deepcopy(_fig2())
    mutate(data)
    with pytest.raises(TopologyError) as err:
        d.from_dict(data, source="x.json")
    assert message in str(err.value)
    assert "x.json" in str(err.value)


def test_unknown_topology_names_the_available_ones():
    with pytest.raises(TopologyError, match="fig2"):
        d.load("nope")


def test_bad_json_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(TopologyError, match="invalid JSON"):
        d.load(p)


def test_a_host_with_standby_attachments():
    data = _fig2()
    data["links"].append(["hostB", "gwA:5"])
    t = d.from_dict(data)
    assert t.host_attachment("hostB") == d.Endpoint("gwB", 1)
    assert t.host_attachments("hostB") == [(d.Endpoint("hostB", 0), d.Endpoint("gwB", 1)),
                                           (d.Endpoint("hostB", 1), d.Endpoint("gwA", 5))]
    # the standby link does not change the initial routes
    assert {h.name: port for h, port in t.host_routes("gwA")} == {"hostA": 1, "hostB": None}
