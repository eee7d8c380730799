"""The ``p4_device_config`` of SetForwardingPipelineConfig: the BMv2 JSON, bare or wrapped.

PI (``simple_switch_grpc``) takes the BMv2 JSON bare, or wrapped in the legacy ``p4.tmp.P4DeviceConfig``
message (with a deprecation warning) that tutorial-style ``p4runtime_lib`` clients still send::

    message P4DeviceConfig {            // package p4.tmp, proto3 (PI: proto/p4/tmp/p4config.proto)
      message Extras { map<string, string> kv = 1; }
      bool reassign = 1;
      Extras extras = 2;
      bytes device_data = 3;
    }

The ``p4runtime`` Python package does not ship that message, so it is built here from its descriptor
in a private pool (it never clashes with a generated ``p4/tmp/p4config_pb2`` a client may import).
"""
from __future__ import annotations

import logging

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

__all__ = ["DeviceConfigError", "P4DeviceConfig", "unwrap_device_config"]


def _p4config_file() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="p4/tmp/p4config.proto", package="p4.tmp", syntax="proto3")
    msg = fd.message_type.add(name="P4DeviceConfig")
    msg.field.add(name="reassign", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    msg.field.add(name="extras", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                  type_name=".p4.tmp.P4DeviceConfig.Extras")
    msg.field.add(name="device_data", number=3, label=F.LABEL_OPTIONAL, type=F.TYPE_BYTES)
    extras = msg.nested_type.add(name="Extras")
    extras.field.add(name="kv", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                     type_name=".p4.tmp.P4DeviceConfig.Extras.KvEntry")
    kv = extras.nested_type.add(name="KvEntry")
    kv.options.map_entry = True
    kv.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    kv.field.add(name="value", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_p4config_file())
_desc = _pool.FindMessageTypeByName("p4.tmp.P4DeviceConfig")
if hasattr(message_factory, "GetMessageClass"):         # protobuf >= 4.21
    P4DeviceConfig = message_factory.GetMessageClass(_desc)
else:
    P4DeviceConfig = message_factory.MessageFactory(_pool).GetPrototype(_desc)
"""The ``p4.tmp.P4DeviceConfig`` message class (the same wire format as PI's generated one)."""


class DeviceConfigError(ValueError):
    """The device config is neither a BMv2 JSON nor a P4DeviceConfig wrapping one."""


def _looks_like_json(data: bytes) -> bool:
    return data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] == b"{"


def unwrap_device_config(data: bytes) -> bytes:
    """The BMv2 JSON inside ``data``: ``data`` itself when bare, else the wrapper's ``device_data``."""
    if not data:
        raise DeviceConfigError("p4_device_config is empty (expected the BMv2 JSON)")
    if _looks_like_json(data):
        return data
    wrapper = P4DeviceConfig()
    try:
        wrapper.ParseFromString(data)
    except DecodeError:
        raise DeviceConfigError("p4_device_config is neither a BMv2 JSON (it does not start with '{') nor a "
                                "p4.tmp.P4DeviceConfig message") from None
    if not wrapper.device_data:
        raise DeviceConfigError("p4_device_config is a p4.tmp.P4DeviceConfig without device_data (expected "
                                "the BMv2 JSON in device_data)")
    if not _looks_like_json(wrapper.device_data):
        raise DeviceConfigError("p4_device_config is a p4.tmp.P4DeviceConfig whose device_data is not a BMv2 "
                                "JSON (it does not start with '{')")
    log.warning("p4.tmp.P4DeviceConfig is deprecated: send the BMv2 JSON bare in p4_device_config")
    return bytes(wrapper.device_data)
