/*
 * flowmig: TCP connection tracking on the working copy of one slot's state (meta.st_*).
 *
 * FlowState fetches the slot, applies this control, and stores the slot back unless the packet was
 * dropped. The rules, chosen so that real TCP (retransmissions, window scaling, reordering) is never
 * dropped while a connection moved without its state is:
 *   - before ESTABLISHED, a SYN sets its direction's next_seq (the ISN + 1) and a SYN+ACK moves
 *     SYN_SENT -> SYN_RECEIVED; later duplicates change nothing; a SYN on a CLOSING/CLOSED connection
 *     starts a new incarnation (all TCP state reset);
 *   - once ESTABLISHED (until CLOSED), a segment whose seq is farther than the receiver's largest
 *     scaled window (never less than TCP_WINDOW_FLOOR) from the sender's next_seq, both forward and
 *     backward modulo 2^32, is dropped as DROP_INVALID_WINDOW;
 *   - next_seq and max_ack only move forward (modulo 2^32); max_window keeps the largest raw window
 *     of non-SYN segments (SYN windows are never scaled);
 *   - ACK in SYN_RECEIVED -> ESTABLISHED; FIN -> FIN_WAIT_<dir> -> CLOSING; RST -> CLOSED.
 */
#ifndef FLOWMIG_TCP_TRACKING_P4
#define FLOWMIG_TCP_TRACKING_P4

#include "headers.p4"

control TcpTracking(in headers_t hdr, inout local_metadata_t meta) {

    // The view of this packet's sender (self) and of the endpoint it sends to (peer).
    action select_fwd() {
        meta.tcp_self_next_seq = meta.st_tcp_next_seq_fwd;
        meta.tcp_self_max_ack = meta.st_tcp_max_ack_fwd;
        meta.tcp_self_max_window = meta.st_tcp_max_window_fwd;
        meta.tcp_peer_max_window = meta.st_tcp_max_window_rev;
        meta.tcp_peer_wscale = meta.st_tcp_wscale_rev;
    }

    action select_rev() {
        meta.tcp_self_next_seq = meta.st_tcp_next_seq_rev;
        meta.tcp_self_max_ack = meta.st_tcp_max_ack_rev;
        meta.tcp_self_max_window = meta.st_tcp_max_window_rev;
        meta.tcp_peer_max_window = meta.st_tcp_max_window_fwd;
        meta.tcp_peer_wscale = meta.st_tcp_wscale_fwd;
    }

    action commit_fwd() {
        meta.st_tcp_next_seq_fwd = meta.tcp_self_next_seq;
        meta.st_tcp_max_ack_fwd = meta.tcp_self_max_ack;
        meta.st_tcp_max_window_fwd = meta.tcp_self_max_window;
    }

    action commit_rev() {
        meta.st_tcp_next_seq_rev = meta.tcp_self_next_seq;
        meta.st_tcp_max_ack_rev = meta.tcp_self_max_ack;
        meta.st_tcp_max_window_rev = meta.tcp_self_max_window;
    }

    // A new incarnation of the connection: forget both directions.
    action reset_connection() {
        meta.st_tcp_phase = TCP_PHASE_NONE;
        meta.st_tcp_next_seq_fwd = 0;
        meta.st_tcp_next_seq_rev = 0;
        meta.st_tcp_max_ack_fwd = 0;
        meta.st_tcp_max_ack_rev = 0;
        meta.st_tcp_max_window_fwd = 0;
        meta.st_tcp_max_window_rev = 0;
        meta.st_tcp_wscale_fwd = TCP_WSCALE_DEFAULT;
        meta.st_tcp_wscale_rev = TCP_WSCALE_DEFAULT;
    }

    // seg_end = seq + payload length (+1 for SYN and for FIN, added in apply).
    action measure_segment() {
        meta.tcp_payload_len = (bit<32>)hdr.ipv4.total_len
                               - ((bit<32>)hdr.ipv4.ihl << 2)
                               - ((bit<32>)hdr.tcp.data_offset << 2);
        meta.tcp_seg_end = hdr.tcp.seq_no + meta.tcp_payload_len;
    }

    apply {
        meta.tcp_reincarnated = false;
        measure_segment();
        if ((hdr.tcp.flags & TCP_FLAG_SYN) != 0 && (hdr.tcp.flags & TCP_FLAG_ACK) == 0
            && (meta.st_tcp_phase == TCP_PHASE_CLOSING || meta.st_tcp_phase == TCP_PHASE_CLOSED)) {
            reset_connection();
            meta.tcp_reincarnated = true;
        }
        if (meta.flow_dir == DIR_FWD) {
            select_fwd();
        } else {
            select_rev();
        }

        if ((hdr.tcp.flags & TCP_FLAG_SYN) != 0) {
            // The SYN carries the initial sequence number of its direction. Once established, a
            // late duplicate SYN or SYN+ACK changes nothing (it must not pull next_seq back).
            if (meta.st_tcp_phase < TCP_PHASE_ESTABLISHED) {
                meta.tcp_self_next_seq = meta.tcp_seg_end + 1;
                if ((hdr.tcp.flags & TCP_FLAG_ACK) == 0) {
                    if (meta.st_tcp_phase == TCP_PHASE_NONE) {
                        meta.st_tcp_phase = TCP_PHASE_SYN_SENT;
                    }
                } else {
                    meta.tcp_self_max_ack = hdr.tcp.ack_no;
                    if (meta.st_tcp_phase == TCP_PHASE_SYN_SENT) {
                        meta.st_tcp_phase = TCP_PHASE_SYN_RECEIVED;
                    }
                }
            }
        } else {
            if ((hdr.tcp.flags & TCP_FLAG_FIN) != 0) {
                meta.tcp_seg_end = meta.tcp_seg_end + 1;
            }
            if (meta.st_tcp_phase >= TCP_PHASE_ESTABLISHED && meta.st_tcp_phase <= TCP_PHASE_CLOSING) {
                meta.tcp_window_bound = (bit<32>)meta.tcp_peer_max_window << meta.tcp_peer_wscale;
                if (meta.tcp_window_bound < TCP_WINDOW_FLOOR) {
                    meta.tcp_window_bound = TCP_WINDOW_FLOOR;
                }
                meta.tcp_seq_distance = hdr.tcp.seq_no - meta.tcp_self_next_seq;
                if (meta.tcp_seq_distance > meta.tcp_window_bound
                    && (32w0 - meta.tcp_seq_distance) > meta.tcp_window_bound) {
                    meta.drop = true;
                    meta.drop_reason = DROP_INVALID_WINDOW;
                }
            }
            if (!meta.drop) {
                if ((meta.tcp_seg_end - meta.tcp_self_next_seq) < 32w0x80000000) {
                    meta.tcp_self_next_seq = meta.tcp_seg_end;
                }
                if ((hdr.tcp.flags & TCP_FLAG_ACK) != 0) {
                    // A direction's first ACK sets max_ack; later ones only advance it.
                    if (meta.st_tcp_phase < TCP_PHASE_ESTABLISHED
                        || (hdr.tcp.ack_no - meta.tcp_self_max_ack) < 32w0x80000000) {
                        meta.tcp_self_max_ack = hdr.tcp.ack_no;
                    }
                    if (meta.st_tcp_phase == TCP_PHASE_SYN_RECEIVED) {
                        meta.st_tcp_phase = TCP_PHASE_ESTABLISHED;
                    }
                }
                if (hdr.tcp.window > meta.tcp_self_max_window) {
                    meta.tcp_self_max_window = hdr.tcp.window;
                }
                if ((hdr.tcp.flags & TCP_FLAG_RST) != 0) {
                    meta.st_tcp_phase = TCP_PHASE_CLOSED;
                } else if ((hdr.tcp.flags & TCP_FLAG_FIN) != 0) {
                    if (meta.st_tcp_phase == TCP_PHASE_ESTABLISHED
                        || meta.st_tcp_phase == TCP_PHASE_SYN_RECEIVED) {
                        if (meta.flow_dir == DIR_FWD) {
                            meta.st_tcp_phase = TCP_PHASE_FIN_WAIT_FWD;
                        } else {
                            meta.st_tcp_phase = TCP_PHASE_FIN_WAIT_REV;
                        }
                    } else if ((meta.st_tcp_phase == TCP_PHASE_FIN_WAIT_FWD && meta.flow_dir == DIR_REV)
                               || (meta.st_tcp_phase == TCP_PHASE_FIN_WAIT_REV && meta.flow_dir == DIR_FWD)) {
                        meta.st_tcp_phase = TCP_PHASE_CLOSING;
                    }
                }
            }
        }

        if (meta.flow_dir == DIR_FWD) {
            commit_fwd();
        } else {
            commit_rev();
        }
    }
}

#endif
