"""The steps a VM move adds to a migration (run before ``load``, rolled back with it).

``VmMove`` holds what they share: the host, its attachment before and after, the target NIC and the
VM's configuration file. In plan order:

- ``WriteVmConfig`` (``vm_config``): the file gets the host's identity, old and new attachment and the
  tagged FlowStates of its frozen references (undo: the file as it was, or removed);
- ``MoveHost`` (``move_host``): the attachment change (undo: moved back to the old attachment);
- ``RewriteRoutes`` (``routes``): each gateway's ``ipv4_routes`` entry for the host's /32 and which
  gateway the host enters from (undo: the routes of the old attachment, ``host_ips`` as they were);
- ``CheckVmConfig`` (``vm_check``): the states to load are the ones in the file (refused if altered:
  the file is the trusted buffer).
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p4.v1 import p4runtime_pb2

from ..flowstate import FlowState, FlowStateError
from .plan import MigrationContext, Step

if TYPE_CHECKING:
    from ..runtime import Controller

__all__ = ["VmMove", "WriteVmConfig", "MoveHost", "RewriteRoutes", "CheckVmConfig", "vm_steps"]


@dataclass
class VmMove:
    ctrl: Controller
    host: str
    info: dict[str, Any]          # the host's config entry before the move (ip, mac, switch, port, ...)
    new_switch: str
    new_port: int
    target_nic: str
    path: Path
    move_host: Callable[[str, str, int], Any]

    @property
    def ip(self) -> int:
        return int(ipaddress.IPv4Address(self.info["ip"]))

    def route_updates(self, switch: str | None, port: int | None) -> dict[str, p4runtime_pb2.Update]:
        """Per gateway, the ipv4_routes MODIFY for the host's /32 attached at ``switch:port``."""
        out = {}
        for g, drv in self.ctrl.gateways.items():
            h = drv.helper
            if g == switch:
                if port is None:
                    raise ValueError(f"{self.host}: port on {switch} unknown")
                te = h.table_entry("ipv4_routes", {"dst_addr": (self.info["ip"], 32)}, "route_to_port", {"port": port})
            else:
                size = len(self.ctrl.config.switch(g).nic_group)
                te = h.table_entry("ipv4_routes", {"dst_addr": (self.info["ip"], 32)}, "route_via_nics",
                                   {"group_size": size})
            out[g] = p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY, entity=p4runtime_pb2.Entity(table_entry=te))
        return out


class WriteVmConfig(Step):
    name = "vm_config"

    def __init__(self, vm: VmMove) -> None:
        self.vm = vm
        self.written = False
        self.previous: str | None = None   # the file's text before (None: there was none)

    def do(self, ctx: MigrationContext) -> None:
        vm, info = self.vm, self.vm.info
        self.previous = vm.path.read_text() if vm.path.exists() else None
        self.written = True
        doc = {"version": 1, "host": vm.host, "ip": info.get("ip"), "mac": info.get("mac"),
               "prefix_len": info.get("prefix_len"),
               "from": {"switch": info.get("switch"), "port": info.get("port")},
               "to": {"switch": vm.new_switch, "port": vm.new_port, "nic": vm.target_nic},
               "saved": time.time(), "flows": ctx.tag()}
        vm.path.write_text(json.dumps(doc, indent=2) + "\n")

    def undo(self, ctx: MigrationContext) -> None:
        if not self.written:
            return
        if self.previous is None:
            self.vm.path.unlink(missing_ok=True)
        else:
            self.vm.path.write_text(self.previous)
        self.written = False

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "path": str(self.vm.path), "written": self.written,
                "existed": self.previous is not None}


class MoveHost(Step):
    name = "move_host"

    def __init__(self, vm: VmMove) -> None:
        self.vm = vm
        self.moved = False

    def do(self, ctx: MigrationContext) -> None:
        self.moved = True   # before: a move that fails half way is moved back too
        self.vm.move_host(self.vm.host, self.vm.new_switch, self.vm.new_port)

    def undo(self, ctx: MigrationContext) -> None:
        if not self.moved:
            return
        sw, port = self.vm.info.get("switch"), self.vm.info.get("port")
        if sw is None or port is None:
            ctx.problem(f"move {self.vm.host} back", ValueError("its old attachment is unknown"))
            return
        self.vm.move_host(self.vm.host, sw, port)
        self.moved = False

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "host": self.vm.host, "moved": self.moved,
                "from": [self.vm.info.get("switch"), self.vm.info.get("port")],
                "to": [self.vm.new_switch, self.vm.new_port]}


class RewriteRoutes(Step):
    name = "routes"

    def __init__(self, vm: VmMove) -> None:
        self.vm = vm
        self.updates = vm.route_updates(vm.new_switch, vm.new_port)   # built before the freeze
        self.entered_from: dict[str, bool] | None = None   # gateway -> host in its host_ips, before

    def do(self, ctx: MigrationContext) -> None:
        vm, fabric = self.vm, self.vm.ctrl.fabric
        self.entered_from = {g: vm.ip in drv.host_ips for g, drv in vm.ctrl.gateways.items()}
        fabric.parallel({g: (lambda g=g, u=u: fabric[g].write([u])) for g, u in self.updates.items()})
        for g, drv in vm.ctrl.gateways.items():        # which gateway the host now enters from
            if g == vm.new_switch:
                drv.host_ips.add(vm.ip)
            else:
                drv.host_ips.discard(vm.ip)

    def undo(self, ctx: MigrationContext) -> None:
        if self.entered_from is None:
            return
        vm, fabric = self.vm, self.vm.ctrl.fabric
        try:
            old = vm.route_updates(vm.info.get("switch"), vm.info.get("port"))
        except ValueError as exc:
            ctx.problem("routes back", exc)
            return
        res = fabric.parallel({g: (lambda g=g, u=u: fabric[g].write([u])) for g, u in old.items()}, raise_first=False)
        bad = {g: r for g, r in res.items() if isinstance(r, Exception)}
        for g, exc in bad.items():
            ctx.problem(f"route of {vm.host} back on {g}", exc)
        for g, was in self.entered_from.items():
            drv = vm.ctrl.gateways[g]
            if was:
                drv.host_ips.add(vm.ip)
            else:
                drv.host_ips.discard(vm.ip)
        if not bad:
            self.entered_from = None

    def describe(self) -> dict[str, Any]:
        return {"step": self.name, "host": self.vm.host, "gateways": sorted(self.updates),
                "written": self.entered_from is not None}


class CheckVmConfig(Step):
    name = "vm_check"

    def __init__(self, vm: VmMove) -> None:
        self.vm = vm

    def do(self, ctx: MigrationContext) -> None:
        saved = json.loads(self.vm.path.read_text())["flows"]
        key = self.vm.ctrl.config.hmac_key
        if [FlowState.from_dict(d, key).to_dict(key) for d in saved] != ctx.tag():
            raise FlowStateError(f"{self.vm.path}: the VM config's flows differ from the frozen states")


def vm_steps(vm: VmMove) -> list[Step]:
    """Fresh steps for one VM move, in plan order."""
    return [WriteVmConfig(vm), MoveHost(vm), RewriteRoutes(vm), CheckVmConfig(vm)]
