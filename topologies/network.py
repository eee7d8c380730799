"""Build a running Mininet network from a topology description, and tear it down without leftovers.

:class:`Lab` compiles the programs, creates hosts (namespaces with real TCP stacks), P4 switches
(:class:`~topologies.p4switch.P4Switch`) and numbered links, turns NIC offloads and IPv6 off on every
data interface, sets static ARP on the hosts, records everything in the run registry, writes the
controller config file (``<run_dir>/config.json``, read by ``flowmig --config``; its schema is
``controller.labconfig.LabConfig``) naming a fresh random FlowState HMAC key (``<run_dir>/hmac.key``,
hex, mode 0600) and, unless told not to, installs the initial forwarding tables (``topologies.tables``).

    with Lab(load("fig2"), LabOptions(run_dir=tmp)) as lab:
        lab.host("hostA").cmd("ping -c1 10.0.0.2")
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from controller.config import write_key_file
from controller.labconfig import CONFIG_VERSION, HostEntry, LabConfig, NicMember, SwitchEntry
from topologies import cleanup as cleanup_mod
from topologies import programs, registry
from topologies.description import Endpoint, Topology
from topologies.p4switch import CPU_PORT, P4Switch, disable_offloads
from topologies.targets import resolve

log = logging.getLogger(__name__)

QUEUE_DEPTH = 1024      # BMv2 egress queue depth, packets (see Lab._deepen_queues)


@dataclass
class LabOptions:
    target: str = "embedded"                 # "embedded" (p4target-switch), "bmv2" (simple_switch_grpc), "auto"
    run_dir: Path | None = None              # config.json goes here; default out/<topology>
    log_dir: Path = Path("logs")             # logs/<switch>.log
    pcap_dir: Path | None = None             # pcaps/ when set
    log_console: bool = False
    populate: bool = True                    # install the initial tables after start
    no_p4: bool = False                      # start switches without a program (--no-p4); no tables
    start_timeout: float = 30.0
    build_dir: Path = programs.BUILD_DIR
    p4src_dir: Path = programs.P4SRC_DIR
    switch_args: list[str] = field(default_factory=list)
    lock_timeout: float = 120.0              # wait this long for another lab on this machine to end


class Lab:
    """A topology running on Mininet with P4 switches; use as a context manager or start()/stop()."""

    def __init__(self, topo: Topology, options: LabOptions | None = None) -> None:
        self.topo = topo
        self.options = options or LabOptions()
        if self.options.target not in programs.TARGETS:   # "auto" (or a typo: TargetError names it)
            self.options = replace(self.options, target=resolve(self.options.target))
        self.run_dir = Path(self.options.run_dir or Path("out") / topo.name)
        self.config_path = self.run_dir / "config.json"
        self.key_path = self.run_dir / "hmac.key"       # this run's FlowState HMAC key, named in the config
        self.run_id = registry.new_run_id()
        self.net = None
        self._saved_tag: str | None = None
        self.attached: dict[str, Endpoint] = {}     # host -> the switch endpoint it is attached to now
        self._lock: registry.LabLock | None = None

    # ---- life cycle ----
    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Lab:
        """Bring the lab up; on any failure everything started so far is removed before re-raising."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Lab:
        from mininet.link import Link
        from mininet.net import Mininet
        from mininet.node import Host

        opts = self.options
        built = {} if opts.no_p4 else {
            name: programs.ensure_compiled(name, opts.target, opts.p4src_dir, opts.build_dir)
            for name in sorted({s.program for s in self.topo.switches.values()})}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = registry.LabLock(f"topology {self.topo.name}, run {self.run_id}", opts.lock_timeout)
        self._lock.acquire()
        self._sweep_strays()
        # Every process started from here on (host shells, switch daemons, apps) carries the run tag.
        self._saved_tag = os.environ.get(registry.ENV_TAG)
        os.environ[registry.ENV_TAG] = self.run_id
        registry.record_interfaces(self.run_id, [])   # creates the registry file with us as owner

        net = Mininet(topo=None, switch=P4Switch, host=Host, controller=None, link=Link, build=False,
                      autoSetMacs=False, autoStaticArp=False, waitConnected=False)
        self.net = net
        for h in self.topo.hosts.values():
            net.addHost(h.name, ip=h.cidr, mac=h.mac)
        for s in self.topo.switches.values():
            pp = built.get(s.program)
            net.addSwitch(s.name, cls=P4Switch, json_path=pp and pp.json, p4info_path=pp and pp.p4info,
                          program=s.program,
                          role=s.role, target=opts.target, device_id=s.device_id, cpu_port=CPU_PORT,
                          log_dir=opts.log_dir, pcap_dir=opts.pcap_dir, log_console=opts.log_console,
                          start_timeout=opts.start_timeout, run_id=self.run_id, extra_args=opts.switch_args)
        for lk in self.topo.links:
            net.addLink(lk.a.node, lk.b.node, port1=lk.a.port, port2=lk.b.port)
        net.build()
        self._record()
        for h in self.topo.hosts.values():
            node = net.get(h.name)
            node.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
            for intf in node.intfList():
                if intf.name != "lo":
                    disable_offloads(node, intf.name)
        for sw in self.switches():
            for name in sw.data_ports().values():
                sw.cmd(f"sysctl -qw net.ipv6.conf.{name}.disable_ipv6=1")
        net.start()                      # launches every daemon, then waits for their gRPC ports
        net.staticArp()
        for h in self.topo.hosts:
            for host_end, _ in self.topo.host_attachments(h)[1:]:     # standby attachments stay dark
                intf = f"{h}-eth{host_end.port}"
                self.net.get(h).cmd(f"ip addr flush dev {intf}; ip link set {intf} down")
            self.attached[h] = self.topo.host_attachment(h)
        write_key_file(self.key_path)                    # a new key per run: states of another run fail it
        self.write_config()
        if opts.target == "bmv2":
            self._deepen_queues()
        if opts.populate and not opts.no_p4:
            from topologies import tables
            tables.populate(self.config(), log_dir=opts.log_dir)
        log.info("lab %s up (run %s), config %s", self.topo.name, self.run_id, self.config_path)
        return self

    def _deepen_queues(self) -> None:
        """BMv2 queues every packet (64 per egress queue by default) and drops when a queue is full;
        the embedded switch queues only behind a rate limit (``set_queue_rate``, 64 deep). So that a
        burst does not lose packets on BMv2 where the embedded switch loses none — a gateway replays a
        migration's buffered packets as one burst of PacketOuts (measured: 12 of 94 lost with 64), and a
        busy machine stalls the egress threads — every BMv2 queue gets QUEUE_DEPTH packets; a fault
        that limits a queue's rate sets its depth too (``degrade.limit_queue``)."""
        from controller.p4rt.thrift import BmThrift, ThriftError
        for sw in self.switches():
            try:
                with BmThrift("127.0.0.1", sw.thrift_port, name=sw.name) as client:
                    client.set_queue_depth(QUEUE_DEPTH)
            except ThriftError as exc:
                log.warning("%s: queue depth not set (%s)", sw.name, exc)

    def _sweep_strays(self) -> None:
        """With the machine-wide lab lock held no other lab runs: whatever earlier runs left is a stray.

        Runs whose owner died are cleaned (like ``mn -c`` before a start), and interfaces bearing this
        topology's names are removed (Mininet cannot create a link whose interface name exists).
        """
        swept = cleanup_mod.cleanup()
        if swept:
            log.warning("removed leftovers of earlier lab runs: %s", swept)
        names = [f"{n}-eth{p}" for n in [*self.topo.switches, *self.topo.hosts] for p in self.topo.ports_of(n)]
        for name in cleanup_mod.existing_interfaces(names):
            log.warning("deleting stray interface %s (left by an earlier run)", name)
            subprocess.run(["ip", "link", "del", name], capture_output=True)

    def _record(self) -> None:
        for h in self.topo.hosts:
            node = self.net.get(h)
            registry.record_host(self.run_id, h, node.pid, registry.netns_of(node.pid))
        names = [intf.name for sw in self.switches() for intf in sw.intfList() if intf.name != "lo"]
        registry.record_interfaces(self.run_id, names)

    def stop(self) -> dict[str, list]:
        """Stop the network and remove anything it left; returns what the final sweep still found."""
        net, self.net = self.net, None
        try:
            if net is not None:
                try:
                    net.stop()
                except Exception:
                    log.exception("Mininet stop failed; sweeping the run")
        finally:
            found = cleanup_mod.cleanup_run(self.run_id)
            if self._saved_tag is None:
                os.environ.pop(registry.ENV_TAG, None)
            else:
                os.environ[registry.ENV_TAG] = self._saved_tag
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        return found

    # ---- access ----
    def host(self, name: str):
        return self.net.get(name)

    def switch(self, name: str) -> P4Switch:
        return self.net.get(name)

    def switches(self) -> list[P4Switch]:
        return [self.net.get(s) for s in self.topo.switches]

    def move_host(self, name: str, switch: str, port: int | None = None) -> Endpoint:
        """Move a host (a VM) to one of its standby attachments, keeping its IP and MAC.

        The old interface goes down and loses the address; the standby interface takes the host's
        MAC and address and comes up; the host's static ARP entries are re-created on it. Gateway
        routes are not touched: updating them (and moving the host's connections) is the
        controller's job. The config file is rewritten with the new attachment. Returns it.
        """
        spec = self.topo.hosts.get(name)
        if spec is None or self.net is None:
            raise ValueError(f"no running host {name!r}")
        choices = [(he, sw) for he, sw in self.topo.host_attachments(name)
                   if sw.node == switch and (port is None or sw.port == port)]
        if not choices:
            raise ValueError(f"host {name} has no attachment on {switch}{f':{port}' if port else ''} "
                             f"(attachments: {', '.join(str(sw) for _, sw in self.topo.host_attachments(name))})")
        host_end, target = choices[0]
        current = self.attached[name]
        if target == current:
            return current
        node = self.net.get(name)
        old_end = next(he for he, sw in self.topo.host_attachments(name) if sw == current)
        old_if, new_if = f"{name}-eth{old_end.port}", f"{name}-eth{host_end.port}"
        out = node.cmd(f"ip link set {old_if} down && ip addr flush dev {old_if} && "
                       f"ip link set {new_if} address {spec.mac} && ip addr add {spec.cidr} dev {new_if} && "
                       f"ip link set {new_if} up; echo rc=$?")
        if not out.strip().endswith("rc=0"):
            raise RuntimeError(f"moving {name} to {target} failed: {out.strip()}")
        for other in self.topo.hosts.values():
            if other.name != name:
                node.cmd(f"ip neigh replace {other.ip} lladdr {other.mac} dev {new_if} nud permanent")
        node.defaultIntf = lambda _intf=node.intfs[host_end.port]: _intf
        self.attached[name] = target
        self.write_config()
        log.info("moved %s from %s to %s", name, current, target)
        return target

    # ---- the controller config file ----
    def config(self) -> LabConfig:
        """The controller config of this running lab (see :func:`build_config`)."""
        if self.net is None:
            raise RuntimeError(f"lab {self.topo.name} is not running: its switches have no address yet")
        described = {sw.name: sw.describe() for sw in self.switches()}
        runtime = {}
        for h in self.topo.hosts:
            node = self.net.get(h)
            runtime[h] = {"intf": node.defaultIntf().name, "pid": node.pid}
            if h in self.attached:
                runtime[h].update(switch=self.attached[h].node, port=self.attached[h].port)
        return build_config(self.topo, described, runtime, self.options.target, self.run_id, self.run_dir,
                            self.key_path)

    def write_config(self) -> Path:
        """(Re)write ``config.json`` whole (at start, and on every VM move)."""
        return self.config().save(self.config_path)


def build_config(topo: Topology, described: dict[str, dict], host_runtime: dict[str, dict] | None = None,
                 target: str = "embedded", run_id: str = "", run_dir: Path | None = None,
                 hmac_key_file: Path | None = None) -> LabConfig:
    """The controller config of a lab (``LabConfig.to_dict()`` is the file ``flowmig --config`` reads).

    ``described`` maps every switch name -> :meth:`P4Switch.describe` (grpc_addr, device_id, program,
    role, cpu_port, p4info, json, thrift_port, target, log, pid, ports); this adds each gateway's
    ``nic_group`` (ordered [{port, nic}]), each NIC's ``gateway_ports`` ({gateway: port}) and every
    switch's ``peers`` ({port: "node:port"}), plus the hosts (ip, prefix_len, mac, switch, port and the
    ``host_runtime`` keys intf, pid, and switch/port when moved). ConfigError when an entry is invalid.
    """
    missing = sorted(set(topo.switches) - set(described))
    if missing:
        raise ValueError(f"build_config: no description of switch(es) {', '.join(missing)}")
    switches = {}
    for name, spec in topo.switches.items():
        entry = SwitchEntry.from_dict(name, described[name], f"switch {name}'s description")
        if spec.role == "gateway":
            entry = replace(entry, nic_group=tuple(NicMember(p, n) for p, n in topo.gateway_nic_ports(name)))
        else:
            entry = replace(entry, gateway_ports=topo.nic_ports(name))
        switches[name] = replace(entry, peers={p: str(e) for p, e in sorted(topo.ports_of(name).items())})
    hosts = {}
    for h in topo.hosts.values():
        att = topo.host_attachment(h.name)
        attachments = topo.host_attachments(h.name)
        hosts[h.name] = HostEntry(h.name, h.ip, att.node, att.port, h.prefix_len, h.mac,
                                  attachments=tuple(str(sw) for _, sw in attachments) if len(attachments) > 1
                                  else ())
        if host_runtime and h.name in host_runtime:
            hosts[h.name] = replace(hosts[h.name], **host_runtime[h.name])
    return LabConfig(switches=switches, hosts=hosts, links=tuple((str(lk.a), str(lk.b)) for lk in topo.links),
                     version=CONFIG_VERSION, topology=topo.name, target=target, run_id=run_id,
                     run_dir=str(Path(run_dir).resolve()) if run_dir else None, cpu_port=CPU_PORT,
                     hmac_key_file=str(Path(hmac_key_file).resolve()) if hmac_key_file else None)
