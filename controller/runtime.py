"""The running controller: connections to every switch, the drivers, the inventory.

Owns ``Controller``: from a ``ControllerConfig`` it connects to all switches concurrently (primary
arbitration per switch), makes sure each runs its program (pushed only when the cookie differs, so
tables written by the lab survive), enables the NICs' learn digests, builds one ``NicDriver`` per NIC
and one ``GatewayDriver`` per gateway, and keeps the flow ``Inventory`` current from digests and
register scans (``registers``: per switch, P4Runtime or BMv2 Thrift). The migrator, the monitor, the policies and the CLI all work through this object.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path

from .config import ControllerConfig, SwitchConfig
from .flowstate import FlowKey
from .gateway import MARKER, GatewayDriver
from .inventory import Inventory, SlotUse
from .journal import Journal
from .nic import NicDriver
from .p4rt.connection import DigestList
from .p4rt.errors import P4RuntimeError
from .p4rt.fabric import Fabric
from .p4rt.p4info import load_p4info
from .p4rt.registers import RegisterAccess
from .recovery import Recovery, recover

__all__ = ["Controller", "ControllerError"]

log = logging.getLogger(__name__)

LEARN_DIGEST = "flow_learn_digest_t"
LEARN_EVENT_NEW = 1
KINDS = {1: "tcp", 2: "udp", 3: "roce"}
AGING_TABLE, AGING_ACTION = "flow_aging", "set_idle_timeout"
MARKER_KEYS = {FlowKey("udp", MARKER.src, MARKER.dst, MARKER.sport, MARKER.dport).canonical()}


class ControllerError(RuntimeError):
    """A controller-level failure with a message fit for the user (unknown switch, unreachable...)."""


class Controller:
    def __init__(self, config: ControllerConfig, state_path: str = "auto", connect_timeout: float | None = None,
                 push_pipelines: bool = True, hosts: dict | None = None) -> None:
        self.config = config
        self.state_path = state_path
        self.connect_timeout = connect_timeout
        self.push_pipelines = push_pipelines
        self.fabric = Fabric()
        self.inventory = Inventory()
        self.nics: dict[str, NicDriver] = {}
        self.gateways: dict[str, GatewayDriver] = {}
        # per switch: register cells through P4Runtime, or BMv2 Thrift where P4Runtime has none
        self.registers: dict[str, RegisterAccess] = {}
        self.hosts = hosts if hosts is not None else getattr(config, "hosts", {})
        self.digests_seen = 0
        # the lab's migration journal (None without one) and what ``start`` recovered
        self.journal = Journal(config.journal, config.key) if getattr(config, "journal", None) else None
        self.recovery = Recovery(skipped="not run")

    # ---- life cycle --------------------------------------------------------------------------------
    def __enter__(self) -> Controller:
        if not self.fabric.switches:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, switches: list[str] | None = None, recover_migrations: bool = True) -> Controller:
        """Connect to ``switches`` (default: all of the config), set them up, and — when they are all of
        the config's — finish or undo a migration an earlier controller left interrupted
        (``controller.recovery``; what it did is in ``self.recovery``)."""
        names = switches or list(self.config.switches)
        opts = [self.config.options(n) for n in names]
        try:
            self.fabric.connect(opts, self.connect_timeout)
        except P4RuntimeError as exc:
            raise ControllerError(f"cannot reach switch {exc.switch or '?'}: {exc.message}") from exc
        self.fabric.parallel({n: (lambda n=n: self._setup(self.config.switch(n))) for n in names})
        if not recover_migrations:
            self.recovery = Recovery(skipped="not asked")
        elif set(names) != set(self.config.switches):
            self.recovery = Recovery(skipped="not every switch of the config is connected")
        else:
            self.recovery = recover(self, self.journal)
        return self

    def _setup(self, sc: SwitchConfig) -> None:
        conn = self.fabric[sc.name]
        if self.push_pipelines and sc.p4info and sc.json and Path(sc.json).is_file():
            conn.ensure_pipeline(load_p4info(sc.p4info), Path(sc.json).read_bytes())
        elif sc.p4info and conn.helper is None:
            from .p4rt.p4info import P4InfoHelper
            conn.helper = P4InfoHelper(load_p4info(sc.p4info))
        if conn.helper is None:
            raise ControllerError(f"switch {sc.name} has no pipeline and the config gives no program files")
        role = sc.role or ("gateway" if conn.helper.has("table", "flow_forwarding") else "nic")
        self.registers[sc.name] = regs = RegisterAccess(conn)
        if role == "nic":
            self.nics[sc.name] = drv = NicDriver(conn, self.state_path, registers=regs)
            drv.sync()
            conn.subscribe_digests(self._on_digest)
            if conn.is_primary:  # a backup may not write; the primary configured the digest
                self._enable_digest(sc.name)
        elif role == "gateway":
            host_ips = {int(ipaddress.IPv4Address(h["ip"])) for h in self.hosts.values()
                        if h.get("switch") == sc.name}
            nic_ports = {m.nic: m.port for m in sc.nic_group}
            self.gateways[sc.name] = gw = GatewayDriver(conn, host_ips, nic_ports, registers=regs)
            gw.sync()

    def _enable_digest(self, nic: str) -> None:
        conn = self.fabric[nic]
        h = conn.helper
        if h is None or not h.has("digest", LEARN_DIGEST):
            return
        de = h.digest_entry(LEARN_DIGEST, max_timeout_ns=0, max_list_size=1)
        try:
            conn.insert([de])
        except P4RuntimeError as exc:
            if exc.is_already_exists_only():
                conn.modify([de])
            elif exc.is_unimplemented():
                log.warning("%s: digests not configurable: %s", nic, exc.message)
            else:
                raise

    def close(self) -> None:
        for d in list(self.nics.values()) + list(self.gateways.values()):
            d.close()
        for r in self.registers.values():
            r.close()
        self.fabric.close()

    def set_idle_timeout(self, seconds: float, nics: list[str] | None = None) -> None:
        """How long an idle reference keeps its NIC slot against a new one (docs/dataplane.md "Aging"):
        writes ``flow_aging``'s default entry ``set_idle_timeout(idle_us)`` on every NIC (or ``nics``).
        The program's default is 5 minutes. ValueError for a timeout that is not positive or too big."""
        idle_us = round(seconds * 1e6)
        if not 0 < idle_us < 1 << 48:
            raise ValueError(f"idle timeout must be positive and under {(1 << 48) // 10**6} s, not {seconds!r}")
        for name in nics or sorted(self.nics):
            conn = self.fabric[self.nic(name).name]
            if conn.helper is None or not conn.helper.has("table", AGING_TABLE):
                raise ControllerError(f"{name}: its program has no {AGING_TABLE} table (no aging)")
            conn.modify([conn.helper.table_entry(AGING_TABLE, action=AGING_ACTION, params={"idle_us": idle_us},
                                                 is_default=True)])
            log.info("%s: idle timeout %.3f s", name, seconds)

    # ---- inventory ---------------------------------------------------------------------------------
    def _on_digest(self, dl: DigestList) -> None:
        for m in dl.members:
            self.digests_seen += 1
            if m.get("event") != LEARN_EVENT_NEW:
                continue
            kind = KINDS.get(m.get("kind", 0))
            if kind is None:
                continue
            key = FlowKey(kind, m["key_addr_lo"], m["key_addr_hi"], m["key_port_lo"], m["key_port_hi"],
                          m["key_qpn"])
            if key.canonical() in MARKER_KEYS:
                continue  # the migrator's path markers, not a reference
            known = self.inventory.find(key)
            if known is not None and known.migrations and known.device != dl.switch:
                # a straggler re-learned a migrated reference on its old NIC: the gateways pin the
                # reference to its new NIC, so this slot is stale
                log.info("%s: ignoring re-learn of migrated %s (lives on %s)", dl.switch, key, known.device)
                continue
            # RoCE: the NIC key has no ports; the digest carries the QP's UDP ports (per-QP source
            # port, dest 4791), which the gateways' exact 5-tuple entries need. A slot the inventory
            # holds under another key was aged out (or replaced): learn() forgets that one.
            ports = (m.get("l4_src_port", 0), m.get("l4_dst_port", 0)) if kind == "roce" else None
            self.inventory.learn(key, dl.switch, m["slot"], ports if ports and ports[1] else None)

    def scan(self, nics: list[str] | None = None) -> int:
        """Rebuild the inventory from the NICs' registers (where readable): what they hold is learned,
        references they no longer hold are forgotten. Returns references found."""
        found = 0
        targets = [self.nic(n) for n in (nics or list(self.nics))]

        def one(drv: NicDriver) -> list | None:
            return drv.scan() if drv.registers_ok else None

        t0 = time.time()
        results = self.fabric.parallel({d.name: (lambda d=d: one(d)) for d in targets})
        for name, cmds in results.items():
            if cmds is None:   # not readable: nothing to learn or forget
                continue
            portless = []
            present: set[FlowKey] = set()
            for c in cmds:
                try:
                    key = c.key()
                except Exception:  # noqa: BLE001 - a slot with an unknown kind is not a reference
                    continue
                if key.canonical() in MARKER_KEYS:
                    continue
                rec = self.inventory.learn(key, name, c.slot)   # RoCE UDP ports: kept from digests
                rec.packets, rec.bytes = c.packets, c.bytes
                present.add(rec.key)
                if rec.key.kind == "roce" and rec.udp_ports is None:
                    portless.append(rec)
                found += 1
            gone = self.inventory.forget_missing(name, present, t0)
            if gone:
                log.info("%s: %d references no longer held (aged out or cleared)", name, gone)
            if portless:   # QPs learned before we listened: their ports from the NIC's register
                ports = self.nic(name).roce_udp_ports([r.slot for r in portless])
                for rec in portless:
                    rec.udp_ports = ports.get(rec.slot, rec.udp_ports)
        return found

    def slot_use(self, nic: str) -> SlotUse:
        """``nic``'s flow table occupancy: the slots the inventory knows taken, of the NIC's slots."""
        return SlotUse(nic, self.inventory.count_on(nic), self.nic(nic).slots)

    # ---- lookups -----------------------------------------------------------------------------------
    def nic(self, name: str) -> NicDriver:
        try:
            return self.nics[name]
        except KeyError:
            raise ControllerError(f"unknown NIC {name!r} (NICs: {', '.join(sorted(self.nics)) or 'none'})") \
                from None

    def gateway(self, name: str) -> GatewayDriver:
        try:
            return self.gateways[name]
        except KeyError:
            raise ControllerError(f"unknown gateway {name!r}") from None
