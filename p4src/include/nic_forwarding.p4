/*
 * flowmig: the NIC's forwarding. A NIC is a two-port bump in the wire (port 1 toward gateway A,
 * port 2 toward gateway B); which port faces which is the controller's choice, installed as
 * `nic_ports` entries (1 -> 2, 2 -> 1). Every frame is forwarded, IPv4 or not; only IPv4 is tracked.
 */
#ifndef FLOWMIG_NIC_FORWARDING_P4
#define FLOWMIG_NIC_FORWARDING_P4

#include "headers.p4"

control NicForwarding(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t std) {
    direct_counter(CounterType.packets_and_bytes) nic_ports_counter;

    action set_egress_port(port_num_t port) {
        std.egress_spec = port;
        nic_ports_counter.count();
    }

    action drop_no_port_mapping() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_PORT_MAPPING;
        nic_ports_counter.count();
    }

    table nic_ports {
        key = {
            meta.ingress_port : exact @name("ingress_port");
        }
        actions = {
            set_egress_port;
            @defaultonly drop_no_port_mapping;
        }
        const default_action = drop_no_port_mapping();
        counters = nic_ports_counter;
        size = MAX_PORTS;
    }

    apply {
        nic_ports.apply();
    }
}

#endif
