"""Controller configuration: which switches exist and how to reach them, plus the controller's secrets.

Owns the JSON config file format (written by the topology when it starts, or by hand) and the
``--switch NAME=ADDR[:DEVICE_ID]`` command-line form::

    {
      "switches": {
        "gwA":  {"grpc_addr": "127.0.0.1:50001", "device_id": 0, "program": "gateway", "role": "gateway",
                 "cpu_port": 255, "p4info": "build/gateway.p4info.txtpb", "json": "build/gateway.json",
                 "thrift_port": 9090, "nic_group": [{"port": 2, "nic": "nic1"}]},
        "nic1": {"grpc_addr": "127.0.0.1:50003", "device_id": 0, "program": "flow_nic", "role": "nic"}
      },
      "hosts": {"hostA": {"ip": "10.0.0.1", "switch": "gwA", "port": 1, ...}},
      "hmac_key": "hex or text (optional; FLOWMIG_HMAC_KEY or a built-in lab key otherwise)",
      "tls": {"cacert": "...", "cert": "...", "private_key": "..."}     (optional)
    }

The lab (``topologies.network.build_config``) writes ``grpc_addr``, and more keys than read here
(docs/internals.md "Controller config file"); a file written by hand may say ``address`` instead.
``p4info``/``json`` are optional: without them the controller reads the P4Info from the switch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .p4rt.connection import DEFAULT_ELECTION_ID, SwitchOptions

__all__ = ["ConfigError", "ControllerConfig", "SwitchConfig", "load_config", "parse_switch_arg"]

LAB_HMAC_KEY = b"flowmig-lab-key-change-me"


class ConfigError(ValueError):
    """The controller configuration (file or arguments) is invalid."""


@dataclass(frozen=True)
class SwitchConfig:
    name: str
    address: str
    device_id: int = 0
    program: str = ""
    role: str = ""
    cpu_port: int = 255
    p4info: str | None = None
    json: str | None = None
    thrift_port: int | None = None
    nic_group: tuple[dict[str, Any], ...] = ()  # gateways: [{"port": P, "nic": NAME}] in group order


@dataclass
class ControllerConfig:
    switches: dict[str, SwitchConfig] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"ip", "switch", "port", ...}
    hmac_key: bytes = LAB_HMAC_KEY
    tls: dict[str, str] = field(default_factory=dict)
    election_id: tuple[int, int] = DEFAULT_ELECTION_ID
    log_dir: str | None = "logs"
    connect_timeout: float = 5.0

    def switch(self, name: str) -> SwitchConfig:
        try:
            return self.switches[name]
        except KeyError:
            raise ConfigError(f"unknown switch {name!r} (known: {', '.join(sorted(self.switches)) or 'none'})") \
                from None

    def options(self, name: str, **overrides: Any) -> SwitchOptions:
        sc = self.switch(name)
        kw: dict[str, Any] = dict(name=sc.name, address=sc.address, device_id=sc.device_id,
                                  election_id=self.election_id, cpu_port=sc.cpu_port, log_dir=self.log_dir,
                                  connect_timeout=self.connect_timeout,
                                  cacert=self.tls.get("cacert"), cert=self.tls.get("cert"),
                                  private_key=self.tls.get("private_key"),
                                  extra={"thrift_port": sc.thrift_port} if sc.thrift_port else {})
        kw.update(overrides)
        return SwitchOptions(**kw)

    def by_role(self, role: str) -> list[str]:
        return [n for n, s in self.switches.items() if s.role == role]


def _key(value: str | None) -> bytes:
    if not value:
        env = os.environ.get("FLOWMIG_HMAC_KEY")
        return env.encode() if env else LAB_HMAC_KEY
    try:
        raw = bytes.fromhex(value)
        if len(raw) >= 16:
            return raw
    except ValueError:
        pass
    return value.encode()


def parse_switch_arg(text: str) -> SwitchConfig:
    """``NAME=HOST:PORT[:DEVICE_ID]`` → SwitchConfig."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"bad --switch {text!r}: expected NAME=HOST:PORT[:DEVICE_ID]")
    parts = rest.rsplit(":", 2)
    if len(parts) == 3 and parts[2].isdigit() and parts[1].isdigit():
        addr, dev = f"{parts[0]}:{parts[1]}", int(parts[2])
    elif len(parts) >= 2 and parts[-1].isdigit():
        addr, dev = rest, 0
    else:
        raise ConfigError(f"bad --switch {text!r}: address must be HOST:PORT")
    return SwitchConfig(name=name, address=addr, device_id=dev)


def load_config(path: str | Path | None = None, switches: list[str] | None = None,
                hmac_key: str | None = None) -> ControllerConfig:
    """Build the configuration from a JSON file and/or ``--switch`` arguments (arguments win)."""
    cfg = ControllerConfig(hmac_key=_key(hmac_key))
    if path is not None:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p}: top level must be an object")
        entries = data.get("switches", data)
        base = p.parent
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                if name in ("hmac_key", "tls", "election_id", "version", "topology", "target", "run_id",
                            "run_dir", "cpu_port", "hosts", "links"):
                    continue
                raise ConfigError(f"config file {p}: switch {name!r} must be an object")
            addr = entry.get("address") or entry.get("grpc_address") or entry.get("grpc_addr")
            if not addr:
                raise ConfigError(f"config file {p}: switch {name!r} has no address")

            def rel(v: str | None, _base: Path = base) -> str | None:
                if not v:
                    return None
                q = Path(v)
                return str(q if q.is_absolute() or q.exists() else _base / q)

            cfg.switches[name] = SwitchConfig(
                name=name, address=str(addr), device_id=int(entry.get("device_id", 0)),
                program=str(entry.get("program", "")), role=str(entry.get("role", "")),
                cpu_port=int(entry.get("cpu_port", 255)), p4info=rel(entry.get("p4info")),
                json=rel(entry.get("json")), thrift_port=entry.get("thrift_port"),
                nic_group=tuple(entry.get("nic_group") or ()))
        if isinstance(data.get("hosts"), dict):
            cfg.hosts = data["hosts"]
        if hmac_key is None and data.get("hmac_key"):
            cfg.hmac_key = _key(str(data["hmac_key"]))
        if isinstance(data.get("tls"), dict):
            cfg.tls = {k: str(v) for k, v in data["tls"].items()}
        if "election_id" in data:
            hi, lo = data["election_id"]
            cfg.election_id = (int(hi), int(lo))
    for text in switches or []:
        sc = parse_switch_arg(text)
        old = cfg.switches.get(sc.name)
        if old is not None:
            sc = SwitchConfig(sc.name, sc.address, sc.device_id, old.program, old.role, old.cpu_port,
                              old.p4info, old.json, old.thrift_port, old.nic_group)
        cfg.switches[sc.name] = sc
    return cfg
