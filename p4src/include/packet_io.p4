/*
 * flowmig: the controller's packet I/O (CPU_PORT), drop accounting, and the punt to the controller.
 *
 * PacketIoIngress runs first in both programs. It consumes packet_out and decides what an injected
 * packet is: a flowmig command (ethertype ETHERTYPE_FLOWMIG), a frame to send out of a given port
 * (PACKET_OUT_DIRECT), or a frame to forward as if it had arrived on a given port, bypassing per-flow
 * suspension (PACKET_OUT_FORWARD, the replay of buffered packets). A command sent DIRECT also names a
 * port (`command_direct`): the gateway sends it out there as is (a path save toward a NIC); the NIC,
 * which executes what it gets from CPU_PORT, ignores it. Commands from data ports are dropped: only
 * the controller may issue them (the NIC's one exception, a path save — a SAVE, or a batch of SAVEs —
 * is in flow_nic.p4). A command
 * batch runs one record per pass: CommandReply and CommandBatchEgress send it round again
 * (recirculation) until every record is executed.
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
        meta.command_direct = false;
        meta.sent_direct = false;
        meta.punt = false;
        meta.drop = false;
        meta.drop_reason = 0;
        meta.batch_next = false;   // (preserved across a batch's recirculation; decided anew each pass)
        if (std.instance_type != PKT_INSTANCE_TYPE_RECIRC) {
            meta.batch_from_port = false;   // (preserved too: set by flow_nic.p4 on a batch's first pass)
        }
        if (hdr.packet_out.isValid()) {
            if (hdr.flowmig.isValid() || hdr.flowmig_batch.isValid()) {
                meta.is_command = true;
                if (hdr.packet_out.mode == PACKET_OUT_DIRECT) {
                    meta.command_direct = true;
                    std.egress_spec = hdr.packet_out.egress_port;   // (a NIC's reply goes to CPU_PORT)
                }
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
        } else if (std.instance_type == PKT_INSTANCE_TYPE_RECIRC && hdr.flowmig_batch.isValid()
                   && hdr.flowmig.isValid()) {
            // the next record of a batch the NIC recirculated (a batch from CPU_PORT, or a batched path
            // save, whose records flow_nic.p4 checks: SAVEs only)
            meta.is_command = true;
        } else if (hdr.flowmig.isValid() || hdr.flowmig_batch.isValid()) {
            meta.drop = true;
            meta.drop_reason = DROP_COMMAND_NOT_FROM_CPU;
        }
        if (meta.is_command && hdr.flowmig_batch.isValid()) {
            if (!hdr.flowmig.isValid() || hdr.flowmig_batch.count > FLOWMIG_BATCH_MAX
                || hdr.flowmig_batch.done >= hdr.flowmig_batch.count) {
                meta.is_command = false;
                meta.drop = true;
                meta.drop_reason = DROP_BAD_PACKET_OUT;
            }
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

// After a command record ran: a batch with records left goes round again (CommandBatchEgress
// recirculates it); anything else is the reply, sent to the controller.
control CommandReply(inout headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t std) {
    CpuPunt() cpu_punt;

    apply {
        meta.batch_next = false;
        if (hdr.flowmig_batch.isValid()) {
            hdr.flowmig_batch.done = hdr.flowmig_batch.done + 1;
            if (hdr.flowmig_batch.done < hdr.flowmig_batch.count) {
                meta.batch_next = true;
                std.egress_spec = CPU_PORT;   // any port: egress recirculates instead of sending
            }
        }
        if (!meta.batch_next) {
            cpu_punt.apply(hdr, meta.ingress_port, PACKET_IN_COMMAND_REPLY, std);
        }
    }
}

control CommandBatchEgress(inout local_metadata_t meta) {
    apply {
        if (meta.batch_next) {
            recirculate_preserving_field_list(FL_BATCH);
        }
    }
}

#endif
