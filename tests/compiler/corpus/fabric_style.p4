/* fabric.p4-style program: the top-level controls only wire sub-controls together; each concern is
 * a control with its own tables, counters and registers, applied with arguments. */
#include <core.p4>
#include <v1model.p4>
#include "include/std_headers.p4"

typedef bit<9> port_num_t;
const port_num_t CPU_PORT = 255;

struct fwd_meta_t {
    bit<16> next_id;
    bool    skip_next;
}

struct local_metadata_t {
    fwd_meta_t fwd;
    bit<16>    l4_dport;
    bit<8>     drop_reason;
}

struct headers_t {
    ethernet_t ethernet;
    ipv4_t     ipv4;
    udp_t      udp;
}

parser FabricParser(packet_in packet, out headers_t hdr, inout local_metadata_t meta,
                    inout standard_metadata_t std) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            TYPE_IPV4: parse_ipv4;
        }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.protocol) {
            PROTO_UDP: parse_udp;
            default: accept;
        }
    }
    state parse_udp {
        packet.extract(hdr.udp);
        meta.l4_dport = hdr.udp.dstPort;
        transition accept;
    }
}

control PortCounters(in port_num_t port) {
    counter(512, CounterType.packets_and_bytes) port_counter;
    apply {
        port_counter.count((bit<32>)port);
    }
}

control Filtering(in headers_t hdr, inout local_metadata_t meta, in port_num_t port) {
    direct_counter(CounterType.packets) acl_counter;
    action deny(bit<8> reason) {
        meta.drop_reason = reason;
        acl_counter.count();
    }
    action permit() {
        acl_counter.count();
    }
    table acl {
        key = {
            port: exact @name("ig_port");
            hdr.ipv4.dstAddr: ternary @name("ipv4_dst");
            meta.l4_dport: range @name("l4_dport");
        }
        actions = { deny; permit; }
        const default_action = permit();
        counters = acl_counter;
    }
    apply {
        if (!hdr.ipv4.isValid()) {
            return;
        }
        acl.apply();
    }
}

control Forwarding(in headers_t hdr, inout fwd_meta_t fwd) {
    action set_next(bit<16> next_id) {
        fwd.next_id = next_id;
    }
    table routing_v4 {
        key = { hdr.ipv4.dstAddr: lpm @name("ipv4_dst"); }
        actions = { set_next; @defaultonly NoAction; }
        default_action = NoAction();
        size = 4096;
    }
    apply {
        if (!routing_v4.apply().hit) {
            fwd = { next_id = 0, skip_next = true };
        }
    }
}

control Next(inout headers_t hdr, in fwd_meta_t fwd, inout standard_metadata_t std) {
    register<bit<32>>(1024) next_hits;
    action output(port_num_t port, bit<48> smac, bit<48> dmac) {
        std.egress_spec = port;
        hdr.ethernet.srcAddr = smac;
        hdr.ethernet.dstAddr = dmac;
    }
    table next {
        key = { fwd.next_id: exact @name("next_id"); }
        actions = { output; @defaultonly NoAction; }
        default_action = NoAction();
    }
    apply {
        bit<32> hits;
        next_hits.read(hits, (bit<32>)fwd.next_id);
        next_hits.write((bit<32>)fwd.next_id, hits + 1);
        next.apply();
    }
}

control FabricIngress(inout headers_t hdr, inout local_metadata_t meta, inout standard_metadata_t std) {
    PortCounters() rx_counters;
    Filtering() filtering;
    Forwarding() forwarding;
    @name("next_hop") Next() nxt;

    apply {
        rx_counters.apply(std.ingress_port);
        meta.drop_reason = 0;
        filtering.apply(hdr, meta, std.ingress_port);
        if (meta.drop_reason != 0) {
            mark_to_drop(std);
            return;
        }
        forwarding.apply(hdr, meta.fwd);
        if (!meta.fwd.skip_next) {
            nxt.apply(hdr, meta.fwd, std);
        }
    }
}

control FabricEgress(inout headers_t hdr, inout local_metadata_t meta, inout standard_metadata_t std) {
    PortCounters() tx_counters;
    apply {
        tx_counters.apply(std.egress_port);
        if (std.egress_port == CPU_PORT) {
            exit;
        }
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
    }
}

control FabricVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply { }
}

control FabricComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(), IPV4_CSUM_FIELDS(hdr.ipv4), hdr.ipv4.hdrChecksum,
                        HashAlgorithm.csum16);
    }
}

control FabricDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.udp);
    }
}

V1Switch(FabricParser(), FabricVerifyChecksum(), FabricIngress(), FabricEgress(), FabricComputeChecksum(),
         FabricDeparser()) main;
