/*
 * flowmig: the parser and deparser shared by both programs.
 *
 * Packets from CPU_PORT carry the packet_out controller header first. A flowmig command is an
 * Ethernet frame with ethertype ETHERTYPE_FLOWMIG, a command batch one with ETHERTYPE_FLOWMIG_BATCH;
 * the ingress controls accept them only from CPU_PORT (and a batch recirculated by the NIC itself).
 * L4 is parsed only for unfragmented IPv4 without options (ihl == 5); anything else reaches the
 * controls with tcp/udp invalid and is forwarded untracked.
 */
#ifndef FLOWMIG_PARSER_P4
#define FLOWMIG_PARSER_P4

#include "headers.p4"

parser FlowmigParser(packet_in packet,
                     out headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t std) {
    state start {
        // A recirculated command batch has no packet_out header (the ingress consumed it), whatever
        // ingress_port the target gives a recirculated packet (0 or the original port).
        transition select(std.instance_type, std.ingress_port) {
            (PKT_INSTANCE_TYPE_RECIRC, _): parse_ethernet;
            (_, CPU_PORT):                 parse_packet_out;
            default:                       parse_ethernet;
        }
    }

    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4:    parse_ipv4;
            ETHERTYPE_FLOWMIG: parse_flowmig;
            ETHERTYPE_FLOWMIG_BATCH: parse_flowmig_batch;
            default:           accept;
        }
    }

    // A command batch: `done` executed records (opaque), then the record to execute now.
    state parse_flowmig_batch {
        packet.extract(hdr.flowmig_batch);
        meta.batch_skip = hdr.flowmig_batch.done;
        transition select(hdr.flowmig_batch.done) {
            0:       parse_flowmig;
            default: parse_flowmig_done;
        }
    }

    state parse_flowmig_done {
        packet.extract(hdr.flowmig_done.next);
        meta.batch_skip = meta.batch_skip - 1;
        transition select(meta.batch_skip) {
            0:       parse_flowmig;
            default: parse_flowmig_done;
        }
    }

    state parse_flowmig {
        packet.extract(hdr.flowmig);
        transition accept;
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (4w5, 13w0, IP_PROTO_TCP): parse_tcp;
            (4w5, 13w0, IP_PROTO_UDP): parse_udp;
            default:                   accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        transition select(hdr.udp.dst_port) {
            ROCE_UDP_PORT: parse_bth;
            default:       accept;
        }
    }

    state parse_bth {
        packet.extract(hdr.bth);
        transition accept;
    }
}

// packet_out is never emitted: the ingress controls consume it. packet_in is valid only on the
// way to CPU_PORT.
control FlowmigDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.flowmig_batch);
        packet.emit(hdr.flowmig_done);
        packet.emit(hdr.flowmig);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
        packet.emit(hdr.bth);
    }
}

#endif
