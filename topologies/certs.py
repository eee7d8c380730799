"""A lab's own TLS certificates for P4Runtime: a private CA, a switch certificate, a controller certificate.

A TLS lab (``python -m topologies.lab --tls``, :class:`topologies.lab.TLSLab`) makes them with
:func:`generate` in its work directory before any switch starts, with Debian's ``openssl`` command (no
Python dependency)::

    ca.pem                 the lab's CA (self-signed, CA:TRUE); its key is deleted once both are signed,
                           so nothing else can ever be signed by it
    switch.pem switch.key  every switch's server certificate: SAN IP:127.0.0.1 and DNS:localhost
                           (the switches serve gRPC on loopback), serverAuth
    controller.pem controller.key   the controller's client certificate (clientAuth), for mutual TLS

Keys are EC P-256 in PKCS#8 PEM, created with mode 0600 (openssl runs under umask 077), certificates are
0644. :meth:`LabPKI.switch_args` are the daemon's target options (``--grpc-server-ssl`` ...: the same for
``p4target-switch`` and ``simple_switch_grpc``); :meth:`LabPKI.client_tls` is the ``tls`` section of the
lab config (``controller.labconfig.LabConfig.tls``), which every ``flowmig`` command connects with.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DAYS", "CertError", "LabPKI", "generate"]

DAYS = 30                      # validity; a lab makes new ones on every start
CURVE = "P-256"
SERVER_SAN = "IP:127.0.0.1,DNS:localhost"

_EXTENSIONS = {
    "switch": ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
               "extendedKeyUsage=serverAuth", f"subjectAltName={SERVER_SAN}"],
    "controller": ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
                   "extendedKeyUsage=clientAuth"],
}
_SUBJECTS = {"switch": "/CN=localhost", "controller": "/CN=flowmig controller"}


class CertError(RuntimeError):
    """The certificates could not be made (no openssl, or openssl failed: its message is included)."""


@dataclass(frozen=True)
class LabPKI:
    """Where a lab's certificates are (``directory``) and how the switches and the controller use them."""
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def switch_cert(self) -> Path:
        return self.directory / "switch.pem"

    @property
    def switch_key(self) -> Path:
        return self.directory / "switch.key"

    @property
    def controller_cert(self) -> Path:
        return self.directory / "controller.pem"

    @property
    def controller_key(self) -> Path:
        return self.directory / "controller.key"

    def switch_args(self, mutual: bool) -> list[str]:
        """The switch daemon's target options (after ``--``) to serve P4Runtime over TLS; ``mutual``:
        every client must present a certificate signed by the lab's CA."""
        args = ["--grpc-server-ssl", "--grpc-server-cacert", str(self.ca_cert.resolve()),
                "--grpc-server-cert", str(self.switch_cert.resolve()),
                "--grpc-server-key", str(self.switch_key.resolve())]
        return args + (["--grpc-server-with-client-auth"] if mutual else [])

    def client_tls(self) -> dict[str, str]:
        """The lab config's ``tls`` section: the CA to check the switches against and the controller's
        certificate and key (presented when a switch asks: mutual TLS)."""
        return {"cacert": str(self.ca_cert.resolve()), "cert": str(self.controller_cert.resolve()),
                "private_key": str(self.controller_key.resolve())}


def _openssl(*args: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, umask=0o077,
                              stdin=subprocess.DEVNULL, timeout=60)
    except FileNotFoundError:
        raise CertError("the openssl command is missing (apt-get install openssl; 'make install' does)") from None
    if proc.returncode != 0:
        raise CertError(f"openssl {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()}")


def _new_key_args(key: str) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes", "-keyout", key]


def generate(directory: str | Path, days: int = DAYS) -> LabPKI:
    """Make a new CA and, signed by it, the switch and the controller certificates in ``directory``.

    ``directory`` must not exist or be empty (nothing is overwritten); on any failure it is removed again,
    so no half-made set (nor a CA key) stays. CertError when it holds files, or openssl is missing or fails.
    """
    if days < 1:
        raise ValueError(f"certificates must be valid for at least a day, not {days}")
    pki = LabPKI(Path(directory))
    d = pki.directory
    if d.exists() and any(d.iterdir()):
        raise CertError(f"{d} is not empty: certificates go to a directory of their own")
    d.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        _sign_all(pki, days)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return pki


def _sign_all(pki: LabPKI, days: int) -> None:
    d = pki.directory
    _openssl("req", "-x509", "-new", *_new_key_args("ca.key"), "-out", pki.ca_cert.name, "-days", str(days),
             "-subj", f"/CN=flowmig lab CA {secrets.token_hex(4)}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    for name, exts in _EXTENSIONS.items():
        (d / f"{name}.ext").write_text("\n".join(exts) + "\n")
        _openssl("req", "-new", *_new_key_args(f"{name}.key"), "-out", f"{name}.csr", "-subj", _SUBJECTS[name],
                 cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", pki.ca_cert.name, "-CAkey", "ca.key",
                 "-set_serial", str(secrets.randbits(120)), "-days", str(days), "-sha256",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
        (d / f"{name}.csr").unlink()
        (d / f"{name}.ext").unlink()
    (d / "ca.key").unlink()
    for cert in (pki.ca_cert, pki.switch_cert, pki.controller_cert):
        os.chmod(cert, 0o644)
