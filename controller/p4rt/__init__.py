"""P4Runtime client layer: one connection per switch, name-based entities, one codec, decoded errors."""

from .codec import CodecError
from .connection import DigestList, PacketIn, SwitchConnection, SwitchOptions
from .errors import ConnectionFailed, P4RuntimeError
from .fabric import Fabric
from .p4info import P4InfoError, P4InfoHelper, load_p4info

__all__ = ["CodecError", "ConnectionFailed", "DigestList", "Fabric", "P4InfoError", "P4InfoHelper",
           "P4RuntimeError", "PacketIn", "SwitchConnection", "SwitchOptions", "load_p4info"]
