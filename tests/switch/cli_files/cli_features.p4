/* Runtime-CLI coverage program for the differential test against simple_switch_CLI: exact (MAC,
 * validity bit, two fields), lpm, ternary, range tables, a table with entry timeouts, a const
 * default action, indirect and direct counters and meters, registers of several widths, multicast
 * and I2E clones. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t { bit<48> dstAddr; bit<48> srcAddr; bit<16> etherType; }
header ipv4_t {
    bit<4> version; bit<4> ihl; bit<8> diffserv; bit<16> totalLen; bit<16> identification;
    bit<3> flags; bit<13> fragOffset; bit<8> ttl; bit<8> protocol; bit<16> hdrChecksum;
    bit<32> srcAddr; bit<32> dstAddr;
}
header udp_t { bit<16> srcPort; bit<16> dstPort; bit<16> length_; bit<16> checksum; }

struct metadata { bit<8> color; bit<16> class_id; }
struct headers { ethernet_t ethernet; ipv4_t ipv4; udp_t udp; }

parser MyParser(packet_in packet, out headers hdr, inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x800: parse_ipv4; default: accept; }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.protocol) { 17: parse_udp; default: accept; }
    }
    state parse_udp { packet.extract(hdr.udp); transition accept; }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) { apply { } }

control MyIngress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    counter(16, CounterType.packets_and_bytes) port_counter;
    counter(8, CounterType.packets) pkt_counter;
    meter(8, MeterType.packets) port_meter;
    meter(4, MeterType.bytes) byte_meter;
    direct_counter(CounterType.packets_and_bytes) acl_counter;
    direct_meter<bit<8>>(MeterType.bytes) acl_meter;
    register<bit<32>>(8) reg32;
    register<bit<48>>(4) reg48;
    register<bit<1>>(2) flag;

    action drop() { mark_to_drop(standard_metadata); }
    action set_port(bit<9> port) { standard_metadata.egress_spec = port; }
    action set_nhop(bit<48> dmac, bit<32> nhop, bit<9> port) {
        hdr.ethernet.dstAddr = dmac;
        standard_metadata.egress_spec = port;
        reg32.write(0, nhop);
    }
    action set_mcast(bit<16> grp) { standard_metadata.mcast_grp = grp; }
    action acl_permit(bit<16> class_id) { meta.class_id = class_id; acl_meter.read(meta.color); }
    action acl_deny() { mark_to_drop(standard_metadata); acl_meter.read(meta.color); }
    action mirror(bit<32> session) { clone(CloneType.I2E, session); }

    table dmac {
        key = { hdr.ethernet.dstAddr: exact; }
        actions = { set_port; set_mcast; drop; NoAction; }
        size = 64;
        default_action = NoAction();
        support_timeout = true;
    }
    table ipv4_lpm {
        key = { hdr.ipv4.dstAddr: lpm; }
        actions = { set_nhop; drop; NoAction; }
        size = 1024;
        default_action = drop();
    }
    table acl {
        key = { hdr.ipv4.srcAddr: ternary; hdr.ipv4.dstAddr: ternary; hdr.ipv4.protocol: exact; }
        actions = { acl_permit; acl_deny; NoAction; }
        default_action = NoAction();
        counters = acl_counter;
        meters = acl_meter;
    }
    table udp_ports {
        key = { hdr.udp.dstPort: range; hdr.udp.isValid(): exact; }
        actions = { mirror; NoAction; }
        const default_action = NoAction();
    }
    table by_port {
        key = { standard_metadata.ingress_port: exact; hdr.ethernet.etherType: exact; }
        actions = { set_port; mirror; NoAction; }
        default_action = NoAction();
    }

    apply {
        port_counter.count((bit<32>)standard_metadata.ingress_port);
        pkt_counter.count(0);
        port_meter.execute_meter((bit<32>)standard_metadata.ingress_port, meta.color);
        byte_meter.execute_meter((bit<32>)0, meta.color);
        reg48.write(0, hdr.ethernet.srcAddr);
        flag.write(1, 1);
        by_port.apply();
        dmac.apply();
        if (hdr.ipv4.isValid()) {
            ipv4_lpm.apply();
            acl.apply();
        }
        udp_ports.apply();
    }
}

control MyEgress(inout headers hdr, inout metadata meta, inout standard_metadata_t standard_metadata) {
    apply { }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) { apply { } }

control MyDeparser(packet_out packet, in headers hdr) {
    apply { packet.emit(hdr.ethernet); packet.emit(hdr.ipv4); packet.emit(hdr.udp); }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
