"""Topology descriptions as data: switches (program, role), hosts (IP, MAC) and numbered links.

A topology lives in ``topologies/<name>.json``; :func:`load` reads and validates it into a
:class:`Topology`. Nothing here touches Mininet or needs root: the builder (``topologies.network``)
turns a :class:`Topology` into a running network, and :func:`Topology.gateway_nic_ports` /
:func:`Topology.host_routes` give the initial table population its inputs.

JSON format::

    {
      "name": "fig2",
      "description": "...",
      "switches": {"gwA": {"program": "gateway", "role": "gateway"},
                   "nic1": {"program": "flow_nic", "role": "nic"}},
      "hosts": {"hostA": {"ip": "10.0.1.1/24", "mac": "00:00:0a:00:01:01"}},
      "links": [["hostA", "gwA:1"], ["gwA:2", "nic1:1"]]
    }

A link endpoint is ``node`` or ``node:port``; switch endpoints must give their port (the P4 port
number, also Mininet's port number), host endpoints are numbered 0, 1, ... (``eth0``, ``eth1``) in
link order unless told otherwise. Switches are declared in order; that order is the order of a
gateway's NIC group.

A host normally has one link. A host with more (a "VM" that can move) is attached by its first link;
the others are standby attachments: cabled from the start, down and without address until
``Lab.move_host`` moves the host's address and MAC there.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TOPOLOGY_DIR = Path(__file__).resolve().parent
PROGRAMS = ("flow_nic", "gateway")
ROLES = ("gateway", "nic")
CPU_PORT = 255
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,9}$")  # short: Mininet interface names are <=15 chars
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class TopologyError(ValueError):
    """A topology description is invalid; the message names the topology and the offending item."""


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    program: str
    role: str
    device_id: int = 0


@dataclass(frozen=True)
class HostSpec:
    name: str
    ip: str          # address without prefix length, e.g. "10.0.1.1"
    prefix_len: int
    mac: str

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefix_len}"


@dataclass(frozen=True)
class Endpoint:
    node: str
    port: int

    def __str__(self) -> str:
        return f"{self.node}:{self.port}"


@dataclass(frozen=True)
class LinkSpec:
    a: Endpoint
    b: Endpoint

    def other(self, node: str) -> Endpoint:
        """The endpoint that is not on ``node``."""
        return self.b if self.a.node == node else self.a

    def end(self, node: str) -> Endpoint:
        return self.a if self.a.node == node else self.b


@dataclass
class Topology:
    name: str
    switches: dict[str, SwitchSpec]
    hosts: dict[str, HostSpec]
    links: list[LinkSpec]
    description: str = ""
    source: str = "<memory>"
    extra: dict = field(default_factory=dict)

    # ---- queries used by the builder and the initial table population ----
    def links_of(self, node: str) -> list[LinkSpec]:
        return [lk for lk in self.links if node in (lk.a.node, lk.b.node)]

    def ports_of(self, node: str) -> dict[int, Endpoint]:
        """Port number on ``node`` -> the peer endpoint."""
        return {lk.end(node).port: lk.other(node) for lk in self.links_of(node)}

    def nics(self) -> list[str]:
        return [s.name for s in self.switches.values() if s.role == "nic"]

    def gateways(self) -> list[str]:
        return [s.name for s in self.switches.values() if s.role == "gateway"]

    def host_attachment(self, host: str) -> Endpoint:
        """The switch endpoint a host is attached to at start (its first link)."""
        return self.links_of(host)[0].other(host)

    def host_attachments(self, host: str) -> list[tuple[Endpoint, Endpoint]]:
        """Every (host endpoint, switch endpoint) of a host, the active one first."""
        return [(lk.end(host), lk.other(host)) for lk in self.links_of(host)]

    def gateway_nic_ports(self, gateway: str) -> list[tuple[int, str]]:
        """The gateway's NIC group: (port, nic name), ordered by the NICs' declaration order.

        Both gateways of a topology list the same NICs in the same order, so a symmetric hash
        that picks member i sends both directions of a connection through the same NIC.
        """
        order = {name: i for i, name in enumerate(self.switches)}
        members = [(port, peer.node) for port, peer in self.ports_of(gateway).items()
                   if peer.node in self.switches and self.switches[peer.node].role == "nic"]
        return sorted(members, key=lambda m: (order[m[1]], m[0]))

    def nic_ports(self, nic: str) -> dict[str, int]:
        """A NIC's ports by the gateway they face: {gateway name: port}."""
        out: dict[str, int] = {}
        for port, peer in self.ports_of(nic).items():
            if peer.node in self.switches and self.switches[peer.node].role == "gateway":
                out[peer.node] = port
        return out

    def host_routes(self, gateway: str) -> list[tuple[HostSpec, int | None]]:
        """Every host with the gateway port that reaches it directly, or None (reach it via the NICs)."""
        routes: list[tuple[HostSpec, int | None]] = []
        for host in self.hosts.values():
            att = self.host_attachment(host.name)
            routes.append((host, att.port if att.node == gateway else None))
        return routes

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "switches": {s.name: {"program": s.program, "role": s.role, "device_id": s.device_id}
                         for s in self.switches.values()},
            "hosts": {h.name: {"ip": h.cidr, "mac": h.mac} for h in self.hosts.values()},
            "links": [[str(lk.a), str(lk.b)] for lk in self.links],
            **self.extra,
        }


def available() -> list[str]:
    """Names of the topologies shipped in this package."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.json"))


def load(name_or_path: str | Path) -> Topology:
    """Load a topology by name (``fig2``) or path to a JSON file, validated."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TOPOLOGY_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise TopologyError(f"no topology {str(name_or_path)!r} (looked for {path}; "
                            f"available: {', '.join(available()) or 'none'})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TopologyError(f"{path}: invalid JSON: {exc}") from exc
    return from_dict(data, source=str(path))


def from_dict(data: dict, source: str = "<memory>") -> Topology:
    """Build and validate a :class:`Topology` from its JSON form."""
    where = source

    def fail(msg: str) -> TopologyError:
        return TopologyError(f"{where}: {msg}")

    if not isinstance(data, dict):
        raise fail("top level must be an object")
    known = {"name", "description", "switches", "hosts", "links"}
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise fail("missing 'name'")
    where = f"{source} (topology {name})"

    switches: dict[str, SwitchSpec] = {}
    for sname, spec in _mapping(data, "switches", fail).items():
        _check_name(sname, fail)
        if not isinstance(spec, dict):
            raise fail(f"switch {sname}: must be an object")
        program = spec.get("program")
        if program not in PROGRAMS:
            raise fail(f"switch {sname}: program {program!r} is not one of {', '.join(PROGRAMS)}")
        role = spec.get("role", "gateway" if program == "gateway" else "nic")
        if role not in ROLES:
            raise fail(f"switch {sname}: role {role!r} is not one of {', '.join(ROLES)}")
        device_id = spec.get("device_id", 0)
        if not isinstance(device_id, int) or device_id < 0:
            raise fail(f"switch {sname}: device_id must be a non-negative integer, got {device_id!r}")
        switches[sname] = SwitchSpec(sname, program, role, device_id)

    hosts: dict[str, HostSpec] = {}
    for hname, spec in _mapping(data, "hosts", fail).items():
        _check_name(hname, fail)
        if hname in switches:
            raise fail(f"host {hname}: name already used by a switch")
        if not isinstance(spec, dict):
            raise fail(f"host {hname}: must be an object")
        try:
            iface = ipaddress.IPv4Interface(spec.get("ip", ""))
        except ValueError as exc:
            raise fail(f"host {hname}: bad ip {spec.get('ip')!r}: {exc}") from exc
        if "/" not in str(spec.get("ip")):
            raise fail(f"host {hname}: ip {spec.get('ip')!r} needs a prefix length (e.g. /24)")
        mac = str(spec.get("mac", "")).lower()
        if not _MAC_RE.match(mac):
            raise fail(f"host {hname}: bad mac {spec.get('mac')!r} (want aa:bb:cc:dd:ee:ff)")
        hosts[hname] = HostSpec(hname, str(iface.ip), iface.network.prefixlen, mac)

    _unique([h.ip for h in hosts.values()], "host IP", fail)
    _unique([h.mac for h in hosts.values()], "host MAC", fail)

    raw_links = data.get("links")
    if not isinstance(raw_links, list):
        raise fail("'links' must be a list of [endpoint, endpoint]")
    links: list[LinkSpec] = []
    used: set[tuple[str, int]] = set()
    host_ports: dict[str, int] = {}
    for i, raw in enumerate(raw_links):
        if not (isinstance(raw, list) and len(raw) == 2):
            raise fail(f"link #{i}: must be [endpoint, endpoint], got {raw!r}")
        ends = [_endpoint(e, switches, hosts, f"link #{i}", fail) for e in raw]
        for j, e in enumerate(ends):
            if e.node in hosts and e.port < 0:           # unnumbered host end: next free ethN
                n = host_ports.get(e.node, 0)
                while (e.node, n) in used:
                    n += 1
                ends[j] = Endpoint(e.node, n)
            if ends[j].node in hosts:
                host_ports[e.node] = max(host_ports.get(e.node, 0), ends[j].port + 1)
        if ends[0].node == ends[1].node:
            raise fail(f"link #{i}: both ends on {ends[0].node}")
        for e in ends:
            if (e.node, e.port) in used:
                raise fail(f"link #{i}: port {e} is already cabled")
            used.add((e.node, e.port))
        links.append(LinkSpec(ends[0], ends[1]))

    topo = Topology(name, switches, hosts, links, str(data.get("description", "")), source,
                    {k: v for k, v in data.items() if k not in known})
    for h in hosts:
        if not topo.links_of(h):
            raise fail(f"host {h}: has no link")
        if any(sw.node in hosts for _, sw in topo.host_attachments(h)):
            raise fail(f"host {h}: must be cabled to switches only")
    for s in switches:
        if not topo.links_of(s):
            raise fail(f"switch {s}: has no links")
    for gw in topo.gateways():
        if not topo.gateway_nic_ports(gw) and topo.nics():
            raise fail(f"gateway {gw}: is not cabled to any NIC")
    groups = {gw: [nic for _, nic in topo.gateway_nic_ports(gw)] for gw in topo.gateways()}
    for gw, members in groups.items():
        if len(set(members)) != len(members):
            raise fail(f"gateway {gw}: cabled twice to the same NIC ({members})")
    return topo


def _mapping(data: dict, key: str, fail) -> dict:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise fail(f"'{key}' must be a non-empty object of name -> spec")
    return value


def _check_name(name: str, fail) -> None:
    if not _NAME_RE.match(name):
        raise fail(f"bad node name {name!r}: letters, digits and _ only, starting with a letter, "
                   f"at most 10 characters (Mininet interface names are limited to 15)")


def _unique(values: list, what: str, fail) -> None:
    seen: set = set()
    for v in values:
        if v in seen:
            raise fail(f"duplicate {what} {v}")
        seen.add(v)


def _endpoint(raw, switches: dict, hosts: dict, ctx: str, fail) -> Endpoint:
    if not isinstance(raw, str) or not raw:
        raise fail(f"{ctx}: endpoint must be 'node' or 'node:port', got {raw!r}")
    node, _, port_s = raw.partition(":")
    if node not in switches and node not in hosts:
        raise fail(f"{ctx}: unknown node {node!r} in endpoint {raw!r}")
    if not port_s:
        if node in switches:
            raise fail(f"{ctx}: switch endpoint {raw!r} needs a port number ({node}:N)")
        return Endpoint(node, -1)                       # numbered by the caller
    try:
        port = int(port_s)
    except ValueError:
        raise fail(f"{ctx}: bad port in endpoint {raw!r}") from None
    if node in switches and not 1 <= port < CPU_PORT:
        raise fail(f"{ctx}: switch port {port} in {raw!r} must be in 1..{CPU_PORT - 1} "
                   f"(0 is the default egress_spec, {CPU_PORT} the CPU port)")
    if port < 0:
        raise fail(f"{ctx}: negative port in {raw!r}")
    return Endpoint(node, port)
