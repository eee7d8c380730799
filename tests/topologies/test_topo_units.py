"""Switch command line, program freshness, run registry and cleanup (no Mininet, no root)."""

import os
import subprocess
import sys
import time

import pytest

from topologies import cleanup, programs, registry
from topologies.p4switch import free_port, switch_command


def test_switch_command_matches_simple_switch_grpc_syntax():
    cmd = switch_command("/bin/sw", {2: "gwA-eth2", 1: "gwA-eth1"}, "build/gateway.json", 50001, 9090,
                         device_id=0, log_file="logs/gwA.log", pcap_dir="pcaps", log_console=True)
    assert cmd == ["/bin/sw", "-i", "1@gwA-eth1", "-i", "2@gwA-eth2", "--device-id", "0",
                   "--thrift-port", "9090", "--log-file", "logs/gwA.log", "--log-console",
                   "--pcap", "pcaps", "build/gateway.json", "--",
                   "--grpc-server-addr", "127.0.0.1:50001", "--cpu-port", "255"]


def test_switch_command_puts_extra_target_options_after_the_separator():
    cmd = switch_command("/bin/sw", {1: "s-eth1"}, None, 50001, 9090,
                         extra_args=["--log-level", "debug", "--", "--grpc-server-ssl"])
    assert cmd == ["/bin/sw", "-i", "1@s-eth1", "--device-id", "0", "--thrift-port", "9090", "--log-level", "debug",
                   "--no-p4", "--", "--grpc-server-addr", "127.0.0.1:50001", "--cpu-port", "255",
                   "--grpc-server-ssl"]


def test_free_port_skips_ports_in_use():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        got = free_port(busy)
        assert got != busy and got > busy
        assert free_port(busy) != got      # never handed out twice


def test_program_freshness(tmp_path):
    src, build = tmp_path / "p4src", tmp_path / "build"
    (src / "include").mkdir(parents=True)
    build.mkdir()
    (src / "prog.p4").write_text("// p4")
    (src / "include" / "h.p4").write_text("// h")
    pp = programs.paths("prog", src, build)
    assert programs.is_outdated(pp)
    pp.json.write_text("{}")
    pp.p4info.write_text("")
    assert not programs.is_outdated(pp)
    future = time.time() + 10
    os.utime(src / "include" / "h.p4", (future, future))
    assert programs.is_outdated(pp)


def test_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(programs.ProgramError, match="no source"):
        programs.ensure_compiled("nope", p4src=tmp_path, build=tmp_path)
    with pytest.raises(programs.ProgramError, match="unknown target"):
        programs.ensure_compiled("nope", target="tofino", p4src=tmp_path, build=tmp_path)


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWMIG_LAB_DIR", str(tmp_path / "reg"))
    monkeypatch.setenv("FLOWMIG_LAB_LOCK", str(tmp_path / "lab.lock"))
    return tmp_path


def test_cleanup_kills_only_the_runs_tagged_processes(lab_dir):
    run, other = registry.new_run_id(), registry.new_run_id()
    env = dict(os.environ, FLOWMIG_LAB=run)
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              env=dict(os.environ, FLOWMIG_LAB=other))
    untagged = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        registry.record_process(run, mine.pid, "sw", [sys.executable])
        registry.record_interfaces(run, ["flowmig-no-such-if"])
        time.sleep(0.2)
        assert cleanup.leftovers(run)["processes"] == [mine.pid]
        cleanup.cleanup_run(run)
        assert mine.wait(5) is not None
        assert theirs.poll() is None and untagged.poll() is None
        assert run not in registry.runs()
        assert cleanup.leftovers(run) == {"processes": [], "netns_processes": [], "interfaces": []}
    finally:
        for p in (mine, theirs, untagged):
            p.kill()
            p.wait()


def test_cleanup_spares_runs_with_a_live_owner(lab_dir):
    live = registry.new_run_id()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        registry.record_interfaces(live, [])
        data = registry.read(live)
        data["owner"] = owner.pid
        registry._write(live, data)
        dead = registry.new_run_id()
        registry.record_interfaces(dead, [])
        data = registry.read(dead)
        data["owner"] = 2 ** 22 + 7          # beyond pid_max on most systems: not alive
        registry._write(dead, data)
        report = cleanup.cleanup()
        assert dead in report and live not in report
        assert registry.runs() == [live]
        assert live in cleanup.cleanup(everything=True)
    finally:
        owner.kill()
        owner.wait()


def test_lab_lock_excludes_a_second_lab(lab_dir):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, sys\n"
        "from topologies.registry import LabLock\n"
        "lock = LabLock('topology fig2, run test'); lock.acquire(); print('held', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(registry.LabBusy, match=f"pid {holder.pid}: topology fig2"):
            registry.LabLock("mine", timeout=0.3).acquire()
        holder.kill()
        holder.wait()
        lock = registry.LabLock("mine", timeout=5)     # the kernel released the dead holder's lock
        lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_switch_binaries_missing_are_clear_errors(monkeypatch):
    from topologies import p4switch
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(p4switch.P4SwitchError, match="simple_switch_grpc"):
        p4switch.switch_binary("bmv2")
    with pytest.raises(p4switch.P4SwitchError, match="unknown target"):
        p4switch.switch_binary("tofino")


def test_bmv2_compile_needs_p4c(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    (tmp_path / "prog.p4").write_text("// p4")
    with pytest.raises(programs.ProgramError, match="p4c-bm2-ss"):
        programs.ensure_compiled("prog", target="bmv2", p4src=tmp_path, build=tmp_path / "build")


# what simple_switch_CLI printed for four commands read from stdin (BMv2 1.15.5), one of them fine
SIMPLE_SWITCH_CLI_OUTPUT = """Obtaining JSON from switch...
Done
Control utility for runtime P4 table manipulation
RuntimeCmd: Error: Bad format for rate_pps, expected integer
RuntimeCmd:   port #       iface name       status  extra info
==================================================
RuntimeCmd: Error: Invalid counter name (foo)
RuntimeCmd: RuntimeCmd: """


def test_simple_switch_cli_failures_are_seen_behind_its_prompts():
    from topologies.degrade import cli_failed

    assert cli_failed(SIMPLE_SWITCH_CLI_OUTPUT)
    assert not cli_failed("\n".join(ln for ln in SIMPLE_SWITCH_CLI_OUTPUT.splitlines() if "Error" not in ln))
    assert cli_failed("RuntimeCmd: RuntimeCmd: Invalid table operation (DUPLICATE_ENTRY)")
    assert cli_failed("RuntimeCmd: *** Unknown syntax: frobnicate")


@pytest.mark.bmv2
def test_switch_cli_raises_on_a_command_simple_switch_refuses():
    """Against a real simple_switch_grpc: a refused command is an error, a good one is not."""
    from topologies.degrade import DegradeError, switch_cli

    thrift, grpc_port = free_port(29090), free_port(29559)
    sw = subprocess.Popen(["simple_switch_grpc", "--no-p4", "--thrift-port", str(thrift), "--",
                           "--grpc-server-addr", f"127.0.0.1:{grpc_port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                switch_cli(thrift, "show_ports", target="bmv2")
                break
            except DegradeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.raises(DegradeError, match="Bad format for rate_pps"):
            switch_cli(thrift, "set_queue_rate lots", target="bmv2")
        switch_cli(thrift, "set_queue_rate 100 1", target="bmv2")
    finally:
        sw.kill()
        sw.wait()
