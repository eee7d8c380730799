"""The lab config file (``config.json``): one typed schema for the lab that writes it and every reader.

``topologies.network.build_config`` builds a :class:`LabConfig`, ``Lab.write_config`` saves it (at
start and again on every VM move); ``controller.config.load_config`` (``flowmig --config``),
``controller.monitor.ports_from_config`` and ``topologies.tables`` read it back through
:meth:`LabConfig.load` / :meth:`LabConfig.from_dict`. The JSON form is docs/internals.md "Controller
config file"::

    {"version": 1, "topology": "fig2", "target": "embedded", "run_id": "...", "run_dir": "...",
     "cpu_port": 255, "hmac_key_file": "hmac.key",
     "switches": {"gwA": {"grpc_addr": "127.0.0.1:50001", "device_id": 0, "program": "gateway", ...}},
     "hosts": {"hostA": {"ip": "10.0.0.1", "prefix_len": 24, "switch": "gwA", "port": 1, ...}},
     "links": [["hostA:0", "gwA:1"], ...]}

A file written by hand needs only ``switches`` (each with an address: ``grpc_addr``, or ``address`` /
``grpc_address``); a missing ``version`` means 1. Validation is strict: a wrong type, an unknown key or
a host on an unknown switch is a :class:`ConfigError` naming the file and the item
(``cfg.json: switch 'gwA': 'device_id' must be an integer, not '0'``). :meth:`LabConfig.load` resolves
relative ``hmac_key_file``, ``p4info`` and ``json`` paths against the file's directory (the latter two
are kept as they are when they exist from the working directory).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_VERSION", "ConfigError", "HostEntry", "LabConfig", "NicMember", "SwitchEntry"]

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """The controller configuration (file, arguments or key) is invalid; the message names what and where."""


_MISSING: Any = object()
_TYPE_NAMES = {int: "an integer", str: "a string", dict: "an object", list: "a list"}


def _get(data: dict[str, Any], key: str, typ: type, where: str, default: Any = _MISSING) -> Any:
    """``data[key]`` checked to be a ``typ`` (a bool is no integer); ``default`` when absent or null."""
    value = data.get(key)
    if value is None:
        if default is _MISSING:
            raise ConfigError(f"{where}: missing {key!r}")
        return default
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key!r} must be {_TYPE_NAMES[typ]}, not {value!r}")
    return value


def _check_keys(data: Any, where: str, known: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object, not {data!r}")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(known))})")
    return data


def _port_map(data: dict[str, Any], key: str, where: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for port, value in _get(data, key, dict, where, {}).items():
        if not str(port).isdigit() or not isinstance(value, str):
            raise ConfigError(f"{where}: {key!r} maps port numbers to names, not {port!r}: {value!r}")
        out[int(port)] = value
    return out


@dataclass(frozen=True)
class NicMember:
    """One member of a gateway's NIC group: the gateway port toward ``nic`` (index = position)."""
    port: int
    nic: str


@dataclass(frozen=True)
class SwitchEntry:
    """One switch of the config: how to reach it, what it runs and how it is cabled."""
    name: str
    address: str                                  # gRPC HOST:PORT ("grpc_addr" in the file)
    device_id: int = 0
    program: str = ""
    role: str = ""                                # "gateway" | "nic" ("" in a hand-written file)
    cpu_port: int = 255
    p4info: str | None = None
    json: str | None = None
    thrift_port: int | None = None
    target: str | None = None                     # "embedded" | "bmv2"
    log: str | None = None
    pid: int | None = None
    ports: dict[int, str] = field(default_factory=dict)          # port -> interface
    nic_group: tuple[NicMember, ...] = ()                         # gateways, in group order
    gateway_ports: dict[str, int] = field(default_factory=dict)  # NICs: gateway -> port toward it
    peers: dict[int, str] = field(default_factory=dict)          # port -> "node:port"

    KEYS = frozenset({"grpc_addr", "address", "grpc_address", "device_id", "program", "role", "cpu_port",
                      "p4info", "json", "thrift_port", "target", "log", "pid", "ports", "nic_group",
                      "gateway_ports", "peers"})

    @classmethod
    def from_dict(cls, name: str, data: Any, source: str) -> SwitchEntry:
        where = f"{source}: switch {name!r}"
        d = _check_keys(data, where, set(cls.KEYS))
        aliases = [k for k in ("grpc_addr", "address", "grpc_address") if d.get(k) is not None]
        if not aliases:
            raise ConfigError(f"{where}: missing 'grpc_addr' (its P4Runtime HOST:PORT)")
        if len(aliases) > 1:
            raise ConfigError(f"{where}: give one of {', '.join(map(repr, aliases))}")
        address = _get(d, aliases[0], str, where)
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{where}: address {address!r} is not HOST:PORT")
        group = []
        for i, m in enumerate(_get(d, "nic_group", list, where, [])):
            w = f"{where}: nic_group[{i}]"
            _check_keys(m, w, {"port", "nic"})
            group.append(NicMember(_get(m, "port", int, w), _get(m, "nic", str, w)))
        gw_ports = _get(d, "gateway_ports", dict, where, {})
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in gw_ports.values()):
            raise ConfigError(f"{where}: 'gateway_ports' maps gateway names to port numbers, not {gw_ports!r}")
        return cls(name=name, address=address, device_id=_get(d, "device_id", int, where, 0),
                   program=_get(d, "program", str, where, ""), role=_get(d, "role", str, where, ""),
                   cpu_port=_get(d, "cpu_port", int, where, 255), p4info=_get(d, "p4info", str, where, None),
                   json=_get(d, "json", str, where, None), thrift_port=_get(d, "thrift_port", int, where, None),
                   target=_get(d, "target", str, where, None), log=_get(d, "log", str, where, None),
                   pid=_get(d, "pid", int, where, None), ports=_port_map(d, "ports", where),
                   nic_group=tuple(group), gateway_ports=dict(gw_ports), peers=_port_map(d, "peers", where))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"grpc_addr": self.address, "device_id": self.device_id, "program": self.program,
                               "role": self.role, "cpu_port": self.cpu_port, "p4info": self.p4info,
                               "json": self.json, "thrift_port": self.thrift_port}
        for key in ("target", "log", "pid"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.ports:
            out["ports"] = {str(p): i for p, i in sorted(self.ports.items())}
        if self.nic_group:
            out["nic_group"] = [{"port": m.port, "nic": m.nic} for m in self.nic_group]
        if self.gateway_ports:
            out["gateway_ports"] = dict(self.gateway_ports)
        if self.peers:
            out["peers"] = {str(p): e for p, e in sorted(self.peers.items())}
        return out


@dataclass(frozen=True)
class HostEntry:
    """One host (or VM): its identity and where it is attached now."""
    name: str
    ip: str
    switch: str                                   # the gateway it is attached to now
    port: int
    prefix_len: int = 24
    mac: str | None = None
    intf: str | None = None                       # its interface toward ``switch:port`` (lab)
    pid: int | None = None                        # its shell's pid (lab)
    attachments: tuple[str, ...] = ()             # every "switch:port" it can be attached to (VMs)

    KEYS = frozenset({"ip", "prefix_len", "mac", "switch", "port", "intf", "pid", "attachments"})

    @classmethod
    def from_dict(cls, name: str, data: Any, source: str) -> HostEntry:
        where = f"{source}: host {name!r}"
        d = _check_keys(data, where, set(cls.KEYS))
        ip = _get(d, "ip", str, where)
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise ConfigError(f"{where}: 'ip' {ip!r} is not an IPv4 address") from None
        attachments = _get(d, "attachments", list, where, [])
        if not all(isinstance(a, str) for a in attachments):
            raise ConfigError(f"{where}: 'attachments' must list \"switch:port\" strings, not {attachments!r}")
        return cls(name=name, ip=ip, switch=_get(d, "switch", str, where), port=_get(d, "port", int, where),
                   prefix_len=_get(d, "prefix_len", int, where, 24), mac=_get(d, "mac", str, where, None),
                   intf=_get(d, "intf", str, where, None), pid=_get(d, "pid", int, where, None),
                   attachments=tuple(attachments))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ip": self.ip, "prefix_len": self.prefix_len}
        if self.mac is not None:
            out["mac"] = self.mac
        out.update(switch=self.switch, port=self.port)
        for key in ("intf", "pid"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.attachments:
            out["attachments"] = list(self.attachments)
        return out


@dataclass(frozen=True)
class LabConfig:
    """The whole file. ``hmac_key_file`` names the lab's FlowState key (hex, mode 0600)."""
    switches: dict[str, SwitchEntry] = field(default_factory=dict)
    hosts: dict[str, HostEntry] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()       # ("node:port", "node:port")
    version: int = CONFIG_VERSION
    topology: str = ""
    target: str = ""
    run_id: str = ""
    run_dir: str | None = None
    cpu_port: int = 255
    hmac_key_file: str | None = None
    tls: dict[str, str] = field(default_factory=dict)            # cacert, cert, private_key
    election_id: tuple[int, int] | None = None

    KEYS = frozenset({"version", "topology", "target", "run_id", "run_dir", "cpu_port", "hmac_key_file",
                      "switches", "hosts", "links", "tls", "election_id"})

    def by_role(self, role: str) -> list[str]:
        return [n for n, s in self.switches.items() if s.role == role]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> LabConfig:
        if isinstance(data, dict) and "hmac_key" in data:
            raise ConfigError(f"{source}: 'hmac_key' in a config file is no longer read (a key there is as "
                              f"public as the file): put it, in hex, in a mode-0600 file named by "
                              f"'hmac_key_file'")
        d = _check_keys(data, f"{source}: the top level", set(cls.KEYS))
        version = _get(d, "version", int, source, CONFIG_VERSION)
        if not 1 <= version <= CONFIG_VERSION:
            raise ConfigError(f"{source}: config version {version} is not one this flowmig reads "
                              f"(1..{CONFIG_VERSION})")
        raw_switches = _get(d, "switches", dict, source)
        switches = {n: SwitchEntry.from_dict(n, e, source) for n, e in raw_switches.items()}
        hosts = {n: HostEntry.from_dict(n, e, source) for n, e in _get(d, "hosts", dict, source, {}).items()}
        for h in hosts.values():
            if h.switch not in switches:
                raise ConfigError(f"{source}: host {h.name!r} is attached to {h.switch!r}, which is no switch "
                                  f"of the file")
        for s in switches.values():
            for m in s.nic_group:
                if m.nic not in switches:
                    raise ConfigError(f"{source}: switch {s.name!r}: nic_group names {m.nic!r}, which is no "
                                      f"switch of the file")
        links = []
        for i, lk in enumerate(_get(d, "links", list, source, [])):
            if not (isinstance(lk, list) and len(lk) == 2 and all(isinstance(e, str) for e in lk)):
                raise ConfigError(f"{source}: links[{i}] must be [\"node:port\", \"node:port\"], not {lk!r}")
            links.append((lk[0], lk[1]))
        tls = _check_keys(_get(d, "tls", dict, source, {}), f"{source}: tls", {"cacert", "cert", "private_key"})
        if not all(isinstance(v, str) for v in tls.values()):
            raise ConfigError(f"{source}: tls values must be file paths, not {tls!r}")
        election = d.get("election_id")
        if election is not None and not (isinstance(election, list) and len(election) == 2
                                         and all(isinstance(x, int) and x >= 0 for x in election)):
            raise ConfigError(f"{source}: 'election_id' must be [HIGH, LOW], not {election!r}")
        return cls(switches=switches, hosts=hosts, links=tuple(links), version=version,
                   topology=_get(d, "topology", str, source, ""), target=_get(d, "target", str, source, ""),
                   run_id=_get(d, "run_id", str, source, ""), run_dir=_get(d, "run_dir", str, source, None),
                   cpu_port=_get(d, "cpu_port", int, source, 255),
                   hmac_key_file=_get(d, "hmac_key_file", str, source, None), tls=dict(tls),
                   election_id=(election[0], election[1]) if election is not None else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "topology": self.topology, "target": self.target,
                               "run_id": self.run_id, "run_dir": self.run_dir, "cpu_port": self.cpu_port}
        if self.hmac_key_file is not None:
            out["hmac_key_file"] = self.hmac_key_file
        out["switches"] = {n: s.to_dict() for n, s in self.switches.items()}
        out["hosts"] = {n: h.to_dict() for n, h in self.hosts.items()}
        out["links"] = [list(lk) for lk in self.links]
        if self.tls:
            out["tls"] = dict(self.tls)
        if self.election_id is not None:
            out["election_id"] = list(self.election_id)
        return out

    @classmethod
    def load(cls, path: str | Path) -> LabConfig:
        """Read and validate a config file; relative file names in it are resolved against its directory."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"config file {p}: cannot read it ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(p)).resolved(p.parent)

    def resolved(self, base: Path) -> LabConfig:
        """This config with relative paths resolved: p4info/json against ``base`` unless they exist from the
        working directory, hmac_key_file always against ``base`` (never a key that happens to be here)."""
        def rel(v: str | None, here_too: bool = True) -> str | None:
            if not v:
                return v
            q = Path(v)
            return str(q if q.is_absolute() or (here_too and q.exists()) else base / q)

        switches = {n: replace(s, p4info=rel(s.p4info), json=rel(s.json)) for n, s in self.switches.items()}
        return replace(self, switches=switches, hmac_key_file=rel(self.hmac_key_file, here_too=False))

    def save(self, path: str | Path) -> Path:
        """Write the file whole (a reader never sees half of it: written aside, then renamed)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, p)
        return p
