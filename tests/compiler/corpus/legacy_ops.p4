/* Older v1model forms: switch on a value, an if in a parser state, an early return from an action,
 * plain enums in metadata, a header stack in a table key, and field-list annotations on nested
 * metadata for clone/resubmit/recirculate (the deprecated clone3/resubmit/recirculate with data are
 * rejected by p4c-bm2-ss, and so by the embedded compiler: tests/compiler/test_compiler_rejects.py). */
#include <core.p4>
#include <v1model.p4>
#include "include/std_headers.p4"

enum Mode { FORWARD, MIRROR, RESUBMIT }

header mpls_t {
    bit<20> label;
    bit<3>  tc;
    bit<1>  bos;
    bit<8>  ttl;
}

const bit<8> FL_RESUBMIT = 2;   // a field list named by a constant, as p4c allows

struct resubmit_meta_t {
    @field_list(FL_RESUBMIT)
    bit<8> pass;
}

struct metadata {
    resubmit_meta_t rs;
    Mode            mode;
    @field_list(1)
    bit<8>          op;
}

struct headers {
    ethernet_t ethernet;
    mpls_t[3]  mpls;
    ipv4_t     ipv4;
}

parser MyParser(packet_in packet, out headers hdr, inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x8847: parse_mpls;
            TYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }
    state parse_mpls {
        packet.extract(hdr.mpls.next);
        transition select(hdr.mpls.last.bos) {
            0: parse_mpls;
            1: parse_ipv4;
        }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        if (hdr.ipv4.ttl == 0) {
            meta.op = 8w3;
        } else {
            meta.op = hdr.ipv4.diffserv;
        }
        transition accept;
    }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    action set_mode(bit<2> m, bit<9> port) {
        standard_metadata.egress_spec = port;
        if (m == 0) {
            meta.mode = Mode.FORWARD;
            return;
        }
        meta.mode = (m == 1) ? Mode.MIRROR : Mode.RESUBMIT;
    }
    action pop_label() {
        hdr.mpls.pop_front(1);
        if (!hdr.mpls[0].isValid()) {
            hdr.ethernet.etherType = TYPE_IPV4;
        }
    }
    table mpls_table {
        key = {
            hdr.mpls[0].label: exact;
            hdr.mpls[1].isValid(): exact;
        }
        actions = { set_mode; pop_label; NoAction; }
        default_action = NoAction();
    }
    apply {
        meta.mode = Mode.FORWARD;
        mpls_table.apply();
        switch (meta.op) {
            0: { }
            1:
            2: { hdr.ipv4.ttl = hdr.ipv4.ttl - 1; }
            8w3: { mark_to_drop(standard_metadata); }
            default: { hdr.ipv4.diffserv = 0; }
        }
        if (meta.mode == Mode.MIRROR) {
            clone_preserving_field_list(CloneType.I2E, 5, 1);
        } else if (meta.mode == Mode.RESUBMIT && meta.rs.pass == 0) {
            meta.rs.pass = 1;
            resubmit_preserving_field_list(FL_RESUBMIT);
        }
    }
}

control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.instance_type == 1 && meta.rs.pass < 2) {
            meta.rs.pass = meta.rs.pass + 1;
            recirculate_preserving_field_list(FL_RESUBMIT);
        }
    }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyDeparser(packet_out packet, in headers hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.mpls);
        packet.emit(hdr.ipv4);
    }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
