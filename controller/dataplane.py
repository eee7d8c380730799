"""The data-plane contract on the controller's side: the numbers and layouts of p4src/include/.

Every constant here carries the name it has in ``p4src/include/defines.p4`` (``#define`` or
``const``), the command header is ``flowmig_cmd_t`` of ``headers.p4`` field by field (name, bits),
and the hash inputs are ``compute_hash_slots`` of ``flow_state.p4`` in their order. The controller's
modules (``commands``, ``gateway``, ``nic``) take them from here; what a device's P4Info states (register
and table sizes) the drivers read from the P4Info instead. tests/contract/test_dataplane_contract.py
parses the P4 sources and fails when this module disagrees with them.
"""

from __future__ import annotations

# ---- ports, ethertypes -------------------------------------------------------------------------------
CPU_PORT = 255
ETHERTYPE_FLOWMIG = 0x88B5
ETHERTYPE_FLOWMIG_BATCH = 0x88B6
ROCE_UDP_PORT = 4791

# ---- packet_out.mode / packet_in.reason ----------------------------------------------------------------
PACKET_OUT_DIRECT = 0
PACKET_OUT_FORWARD = 1
PACKET_IN_COMMAND_REPLY = 1
PACKET_IN_SUSPENDED = 2
PACKET_IN_PATH_MARKER = 3
PACKET_IN_DRAIN_MARKER = 4

# ---- path / drain markers (UDP 0.0.0.1 -> 0.0.0.2) -----------------------------------------------------
MARKER_DST_ADDR = 0x00000002
MARKER_PORT = 0xFA1B
MARKER_DRAIN_PORT = 0xFA1C
DROP_FORGED_MARKER = 9           # gateway drops: a marker-addressed packet from a port (not ours)

# ---- flowmig commands ----------------------------------------------------------------------------------
FLOWMIG_VERSION = 1
FLOWMIG_BATCH_MAX = 16            # records in one command batch frame
CMD_NOP, CMD_SUSPEND, CMD_SAVE, CMD_LOAD, CMD_RESUME, CMD_CLEAR = 0, 1, 2, 3, 4, 5
STATUS_OK = 0
STATUS_BAD_SLOT = 1
STATUS_NOT_FOUND = 2
STATUS_KEY_MISMATCH = 3
STATUS_SLOT_BUSY = 4
STATUS_BAD_KIND = 5
STATUS_BAD_OPCODE = 6
STATUS_BAD_VERSION = 7
KIND_NONE, KIND_TCP, KIND_UDP, KIND_ROCE = 0, 1, 2, 3

# ---- the NIC's flow state --------------------------------------------------------------------------------
FLOW_SLOTS = 4096                 # the default; a driver reads the device's register size from P4Info
SLOT_VALID = 0x01
SLOT_SUSPENDED = 0x02
TCP_PHASE_ESTABLISHED = 3

# ---- the gateway ------------------------------------------------------------------------------------------
SUSPEND_PUNT = 1
SUSPEND_DROP = 2
DRAIN_SLOTS = 1024                # the default; a driver reads the device's register size from P4Info

# ---- layouts -------------------------------------------------------------------------------------------------
# headers.p4 flowmig_cmd_t: (field, bits), in wire order; "_pad*" fields are zero.
COMMAND_FIELDS: tuple[tuple[str, int], ...] = (
    ("version", 8), ("opcode", 8), ("status", 8), ("kind", 8), ("slot", 32), ("request_id", 32),
    ("key_addr_lo", 32), ("key_addr_hi", 32), ("key_port_lo", 16), ("key_port_hi", 16), ("key_proto", 8),
    ("key_qpn", 24), ("flags", 8), ("tcp_phase", 8), ("tcp_wscale_fwd", 8), ("tcp_wscale_rev", 8),
    ("tcp_next_seq_fwd", 32), ("tcp_next_seq_rev", 32), ("tcp_max_ack_fwd", 32), ("tcp_max_ack_rev", 32),
    ("tcp_max_window_fwd", 16), ("tcp_max_window_rev", 16), ("_pad0", 8), ("roce_expected_psn", 24),
    ("_pad1", 8), ("roce_acked_psn", 24), ("roce_oos_count", 32), ("packets", 64), ("bytes", 64),
    ("first_seen", 48), ("last_seen", 48),
)
COMMAND_LEN = sum(bits for _, bits in COMMAND_FIELDS) // 8          # 92 bytes
# headers.p4 flowmig_batch_t: (field, bits)
BATCH_HEADER_FIELDS: tuple[tuple[str, int], ...] = (("count", 8), ("done", 8), ("_pad0", 16))

# flow_state.p4 compute_hash_slots: the key fields hashed (as Command fields; the P4 names them
# meta.flow_kind, meta.key_*), in order — slot 1 by crc32, slot 2 by crc16, both modulo FLOW_SLOTS.
HASH_SLOT1_FIELDS = ("kind", "key_addr_lo", "key_addr_hi", "key_port_lo", "key_port_hi", "key_proto", "key_qpn")
HASH_SLOT2_FIELDS = tuple(reversed(HASH_SLOT1_FIELDS))
HASH_SLOT1_ALGO, HASH_SLOT2_ALGO = "crc32", "crc16"

FIELD_BITS: dict[str, int] = dict(COMMAND_FIELDS)
