/*
 * flowmig: the controller's packet I/O (CPU_PORT), drop accounting, and the punt to the controller.
 *
 * PacketIoIngress runs first in both programs. It consumes packet_out and decides what an injected
 * packet is: a flowmig command (ethertype ETHERTYPE_FLOWMIG), a frame to send out of a given port
 * (PACKET_OUT_DIRECT), or a frame to forward as if it had arrived on a given port, bypassing per-flow
 * suspension (PACKET_OUT_FORWARD, the replay of buffered packets). Commands from data ports are
 * dropped: only the controller may issue them.
 */
#ifndef FLOWMIG_PACKET_IO_P4
#define FLOWMIG_PACKET_IO_P4

#include "headers.p4"

control PacketIoIngress(inout headers_t hdr,
                        inout local_metadata_t meta,
                        inout standard_metadata_t std) {
    apply {
        meta.ingress_port = std.ingress_port;
        meta.replay = false;
        meta.is_command = false;
        meta.sent_direct = false;
        meta.punt = false;
        meta.drop = false;
        meta.drop_reason = 0;
        if (hdr.packet_out.isValid()) {
            if (hdr.flowmig.isValid()) {
                meta.is_command = true;
            } else if (hdr.packet_out.mode == PACKET_OUT_DIRECT) {
                std.egress_spec = hdr.packet_out.egress_port;
                meta.sent_direct = true;
            } else if (hdr.packet_out.mode == PACKET_OUT_FORWARD) {
                meta.ingress_port = hdr.packet_out.ingress_port;
                meta.replay = true;
            } else {
                meta.drop = true;
                meta.drop_reason = DROP_BAD_PACKET_OUT;
            }
            hdr.packet_out.setInvalid();
        } else if (hdr.flowmig.isValid()) {
            meta.drop = true;
            meta.drop_reason = DROP_COMMAND_NOT_FROM_CPU;
        }
    }
}

// Sends the packet to the controller with packet_in metadata.
control CpuPunt(inout headers_t hdr,
                in port_num_t ingress_port,
                in bit<8> reason,
                inout standard_metadata_t std) {
    apply {
        std.egress_spec = CPU_PORT;
        hdr.packet_in.setValid();
        hdr.packet_in.ingress_port = ingress_port;
        hdr.packet_in._pad0 = 0;
        hdr.packet_in.reason = reason;
    }
}

// Every drop of the program goes through here, counted by reason (index DROP_*).
control DropAccounting(inout local_metadata_t meta, inout standard_metadata_t std) {
    counter(DROP_REASONS, CounterType.packets_and_bytes) drops;

    apply {
        if (meta.drop) {
            drops.count(meta.drop_reason);
            mark_to_drop(std);
        }
    }
}

#endif
