"""Switches under test for the packet conformance suite: one daemon per kind, driven over P4Runtime.

    with SwitchRig("bmv2", work_dir) as rig:         # simple_switch_grpc --no-p4 on veth pairs
        rig.load(p4info, json_bytes, setup)           # SetForwardingPipelineConfig + entries, PRE, digests
        results = rig.run(stimuli)                    # one Result (frames, PacketIns) per stimulus

A rig owns ``NPORTS`` veth pairs: switch port i sits on ``<tag>s<i>``, the test's raw AF_PACKET socket
on its peer ``<tag>t<i>``. Port 0 exists because ``egress_spec`` defaults to 0 on both targets. The
daemon is started with the same argv for both kinds (``topologies/p4switch.py``'s contract) and
``--no-p4``; each program is pushed with SetForwardingPipelineConfig (VERIFY_AND_COMMIT resets all
state). Needs root.

Packets are sent one at a time: after a send the rig collects frames and PacketIns until nothing new
has arrived for ``quiet`` seconds (``settle`` seconds once something came). ``run(..., quiet=...)`` with
a long quiet period is the slow, sure variant used to confirm a difference.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller.p4rt import DigestList, PacketIn, SwitchConnection, SwitchOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ptf"))
from harness import Veths  # noqa: E402 - the PTF harness's veth pairs (tests/ptf is not a package)

log = logging.getLogger(__name__)

KINDS = ("embedded", "bmv2")
NPORTS = 4
CPU_PORT = 255
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
AUXDATA = struct.Struct("=IIIHHHH")  # tpacket_auxdata


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(kind: str) -> str:
    """The daemon of a switch kind: p4target-switch next to this Python, or simple_switch_grpc on PATH."""
    if kind == "embedded":
        path = Path(sys.executable).parent / "p4target-switch"
        found = str(path) if path.exists() else shutil.which("p4target-switch")
    elif kind == "bmv2":
        found = shutil.which("simple_switch_grpc")
    else:
        raise ValueError(f"unknown switch kind {kind!r} (one of {KINDS})")
    if not found:
        raise FileNotFoundError(f"no daemon for switch kind {kind!r}")
    return found


@dataclass
class Entry:
    """One table entry by P4Info names (values as controller.p4rt.P4InfoHelper.table_entry takes them)."""

    table: str
    match: dict[str, Any]
    action: str
    params: dict[str, int]
    priority: int = 0


@dataclass
class Setup:
    """Everything installed after a pipeline push: the same on every switch."""

    entries: list[Entry] = field(default_factory=list)
    mc_groups: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # gid -> [(port, rid)]
    clone_sessions: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # sid -> [(port, inst)]
    digests: list[str] = field(default_factory=list)  # P4Info digest names to enable


@dataclass
class Stimulus:
    """A packet into the switch: on data port ``port``, or as a PacketOut when ``port`` is None."""

    label: str
    data: bytes
    port: int | None = 1
    metadata: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What one stimulus produced: (port, bytes) frames sorted, PacketIns as (255, metadata, payload)."""

    frames: tuple[tuple[int, bytes], ...]
    packet_ins: tuple[tuple[tuple[tuple[str, int], ...], bytes], ...]

    def describe(self) -> str:
        parts = [f"port {p}: {d.hex()}" for p, d in self.frames]
        parts += [f"packet_in {dict(md)}: {d.hex()}" for md, d in self.packet_ins]
        return "; ".join(parts) or "dropped"


class RawPort:
    """The test's end of one veth: send frames, receive frames (stripped 802.1Q tags put back)."""

    def __init__(self, iface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv_all(self) -> list[bytes]:
        frames = []
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
            except (BlockingIOError, InterruptedError):
                return frames
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, kind, payload in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= AUXDATA.size:
                    status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(payload)
                    if status & TP_STATUS_VLAN_VALID:
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            frames.append(data)

    def close(self) -> None:
        self.sock.close()


class SwitchRig:
    """One switch daemon of ``kind`` on NPORTS veth pairs plus a P4Runtime session to it."""

    def __init__(self, kind: str, work_dir: Path, nports: int = NPORTS) -> None:
        self.kind = kind
        self.work_dir = Path(work_dir)
        self.nports = nports
        self.proc: subprocess.Popen | None = None
        self.veths: Veths | None = None
        self.ports: list[RawPort] = []
        self.conn: SwitchConnection | None = None
        self._pins: list[PacketIn] = []
        self._digests: list[DigestList] = []
        self._pre: list[p4runtime_pb2.Entity] = []
        self._lock = threading.Lock()

    def __enter__(self) -> SwitchRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if os.geteuid() != 0:
            raise PermissionError("switch rigs need root (veths, raw sockets)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tag = "cf" + ("e" if self.kind == "embedded" else "b") + uuid.uuid4().hex[:4]
        try:
            self.veths = Veths(self.nports, tag, mtu=9000)
            self.ports = [RawPort(i) for i in self.veths.test_side]
            grpc_port = free_port()
            argv = [binary(self.kind)]
            for i, iface in enumerate(self.veths.switch_side):
                argv += ["-i", f"{i}@{iface}"]
            log_file = self.work_dir / f"{self.kind}.log"
            argv += ["--device-id", "0", "--thrift-port", str(free_port()), "--log-file", str(log_file),
                     "--no-p4", "--", "--grpc-server-addr", f"127.0.0.1:{grpc_port}", "--cpu-port", str(CPU_PORT)]
            self.stderr_path = self.work_dir / f"{self.kind}.stderr"
            with open(self.stderr_path, "w") as err:
                self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            self._wait_serving(f"127.0.0.1:{grpc_port}")
            self.conn = SwitchConnection(SwitchOptions(name=f"conf-{self.kind}", address=f"127.0.0.1:{grpc_port}",
                                                       log_dir=None, reconnect=False),
                                         p4info=p4info_pb2.P4Info())
            self.conn.connect(timeout=10)
            self.conn.subscribe_packets(self._on_packet_in)
            self.conn.subscribe_digests(self._on_digest)
        except BaseException:
            self.close()
            raise

    def _wait_serving(self, address: str) -> None:
        deadline = time.monotonic() + 15
        with grpc.insecure_channel(address) as ch:
            stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} switch exited with {self.proc.returncode}: "
                                       f"{self.stderr_path.read_text()[-2000:]}")
                try:
                    stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=0.5)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.kind} switch did not serve gRPC within 15 s") from None
                    time.sleep(0.05)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for p in self.ports:
            p.close()
        self.ports = []
        if self.veths is not None:
            self.veths.close()
            self.veths = None

    # ---- P4Runtime ---------------------------------------------------------------------------------
    def _on_packet_in(self, pin: PacketIn) -> None:
        with self._lock:
            self._pins.append(pin)

    def _on_digest(self, dl: DigestList) -> None:
        with self._lock:
            self._digests.append(dl)

    def load(self, p4info: p4info_pb2.P4Info, device_config: bytes, setup: Setup) -> None:
        """Push the pipeline (VERIFY_AND_COMMIT: fresh state), then install ``setup`` in three Writes."""
        conn = self.conn
        self._clear_pre()
        conn.set_pipeline(p4info, device_config)
        self._pre = []
        helper = conn.helper
        updates = []
        for e in setup.entries:
            te = helper.table_entry(e.table, e.match, e.action, e.params, e.priority)
            updates.append(p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT,
                                                entity=p4runtime_pb2.Entity(table_entry=te)))
        for gid, replicas in setup.mc_groups.items():
            ent = p4runtime_pb2.Entity()
            grp = ent.packet_replication_engine_entry.multicast_group_entry
            grp.multicast_group_id = gid
            for port, rid in replicas:
                grp.replicas.add(egress_port=port, instance=rid)
            updates.append(p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT, entity=ent))
        for sid, replicas in setup.clone_sessions.items():
            ent = p4runtime_pb2.Entity()
            cs = ent.packet_replication_engine_entry.clone_session_entry
            cs.session_id = sid
            for port, inst in replicas:
                cs.replicas.add(egress_port=port, instance=inst)
            updates.append(p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT, entity=ent))
        self._pre = [u.entity for u in updates if u.entity.HasField("packet_replication_engine_entry")]
        for name in setup.digests:
            de = helper.digest_entry(name, max_timeout_ns=0, max_list_size=1, ack_timeout_ns=10_000_000)
            updates.append(p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT,
                                                entity=p4runtime_pb2.Entity(digest_entry=de)))
        conn.write(updates)
        self.drain(0.02)
        with self._lock:
            self._pins.clear()
            self._digests.clear()

    def _clear_pre(self) -> None:
        """Delete the previous program's multicast groups and clone sessions before the next push:
        simple_switch keeps its PRE across SetForwardingPipelineConfig (PI forgets it), so groups
        installed again would replicate once more per earlier push."""
        if self._pre:
            self.conn.write([p4runtime_pb2.Update(type=p4runtime_pb2.Update.DELETE, entity=e) for e in self._pre])
        self._pre = []

    def drain(self, quiet: float) -> None:
        """Throw away whatever arrives until ``quiet`` seconds pass with nothing new."""
        fds = [p.sock for p in self.ports]
        while select.select(fds, [], [], quiet)[0]:
            for p in self.ports:
                p.recv_all()

    def digests(self) -> Counter:
        """Digest samples seen since load(), as a multiset of (digest name, sorted members)."""
        with self._lock:
            return Counter((d.digest, tuple(sorted(m.items()))) for d in self._digests for m in d.members)

    def run(self, stimuli: list[Stimulus], quiet: float = 0.03, settle: float = 0.008) -> list[Result]:
        """Send each stimulus alone and collect its outputs (see the module docstring)."""
        fds = [p.sock for p in self.ports]
        results = []
        for st in stimuli:
            if st.port is None:
                self.conn.packet_out(st.data, **st.metadata)
            else:
                self.ports[st.port].send(st.data)
            frames: list[tuple[int, bytes]] = []
            pins: list[PacketIn] = []
            deadline = time.monotonic() + quiet
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                ready = select.select(fds, [], [], min(deadline - now, 0.002))[0]
                got = False
                for i, p in enumerate(self.ports):
                    if p.sock in ready:
                        new = p.recv_all()
                        frames += [(i, f) for f in new]
                        got = got or bool(new)
                with self._lock:
                    if self._pins:
                        pins += self._pins
                        self._pins.clear()
                        got = True
                if got:
                    deadline = time.monotonic() + settle
            results.append(Result(tuple(sorted(frames)),
                                  tuple(sorted((tuple(sorted(p.metadata.items())), p.payload) for p in pins))))
        return results
