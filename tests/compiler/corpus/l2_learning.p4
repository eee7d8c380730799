/* L2 learning switch: unknown source MACs are sent to the controller as digests; unknown
 * destinations are flooded through a multicast group. */
#include <core.p4>
#include <v1model.p4>

typedef bit<48> mac_t;
typedef bit<9>  port_t;

header ethernet_t {
    mac_t   dstAddr;
    mac_t   srcAddr;
    bit<16> etherType;
}

struct learn_t {
    mac_t  srcAddr;
    port_t ingress_port;
}

struct metadata {
    learn_t learn;
}

struct headers {
    ethernet_t ethernet;
}

parser MyParser(packet_in packet, out headers hdr, inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition accept;
    }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    direct_counter(CounterType.packets_and_bytes) smac_hits;

    action mac_learn() {
        meta.learn.srcAddr = hdr.ethernet.srcAddr;
        meta.learn.ingress_port = standard_metadata.ingress_port;
        digest<learn_t>(1, meta.learn);
    }
    action learned() {
        smac_hits.count();
    }
    table smac {
        key = { hdr.ethernet.srcAddr: exact; }
        actions = { mac_learn; learned; }
        size = 256;
        counters = smac_hits;
        default_action = mac_learn();
    }
    action forward(port_t egress_port) {
        standard_metadata.egress_spec = egress_port;
    }
    action broadcast(bit<16> grp) {
        standard_metadata.mcast_grp = grp;
    }
    table dmac {
        key = { hdr.ethernet.dstAddr: exact; }
        actions = { forward; broadcast; NoAction; }
        size = 256;
        default_action = broadcast(1);
    }
    apply {
        smac.apply();
        dmac.apply();
    }
}

control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == standard_metadata.ingress_port) {
            mark_to_drop(standard_metadata);
        }
    }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyDeparser(packet_out packet, in headers hdr) {
    apply {
        packet.emit(hdr.ethernet);
    }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
