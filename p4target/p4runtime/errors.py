"""P4Runtime errors: one exception carrying a gRPC status code, and the p4.v1.Error batch encoding.

Handlers raise ``P4RTError``; the server turns it into the RPC status (Read, pipeline config) or into one
``p4.v1.Error`` per update in ``grpc-status-details-bin`` (Write, as PI does: overall code UNKNOWN).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2

GRPC_TO_CODE = {sc: sc.value[0] for sc in grpc.StatusCode}
NAME_TO_STATUS = {sc.name: sc for sc in grpc.StatusCode}


class P4RTError(Exception):
    """A request that cannot be served; ``code`` is the gRPC status to return."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.INVALID_ARGUMENT, msg)


def not_found(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.NOT_FOUND, msg)


def out_of_range(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.OUT_OF_RANGE, msg)


def unimplemented(msg: str) -> P4RTError:
    return P4RTError(grpc.StatusCode.UNIMPLEMENTED, msg)


def from_table_error(exc: Exception) -> P4RTError:
    """Map a pipeline ``TableError(code, message)`` (code is a gRPC status name) to a P4RTError."""
    code = getattr(exc, "code", None)
    status = NAME_TO_STATUS.get(str(code), grpc.StatusCode.INVALID_ARGUMENT)
    message = getattr(exc, "message", None) or str(exc)
    return P4RTError(status, message)


def write_status(results: list[P4RTError | None]) -> status_pb2.Status:
    """google.rpc.Status for a failed Write batch: one p4.v1.Error (OK or not) per update, in order."""
    status = status_pb2.Status(code=code_pb2.UNKNOWN, message="Write failure.")
    for res in results:
        err = p4runtime_pb2.Error()
        if res is None:
            err.canonical_code = code_pb2.OK
        else:
            err.canonical_code = GRPC_TO_CODE[res.code]
            err.message = res.message
        packed = any_pb2.Any()
        packed.Pack(err)
        status.details.append(packed)
    return status
