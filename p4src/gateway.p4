/*
 * flowmig: the gateway (proxy / load balancer in front of the NICs).
 *
 * Routes IPv4 toward local hosts, places flows bound for the NIC fabric on a NIC by a symmetric
 * hash, holds the per-flow forwarding entries that migration rewrites, suspends flows (punt to the
 * controller or drop), forwards the controller's replayed packets and, at the lossless flip, keeps a
 * flow's new packets behind its outstanding punts (forward_after_drain, per-flow drain registers), and
 * answers the drain markers that come out of the NICs (ports listed in `nic_facing_ports`). Any other
 * packet to the marker address (0.0.0.2) from a port - a path marker, or a drain marker from a port that
 * does not face a NIC - is forged: dropped and counted (DROP_FORGED_MARKER). A suspension or drain whose
 * lease runs out resumes by itself (gateway_forwarding.p4).
 * Everything is in include/; this file only wires it together. Contract with the controller:
 * docs/dataplane.md.
 */
#include <core.p4>
#include <v1model.p4>

#include "defines.p4"
#include "headers.p4"
#include "parser.p4"
#include "checksums.p4"
#include "packet_io.p4"
#include "port_stats.p4"
#include "flow_key.p4"
#include "gateway_forwarding.p4"

control GatewayIngress(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std) {
    PortRxStats() port_rx_stats;
    PacketIoIngress() packet_io;
    FlowKey() flow_key;
    GatewayForwarding() gateway_forwarding;
    CpuPunt() cpu_punt;
    DropAccounting() drop_accounting;

    bool from_nic;   // the packet came in on a NIC-facing port (nic_facing_ports hit)

    action nic_facing() {
        from_nic = true;
    }

    // The gateway's ports toward the NICs (the lab's tables writer lists each one): the only ports a
    // drain marker may legitimately come in on.
    table nic_facing_ports {
        key = {
            meta.ingress_port : exact @name("ingress_port");
        }
        actions = {
            nic_facing;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        size = 512;
    }

    apply {
        from_nic = false;
        port_rx_stats.apply(std.ingress_port);
        packet_io.apply(hdr, meta, std);
        if (meta.is_command) {
            // The gateway holds no flow state: commands are for NICs. One sent DIRECT leaves by its
            // port as is, behind every packet sent that way before it (a path save, flow_nic.p4).
            if (meta.command_direct) {
                meta.sent_direct = true;
            } else {
                meta.drop = true;
                meta.drop_reason = DROP_BAD_PACKET_OUT;
            }
        } else if (!meta.sent_direct && !meta.drop) {
            if (hdr.ipv4.isValid() && hdr.ipv4.dst_addr == MARKER_DST_ADDR) {
                nic_facing_ports.apply();
                if (hdr.udp.isValid() && hdr.udp.dst_port == MARKER_DRAIN_PORT && from_nic) {
                    // a drain marker out of a NIC: every packet queued on that path ahead of it is
                    // through
                    cpu_punt.apply(hdr, meta.ingress_port, PACKET_IN_DRAIN_MARKER, std);
                } else {
                    // Path markers toward the NICs are the controller's PacketOuts (DIRECT, never
                    // here), drain markers come out of NICs; any other marker-addressed packet from a
                    // port is forged: never forwarded
                    meta.drop = true;
                    meta.drop_reason = DROP_FORGED_MARKER;
                }
            } else if (hdr.ipv4.isValid()) {
                flow_key.apply(hdr, meta);
                gateway_forwarding.apply(hdr, meta, std);
                if (meta.punt) {
                    cpu_punt.apply(hdr, meta.ingress_port, PACKET_IN_SUSPENDED, std);
                }
            } else {
                meta.drop = true;
                meta.drop_reason = DROP_NOT_IPV4;
            }
        }
        drop_accounting.apply(meta, std);
    }
}

control GatewayEgress(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t std) {
    PortTxStats() port_tx_stats;

    apply {
        port_tx_stats.apply(meta, std);
    }
}

V1Switch(FlowmigParser(),
         FlowmigVerifyChecksum(),
         GatewayIngress(),
         GatewayEgress(),
         FlowmigComputeChecksum(),
         FlowmigDeparser()) main;
