/* Language-coverage program: const entries (ternary/range/lpm/optional), meters, switch on
 * action_run, saturating and bit-level expressions, enums, exit, and the v1model primitives. */
#include <core.p4>
#include <v1model.p4>
#include "include/std_headers.p4"

enum bit<8> Color_t { GREEN = 0, YELLOW = 1, RED = 2 }

header vlan_t {
    bit<3>  pcp;
    bit<1>  dei;
    bit<12> vid;
    bit<16> etherType;
}

struct flags_t {
    bool    seen;
    bit<4>  level;
}

struct metadata {
    bit<8>  color;
    bit<32> rnd;
    bit<16> class_id;
    flags_t flags;
    @field_list(2) bit<8> recirc_count;
}

struct headers {
    ethernet_t ethernet;
    vlan_t     vlan;
    ipv4_t     ipv4;
    ipv4_t     inner_ipv4;
    udp_t      udp;
}

error { BadVersion }

parser MyParser(packet_in packet, out headers hdr, inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x8100 &&& 0xEFFF: parse_vlan;
            0x0800: parse_ipv4;
            default: accept;
        }
    }
    state parse_vlan {
        packet.extract(hdr.vlan);
        transition select(hdr.vlan.etherType) {
            TYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        verify(hdr.ipv4.version == 4, error.BadVersion);
        transition select(hdr.ipv4.protocol, packet.lookahead<bit<8>>()) {
            (4, _): parse_inner;
            (PROTO_UDP, 0x00 .. 0x7f): parse_udp;
            (PROTO_UDP, _): skip_and_parse_udp;
            default: accept;
        }
    }
    state parse_inner {
        packet.extract(hdr.inner_ipv4);
        transition accept;
    }
    state skip_and_parse_udp {
        packet.advance(0);
        transition parse_udp;
    }
    state parse_udp {
        packet.extract(hdr.udp);
        transition select(hdr.udp.dstPort) {
            1000 .. 1999: accept;
            default: accept;
        }
    }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) {
    apply { }
}

control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    meter(64, MeterType.packets) port_meter;
    direct_meter<bit<8>>(MeterType.bytes) class_meter;
    counter(64, CounterType.packets) port_pkts;
    direct_counter(CounterType.packets_and_bytes) class_counter;

    action set_class(bit<16> class_id) {
        meta.class_id = class_id;
        class_meter.read(meta.color);
        class_counter.count();
    }
    action to_port(bit<9> port) {
        standard_metadata.egress_spec = port;
    }
    action drop_and_exit() {
        mark_to_drop(standard_metadata);
        exit;
    }
    @name("classifier") table classify {
        key = {
            hdr.ipv4.srcAddr: lpm @name("src");
            hdr.ipv4.protocol: ternary;
            hdr.udp.dstPort: range;
            hdr.vlan.isValid(): optional @name("has_vlan");
        }
        actions = { set_class; @defaultonly NoAction; }
        const default_action = NoAction();
        meters = class_meter;
        counters = class_counter;
        support_timeout = true;
        size = 512;
    }
    table forward {
        key = { meta.class_id: exact; hdr.ipv4.dstAddr & 0xffffff00: ternary @name("dst24"); }
        actions = { to_port; drop_and_exit; @tableonly NoAction; }
        default_action = drop_and_exit();
        const entries = {
            (1, 0x0a000100 &&& 0xffffff00): to_port(1);
            (2, _): to_port(2);
            (3, 0x0a000000 &&& 0xff000000): drop_and_exit();
        }
    }
    table vlan_map {
        key = { hdr.vlan.vid: exact; }
        actions = { to_port; NoAction; }
        default_action = NoAction();
    }

    apply {
        bool big;
        flags_t f;
        f = { false, 0 };
        meta.flags = f;
        port_pkts.count((bit<32>)standard_metadata.ingress_port);
        port_meter.execute_meter((bit<32>)standard_metadata.ingress_port, meta.color);
        if (meta.color == (bit<8>)Color_t.RED) {
            drop_and_exit();
        }
        random(meta.rnd, 0, 0xffff);
        big = standard_metadata.packet_length > 1000;
        meta.flags.seen = big || hdr.vlan.isValid();
        meta.flags.level = big ? 4w15 : (bit<4>)(meta.rnd[3:0] ^ 4w5);
        log_msg("class {} color {}", { meta.class_id, meta.color });
        assert(meta.flags.level != 0 || !big);
        if (!hdr.ipv4.isValid()) {
            exit;
        }
        switch (classify.apply().action_run) {
            set_class: {
                forward.apply();
            }
            NoAction: {
                if (hdr.vlan.isValid() && !vlan_map.apply().hit) {
                    mark_to_drop(standard_metadata);
                }
            }
        }
        hdr.ipv4.diffserv[7:2] = meta.class_id[5:0];
        hdr.ipv4.identification = hdr.ipv4.srcAddr[15:8] ++ meta.color;
        hdr.ipv4.ttl = hdr.ipv4.ttl |-| 8w1;
        if (hdr.inner_ipv4.isValid()) {
            hdr.ipv4 = hdr.inner_ipv4;
            hdr.inner_ipv4.setInvalid();
        }
        if (meta.recirc_count < 2 && hdr.udp.isValid() && hdr.udp.dstPort == 4791) {
            meta.recirc_count = meta.recirc_count + 1;
            resubmit_preserving_field_list(2);
        }
    }
}

control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == 7) {
            truncate(64);
        }
        if (standard_metadata.instance_type == 0 && meta.flags.seen) {
            recirculate_preserving_field_list(2);
        }
    }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(), IPV4_CSUM_FIELDS(hdr.ipv4), hdr.ipv4.hdrChecksum,
                        HashAlgorithm.csum16);
    }
}

control MyDeparser(packet_out packet, in headers hdr) {
    apply {
        packet.emit(hdr);
    }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
