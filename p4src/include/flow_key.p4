/*
 * flowmig: the reference key of a packet.
 *
 * TCP and UDP: the 5-tuple normalized so both directions give the same key: the endpoint with the
 * lower (address, port) is "lo", the packet's direction is DIR_FWD when lo sent it. RoCEv2: the
 * queue pair is (src IP, dst IP, dest QPN) with ports 0, not direction-normalized (each direction of
 * an RC connection is addressed to a different QPN, so it is its own reference). The learn digest
 * carries the packet's raw L4 ports, from which the controller derives gateway 5-tuples.
 */
#ifndef FLOWMIG_FLOW_KEY_P4
#define FLOWMIG_FLOW_KEY_P4

#include "headers.p4"

control FlowKey(in headers_t hdr, inout local_metadata_t meta) {
    apply {
        meta.flow_kind = KIND_NONE;
        meta.flow_dir = DIR_FWD;
        meta.key_addr_lo = 0;
        meta.key_addr_hi = 0;
        meta.key_port_lo = 0;
        meta.key_port_hi = 0;
        meta.key_proto = 0;
        meta.key_qpn = 0;
        if (hdr.ipv4.isValid()) {
            if (hdr.bth.isValid()) {
                meta.flow_kind = KIND_ROCE;
                meta.key_addr_lo = hdr.ipv4.src_addr;
                meta.key_addr_hi = hdr.ipv4.dst_addr;
                meta.key_proto = hdr.ipv4.protocol;
                meta.key_qpn = hdr.bth.dest_qpn;
            } else if (hdr.tcp.isValid() || hdr.udp.isValid()) {
                if (hdr.tcp.isValid()) {
                    meta.flow_kind = KIND_TCP;
                } else {
                    meta.flow_kind = KIND_UDP;
                }
                meta.key_proto = hdr.ipv4.protocol;
                if (hdr.ipv4.src_addr < hdr.ipv4.dst_addr ||
                    (hdr.ipv4.src_addr == hdr.ipv4.dst_addr && meta.l4_src_port <= meta.l4_dst_port)) {
                    meta.flow_dir = DIR_FWD;
                    meta.key_addr_lo = hdr.ipv4.src_addr;
                    meta.key_addr_hi = hdr.ipv4.dst_addr;
                    meta.key_port_lo = meta.l4_src_port;
                    meta.key_port_hi = meta.l4_dst_port;
                } else {
                    meta.flow_dir = DIR_REV;
                    meta.key_addr_lo = hdr.ipv4.dst_addr;
                    meta.key_addr_hi = hdr.ipv4.src_addr;
                    meta.key_port_lo = meta.l4_dst_port;
                    meta.key_port_hi = meta.l4_src_port;
                }
            }
        }
        meta.key_ports = ((bit<32>)meta.key_port_lo << 16) | (bit<32>)meta.key_port_hi;
        meta.key_proto_qpn = ((bit<32>)meta.key_proto << 24) | (bit<32>)meta.key_qpn;
    }
}

#endif
