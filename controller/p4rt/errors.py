"""P4Runtime client errors.

Owns the decoding of gRPC failures into ``P4RuntimeError`` (per-update (index, code, message) read
from the ``grpc-status-details-bin`` trailer, as the P4Runtime spec's batch error reporting defines)
and the predicates callers use instead of parsing strings. Library code raises these; only the CLI
turns them into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2

__all__ = ["P4RuntimeError", "ConnectionFailed", "UpdateError", "from_rpc_error", "code_name"]


def code_name(code: int) -> str:
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return str(code)


@dataclass(frozen=True)
class UpdateError:
    index: int
    code: int  # google.rpc.Code value
    message: str

    @property
    def code_name(self) -> str:
        return code_name(self.code)


class P4RuntimeError(Exception):
    """A P4Runtime RPC failed. ``code`` is the gRPC status; ``errors`` the failing updates of a batch."""

    def __init__(self, operation: str, code: grpc.StatusCode, message: str,
                 errors: list[UpdateError] | None = None, switch: str = "") -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.errors = list(errors or [])
        self.switch = switch
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.switch}: " if self.switch else ""
        text = f"{where}{self.operation} failed ({self.code.name}): {self.message}"
        for e in self.errors:
            text += f"\n  * update {e.index}: {e.code_name}: {e.message}"
        return text

    # ---- predicates (finsy-style) ----------------------------------------------------------------
    def _codes(self) -> set[int]:
        return {e.code for e in self.errors}

    def is_not_found_only(self) -> bool:
        """Every failing update is NOT_FOUND (e.g. a delete of something already gone)."""
        if self.errors:
            return self._codes() == {code_pb2.NOT_FOUND}
        return self.code == grpc.StatusCode.NOT_FOUND

    def is_already_exists_only(self) -> bool:
        if self.errors:
            return self._codes() == {code_pb2.ALREADY_EXISTS}
        return self.code == grpc.StatusCode.ALREADY_EXISTS

    def is_pipeline_missing(self) -> bool:
        """The device has no forwarding pipeline yet (FAILED_PRECONDITION before SetPipelineConfig)."""
        return self.code == grpc.StatusCode.FAILED_PRECONDITION and not self.errors

    def is_unimplemented(self) -> bool:
        if self.code == grpc.StatusCode.UNIMPLEMENTED:
            return True
        return bool(self.errors) and self._codes() == {code_pb2.UNIMPLEMENTED}

    def is_unavailable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)



class ConnectionFailed(P4RuntimeError):
    """The switch could not be reached or the session could not be established in time."""

    def __init__(self, switch: str, message: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE):
        super().__init__("connect", code, message, switch=switch)


def _details(exc: grpc.RpcError) -> list[UpdateError]:
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: BLE001 - a malformed trailer must not hide the original error
            return []
        out = []
        for i, anyval in enumerate(status.details):
            err = p4runtime_pb2.Error()
            if anyval.Unpack(err) and err.canonical_code != code_pb2.OK:
                out.append(UpdateError(i, err.canonical_code, err.message))
        return out
    return []


def from_rpc_error(exc: grpc.RpcError, operation: str, switch: str = "") -> P4RuntimeError:
    """Turn a grpc.RpcError into a P4RuntimeError, decoding the per-update details when present."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    return P4RuntimeError(operation, code or grpc.StatusCode.UNKNOWN, message or "", _details(exc),
                          switch=switch)
