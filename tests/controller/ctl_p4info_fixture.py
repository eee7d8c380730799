"""A small hand-written P4Info used by the controller unit tests (no compiler needed)."""

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

P4INFO_TEXT = """
tables {
  preamble { id: 33554433 name: "MyIngress.flow_forwarding" alias: "flow_forwarding" }
  match_fields { id: 1 name: "hdr.ipv4.src_addr" bitwidth: 32 match_type: EXACT }
  match_fields { id: 2 name: "hdr.ipv4.dst_addr" bitwidth: 32 match_type: EXACT }
  match_fields { id: 3 name: "meta.l4_sport" bitwidth: 16 match_type: EXACT }
  action_refs { id: 16777217 }
  size: 1024
}
tables {
  preamble { id: 33554434 name: "MyIngress.ipv4_lpm" alias: "ipv4_lpm" }
  match_fields { id: 1 name: "hdr.ipv4.dst_addr" bitwidth: 32 match_type: LPM }
  action_refs { id: 16777217 }
  size: 64
}
tables {
  preamble { id: 33554435 name: "MyIngress.acl" alias: "acl" }
  match_fields { id: 1 name: "hdr.ethernet.dst_addr" bitwidth: 48 match_type: TERNARY }
  action_refs { id: 16777217 }
  size: 64
}
actions {
  preamble { id: 16777217 name: "MyIngress.set_egress" alias: "set_egress" }
  params { id: 1 name: "port" bitwidth: 9 }
  params { id: 2 name: "dmac" bitwidth: 48 }
}
registers {
  preamble { id: 369098753 name: "MyIngress.tcp_next_seq_fwd" alias: "tcp_next_seq_fwd" }
  type_spec { bitstring { bit { bitwidth: 32 } } }
  size: 1024
}
counters {
  preamble { id: 302120961 name: "MyIngress.flow_packets" alias: "flow_packets" }
  spec { unit: BOTH }
  size: 1024
}
digests {
  preamble { id: 385875969 name: "new_flow_t" alias: "new_flow_t" }
  type_spec { struct { name: "new_flow_t" } }
}
controller_packet_metadata {
  preamble { id: 67146229 name: "packet_in" alias: "packet_in" }
  metadata { id: 1 name: "ingress_port" bitwidth: 9 }
  metadata { id: 2 name: "reason" bitwidth: 8 }
}
controller_packet_metadata {
  preamble { id: 67121543 name: "packet_out" alias: "packet_out" }
  metadata { id: 1 name: "egress_port" bitwidth: 9 }
  metadata { id: 2 name: "opcode" bitwidth: 8 }
}
type_info {
  structs {
    key: "new_flow_t"
    value {
      members { name: "slot" type_spec { bitstring { bit { bitwidth: 16 } } } }
      members { name: "src_addr" type_spec { bitstring { bit { bitwidth: 32 } } } }
    }
  }
}
"""


def make_p4info() -> p4info_pb2.P4Info:
    info = p4info_pb2.P4Info()
    text_format.Merge(P4INFO_TEXT, info)
    return info
