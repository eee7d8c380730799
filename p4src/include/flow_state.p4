/*
 * flowmig: the NIC's per-reference state, its data-plane learning and tracking, and the in-band
 * commands (suspend, save, load, resume, clear) that read and write it.
 *
 * One control owns every flow-state register, because both the data path and the command path must
 * reach them. Invariants:
 *   - a slot is owned by at most one reference: slot_flags has SLOT_VALID and the slot_key_*
 *     registers hold that reference's key; every access checks the key before using the state;
 *   - a reference lives at the slot its `flow_slots` entry names (controller-placed) or else at one of
 *     its two hash slots (learned); when both hash slots belong to others the reference is not
 *     tracked at all (counted as a collision) rather than sharing state;
 *   - a suspended slot's state does not change: its packets pass untouched by tracking;
 *   - the switch runs one packet at a time, so a command packet is atomic with respect to data.
 * Register layouts, digest and command semantics: docs/dataplane.md.
 */
#ifndef FLOWMIG_FLOW_STATE_P4
#define FLOWMIG_FLOW_STATE_P4

#include "headers.p4"
#include "tcp_tracking.p4"
#include "roce_tracking.p4"

control FlowState(inout headers_t hdr,
                  inout local_metadata_t meta,
                  inout standard_metadata_t std) {

    // ---- slot ownership: which reference a slot holds ----
    register<bit<8>>(FLOW_SLOTS)  slot_flags;           // SLOT_VALID | SLOT_SUSPENDED
    register<bit<8>>(FLOW_SLOTS)  slot_kind;            // KIND_*
    register<bit<32>>(FLOW_SLOTS) slot_key_addr_lo;
    register<bit<32>>(FLOW_SLOTS) slot_key_addr_hi;
    register<bit<32>>(FLOW_SLOTS) slot_key_ports;       // port_lo << 16 | port_hi
    register<bit<32>>(FLOW_SLOTS) slot_key_proto_qpn;   // proto << 24 | qpn

    // ---- every kind: traffic seen ----
    register<bit<64>>(FLOW_SLOTS) flow_packets;
    register<bit<64>>(FLOW_SLOTS) flow_bytes;
    register<bit<48>>(FLOW_SLOTS) flow_first_seen;      // ingress_global_timestamp, microseconds
    register<bit<48>>(FLOW_SLOTS) flow_last_seen;

    // ---- TCP: per direction (fwd = sent by the key's lo endpoint, rev = sent by hi) ----
    register<bit<8>>(FLOW_SLOTS)  tcp_phase;            // TCP_PHASE_*
    register<bit<32>>(FLOW_SLOTS) tcp_next_seq_fwd;     // end of the highest segment sent
    register<bit<32>>(FLOW_SLOTS) tcp_next_seq_rev;
    register<bit<32>>(FLOW_SLOTS) tcp_max_ack_fwd;      // highest acknowledgment sent
    register<bit<32>>(FLOW_SLOTS) tcp_max_ack_rev;
    register<bit<16>>(FLOW_SLOTS) tcp_max_window_fwd;   // largest raw window advertised (not in SYNs)
    register<bit<16>>(FLOW_SLOTS) tcp_max_window_rev;
    register<bit<8>>(FLOW_SLOTS)  tcp_wscale_fwd;       // window scale applied to tcp_max_window_fwd
    register<bit<8>>(FLOW_SLOTS)  tcp_wscale_rev;

    // ---- RoCEv2 queue pair ----
    register<bit<24>>(FLOW_SLOTS) roce_expected_psn;    // PSN of the next request packet
    register<bit<24>>(FLOW_SLOTS) roce_acked_psn;       // PSN carried by the last ACK
    register<bit<32>>(FLOW_SLOTS) roce_oos_count;       // requests whose PSN was not the expected one
    // Not state, not key: the UDP source port of a queue pair's last packet (RoCEv2 QPs are keyed
    // without ports, but the gateways' entries need the 5-tuple). 0 until the QP's first packet here.
    register<bit<16>>(FLOW_SLOTS) roce_udp_sport;

    // Bloom filter of TCP connections passed untracked for lack of a slot: once a connection has
    // been let through untracked it keeps passing, even after a slot frees up (no set bit is ever
    // cleared by the data plane; a false positive only lets an invalid packet through).
    register<bit<1>>(UNTRACKED_FILTER_SIZE) untracked_filter;

    counter(FLOW_EVENTS, CounterType.packets) flow_events;   // indexed by EVENT_*
    direct_counter(CounterType.packets_and_bytes) flow_slots_counter;

    TcpTracking() tcp_tracking;
    RoceTracking() roce_tracking;

    // ---- lookup ----

    action use_slot(slot_id_t slot) {
        meta.slot = slot;
        flow_slots_counter.count();
    }

    action use_hash_slots() {
        flow_slots_counter.count();
    }

    // Controller-placed references (loaded on migration, or placed after a collision).
    table flow_slots {
        key = {
            meta.flow_kind   : exact @name("kind");
            meta.key_addr_lo : exact @name("addr_lo");
            meta.key_addr_hi : exact @name("addr_hi");
            meta.key_port_lo : exact @name("port_lo");
            meta.key_port_hi : exact @name("port_hi");
            meta.key_proto   : exact @name("proto");
            meta.key_qpn     : exact @name("qpn");
        }
        actions = {
            use_slot;
            @defaultonly use_hash_slots;
        }
        const default_action = use_hash_slots();
        counters = flow_slots_counter;
        size = FLOW_SLOTS;
    }

    // ---- aging: how long an idle reference keeps its slot against a new one ----
    direct_counter(CounterType.packets) flow_aging_counter;

    action set_idle_timeout(bit<48> idle_us) {
        meta.idle_timeout = idle_us;
        flow_aging_counter.count();
    }

    table flow_aging {
        actions = { set_idle_timeout; }
        default_action = set_idle_timeout(IDLE_TIMEOUT_DEFAULT_US);
        counters = flow_aging_counter;
        size = 1;
    }

    action compute_hash_slots() {
        hash(meta.hash_slot1, HashAlgorithm.crc32, (bit<32>)0,
             { meta.flow_kind, meta.key_addr_lo, meta.key_addr_hi, meta.key_port_lo,
               meta.key_port_hi, meta.key_proto, meta.key_qpn },
             FLOW_SLOTS);
        hash(meta.hash_slot2, HashAlgorithm.crc16, (bit<32>)0,
             { meta.key_qpn, meta.key_proto, meta.key_port_hi, meta.key_port_lo,
               meta.key_addr_hi, meta.key_addr_lo, meta.flow_kind },
             FLOW_SLOTS);
    }

    action compute_filter_indexes() {
        hash(meta.untracked_index1, HashAlgorithm.crc32, (bit<32>)0,
             { meta.key_addr_lo, meta.key_addr_hi, meta.key_port_lo, meta.key_port_hi, meta.key_proto },
             UNTRACKED_FILTER_SIZE);
        hash(meta.untracked_index2, HashAlgorithm.crc16, (bit<32>)0,
             { meta.key_port_hi, meta.key_port_lo, meta.key_addr_hi, meta.key_addr_lo, meta.key_proto },
             UNTRACKED_FILTER_SIZE);
    }

    action mark_untracked_filter() {
        untracked_filter.write(meta.untracked_index1, 1);
        untracked_filter.write(meta.untracked_index2, 1);
    }

    action read_untracked_filter() {
        untracked_filter.read(meta.untracked_bit1, meta.untracked_index1);
        untracked_filter.read(meta.untracked_bit2, meta.untracked_index2);
    }

    // Reads the owner of `slot` and compares it with this packet's key.
    action probe_slot(slot_id_t slot) {
        slot_flags.read(meta.probe_flags, slot);
        slot_kind.read(meta.probe_kind, slot);
        slot_key_addr_lo.read(meta.probe_addr_lo, slot);
        slot_key_addr_hi.read(meta.probe_addr_hi, slot);
        slot_key_ports.read(meta.probe_ports, slot);
        slot_key_proto_qpn.read(meta.probe_proto_qpn, slot);
        flow_last_seen.read(meta.probe_last_seen, slot);
        meta.probe_aged = (meta.probe_flags & (SLOT_VALID | SLOT_SUSPENDED)) == SLOT_VALID
                          && std.ingress_global_timestamp - meta.probe_last_seen > meta.idle_timeout;
        meta.probe_free = (meta.probe_flags & SLOT_VALID) == 0 || meta.probe_aged;
        meta.probe_match = (meta.probe_flags & SLOT_VALID) != 0
                           && meta.probe_kind == meta.flow_kind
                           && meta.probe_addr_lo == meta.key_addr_lo
                           && meta.probe_addr_hi == meta.key_addr_hi
                           && meta.probe_ports == meta.key_ports
                           && meta.probe_proto_qpn == meta.key_proto_qpn;
    }

    // ---- whole-slot state transfer between registers and meta.st_* ----

    action fetch_state(slot_id_t slot) {
        slot_flags.read(meta.st_flags, slot);
        slot_kind.read(meta.st_kind, slot);
        slot_key_addr_lo.read(meta.st_addr_lo, slot);
        slot_key_addr_hi.read(meta.st_addr_hi, slot);
        slot_key_ports.read(meta.st_ports, slot);
        slot_key_proto_qpn.read(meta.st_proto_qpn, slot);
        flow_packets.read(meta.st_packets, slot);
        flow_bytes.read(meta.st_bytes, slot);
        flow_first_seen.read(meta.st_first_seen, slot);
        flow_last_seen.read(meta.st_last_seen, slot);
        tcp_phase.read(meta.st_tcp_phase, slot);
        tcp_next_seq_fwd.read(meta.st_tcp_next_seq_fwd, slot);
        tcp_next_seq_rev.read(meta.st_tcp_next_seq_rev, slot);
        tcp_max_ack_fwd.read(meta.st_tcp_max_ack_fwd, slot);
        tcp_max_ack_rev.read(meta.st_tcp_max_ack_rev, slot);
        tcp_max_window_fwd.read(meta.st_tcp_max_window_fwd, slot);
        tcp_max_window_rev.read(meta.st_tcp_max_window_rev, slot);
        tcp_wscale_fwd.read(meta.st_tcp_wscale_fwd, slot);
        tcp_wscale_rev.read(meta.st_tcp_wscale_rev, slot);
        roce_expected_psn.read(meta.st_roce_expected_psn, slot);
        roce_acked_psn.read(meta.st_roce_acked_psn, slot);
        roce_oos_count.read(meta.st_roce_oos_count, slot);
    }

    action store_state(slot_id_t slot) {
        slot_flags.write(slot, meta.st_flags);
        slot_kind.write(slot, meta.st_kind);
        slot_key_addr_lo.write(slot, meta.st_addr_lo);
        slot_key_addr_hi.write(slot, meta.st_addr_hi);
        slot_key_ports.write(slot, meta.st_ports);
        slot_key_proto_qpn.write(slot, meta.st_proto_qpn);
        flow_packets.write(slot, meta.st_packets);
        flow_bytes.write(slot, meta.st_bytes);
        flow_first_seen.write(slot, meta.st_first_seen);
        flow_last_seen.write(slot, meta.st_last_seen);
        tcp_phase.write(slot, meta.st_tcp_phase);
        tcp_next_seq_fwd.write(slot, meta.st_tcp_next_seq_fwd);
        tcp_next_seq_rev.write(slot, meta.st_tcp_next_seq_rev);
        tcp_max_ack_fwd.write(slot, meta.st_tcp_max_ack_fwd);
        tcp_max_ack_rev.write(slot, meta.st_tcp_max_ack_rev);
        tcp_max_window_fwd.write(slot, meta.st_tcp_max_window_fwd);
        tcp_max_window_rev.write(slot, meta.st_tcp_max_window_rev);
        tcp_wscale_fwd.write(slot, meta.st_tcp_wscale_fwd);
        tcp_wscale_rev.write(slot, meta.st_tcp_wscale_rev);
        roce_expected_psn.write(slot, meta.st_roce_expected_psn);
        roce_acked_psn.write(slot, meta.st_roce_acked_psn);
        roce_oos_count.write(slot, meta.st_roce_oos_count);
    }

    // Protocol state of a fresh reference (key and counters are set by the caller).
    action reset_protocol_state() {
        meta.st_tcp_phase = TCP_PHASE_NONE;
        meta.st_tcp_next_seq_fwd = 0;
        meta.st_tcp_next_seq_rev = 0;
        meta.st_tcp_max_ack_fwd = 0;
        meta.st_tcp_max_ack_rev = 0;
        meta.st_tcp_max_window_fwd = 0;
        meta.st_tcp_max_window_rev = 0;
        meta.st_tcp_wscale_fwd = TCP_WSCALE_DEFAULT;
        meta.st_tcp_wscale_rev = TCP_WSCALE_DEFAULT;
        meta.st_roce_expected_psn = 0;
        meta.st_roce_acked_psn = 0;
        meta.st_roce_oos_count = 0;
    }

    action set_state_key_from_packet() {
        meta.st_kind = meta.flow_kind;
        meta.st_addr_lo = meta.key_addr_lo;
        meta.st_addr_hi = meta.key_addr_hi;
        meta.st_ports = meta.key_ports;
        meta.st_proto_qpn = meta.key_proto_qpn;
    }

    action clear_state() {
        meta.st_flags = 0;
        meta.st_kind = KIND_NONE;
        meta.st_addr_lo = 0;
        meta.st_addr_hi = 0;
        meta.st_ports = 0;
        meta.st_proto_qpn = 0;
        meta.st_packets = 0;
        meta.st_bytes = 0;
        meta.st_first_seen = 0;
        meta.st_last_seen = 0;
        meta.st_tcp_phase = TCP_PHASE_NONE;
        meta.st_tcp_next_seq_fwd = 0;
        meta.st_tcp_next_seq_rev = 0;
        meta.st_tcp_max_ack_fwd = 0;
        meta.st_tcp_max_ack_rev = 0;
        meta.st_tcp_max_window_fwd = 0;
        meta.st_tcp_max_window_rev = 0;
        meta.st_tcp_wscale_fwd = 0;
        meta.st_tcp_wscale_rev = 0;
        meta.st_roce_expected_psn = 0;
        meta.st_roce_acked_psn = 0;
        meta.st_roce_oos_count = 0;
    }

    action count_packet() {
        meta.st_packets = meta.st_packets + 1;
        meta.st_bytes = meta.st_bytes + (bit<64>)std.packet_length;
        meta.st_last_seen = std.ingress_global_timestamp;
    }

    // The digest lists metadata fields only (meta.learn_event and meta.slot are set by the caller).
    action send_learn_digest() {
        digest<flow_learn_digest_t>(FLOW_DIGEST_RECEIVER,
            { meta.learn_event, meta.flow_kind, meta.slot, meta.key_addr_lo, meta.key_addr_hi,
              meta.key_port_lo, meta.key_port_hi, meta.key_proto, meta.key_qpn,
              meta.l4_src_port, meta.l4_dst_port, meta.ingress_port });
    }

    action drop_invalid(bit<32> reason) {
        meta.drop = true;
        meta.drop_reason = reason;
    }

    // ---- commands ----

    action command_key_to_packet_key() {
        meta.flow_kind = hdr.flowmig.kind;
        meta.key_addr_lo = hdr.flowmig.key_addr_lo;
        meta.key_addr_hi = hdr.flowmig.key_addr_hi;
        meta.key_port_lo = hdr.flowmig.key_port_lo;
        meta.key_port_hi = hdr.flowmig.key_port_hi;
        meta.key_proto = hdr.flowmig.key_proto;
        meta.key_qpn = hdr.flowmig.key_qpn;
        meta.key_ports = ((bit<32>)hdr.flowmig.key_port_lo << 16) | (bit<32>)hdr.flowmig.key_port_hi;
        meta.key_proto_qpn = ((bit<32>)hdr.flowmig.key_proto << 24) | (bit<32>)hdr.flowmig.key_qpn;
    }

    action command_to_state() {
        meta.st_kind = meta.flow_kind;
        meta.st_addr_lo = meta.key_addr_lo;
        meta.st_addr_hi = meta.key_addr_hi;
        meta.st_ports = meta.key_ports;
        meta.st_proto_qpn = meta.key_proto_qpn;
        meta.st_flags = SLOT_VALID | (hdr.flowmig.flags & SLOT_SUSPENDED);
        meta.st_packets = hdr.flowmig.packets;
        meta.st_bytes = hdr.flowmig.bytes;
        meta.st_first_seen = hdr.flowmig.first_seen;
        meta.st_last_seen = hdr.flowmig.last_seen;
        meta.st_tcp_phase = hdr.flowmig.tcp_phase;
        meta.st_tcp_next_seq_fwd = hdr.flowmig.tcp_next_seq_fwd;
        meta.st_tcp_next_seq_rev = hdr.flowmig.tcp_next_seq_rev;
        meta.st_tcp_max_ack_fwd = hdr.flowmig.tcp_max_ack_fwd;
        meta.st_tcp_max_ack_rev = hdr.flowmig.tcp_max_ack_rev;
        meta.st_tcp_max_window_fwd = hdr.flowmig.tcp_max_window_fwd;
        meta.st_tcp_max_window_rev = hdr.flowmig.tcp_max_window_rev;
        meta.st_tcp_wscale_fwd = hdr.flowmig.tcp_wscale_fwd;
        meta.st_tcp_wscale_rev = hdr.flowmig.tcp_wscale_rev;
        meta.st_roce_expected_psn = hdr.flowmig.roce_expected_psn;
        meta.st_roce_acked_psn = hdr.flowmig.roce_acked_psn;
        meta.st_roce_oos_count = hdr.flowmig.roce_oos_count;
    }

    action state_to_command() {
        hdr.flowmig.kind = meta.st_kind;
        hdr.flowmig.key_addr_lo = meta.st_addr_lo;
        hdr.flowmig.key_addr_hi = meta.st_addr_hi;
        hdr.flowmig.key_port_lo = meta.st_ports[31:16];
        hdr.flowmig.key_port_hi = meta.st_ports[15:0];
        hdr.flowmig.key_proto = meta.st_proto_qpn[31:24];
        hdr.flowmig.key_qpn = meta.st_proto_qpn[23:0];
        hdr.flowmig.flags = meta.st_flags;
        hdr.flowmig.tcp_phase = meta.st_tcp_phase;
        hdr.flowmig.tcp_wscale_fwd = meta.st_tcp_wscale_fwd;
        hdr.flowmig.tcp_wscale_rev = meta.st_tcp_wscale_rev;
        hdr.flowmig.tcp_next_seq_fwd = meta.st_tcp_next_seq_fwd;
        hdr.flowmig.tcp_next_seq_rev = meta.st_tcp_next_seq_rev;
        hdr.flowmig.tcp_max_ack_fwd = meta.st_tcp_max_ack_fwd;
        hdr.flowmig.tcp_max_ack_rev = meta.st_tcp_max_ack_rev;
        hdr.flowmig.tcp_max_window_fwd = meta.st_tcp_max_window_fwd;
        hdr.flowmig.tcp_max_window_rev = meta.st_tcp_max_window_rev;
        hdr.flowmig._pad0 = 0;
        hdr.flowmig.roce_expected_psn = meta.st_roce_expected_psn;
        hdr.flowmig._pad1 = 0;
        hdr.flowmig.roce_acked_psn = meta.st_roce_acked_psn;
        hdr.flowmig.roce_oos_count = meta.st_roce_oos_count;
        hdr.flowmig.packets = meta.st_packets;
        hdr.flowmig.bytes = meta.st_bytes;
        hdr.flowmig.first_seen = meta.st_first_seen;
        hdr.flowmig.last_seen = meta.st_last_seen;
    }

    apply {
        if (hdr.flowmig.isValid()) {
            // ================= in-band command (only reaches here from CPU_PORT) =================
            flow_events.count(EVENT_COMMAND);
            meta.cmd_status = STATUS_OK;
            if (hdr.flowmig.version != FLOWMIG_VERSION) {
                meta.cmd_status = STATUS_BAD_VERSION;
            } else if (hdr.flowmig.opcode == CMD_NOP) {
                meta.cmd_status = STATUS_OK;
            } else if (hdr.flowmig.opcode > CMD_CLEAR) {
                meta.cmd_status = STATUS_BAD_OPCODE;
            } else if (hdr.flowmig.slot >= FLOW_SLOTS) {
                meta.cmd_status = STATUS_BAD_SLOT;
            } else {
                command_key_to_packet_key();
                fetch_state(hdr.flowmig.slot);
                meta.cmd_key_match = meta.st_kind == meta.flow_kind
                                     && meta.st_addr_lo == meta.key_addr_lo
                                     && meta.st_addr_hi == meta.key_addr_hi
                                     && meta.st_ports == meta.key_ports
                                     && meta.st_proto_qpn == meta.key_proto_qpn;
                if (hdr.flowmig.opcode == CMD_LOAD) {
                    if (hdr.flowmig.kind != KIND_TCP && hdr.flowmig.kind != KIND_UDP
                        && hdr.flowmig.kind != KIND_ROCE) {
                        meta.cmd_status = STATUS_BAD_KIND;
                    } else if ((meta.st_flags & SLOT_VALID) != 0 && !meta.cmd_key_match) {
                        meta.cmd_status = STATUS_SLOT_BUSY;
                    } else {
                        if (!meta.cmd_key_match) {
                            roce_udp_sport.write(hdr.flowmig.slot, 0);   // a new occupant
                        }
                        command_to_state();
                        store_state(hdr.flowmig.slot);
                        state_to_command();
                    }
                } else if ((meta.st_flags & SLOT_VALID) == 0) {
                    meta.cmd_status = STATUS_NOT_FOUND;
                } else if (!meta.cmd_key_match) {
                    meta.cmd_status = STATUS_KEY_MISMATCH;
                } else {
                    if (hdr.flowmig.opcode == CMD_SUSPEND) {
                        meta.st_flags = meta.st_flags | SLOT_SUSPENDED;
                        store_state(hdr.flowmig.slot);
                    } else if (hdr.flowmig.opcode == CMD_RESUME) {
                        meta.st_flags = meta.st_flags & ~SLOT_SUSPENDED;
                        store_state(hdr.flowmig.slot);
                    }
                    // SAVE, SUSPEND, RESUME: state after the command; CLEAR: state before it.
                    state_to_command();
                    if (hdr.flowmig.opcode == CMD_CLEAR) {
                        clear_state();
                        store_state(hdr.flowmig.slot);
                        roce_udp_sport.write(hdr.flowmig.slot, 0);
                    }
                }
            }
            hdr.flowmig.status = meta.cmd_status;
            if (meta.cmd_status != STATUS_OK) {
                flow_events.count(EVENT_COMMAND_ERROR);
            }
        } else if (meta.flow_kind != KIND_NONE) {
            // ================= data packet: find the reference's slot =================
            meta.slot_found = false;
            meta.slot_free = false;
            meta.slot_aged = false;
            meta.slot = NO_SLOT;
            flow_aging.apply();
            if (flow_slots.apply().hit) {
                probe_slot(meta.slot);
                meta.slot_found = meta.probe_match;
                meta.slot_free = meta.probe_free;
                meta.slot_aged = meta.probe_aged;
            } else {
                compute_hash_slots();
                probe_slot(meta.hash_slot1);
                if (meta.probe_match) {
                    meta.slot = meta.hash_slot1;
                    meta.slot_found = true;
                } else {
                    if (meta.probe_free) {
                        meta.slot = meta.hash_slot1;
                        meta.slot_free = true;
                        meta.slot_aged = meta.probe_aged;
                    }
                    // The reference may live at its second slot even when the first is free
                    // (the first was taken when it was learned and released since).
                    probe_slot(meta.hash_slot2);
                    if (meta.probe_match) {
                        meta.slot = meta.hash_slot2;
                        meta.slot_found = true;
                        meta.slot_free = false;
                        meta.slot_aged = false;
                    } else if (!meta.slot_free && meta.probe_free) {
                        meta.slot = meta.hash_slot2;
                        meta.slot_free = true;
                        meta.slot_aged = meta.probe_aged;
                    }
                }
            }

            // Only a SYN opens a TCP connection; every UDP or RoCE packet may open a flow.
            meta.may_open = meta.flow_kind != KIND_TCP
                            || (hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
            meta.learned = false;
            if (meta.slot_found) {
                fetch_state(meta.slot);
            } else if (meta.slot_free && meta.may_open) {
                // ================= new reference: take the free slot =================
                if (meta.slot_aged) {
                    flow_events.count(EVENT_AGED_OUT);   // its idle occupant is gone (the digest says who took it)
                }
                clear_state();
                set_state_key_from_packet();
                meta.st_flags = SLOT_VALID;
                meta.st_first_seen = std.ingress_global_timestamp;
                reset_protocol_state();
                meta.learned = true;
            } else if (meta.slot_free) {
                // Mid-connection packet of a connection this NIC never saw open - unless it is a
                // connection that was passed untracked earlier and a slot has been freed since.
                compute_filter_indexes();
                read_untracked_filter();
                if (meta.untracked_bit1 == 1 && meta.untracked_bit2 == 1) {
                    flow_events.count(EVENT_COLLISION);
                } else {
                    drop_invalid(DROP_INVALID_UNKNOWN);
                }
            } else {
                // Both candidate slots (or the placed slot) belong to other references: pass the
                // packet untracked rather than share state, remember the connection as untracked,
                // and tell the controller once per opening packet so it can place the reference
                // with a flow_slots entry.
                flow_events.count(EVENT_COLLISION);
                if (meta.flow_kind == KIND_TCP) {
                    compute_filter_indexes();
                    mark_untracked_filter();
                }
                if (meta.may_open) {
                    meta.slot = NO_SLOT;
                    meta.learn_event = LEARN_EVENT_COLLISION;
                    send_learn_digest();
                }
            }

            if (meta.slot_found || meta.learned) {
                if ((meta.st_flags & SLOT_SUSPENDED) != 0) {
                    // Frozen for a save: the packet passes, the state does not move.
                    flow_events.count(EVENT_SUSPENDED_PASS);
                } else {
                    if (meta.flow_kind == KIND_TCP) {
                        tcp_tracking.apply(hdr, meta);
                        if (meta.tcp_reincarnated) {
                            flow_events.count(EVENT_TCP_REINCARNATED);
                        }
                    } else if (meta.flow_kind == KIND_ROCE) {
                        roce_udp_sport.write(meta.slot, meta.l4_src_port);
                        roce_tracking.apply(hdr, meta);
                        if (meta.roce_out_of_seq) {
                            flow_events.count(EVENT_ROCE_OUT_OF_SEQ);
                        }
                    }
                    // UDP flows only count traffic.
                    if (!meta.drop) {
                        count_packet();
                        store_state(meta.slot);
                        if (meta.learned) {
                            flow_events.count(EVENT_LEARNED);
                            meta.learn_event = LEARN_EVENT_NEW;
                            send_learn_digest();
                        }
                    }
                }
            }
        }
    }
}

#endif
