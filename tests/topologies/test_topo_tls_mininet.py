"""A TLS lab (topologies.lab.TLSLab, ``python -m topologies.lab --tls``) on both targets: it comes up, the
``flowmig`` CLI works through its config over TLS, and its switches refuse plaintext P4Runtime clients (and,
with mutual TLS, TLS clients without a certificate of the lab's CA); nothing of it is left afterwards."""

from __future__ import annotations

import json
import subprocess

import grpc
import pytest
from topo_helpers import REPO, mininet_missing, programs_missing

from topologies.description import load

pytestmark = [pytest.mark.mininet, pytest.mark.root,
              pytest.mark.skipif(mininet_missing() is not None, reason=mininet_missing() or ""),
              pytest.mark.skipif(programs_missing() is not None, reason=programs_missing() or "")]

TARGETS = [pytest.param("embedded", id="embedded"), pytest.param("bmv2", id="bmv2", marks=pytest.mark.bmv2)]


@pytest.mark.parametrize("mode", ["mtls", "tls"])
@pytest.mark.parametrize("target", TARGETS)
def test_tls_lab_serves_only_tls(target, mode, lab_options, clean_lab, p4rt_capabilities):
    from topologies.lab import TLSLab, flowmig_command

    lab_options.target = target
    lab = TLSLab(load("fig2"), lab_options, tls=mode)
    clean_lab(lab)
    lab.start()
    tls = json.loads(lab.config_path.read_text())["tls"]
    assert tls == lab.pki.client_tls()
    ca = lab.pki.ca_cert.read_bytes()
    mutual = (lab.pki.controller_key.read_bytes(), lab.pki.controller_cert.read_bytes())

    # every flowmig command connects with the config's tls section: flows reads every NIC
    out = subprocess.run([*flowmig_command(), "--config", str(lab.config_path), "flows", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(json.loads(out.stdout)["nics"]) == sorted(lab.topo.nics())
    # the initial tables went in over TLS: the hosts reach each other across the NICs
    assert " 0% packet loss" in lab.host("hostA").cmd("ping -c 3 -i 0.2 -W 2 10.0.0.2")

    for sw in lab.switches():
        got = {"plaintext": p4rt_capabilities(sw.grpc_addr, None),
               "ca only": p4rt_capabilities(sw.grpc_addr, grpc.ssl_channel_credentials(ca)),
               "controller": p4rt_capabilities(sw.grpc_addr, grpc.ssl_channel_credentials(ca, *mutual))}
        assert got == {"plaintext": "UNAVAILABLE", "ca only": "UNAVAILABLE" if mode == "mtls" else "ok",
                       "controller": "ok"}, sw.name
    lab.stop()
    assert not lab.pki.directory.exists()          # the lab's keys go with it


def test_tls_lab_refuses_an_unknown_mode(lab_options):
    from topologies.lab import TLSLab

    with pytest.raises(ValueError, match="TLS mode must be one of tls, mtls"):
        TLSLab(load("fig2"), lab_options, tls="ssl")
