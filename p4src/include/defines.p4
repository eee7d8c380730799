/*
 * flowmig: types and constants shared by the P4 programs (flow_nic.p4, gateway.p4).
 *
 * Every number the controller must agree on lives here and is documented in docs/dataplane.md:
 * ports, ethertypes, packet-out modes, packet-in reasons, command opcodes and status codes,
 * reference kinds, slot flags, TCP phases, drop reasons and event indexes.
 */
#ifndef FLOWMIG_DEFINES_P4
#define FLOWMIG_DEFINES_P4

typedef bit<9>  port_num_t;
typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;
typedef bit<16> l4_port_t;
typedef bit<32> slot_id_t;     // index into the flow-state register arrays
typedef bit<24> qpn_t;         // RoCEv2 queue pair number
typedef bit<24> psn_t;         // RoCEv2 packet sequence number

// Ports. The CPU port is the P4Runtime PacketIn/PacketOut port (simple_switch_grpc --cpu-port 255).
const port_num_t CPU_PORT  = 255;
const port_num_t DROP_PORT = 511;
const bit<32>    MAX_PORTS = 512;   // size of every per-port array (index = port number)

// Ethertypes and protocols.
const bit<16> ETHERTYPE_IPV4    = 0x0800;
const bit<16> ETHERTYPE_FLOWMIG = 0x88B5;   // IEEE 802 local experimental ethertype 1
const bit<16> ETHERTYPE_FLOWMIG_BATCH = 0x88B6;   // local experimental ethertype 2: a command batch
const bit<8>  IP_PROTO_TCP      = 6;
const bit<8>  IP_PROTO_UDP      = 17;
const bit<16> ROCE_UDP_PORT     = 4791;     // RoCEv2: UDP destination port of every BTH packet

// packet_out.mode: what the pipeline does with a packet the controller injects.
const bit<8> PACKET_OUT_DIRECT  = 0;   // send the frame out of packet_out.egress_port as is
const bit<8> PACKET_OUT_FORWARD = 1;   // forward as if it arrived on packet_out.ingress_port,
                                       // bypassing per-flow suspension (replay of buffered packets)

// Command batches: at most this many commands in one frame, executed one per pipeline pass.
#define FLOWMIG_BATCH_MAX 16
// standard_metadata.instance_type of a recirculated packet (simple_switch's PKT_INSTANCE_TYPE_RECIRC)
const bit<32> PKT_INSTANCE_TYPE_RECIRC = 4;
// recirculate_preserving_field_list index of the command batch (see local_metadata_t.batch_next)
const bit<8> FL_BATCH = 1;

// packet_in.reason: why the pipeline sends a packet to the controller.
const bit<8> PACKET_IN_COMMAND_REPLY = 1;   // the reply to a flowmig command
const bit<8> PACKET_IN_SUSPENDED     = 2;   // a data packet of a suspended flow (lossless mode)
const bit<8> PACKET_IN_PATH_MARKER   = 3;   // NIC: a path marker reached ingress (all before it is done)
const bit<8> PACKET_IN_DRAIN_MARKER  = 4;   // gateway: a drain marker came out of a NIC (its path is empty)

// Path markers: the controller's quiesce probe, UDP 0.0.0.1:64027 -> 0.0.0.2:64027 (0.0.0.0/8 is never
// a host). A gateway sends one toward a NIC behind a suspended flow's packets; the NIC answers it to the
// controller from its ingress, where every packet ahead of it has already updated the flow state.
const ipv4_addr_t MARKER_DST_ADDR = 32w0x00000002;
const l4_port_t   MARKER_PORT     = 16w0xFA1B;
// Drain markers (UDP ... -> 0.0.0.2:64028): the NIC forwards one like data, untracked, behind every packet
// queued before it (its egress queue included); the gateway at the far end answers it to the controller.
// When it is back, the old path holds nothing of the flows sent into it before the suspension.
const l4_port_t   MARKER_DRAIN_PORT = 16w0xFA1C;

// flowmig command header.
const bit<8> FLOWMIG_VERSION = 1;
const bit<8> CMD_NOP     = 0;   // echo, reads nothing (liveness / round-trip probe)
const bit<8> CMD_SUSPEND = 1;   // freeze a slot's state (data packets pass, state is not updated)
const bit<8> CMD_SAVE    = 2;   // read a slot's state into the reply
const bit<8> CMD_LOAD    = 3;   // write a slot's key and state, mark it valid
const bit<8> CMD_RESUME  = 4;   // unfreeze a slot
const bit<8> CMD_CLEAR   = 5;   // release a slot (reply carries the state it had)

const bit<8> STATUS_OK           = 0;
const bit<8> STATUS_BAD_SLOT     = 1;   // slot >= FLOW_SLOTS
const bit<8> STATUS_NOT_FOUND    = 2;   // the slot holds no reference
const bit<8> STATUS_KEY_MISMATCH = 3;   // the slot holds a different reference
const bit<8> STATUS_SLOT_BUSY    = 4;   // LOAD onto a slot owned by a different reference
const bit<8> STATUS_BAD_KIND     = 5;   // LOAD with a kind other than TCP/UDP/RoCE
const bit<8> STATUS_BAD_OPCODE   = 6;
const bit<8> STATUS_BAD_VERSION  = 7;

// Reference kinds.
const bit<8> KIND_NONE = 0;
const bit<8> KIND_TCP  = 1;
const bit<8> KIND_UDP  = 2;
const bit<8> KIND_ROCE = 3;

// Flow-state table geometry and slot flags.
const bit<32>  FLOW_SLOTS     = 4096;
const slot_id_t NO_SLOT       = 0xFFFFFFFF;   // digest: the reference could not be given a slot
const bit<32>  UNTRACKED_FILTER_SIZE = 65536;  // bits of the untracked-connection Bloom filter
const bit<8>   SLOT_VALID     = 0x01;         // the slot is owned by exactly one reference
const bit<8>   SLOT_SUSPENDED = 0x02;         // data packets pass but do not touch the state

// Direction of a packet within its reference: FWD = sent by the (addr, port)-lower endpoint.
const bit<1> DIR_FWD = 0;
const bit<1> DIR_REV = 1;

// TCP connection phases (register tcp_phase).
const bit<8> TCP_PHASE_NONE         = 0;
const bit<8> TCP_PHASE_SYN_SENT     = 1;   // SYN seen
const bit<8> TCP_PHASE_SYN_RECEIVED = 2;   // SYN+ACK seen
const bit<8> TCP_PHASE_ESTABLISHED  = 3;   // ACK after SYN+ACK seen (or loaded by the controller)
const bit<8> TCP_PHASE_FIN_WAIT_FWD = 4;   // FWD endpoint sent FIN
const bit<8> TCP_PHASE_FIN_WAIT_REV = 5;   // REV endpoint sent FIN
const bit<8> TCP_PHASE_CLOSING      = 6;   // both endpoints sent FIN
const bit<8> TCP_PHASE_CLOSED       = 7;   // RST seen

// TCP flags (bits of tcp.flags).
const bit<8> TCP_FLAG_FIN = 0x01;
const bit<8> TCP_FLAG_SYN = 0x02;
const bit<8> TCP_FLAG_RST = 0x04;
const bit<8> TCP_FLAG_ACK = 0x10;

// Window tracking: the window-scale option is not parsed; a direction's scale defaults to the
// maximum RFC 7323 allows, so the bound never under-estimates a real window (see docs/dataplane.md).
const bit<8>  TCP_WSCALE_DEFAULT = 14;
const bit<8>  TCP_WSCALE_MAX     = 14;
const bit<32> TCP_WINDOW_FLOOR   = 65535;     // the bound is never smaller than this

// RoCEv2 BTH opcodes with special meaning (RC transport).
const bit<8> BTH_OP_RC_ACK        = 0x11;   // ACKNOWLEDGE: PSN is the acknowledged request PSN
const bit<8> BTH_OP_RC_ATOMIC_ACK = 0x12;   // ATOMIC ACKNOWLEDGE
const bit<8> BTH_OP_CNP           = 0x81;   // congestion notification: carries no sequence

// Digest receiver id for learned references.
const bit<32> FLOW_DIGEST_RECEIVER = 1;
const bit<8>  LEARN_EVENT_NEW       = 1;   // a new reference got a slot
const bit<8>  LEARN_EVENT_COLLISION = 2;   // a new reference found no free slot; it is untracked

// Drop reasons (index into the `drops` counter of each program).
const bit<32> DROP_NOT_IPV4              = 0;   // not an IPv4 frame (or unparsable)
const bit<32> DROP_NO_PORT_MAPPING       = 1;   // NIC: ingress port has no nic_ports entry
const bit<32> DROP_INVALID_UNKNOWN       = 2;   // NIC: mid-connection TCP packet, connection unknown
const bit<32> DROP_INVALID_WINDOW        = 3;   // NIC: TCP segment far outside the tracked window
const bit<32> DROP_COMMAND_NOT_FROM_CPU  = 4;   // a flowmig command arrived on a data port
const bit<32> DROP_NO_ROUTE              = 5;   // gateway: no ipv4_routes entry
const bit<32> DROP_NO_NIC                = 6;   // gateway: nic_group has no entry for the hash index
const bit<32> DROP_SUSPENDED             = 7;   // gateway: flow suspended in drop mode
const bit<32> DROP_BAD_PACKET_OUT        = 8;   // unknown packet_out mode / command on a gateway
const bit<32> DROP_FORGED_MARKER         = 9;   // gateway: a packet to MARKER_DST_ADDR from a data port
                                                // (only the controller sends path markers; drain markers
                                                // alone come in, from NIC-facing ports only, and go to
                                                // the controller)
const bit<32> DROP_REASONS               = 10;

// NIC tracking events (index into the NIC's `flow_events` counter).
const bit<32> EVENT_LEARNED             = 0;   // new reference given a slot
const bit<32> EVENT_COLLISION           = 1;   // no free slot: the packet passed untracked
const bit<32> EVENT_SUSPENDED_PASS      = 2;   // packet of a suspended slot passed, state untouched
const bit<32> EVENT_ROCE_OUT_OF_SEQ     = 3;   // RoCE request PSN != expected PSN
const bit<32> EVENT_TCP_REINCARNATED    = 4;   // SYN on a closed connection restarted its state
const bit<32> EVENT_COMMAND             = 5;   // flowmig commands executed (any status)
const bit<32> EVENT_COMMAND_ERROR       = 6;   // flowmig commands answered with status != OK
const bit<32> EVENT_AGED_OUT            = 7;   // an idle reference's slot was taken by a new one
const bit<32> FLOW_EVENTS               = 8;

// Idle references age out: a hash slot whose (unsuspended) occupant has seen no packet for the idle
// timeout counts as free for a new reference. The timeout is the default action of `flow_aging`
// (microseconds, as ingress_global_timestamp), which the controller may change.
const bit<48> IDLE_TIMEOUT_DEFAULT_US = 48w300000000;   // 5 minutes

// Gateway suspension modes (suspend_flow action parameter).
const bit<8> SUSPEND_PUNT = 1;   // lossless: send to the controller as PacketIn
const bit<8> SUSPEND_DROP = 2;   // drop and count
#define DRAIN_SLOTS 1024         // per-flow drain counters of the gateway (index 0: none)

#endif
