"""Initial table population of a lab: host routes and the NIC group on gateways, port mapping on NICs.

:func:`plan` turns a lab config (``controller.labconfig.LabConfig``: ``topologies.network.Lab.config()``,
what ``config.json`` holds; a dict in that form is read with ``LabConfig.from_dict``) into table
entries, purely; :func:`populate` pushes each switch's pipeline (only when
its cookie differs, so a controller that later calls ``ensure_pipeline`` with the same files keeps
these entries) and writes the entries in one batch per switch through the controller's P4Runtime
client layer (``controller.p4rt``). Table, action and parameter names follow docs/dataplane.md and
p4src/include/{gateway,nic}_forwarding.p4:

- gateway ``ipv4_routes`` (LPM on dst_addr): ``route_to_port(port)`` for a host cabled to this
  gateway, ``route_via_nics(group_size)`` for a host behind the NICs (one /32 per host: all hosts of a
  lab share one subnet, so the hosts need no router);
- gateway ``nic_group`` (exact index): index i -> ``set_group_port(port)``; members in the topology's
  NIC order, identical on every gateway, so the symmetric hash picks the same NIC in both directions;
- gateway ``nic_facing_ports`` (exact ingress_port): each NIC group member's port -> ``nic_facing()``,
  the only ports a drain marker is accepted from (from any other it is a forged marker);
- NIC ``nic_ports`` (exact ingress_port): the port toward one gateway -> ``set_egress_port`` the port
  toward the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.labconfig import LabConfig

log = logging.getLogger(__name__)


class PopulateError(RuntimeError):
    """The initial tables could not be computed or written; names the switch and the cause."""


@dataclass(frozen=True)
class EntrySpec:
    table: str
    match: dict[str, Any]
    action: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.table} {self.match} -> {self.action}{self.params}"


def _typed(config: LabConfig | dict) -> LabConfig:
    return config if isinstance(config, LabConfig) else LabConfig.from_dict(config, "<lab config>")


def plan(config: LabConfig | dict) -> dict[str, list[EntrySpec]]:
    """The initial entries of every switch of a lab config: {switch name: [EntrySpec, ...]}."""
    config = _typed(config)
    out: dict[str, list[EntrySpec]] = {}
    for name, sw in config.switches.items():
        entries: list[EntrySpec] = []
        if sw.role == "gateway":
            group = sw.nic_group
            for i, member in enumerate(group):
                entries.append(EntrySpec("nic_group", {"index": i}, "set_group_port", {"port": member.port}))
            for port in sorted({member.port for member in group}):
                entries.append(EntrySpec("nic_facing_ports", {"ingress_port": port}, "nic_facing"))
            for hname, h in sorted(config.hosts.items()):
                if h.switch == name:
                    entries.append(EntrySpec("ipv4_routes", {"dst_addr": (h.ip, 32)}, "route_to_port",
                                             {"port": h.port}))
                elif group:
                    entries.append(EntrySpec("ipv4_routes", {"dst_addr": (h.ip, 32)}, "route_via_nics",
                                             {"group_size": len(group)}))
                else:
                    raise PopulateError(f"gateway {name}: host {hname} is not local and there is no NIC group")
        elif sw.role == "nic":
            ports = sorted(sw.gateway_ports.values())
            if len(ports) != 2:
                raise PopulateError(f"NIC {name}: needs exactly two gateway-facing ports, has {ports}")
            a, b = ports
            entries += [EntrySpec("nic_ports", {"ingress_port": a}, "set_egress_port", {"port": b}),
                        EntrySpec("nic_ports", {"ingress_port": b}, "set_egress_port", {"port": a})]
        else:
            raise PopulateError(f"switch {name}: unknown role {sw.role!r}")
        out[name] = entries
    return out


def populate(config: LabConfig | dict, log_dir: str | Path | None = None, timeout: float = 10.0) -> dict[str, int]:
    """Push pipelines (if needed) and write the planned entries. Returns {switch: entries written}."""
    config = _typed(config)
    try:
        from controller.p4rt import P4RuntimeError, SwitchConnection, SwitchOptions, load_p4info
    except ImportError as exc:
        raise PopulateError(f"the controller's P4Runtime client layer is unavailable: {exc}") from exc

    written: dict[str, int] = {}
    for name, entries in plan(config).items():
        sw = config.switches[name]
        if not sw.p4info or not sw.json:
            raise PopulateError(f"switch {name}: config has no p4info/json paths to push")
        p4info = load_p4info(sw.p4info)
        device_config = Path(sw.json).read_bytes()
        opts = SwitchOptions(name=name, address=sw.address, device_id=sw.device_id,
                             cpu_port=sw.cpu_port, connect_timeout=timeout,
                             log_dir=str(log_dir) if log_dir else None, reconnect=False,
                             cacert=config.tls.get("cacert"), cert=config.tls.get("cert"),
                             private_key=config.tls.get("private_key"))   # a TLS lab's (else plaintext)
        conn = SwitchConnection(opts, p4info)
        try:
            conn.connect()
            pushed = conn.ensure_pipeline(p4info, device_config)
            h = conn.helper
            conn.insert([h.table_entry(e.table, e.match, e.action, e.params) for e in entries])
        except P4RuntimeError as exc:
            raise PopulateError(f"switch {name} ({sw.address}): {exc}") from exc
        finally:
            conn.close()
        log.info("%s: pipeline %s, %d entries", name, "pushed" if pushed else "already there", len(entries))
        written[name] = len(entries)
    return written
