/*
 * flowmig: header types, the headers struct and the per-packet metadata shared by both programs.
 *
 * Byte layouts of the controller-facing headers (packet_in, packet_out, flowmig command) and of the
 * learn digest are part of the controller contract: docs/dataplane.md lists them with offsets.
 * Change them only together with that document and the controller's codecs.
 */
#ifndef FLOWMIG_HEADERS_P4
#define FLOWMIG_HEADERS_P4

#include "defines.p4"

// PacketIn metadata: prepended to every packet the pipeline sends to CPU_PORT (3 bytes).
@controller_header("packet_in")
header packet_in_header_t {
    port_num_t ingress_port;   // port the packet arrived on (original port for a suspended flow)
    bit<7>     _pad0;
    bit<8>     reason;         // PACKET_IN_*
}

// PacketOut metadata: prepended to every packet the controller injects on CPU_PORT (5 bytes).
@controller_header("packet_out")
header packet_out_header_t {
    port_num_t egress_port;    // PACKET_OUT_DIRECT: the port to send the frame out of
    bit<7>     _pad0;
    port_num_t ingress_port;   // PACKET_OUT_FORWARD: the port the frame is treated as arriving on
    bit<7>     _pad1;
    bit<8>     mode;           // PACKET_OUT_*
}

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<6>      dscp;
    bit<2>      ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

header tcp_t {
    l4_port_t src_port;
    l4_port_t dst_port;
    bit<32>   seq_no;
    bit<32>   ack_no;
    bit<4>    data_offset;   // header length in 32-bit words (options are not parsed)
    bit<4>    res;
    bit<8>    flags;         // CWR ECE URG ACK PSH RST SYN FIN
    bit<16>   window;
    bit<16>   checksum;
    bit<16>   urgent_ptr;
}

header udp_t {
    l4_port_t src_port;
    l4_port_t dst_port;
    bit<16>   length;
    bit<16>   checksum;
}

// InfiniBand Base Transport Header, carried by RoCEv2 in UDP (destination port 4791). 12 bytes.
header bth_t {
    bit<8>  opcode;
    bit<1>  solicited_event;
    bit<1>  mig_req;
    bit<2>  pad_count;
    bit<4>  transport_version;
    bit<16> partition_key;
    bit<1>  fecn;
    bit<1>  becn;
    bit<6>  reserved0;
    qpn_t   dest_qpn;
    bit<1>  ack_req;
    bit<7>  reserved1;
    psn_t   psn;
}

// flowmig command (ethertype ETHERTYPE_FLOWMIG, accepted from CPU_PORT; on a NIC's data port only a
// SAVE: a path save). 92 bytes.
// The same header is the request (controller -> switch, PacketOut) and the reply (PacketIn):
// the reply echoes the request with `status` set and, on success, the slot's key and state.
header flowmig_cmd_t {
    bit<8>      version;              //  0: FLOWMIG_VERSION
    bit<8>      opcode;               //  1: CMD_*
    bit<8>      status;               //  2: STATUS_* (reply)
    bit<8>      kind;                 //  3: KIND_*
    slot_id_t   slot;                 //  4
    bit<32>     request_id;           //  8: opaque to the switch, echoed
    ipv4_addr_t key_addr_lo;          // 12: reference key, as in the `flow_slots` table
    ipv4_addr_t key_addr_hi;          // 16
    l4_port_t   key_port_lo;          // 20
    l4_port_t   key_port_hi;          // 22
    bit<8>      key_proto;            // 24
    qpn_t       key_qpn;              // 25
    bit<8>      flags;                // 28: SLOT_VALID | SLOT_SUSPENDED
    bit<8>      tcp_phase;            // 29: TCP_PHASE_*
    bit<8>      tcp_wscale_fwd;       // 30
    bit<8>      tcp_wscale_rev;       // 31
    bit<32>     tcp_next_seq_fwd;     // 32
    bit<32>     tcp_next_seq_rev;     // 36
    bit<32>     tcp_max_ack_fwd;      // 40
    bit<32>     tcp_max_ack_rev;      // 44
    bit<16>     tcp_max_window_fwd;   // 48
    bit<16>     tcp_max_window_rev;   // 50
    bit<8>      _pad0;                // 52
    psn_t       roce_expected_psn;    // 53
    bit<8>      _pad1;                // 56
    psn_t       roce_acked_psn;       // 57
    bit<32>     roce_oos_count;       // 60
    bit<64>     packets;              // 64
    bit<64>     bytes;                // 72
    bit<48>     first_seen;           // 80: ingress_global_timestamp (microseconds)
    bit<48>     last_seen;            // 86
}

// flowmig command batch (ethertype ETHERTYPE_FLOWMIG_BATCH, only from CPU_PORT): this header, then
// `count` flowmig_cmd_t records. The NIC executes one record per pipeline pass: the first `done`
// records are replies already made (parsed opaquely into flowmig_done), the next is parsed as
// `flowmig` and executed, and the frame is recirculated until done == count; then the whole frame
// (every record now a reply, in request order) goes to the controller as one PacketIn.
header flowmig_batch_t {
    bit<8>      count;                // 0: 1..FLOWMIG_BATCH_MAX
    bit<8>      done;                 // 1: records executed so far
    bit<16>     _pad0;                // 2
}

// One executed record of a batch, carried unparsed (92 bytes).
header flowmig_raw_t {
    bit<736>    data;
}

struct headers_t {
    packet_out_header_t packet_out;
    packet_in_header_t  packet_in;
    ethernet_t          ethernet;
    flowmig_batch_t     flowmig_batch;
    flowmig_raw_t[FLOWMIG_BATCH_MAX] flowmig_done;
    flowmig_cmd_t       flowmig;
    ipv4_t              ipv4;
    tcp_t               tcp;
    udp_t               udp;
    bth_t               bth;
}

// Learn digest: one per newly seen reference (P4Info digest name: flow_learn_digest_t).
struct flow_learn_digest_t {
    bit<8>      event;          // LEARN_EVENT_*
    bit<8>      kind;           // KIND_*
    slot_id_t   slot;           // NO_SLOT for LEARN_EVENT_COLLISION
    ipv4_addr_t key_addr_lo;
    ipv4_addr_t key_addr_hi;
    l4_port_t   key_port_lo;
    l4_port_t   key_port_hi;
    bit<8>      key_proto;
    qpn_t       key_qpn;
    l4_port_t   l4_src_port;    // raw ports of the packet that triggered the digest
    l4_port_t   l4_dst_port;
    port_num_t  ingress_port;
}

// Per-packet metadata. Flat on purpose: every field is a plain bit<W> or bool.
struct local_metadata_t {
    // set by the parser
    l4_port_t   l4_src_port;
    l4_port_t   l4_dst_port;
    bit<8>      batch_skip;        // batch records still to parse as executed ones

    // command batch: the frame goes round again for its next record (egress recirculates it)
    @field_list(FL_BATCH)
    bool        batch_next;
    // NIC: the batch came in on a data port (a batched path save): every record must be a SAVE
    @field_list(FL_BATCH)
    bool        batch_from_port;

    // forwarding decisions (both programs)
    port_num_t  ingress_port;      // the port the packet counts as arriving on (see PACKET_OUT_FORWARD)
    bool        replay;            // injected by the controller with PACKET_OUT_FORWARD
    bool        is_command;        // a flowmig command from the controller
    bool        command_direct;    // ... sent PACKET_OUT_DIRECT: egress_spec is its port (gateway: a path save)
    bool        is_marker;         // NIC: a path marker (answered to the controller, not forwarded)
    bool        sent_direct;       // injected with PACKET_OUT_DIRECT: egress already chosen
    bool        punt;              // send to the controller (suspended flow, lossless mode)
    bool        drop;              // drop at the end of ingress, counted under drop_reason
    bit<32>     drop_reason;       // DROP_*

    // reference key (FlowKey)
    bit<8>      flow_kind;         // KIND_*, KIND_NONE: not a tracked packet
    bit<1>      flow_dir;          // DIR_FWD / DIR_REV
    ipv4_addr_t key_addr_lo;
    ipv4_addr_t key_addr_hi;
    l4_port_t   key_port_lo;
    l4_port_t   key_port_hi;
    bit<8>      key_proto;
    qpn_t       key_qpn;
    bit<32>     key_ports;         // key_port_lo ++ key_port_hi, as stored in slot_key_ports
    bit<32>     key_proto_qpn;     // key_proto ++ key_qpn, as stored in slot_key_proto_qpn

    // gateway
    bool        via_nics;          // ipv4_routes chose the NIC group
    bit<16>     nic_index;         // symmetric hash of the key, in [0, group_size)
    bool        suspended;         // flow_forwarding chose suspend_flow
    bit<8>      suspend_mode;      // SUSPEND_*
    port_num_t  suspend_port;      // where a replayed packet of a suspended flow goes
    bool        draining;          // flow_forwarding chose forward_after_drain
    bit<32>     drain_index;       // the flow's drain counters (0: none)
    bit<32>     drain_punted_n;
    bit<32>     drain_replayed_n;

    // NIC: slot lookup
    slot_id_t   slot;
    bool        slot_found;        // slot holds this reference
    bool        slot_free;         // slot is free and may be given to this reference
    slot_id_t   hash_slot1;
    slot_id_t   hash_slot2;
    bit<8>      probe_flags;
    bit<8>      probe_kind;
    bit<32>     probe_addr_lo;
    bit<32>     probe_addr_hi;
    bit<32>     probe_ports;
    bit<32>     probe_proto_qpn;
    slot_id_t   untracked_index1;  // untracked_filter positions of this key
    slot_id_t   untracked_index2;
    bit<1>      untracked_bit1;
    bit<1>      untracked_bit2;
    bool        probe_match;       // probed slot is valid and holds this key
    bool        probe_free;        // probed slot is not valid, or its occupant is idle (aged out)
    bool        probe_aged;        // probed slot is valid but its occupant idle past the timeout
    bit<48>     probe_last_seen;
    bit<48>     idle_timeout;      // from flow_aging
    bool        slot_aged;         // the free slot chosen for a new reference held an idle one
    bool        may_open;          // this packet may open a new reference (TCP: a pure SYN)
    bit<8>      learn_event;       // LEARN_EVENT_* of the digest being sent
    bool        learned;           // this packet opened the reference at meta.slot
    bool        tcp_reincarnated;  // a SYN restarted a closed connection
    bool        roce_out_of_seq;   // a request PSN was not the expected one

    // NIC: working copy of one slot's state (fetch_state / store_state)
    bit<8>      st_flags;
    bit<8>      st_kind;
    bit<32>     st_addr_lo;
    bit<32>     st_addr_hi;
    bit<32>     st_ports;
    bit<32>     st_proto_qpn;
    bit<64>     st_packets;
    bit<64>     st_bytes;
    bit<48>     st_first_seen;
    bit<48>     st_last_seen;
    bit<8>      st_tcp_phase;
    bit<32>     st_tcp_next_seq_fwd;
    bit<32>     st_tcp_next_seq_rev;
    bit<32>     st_tcp_max_ack_fwd;
    bit<32>     st_tcp_max_ack_rev;
    bit<16>     st_tcp_max_window_fwd;
    bit<16>     st_tcp_max_window_rev;
    bit<8>      st_tcp_wscale_fwd;
    bit<8>      st_tcp_wscale_rev;
    psn_t       st_roce_expected_psn;
    psn_t       st_roce_acked_psn;
    bit<32>     st_roce_oos_count;

    // NIC: TCP tracking, seen from the sender of this packet ("self") and its peer
    bit<32>     tcp_payload_len;
    bit<32>     tcp_seg_end;       // seq + payload + SYN + FIN
    bit<32>     tcp_self_next_seq;
    bit<32>     tcp_self_max_ack;
    bit<16>     tcp_self_max_window;
    bit<16>     tcp_peer_max_window;
    bit<8>      tcp_peer_wscale;
    bit<32>     tcp_window_bound;
    bit<32>     tcp_seq_distance;

    // egress telemetry scratch
    bit<64>     queue_delay_sum;
    bit<32>     queue_depth_max;

    // NIC: flowmig command
    bit<8>      cmd_status;
    bool        cmd_key_match;
}

#endif
