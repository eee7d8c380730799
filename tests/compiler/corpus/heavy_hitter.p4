/* Heavy-hitter detection with a count-min sketch in registers; flows over a threshold are dropped
 * and counted. Uses saturating addition so the sketch never wraps. */
#include <core.p4>
#include <v1model.p4>
#include "include/std_headers.p4"

#define SKETCH_SIZE 1024
const bit<32> HEAVY_THRESHOLD = 1000;

struct metadata {
    bit<32> idx0;
    bit<32> idx1;
    bit<32> cnt0;
    bit<32> cnt1;
    bit<16> l4_src;
    bit<16> l4_dst;
}

struct headers {
    ethernet_t ethernet;
    ipv4_t     ipv4;
    tcp_t      tcp;
    udp_t      udp;
}

parser MyParser(packet_in packet, out headers hdr, inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            TYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.fragOffset, hdr.ipv4.protocol) {
            (0, PROTO_TCP): parse_tcp;
            (0, PROTO_UDP): parse_udp;
            default: accept;
        }
    }
    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.l4_src = hdr.tcp.srcPort;
        meta.l4_dst = hdr.tcp.dstPort;
        transition accept;
    }
    state parse_udp {
        packet.extract(hdr.udp);
        meta.l4_src = hdr.udp.srcPort;
        meta.l4_dst = hdr.udp.dstPort;
        transition accept;
    }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    register<bit<32>>(SKETCH_SIZE) sketch0;
    register<bit<32>>(SKETCH_SIZE) sketch1;
    counter(1, CounterType.packets_and_bytes) heavy_drops;

    action drop() {
        mark_to_drop(standard_metadata);
    }
    action update_sketch() {
        hash(meta.idx0, HashAlgorithm.crc32, 32w0,
             { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.ipv4.protocol, meta.l4_src, meta.l4_dst },
             32w1024);
        hash(meta.idx1, HashAlgorithm.crc16, 32w0,
             { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.ipv4.protocol, meta.l4_src, meta.l4_dst },
             32w1024);
        sketch0.read(meta.cnt0, meta.idx0);
        sketch1.read(meta.cnt1, meta.idx1);
        meta.cnt0 = meta.cnt0 |+| 1;
        meta.cnt1 = meta.cnt1 |+| 1;
        sketch0.write(meta.idx0, meta.cnt0);
        sketch1.write(meta.idx1, meta.cnt1);
    }
    action ipv4_forward(bit<48> dstAddr, bit<9> port) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dstAddr = dstAddr;
        hdr.ipv4.ttl = hdr.ipv4.ttl |-| 1;
    }
    table ipv4_lpm {
        key = { hdr.ipv4.dstAddr: lpm; }
        actions = { ipv4_forward; drop; }
        size = 1024;
        default_action = drop();
    }
    apply {
        if (hdr.ipv4.isValid()) {
            update_sketch();
            bit<32> estimate = (meta.cnt0 < meta.cnt1) ? meta.cnt0 : meta.cnt1;
            if (estimate > HEAVY_THRESHOLD) {
                heavy_drops.count(0);
                drop();
            } else {
                ipv4_lpm.apply();
            }
        }
    }
}

control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    apply { }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(), IPV4_CSUM_FIELDS(hdr.ipv4), hdr.ipv4.hdrChecksum,
                        HashAlgorithm.csum16);
    }
}

control MyDeparser(packet_out packet, in headers hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
