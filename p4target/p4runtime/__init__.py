"""p4target.p4runtime: the P4Runtime gRPC server of the embedded switch."""

from p4target.p4runtime.errors import P4RTError
from p4target.p4runtime.server import P4RuntimeServer

__all__ = ["P4RuntimeServer", "P4RTError"]
