"""A lab's TLS certificates (topologies.certs): made with openssl, keys 0600, chained to the lab's CA
with the SANs the switches are reached by, and a TLS handshake that checks them succeeds (no Mininet)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509  # a dev dependency: missing, it fails (never skips)
from cryptography.x509.oid import ExtendedKeyUsageOID

from topologies import certs


def _load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.generate(tmp_path_factory.mktemp("lab") / "tls")


def test_files_and_modes(pki):
    d = pki.directory
    assert sorted(p.name for p in d.iterdir()) == ["ca.pem", "controller.key", "controller.pem", "switch.key",
                                                    "switch.pem"]      # the CA key is gone once used
    for key in (pki.switch_key, pki.controller_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    for cert in (pki.ca_cert, pki.switch_cert, pki.controller_cert):
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644, cert
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_certificates_chain_to_the_ca_with_the_sans(pki):
    ca, switch, controller = _load(pki.ca_cert), _load(pki.switch_cert), _load(pki.controller_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for cert in (switch, controller):
        cert.verify_directly_issued_by(ca)          # raises if not signed by the lab's CA
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = switch.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in switch.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in \
        controller.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def test_mutual_tls_handshake_on_loopback(pki):
    """A server with the switch's pair requiring a client certificate, a client with the controller's pair
    checking 127.0.0.1 against the CA: the handshake succeeds and each side sees the other's certificate."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_cert)
    server_ctx.load_cert_chain(pki.switch_cert, pki.switch_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=pki.ca_cert)
    client_ctx.load_cert_chain(pki.controller_cert, pki.controller_key)
    seen = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["client"] = tls.getpeercert()["subject"]
        t = threading.Thread(target=serve)
        t.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            seen["server"] = tls.getpeercert()["subjectAltName"]
        t.join(10)
    assert ("IP Address", "127.0.0.1") in seen["server"]
    assert seen["client"] == ((("commonName", "flowmig controller"),),)


def test_every_lab_gets_its_own_ca(pki, tmp_path):
    other = certs.generate(tmp_path / "tls")
    assert _load(other.ca_cert).subject != _load(pki.ca_cert).subject
    with pytest.raises(ValueError):
        _load(other.switch_cert).verify_directly_issued_by(_load(pki.ca_cert))


def test_switch_args_and_client_tls(pki):
    args = pki.switch_args(mutual=False)
    assert args == ["--grpc-server-ssl", "--grpc-server-cacert", str(pki.ca_cert.resolve()),
                    "--grpc-server-cert", str(pki.switch_cert.resolve()),
                    "--grpc-server-key", str(pki.switch_key.resolve())]
    assert pki.switch_args(mutual=True) == [*args, "--grpc-server-with-client-auth"]
    assert pki.client_tls() == {"cacert": str(pki.ca_cert.resolve()), "cert": str(pki.controller_cert.resolve()),
                                "private_key": str(pki.controller_key.resolve())}


def test_refuses_a_directory_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(certs.CertError, match="not empty"):
        certs.generate(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_missing_openssl_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(certs.CertError, match="openssl command is missing"):
        certs.generate(tmp_path / "tls")
    assert not (tmp_path / "tls").exists()


def test_failing_openssl_names_its_message_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(certs, "CURVE", "no-such-curve")
    with pytest.raises(certs.CertError, match="(?s)openssl req failed .*invalid curve"):
        certs.generate(tmp_path / "tls")
    assert not (tmp_path / "tls").exists()
