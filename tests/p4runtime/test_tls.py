"""TLS like simple_switch_grpc (issue #11): p4target-switch's --grpc-server-ssl/-cacert/-cert/-key/
-with-client-auth, the controller's SwitchConnection over TLS and mutual TLS, and the same
accept/refuse matrix as simple_switch_grpc for the same certificates (bmv2 marker)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import sys
import time

import grpc
import pytest
from cryptography import x509  # a dev dependency: missing, it fails (never skips)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from p4rt_real import ROOT, SwitchProcess, flow_nic, free_port

from controller.p4rt import SwitchConnection, SwitchOptions


def _cert(name: str, key, issuer=None, issuer_key=None, ca: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server and a client certificate signed by it, and a stranger's self-signed pair."""
    d = tmp_path_factory.mktemp("pki")
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "server", "client", "other")}
    ca = _cert("flowmig test CA", keys["ca"], ca=True)
    certs = {"ca": ca, "server": _cert("server", keys["server"], ca, keys["ca"]),
             "client": _cert("client", keys["client"], ca, keys["ca"]), "other": _cert("other", keys["other"])}
    for n in certs:
        (d / f"{n}.crt").write_bytes(certs[n].public_bytes(serialization.Encoding.PEM))
        (d / f"{n}.key").write_bytes(keys[n].private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return d


CLIENTS = ("insecure", "ca-only", "mtls", "stranger-cert", "wrong-ca")


def _creds(client: str, pki) -> grpc.ChannelCredentials | None:
    """The channel credentials of one of CLIENTS (None: plaintext)."""
    def rd(name):
        return (pki / name).read_bytes()
    if client == "insecure":
        return None
    ca = rd("other.crt") if client == "wrong-ca" else rd("ca.crt")
    pair = {"mtls": ("client.key", "client.crt"), "stranger-cert": ("other.key", "other.crt")}.get(client)
    return grpc.ssl_channel_credentials(ca, rd(pair[0]) if pair else None, rd(pair[1]) if pair else None)


def _opts(pki, client_auth: bool) -> list[str]:
    opts = ["--grpc-server-ssl", "--grpc-server-cert", str(pki / "server.crt"), "--grpc-server-key",
            str(pki / "server.key"), "--grpc-server-cacert", str(pki / "ca.crt")]
    return opts + (["--grpc-server-with-client-auth"] if client_auth else [])


EXPECTED = {False: {"insecure": "UNAVAILABLE", "ca-only": "ok", "mtls": "ok", "stranger-cert": "ok",
                    "wrong-ca": "UNAVAILABLE"},
            True: {"insecure": "UNAVAILABLE", "ca-only": "UNAVAILABLE", "mtls": "ok", "stranger-cert": "UNAVAILABLE",
                   "wrong-ca": "UNAVAILABLE"}}


@pytest.mark.parametrize("client_auth", [False, True], ids=["tls", "mtls"])
def test_p4target_switch_serves_tls_and_mtls(pki, client_auth, p4rt_capabilities):
    proc = SwitchProcess(*_opts(pki, client_auth))
    try:
        proc.wait_listening()
        got = {c: p4rt_capabilities(proc.address, _creds(c, pki)) for c in CLIENTS}
    finally:
        out = proc.stop()
    assert got == EXPECTED[client_auth], out
    assert ("TLS with client authentication" if client_auth else "TLS)") in out


def test_controller_connects_with_mtls_and_pushes_the_pipeline(pki, tmp_path):
    proc = SwitchProcess(*_opts(pki, True))
    try:
        proc.wait_listening()
        opts = SwitchOptions(name="s1", address=proc.address, election_id=(0, 1), cacert=str(pki / "ca.crt"),
                             cert=str(pki / "client.crt"), private_key=str(pki / "client.key"),
                             log_dir=str(tmp_path), reconnect=False)
        json_bytes, p4info = flow_nic()
        with SwitchConnection(opts) as conn:
            assert conn.is_primary
            conn.set_pipeline(p4info, json_bytes)
            assert conn.pipeline_cookie() is not None
        bad = SwitchOptions(name="s2", address=proc.address, election_id=(0, 2), cacert=str(pki / "ca.crt"),
                            log_dir=str(tmp_path), reconnect=False, connect_timeout=2)
        with pytest.raises(Exception):  # noqa: B017 - no client certificate: the handshake fails
            SwitchConnection(bad).connect()
    finally:
        proc.stop()


@pytest.mark.parametrize("opts, message", [
    (["--grpc-server-ssl"], "--grpc-server-cert is required"),
    (["--grpc-server-ssl", "--grpc-server-cert", "{pki}/server.crt"], "--grpc-server-key is required"),
    (["--grpc-server-ssl", "--grpc-server-cert", "{pki}/missing.crt", "--grpc-server-key", "{pki}/server.key"],
     "Error when reading pem file"),
    (["--grpc-server-ssl", "--grpc-server-cert", "{pki}/server.key", "--grpc-server-key", "{pki}/server.key"],
     "holds no CERTIFICATE"),
    (["--grpc-server-ssl", "--grpc-server-cert", "{pki}/server.crt", "--grpc-server-key", "{pki}/server.key",
      "--grpc-server-with-client-auth"], "needs --grpc-server-cacert"),
])
def test_bad_tls_options_are_clear_errors(pki, opts, message):
    argv = [sys.executable, "-m", "p4target.switch.cli", "--no-p4", "--thrift-port", "0", "--",
            "--grpc-server-addr", f"127.0.0.1:{free_port()}", *[o.format(pki=pki) for o in opts]]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert message in proc.stderr


@pytest.mark.bmv2
@pytest.mark.parametrize("client_auth", [False, True], ids=["tls", "mtls"])
def test_same_accept_matrix_as_simple_switch_grpc(pki, client_auth, p4rt_capabilities):
    port = free_port()
    proc = subprocess.Popen([shutil.which("simple_switch_grpc"), "--no-p4", "--thrift-port", str(free_port()), "--",
                             "--grpc-server-addr", f"127.0.0.1:{port}", "--cpu-port", "255", *_opts(pki, client_auth)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        bmv2 = {c: p4rt_capabilities(f"127.0.0.1:{port}", _creds(c, pki)) for c in CLIENTS}
    finally:
        proc.terminate()
        proc.wait(10)
    assert bmv2 == EXPECTED[client_auth]
