"""A virtual fig2 for controller tests without root or Mininet: real switches, virtual wires.

Five in-process ``p4target.switch.Switch`` objects (gateway and flow_nic programs compiled by the
embedded compiler) each with a real ``P4RuntimeServer`` on loopback; their ports are wired in Python
(a delivery thread per switch, so no switch lock is held while another switch runs). Hosts are packet
inboxes: ``send("hostA", frame)`` injects at the host's gateway port, ``inbox("hostB")`` is what came
out of the gateway toward it. The tables are populated by ``topologies.tables`` like a real lab, and
``config`` is the same ``LabConfig`` a lab writes (for ``controller.config.load_config``), naming a
random HMAC key file in the work directory, as a lab does.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from pathlib import Path

from google.protobuf import text_format

from controller.config import write_key_file
from controller.labconfig import LabConfig

REPO = Path(__file__).resolve().parents[2]

HOSTS = {"hostA": ("10.0.0.1", "02:00:0a:00:00:01", "gwA"), "hostB": ("10.0.0.2", "02:00:0a:00:00:02", "gwB")}
LINKS = [("gwA", 2, "nic1", 1), ("gwA", 3, "nic2", 1), ("gwA", 4, "nic3", 1),
         ("nic1", 2, "gwB", 2), ("nic2", 2, "gwB", 3), ("nic3", 2, "gwB", 4)]
NICS = ["nic1", "nic2", "nic3"]


def compile_programs(out: Path) -> dict[str, tuple[Path, Path]]:
    from p4target.compiler import compile_file
    paths = {}
    for prog in ("flow_nic", "gateway"):
        r = compile_file(str(REPO / f"p4src/{prog}.p4"), include_dirs=[str(REPO / "p4src/include")])
        j, p = out / f"{prog}.json", out / f"{prog}.p4info.txtpb"
        j.write_text(json.dumps(r.bmv2_json))
        p.write_text(text_format.MessageToString(r.p4info))
        paths[prog] = (j, p)
    return paths


class VFabric:
    def __init__(self, workdir: Path) -> None:
        from p4target.p4runtime.server import P4RuntimeServer
        from p4target.switch.switch import Switch
        self.paths = compile_programs(workdir)
        self.switches: dict = {}
        self.servers: dict = {}
        self.wires: dict[tuple[str, int], tuple[str, int]] = {}
        for a, pa, b, pb in LINKS:
            self.wires[(a, pa)] = (b, pb)
            self.wires[(b, pb)] = (a, pa)
        self.inboxes: dict[str, list[bytes]] = {h: [] for h in HOSTS}
        self.attached: dict[str, tuple[str, int]] = {h: (gw, 1) for h, (_, _, gw) in HOSTS.items()}
        self._host_port = {a: h for h, a in self.attached.items()}
        self._queues: dict[str, queue.Queue] = {}
        self._threads: list[threading.Thread] = []
        self._stop = False
        self.inbox_cv = threading.Condition()
        for name in ("gwA", "gwB", *NICS):
            prog = "gateway" if name.startswith("gw") else "flow_nic"
            sw = Switch(ports={}, cpu_port=255)
            sw.set_pipeline(self.paths[prog][0].read_bytes())
            sw._transmit = self._make_tx(name, sw)  # virtual wires instead of AF_PACKET ports
            self.switches[name] = sw
            srv = P4RuntimeServer(sw, 0, "127.0.0.1:0").start()
            self.servers[name] = srv
            q: queue.Queue = queue.Queue()
            self._queues[name] = q
            t = threading.Thread(target=self._deliver, args=(name, q), daemon=True, name=f"wire-{name}")
            t.start()
            self._threads.append(t)
        self.key_path = write_key_file(workdir / "hmac.key")
        self.config = LabConfig.from_dict(self._config(), "vfabric")
        from topologies.tables import populate
        populate(self.config)

    def _make_tx(self, name: str, sw):
        orig = sw._transmit

        def tx(port: int, data: bytes) -> None:
            if port == sw.cpu_port:
                orig(port, data)
                return
            host = self._host_port.get((name, port))
            if host is not None:
                with self.inbox_cv:
                    self.inboxes[host].append(data)
                    self.inbox_cv.notify_all()
                return
            peer = self.wires.get((name, port))
            if peer is not None:
                self._queues[peer[0]].put((peer[1], data))
        return tx

    def _deliver(self, name: str, q: queue.Queue) -> None:
        sw = self.switches[name]
        while not self._stop:
            try:
                port, data = q.get(timeout=0.2)
            except queue.Empty:
                continue
            sw.inject(port, data)

    def _config(self) -> dict:
        sws = {}
        for name, srv in self.servers.items():
            prog = "gateway" if name.startswith("gw") else "flow_nic"
            j, p = self.paths[prog]
            e = {"grpc_addr": f"127.0.0.1:{srv.port}", "device_id": 0, "program": prog,
                 "role": "gateway" if prog == "gateway" else "nic", "cpu_port": 255, "p4info": str(p),
                 "json": str(j)}
            if prog == "gateway":
                e["nic_group"] = [{"port": 2 + i, "nic": n} for i, n in enumerate(NICS)]
            else:
                e["gateway_ports"] = {"gwA": 1, "gwB": 2}
            sws[name] = e
        hosts = {h: {"ip": ip, "prefix_len": 24, "mac": mac, "switch": gw, "port": 1}
                 for h, (ip, mac, gw) in HOSTS.items()}
        return {"version": 1, "topology": "vfig2", "switches": sws, "hosts": hosts,
                "hmac_key_file": str(self.key_path)}

    def write_config(self, path: Path) -> Path:
        return self.config.save(path)

    def send(self, host: str, frame: bytes) -> None:
        gw, port = self.attached[host]
        self._queues[gw].put((port, frame))

    def move_host(self, host: str, switch: str, port: int) -> None:
        """Re-cable ``host`` to ``switch:port`` (a VM move, as ``Lab.move_host``): frames out of that
        port reach its inbox, ``send`` injects there; nothing reaches it through the old port."""
        if switch not in self.switches or not switch.startswith("gw") or (switch, port) in self.wires:
            raise ValueError(f"no free gateway port {switch}:{port} for {host}")
        self.attached[host] = (switch, port)
        self._host_port = {a: h for h, a in self.attached.items()}

    def close(self) -> None:
        self._stop = True
        for srv in self.servers.values():
            srv.stop(0)
        for sw in self.switches.values():
            sw.close()


def mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    import ipaddress
    s, d = int(ipaddress.IPv4Address(HOSTS[src][0])), int(ipaddress.IPv4Address(HOSTS[dst][0]))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, s, d)
    ck = _csum(ip)
    ip = ip[:10] + struct.pack("!H", ck) + ip[12:]
    return mac(HOSTS[dst][1]) + mac(HOSTS[src][1]) + b"\x08\x00" + ip + udp


def _csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
