"""Switch benchmark, side by side: p4target-switch and simple_switch on the same JSON, generator and loads.

``run()`` returns ``{"switch": {...}}`` with, for each switch (``p4target_switch``, ``simple_switch``):

- ``pps.<switch>.<load>`` for load in ``load_25000``, ``load_50000``, ``load_100000``, ``saturation``:
  ``{"target_pps", "offered_pps", "delivered_pps", "loss_pct", "windows_delivered_pps",
  "latency_us": {"p50", "p99", "samples"}}`` — the LPM forwarding program below;
- ``latency_idle_us.<switch>``: ``{"p50", "p99", "samples"}`` at 1,000 pps, every frame a probe;
- ``flow_nic_pps.<switch>.saturation``: the same figures for ``p4src/flow_nic.p4`` (the NIC program);
- ``p4rt.<switch>``: P4Runtime rates (10 WriteRequests of 1,000 LPM entries, a 10,000-entry table Read,
  a 10,000-cell register Read — BMv2's P4Runtime server answers UNIMPLEMENTED to the latter);
- ``ratio_simple_switch_to_p4target.<load>``: delivered pps of simple_switch / p4target-switch;
- ``setup``: compiler, binaries, method. A switch that cannot run here is ``{"skipped": "<reason>"}``.

Same JSON: the programs are compiled once, by ``p4c-bm2-ss`` when it is on PATH (else by the embedded
compiler, and the BMv2 part is skipped), and that JSON and P4Info are pushed to both switches through
P4Runtime ``SetForwardingPipelineConfig``. The BMv2 switch is ``simple_switch_grpc`` (simple_switch plus
its gRPC server; the same data plane), so both are driven by the same P4Runtime client code.

Method (bench/traffic.py): each switch is pinned to core 1 (``taskset -c 1``), the generator to core 0.
The generator offers 25k, 50k and 100k pps (paced) and saturation (a tight send loop); each load runs
0.5 s of warm-up, then three 1.5 s windows. Offered = the switch's ingress veth rx counter, delivered =
the receiving veth's rx counter; a load's figures are those of its median window (by delivered pps),
its latency is over the probes of all windows (one frame in 64 carries its send time; the receive time is
the kernel's stamp). Both switches are up at once (idle, they cost next to no CPU) and each load is
measured on one then the other (the order alternates), so both see the same background load of a
machine that may be shared: compare the switches by the ratios of one run. Needs root (veth pairs,
raw sockets).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.traffic import Ports, Traffic, make_traffic, measure_load

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOADS: tuple[int | None, ...] = (25_000, 50_000, 100_000, None)   # None: saturation
SWITCHES = ("p4target_switch", "simple_switch")
SWITCH_CPU, GENERATOR_CPU = 1, 0

LPM_P4 = r"""
#include <core.p4>
#include <v1model.p4>
header ethernet_t { bit<48> dstAddr; bit<48> srcAddr; bit<16> etherType; }
header ipv4_t {
    bit<4> version; bit<4> ihl; bit<8> diffserv; bit<16> totalLen; bit<16> identification;
    bit<3> flags; bit<13> fragOffset; bit<8> ttl; bit<8> protocol; bit<16> hdrChecksum;
    bit<32> srcAddr; bit<32> dstAddr;
}
struct metadata { }
struct headers { ethernet_t ethernet; ipv4_t ipv4; }
parser MyParser(packet_in packet, out headers hdr, inout metadata meta, inout standard_metadata_t sm) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x800: parse_ipv4; default: accept; }
    }
    state parse_ipv4 { packet.extract(hdr.ipv4); transition accept; }
}
control MyVerifyChecksum(inout headers hdr, inout metadata meta) { apply { } }
control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t sm) {
    register<bit<32>>(10000) bench_reg;
    action drop() { mark_to_drop(sm); }
    action ipv4_forward(bit<48> dstAddr, bit<9> port) {
        sm.egress_spec = port;
        hdr.ethernet.srcAddr = hdr.ethernet.dstAddr;
        hdr.ethernet.dstAddr = dstAddr;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
    }
    table ipv4_lpm {
        key = { hdr.ipv4.dstAddr: lpm; }
        actions = { ipv4_forward; drop; NoAction; }
        size = 65536;
        default_action = drop();
    }
    apply { if (hdr.ipv4.isValid()) { ipv4_lpm.apply(); } else { drop(); } }
}
control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t sm) { apply { } }
control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen, hdr.ipv4.identification,
              hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.srcAddr,
              hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
    }
}
control MyDeparser(packet_out packet, in headers hdr) {
    apply { packet.emit(hdr.ethernet); packet.emit(hdr.ipv4); }
}
V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
"""


# ---------------------------------------------------------------------------- plumbing
class Skip(Exception):
    """This switch (or program) cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class Program:
    name: str
    json: bytes
    p4info: object          # p4.config.v1.p4info_pb2.P4Info
    compiler: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _veths(n: int) -> list[tuple[str, str]]:
    tag = "bs" + uuid.uuid4().hex[:5]
    pairs: list[tuple[str, str]] = []
    try:
        for i in range(n):
            a, b = f"{tag}{i}a", f"{tag}{i}b"
            subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
            pairs.append((a, b))
            for dev in (a, b):
                subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
                if shutil.which("ethtool"):
                    subprocess.run(["ethtool", "-K", dev, "tx", "off", "rx", "off", "gro", "off"],
                                   capture_output=True)
                subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    except BaseException:
        _del_veths(pairs)
        raise
    return pairs


def _del_veths(pairs: list[tuple[str, str]]) -> None:
    for a, _b in pairs:
        subprocess.run(["ip", "link", "del", a], capture_output=True)


def _compile(name: str, source: Path, include: list[str], work: Path) -> Program:
    """Compile with p4c-bm2-ss when on PATH (the JSON both switches load), else the embedded compiler."""
    from google.protobuf import text_format
    from p4.config.v1 import p4info_pb2

    p4c = shutil.which("p4c-bm2-ss")
    if p4c is None:
        from p4target.compiler import compile_file

        res = compile_file(str(source), include_dirs=include)
        return Program(name, json.dumps(res.bmv2_json).encode(), res.p4info, "p4target-compile")
    out_json, out_info = work / f"{name}.json", work / f"{name}.p4info.txtpb"
    cmd = [p4c, "--arch", "v1model", *[f"-I{d}" for d in include], "-o", str(out_json),
           "--p4runtime-files", str(out_info), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"p4c-bm2-ss failed on {source.name} ({proc.returncode}):\n{proc.stderr}")
    p4info = text_format.Parse(out_info.read_text(), p4info_pb2.P4Info())
    return Program(name, out_json.read_bytes(), p4info, "p4c-bm2-ss")


def _switch_argv(switch: str, ifaces: dict[int, str], work: Path, grpc_port: int) -> list[str]:
    """The daemon's argv (the two share simple_switch_grpc's command line); Skip when not runnable here."""
    if switch == "p4target_switch":
        argv = [str(BIN / "p4target-switch"), "--log-file", str(work / "p4target-switch.log")]
    else:
        binary = shutil.which("simple_switch_grpc")
        if binary is None:
            raise Skip("simple_switch_grpc not on PATH")
        # own notifications socket: the default (/tmp/bmv2-<device>-notifications.ipc) is shared machine-wide
        argv = [binary, "--notifications-addr", f"ipc://{work}/bmv2-notifications-{grpc_port}.ipc"]
    for port, iface in sorted(ifaces.items()):
        argv += ["-i", f"{port}@{iface}"]
    argv += ["--device-id", "0", "--thrift-port", str(_free_port()), "--no-p4",
             "--", "--grpc-server-addr", f"127.0.0.1:{grpc_port}", "--cpu-port", "255"]
    if shutil.which("taskset") and (os.cpu_count() or 1) > SWITCH_CPU:
        argv = ["taskset", "-c", str(SWITCH_CPU), *argv]
    return argv


class _Switch:
    """A switch daemon plus a primary P4Runtime session with the program pushed."""

    def __init__(self, switch: str, ifaces: dict[int, str], program: Program, work: Path) -> None:
        import queue

        import grpc
        from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

        self.pb = p4runtime_pb2
        self.p4info = program.p4info
        gport = _free_port()
        argv = _switch_argv(switch, ifaces, work, gport)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{gport}")
        self._out: queue.Queue = queue.Queue()
        try:
            try:
                grpc.channel_ready_future(self.channel).result(timeout=15)
            except grpc.FutureTimeoutError:
                raise RuntimeError(f"{switch}: no P4Runtime server on port {gport} after 15 s "
                                   f"(exit code {self.proc.poll()})") from None
            self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
            self._stream = self.stub.StreamChannel(iter(self._out.get, None))
            req = p4runtime_pb2.StreamMessageRequest()
            req.arbitration.device_id = 0
            req.arbitration.election_id.low = 1
            self._out.put(req)
            next(self._stream)
            cfg = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=0)
            cfg.election_id.low = 1
            cfg.action = cfg.VERIFY_AND_COMMIT
            cfg.config.p4info.CopyFrom(program.p4info)
            cfg.config.p4_device_config = program.json
            self.stub.SetForwardingPipelineConfig(cfg)
        except BaseException:
            self.close()
            raise

    def ids(self, kind: str) -> dict[str, object]:
        return {o.preamble.name: o for o in getattr(self.p4info, kind)}

    def write(self, updates: list) -> None:
        req = self.pb.WriteRequest(device_id=0)
        req.election_id.low = 1
        req.updates.extend(updates)
        self.stub.Write(req)

    def close(self) -> None:
        self._out.put(None)
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _lpm_entry(sw: _Switch, prefix: int, plen: int, port: int):
    t = sw.ids("tables")["MyIngress.ipv4_lpm"]
    a = sw.ids("actions")["MyIngress.ipv4_forward"]
    u = sw.pb.Update(type=sw.pb.Update.INSERT)
    te = u.entity.table_entry
    te.table_id = t.preamble.id
    fm = te.match.add(field_id=t.match_fields[0].id)
    fm.lpm.value, fm.lpm.prefix_len = prefix.to_bytes(4, "big"), plen
    te.action.action.action_id = a.preamble.id
    te.action.action.params.add(param_id=a.params[0].id, value=bytes.fromhex("000000000002"))
    te.action.action.params.add(param_id=a.params[1].id, value=port.to_bytes(2, "big"))
    return u


def _load_key(rate: int | None) -> str:
    return "saturation" if rate is None else f"load_{rate}"


# ---------------------------------------------------------------------------- benchmarks
def _p4runtime_rates(sw: _Switch) -> dict:
    """10,000 /32 routes in 10 Writes of 1,000 (pre-serialized), a table Read and a register Read."""
    import grpc

    updates = [_lpm_entry(sw, (11 << 24) | i, 32, 2) for i in range(10_000)]
    batches = []
    for i in range(0, len(updates), 1000):
        req = sw.pb.WriteRequest(device_id=0)
        req.election_id.low = 1
        req.updates.extend(updates[i:i + 1000])
        batches.append(req.SerializeToString())
    raw_write = sw.channel.unary_unary("/p4.v1.P4Runtime/Write")
    t0 = time.perf_counter()
    for b in batches:
        raw_write(b)
    out: dict = {"writes_per_s": round(len(updates) / (time.perf_counter() - t0))}
    raw_read = sw.channel.unary_stream("/p4.v1.P4Runtime/Read")
    treq = sw.pb.ReadRequest(device_id=0)
    treq.entities.add().table_entry.table_id = sw.ids("tables")["MyIngress.ipv4_lpm"].preamble.id
    t0 = time.perf_counter()
    chunks = list(raw_read(treq.SerializeToString()))
    out["table_read_10k_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    n = sum(len(sw.pb.ReadResponse.FromString(c).entities) for c in chunks)
    if n != 10_000:
        raise RuntimeError(f"table Read returned {n} entries, 10,000 written")
    rreq = sw.pb.ReadRequest(device_id=0)
    rreq.entities.add().register_entry.register_id = sw.ids("registers")["MyIngress.bench_reg"].preamble.id
    raw_req = rreq.SerializeToString()
    times, decoded = [], []
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            chunks = list(raw_read(raw_req))
            times.append((time.perf_counter() - t0) * 1000)
            cells = [e for c in chunks for e in sw.pb.ReadResponse.FromString(c).entities]
            decoded.append((time.perf_counter() - t0) * 1000)
    except grpc.RpcError as exc:
        out["register_read_10k_ms"] = None
        out["register_read_error"] = f"{exc.code().name}: {exc.details()}"
        return out
    if len(cells) != 10_000:
        raise RuntimeError(f"register Read returned {len(cells)} cells, the register has 10,000")
    out["register_read_10k_ms"] = round(min(times), 1)
    out["register_read_10k_decoded_ms"] = round(min(decoded), 1)
    return out


class _Rig:
    """One switch under test: two veth pairs (ports 1 and 2), the daemon, its P4Runtime session."""

    def __init__(self, switch: str, program: Program, work: Path) -> None:
        self.switch = switch
        self.pairs = _veths(2)
        try:
            self.sw = _Switch(switch, {1: self.pairs[0][0], 2: self.pairs[1][0]}, program, work)
        except BaseException:
            _del_veths(self.pairs)
            raise
        self.ports = Ports(tx=self.pairs[0][1], ingress=self.pairs[0][0], rx=self.pairs[1][1])

    def close(self) -> None:
        try:
            self.sw.close()
        finally:
            _del_veths(self.pairs)


def _setup_lpm(rig: _Rig) -> dict:
    """P4Runtime rates (they leave 10,000 /32 routes installed), then the /8 that carries the traffic."""
    p4rt = _p4runtime_rates(rig.sw)
    rig.sw.write([_lpm_entry(rig.sw, 10 << 24, 8, 2)])
    return p4rt


def _setup_flow_nic(rig: _Rig) -> dict:
    """The NIC's port map: 1 <-> 2."""
    sw = rig.sw
    t = sw.ids("tables")["FlowNicIngress.nic_forwarding.nic_ports"]
    a = sw.ids("actions")["FlowNicIngress.nic_forwarding.set_egress_port"]
    ups = []
    for src, dst in ((1, 2), (2, 1)):
        u = sw.pb.Update(type=sw.pb.Update.INSERT)
        te = u.entity.table_entry
        te.table_id = t.preamble.id
        te.match.add(field_id=t.match_fields[0].id).exact.value = bytes([src])
        te.action.action.action_id = a.preamble.id
        te.action.action.params.add(param_id=a.params[0].id, value=bytes([dst]))
        ups.append(u)
    sw.write(ups)
    return {}


def _side_by_side(program: Program, traffic: Traffic, setup, loads: tuple[int | None, ...], work: Path,
                  skip: dict[str, str], idle_latency: bool) -> dict[str, dict]:
    """Every switch up at once (an idle switch costs ~no CPU), then each load on each switch in turn
    (the order alternates from load to load), so both see the same background load of the machine.
    Returns ``{switch: {"setup": ..., "pps": {load: ...}, "latency_idle_us": ...}}`` or a skip/error."""
    out: dict[str, dict] = {}
    rigs: dict[str, _Rig] = {}
    try:
        for switch in SWITCHES:
            if switch in skip:
                out[switch] = {"skipped": skip[switch]}
                continue
            try:
                rigs[switch] = _Rig(switch, program, work)
                out[switch] = {"setup": setup(rigs[switch]), "pps": {}}
            except Skip as exc:
                out[switch] = {"skipped": str(exc)}
            except Exception as exc:  # noqa: BLE001 - keep the other switch's figures
                log.exception("%s on %s failed", program.name, switch)
                out[switch] = {"error": f"{type(exc).__name__}: {exc}"}
        live = [s for s in SWITCHES if s in rigs and "error" not in out[s]]
        if idle_latency:
            idle = Traffic("idle", [traffic.probe], traffic.probe)   # every frame a probe
            for switch in live:
                r = measure_load(rigs[switch].ports, idle, 1000, windows=1, seconds=1.0, cpu=GENERATOR_CPU)
                out[switch]["latency_idle_us"] = r.summary()["latency_us"]
        for i, rate in enumerate(loads):
            for switch in live if i % 2 == 0 else live[::-1]:
                try:
                    r = measure_load(rigs[switch].ports, traffic, rate, cpu=GENERATOR_CPU)
                    out[switch]["pps"][_load_key(rate)] = r.summary()
                except Exception as exc:  # noqa: BLE001 - the other loads and switches still run
                    log.exception("%s on %s at %s failed", program.name, switch, _load_key(rate))
                    out[switch]["pps"][_load_key(rate)] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for rig in rigs.values():
            rig.close()
    return out


def run() -> dict:
    if os.geteuid() != 0:
        raise PermissionError("the switch benchmark needs root (veth pairs, raw sockets)")
    skip: dict[str, str] = {}
    if shutil.which("p4c-bm2-ss") is None:
        skip["simple_switch"] = "p4c-bm2-ss not on PATH (both switches must load the same p4c JSON)"
    elif shutil.which("simple_switch_grpc") is None:
        skip["simple_switch"] = "simple_switch_grpc not on PATH"
    res: dict = {"pps": {}, "latency_idle_us": {}, "p4rt": {}, "flow_nic_pps": {}}
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        work = Path(tmp)
        lpm_src = work / "bench_lpm.p4"
        lpm_src.write_text(LPM_P4)
        lpm = _compile("bench_lpm", lpm_src, [], work)
        lpm_res = _side_by_side(lpm, make_traffic("lpm"), _setup_lpm, LOADS, work, skip, idle_latency=True)
        for switch, r in lpm_res.items():
            ok = "pps" in r
            res["pps"][switch] = r["pps"] if ok else r
            res["latency_idle_us"][switch] = r.get("latency_idle_us", r) if ok else r
            res["p4rt"][switch] = r["setup"] if ok else r
        try:
            nic = _compile("flow_nic", ROOT / "p4src" / "flow_nic.p4", [str(ROOT / "p4src" / "include")], work)
        except Exception as exc:  # noqa: BLE001 - keep the LPM figures
            log.exception("compiling flow_nic failed")
            res["flow_nic_pps"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            nic_res = _side_by_side(nic, make_traffic("udp"), _setup_flow_nic, (None,), work, skip,
                                    idle_latency=False)
            for switch, r in nic_res.items():
                res["flow_nic_pps"][switch] = r.get("pps", r)
    ratio = {}
    for key in map(_load_key, LOADS):
        a = res["pps"].get("p4target_switch", {}).get(key, {}).get("delivered_pps")
        b = res["pps"].get("simple_switch", {}).get(key, {}).get("delivered_pps")
        if a and b:
            ratio[key] = round(b / a, 2)
    res["ratio_simple_switch_to_p4target"] = ratio or {"skipped": "needs figures of both switches"}
    res["setup"] = {
        "program": "bench_lpm (LPM forwarding, in bench_switch.py) and p4src/flow_nic.p4",
        "compiler": lpm.compiler,
        "binaries": {"p4target_switch": "p4target-switch", "simple_switch": "simple_switch_grpc"},
        "cpus": {"switch": SWITCH_CPU, "generator": GENERATOR_CPU, "count": os.cpu_count()},
        "method": "both switches up at once, loads taken in turn; warm-up 0.5 s, 3 windows of 1.5 s per "
                  "load, the median window's figures; latency of 1 frame in 64 (probes)",
        "loads": [_load_key(r) for r in LOADS],
    }
    return {"switch": res}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(), indent=2))
