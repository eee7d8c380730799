"""TLS for the P4Runtime server, with simple_switch_grpc's options and semantics.

``--grpc-server-ssl`` turns TLS on; it then needs ``--grpc-server-cert`` and ``--grpc-server-key`` (PEM
files). ``--grpc-server-cacert`` names the CA that client certificates are checked against, and
``--grpc-server-with-client-auth`` requires every client to present one (mutual TLS). Without
``--with-client-auth`` client certificates are not requested (simple_switch_grpc accepts any client, with
or without a certificate). Without ``--grpc-server-ssl`` the PEM options are ignored with a warning.
One difference: simple_switch_grpc starts with ``--with-client-auth`` but no CA and then refuses every
client; here that combination is an error at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """The TLS options cannot be used (message says which option and why)."""


@dataclass(frozen=True)
class TLSOptions:
    ssl: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    with_client_auth: bool = False

    def credentials(self) -> grpc.ServerCredentials | None:
        """Server credentials, or None for an insecure port. Raises TLSConfigError."""
        if not self.ssl:
            if self.cacert or self.cert or self.key or self.with_client_auth:
                log.warning("SSL/TLS is disabled for gRPC server, so provided .pem files will be ignored")
            return None
        if not self.cert:
            raise TLSConfigError("When enabling SSL/TLS for gRPC server, --grpc-server-cert is required")
        if not self.key:
            raise TLSConfigError("When enabling SSL/TLS for gRPC server, --grpc-server-key is required")
        if self.with_client_auth and not self.cacert:
            raise TLSConfigError("--grpc-server-with-client-auth needs --grpc-server-cacert "
                                 "(the CA to verify client certificates against)")
        cert = _pem(self.cert, b"CERTIFICATE")
        key = _pem(self.key, b"PRIVATE KEY")
        ca = _pem(self.cacert, b"CERTIFICATE") if self.cacert else None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                           require_client_auth=self.with_client_auth)

    def describe(self) -> str:
        if not self.ssl:
            return "insecure"
        return "TLS with client authentication" if self.with_client_auth else "TLS"


def _pem(path: str, kind: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"Error when reading pem file '{path}': {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data or kind not in data:
        raise TLSConfigError(f"pem file '{path}' holds no {kind.decode()}")
    return data
