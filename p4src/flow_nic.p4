/*
 * flowmig: the stateful NIC.
 *
 * A two-port bump in the wire that tracks every TCP connection, UDP flow and RoCEv2 queue pair it
 * forwards, learns new ones in the data plane (digest to the controller), drops TCP packets that
 * its state says are invalid, executes the controller's in-band flowmig commands (suspend, save,
 * load, resume, clear) on that state, answers the controller's path markers and path saves (a SAVE
 * that came through a gateway, behind its traffic) and forwards its drain
 * markers untracked. Everything is in
 * include/; this file only wires it together.
 * Contract with the controller: docs/dataplane.md.
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
#include "flow_state.p4"
#include "nic_forwarding.p4"

control FlowNicIngress(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t std) {
    PortRxStats() port_rx_stats;
    PacketIoIngress() packet_io;
    NicForwarding() nic_forwarding;
    FlowKey() flow_key;
    FlowState() flow_state;
    CommandReply() command_reply;
    CpuPunt() marker_punt;
    DropAccounting() drop_accounting;

    apply {
        if (std.instance_type != PKT_INSTANCE_TYPE_RECIRC) {   // a batch going round is no RX
            port_rx_stats.apply(std.ingress_port);
        }
        packet_io.apply(hdr, meta, std);
        if (meta.drop && meta.drop_reason == DROP_COMMAND_NOT_FROM_CPU && hdr.flowmig.isValid()
                && hdr.flowmig.opcode == CMD_SAVE
                && (!hdr.flowmig_batch.isValid() || (hdr.flowmig_batch.done == 0
                    && hdr.flowmig_batch.count > 0 && hdr.flowmig_batch.count <= FLOWMIG_BATCH_MAX))) {
            // A path save: a SAVE (or a batch of SAVEs, none executed yet) the controller sent out of a
            // gateway (PacketOut DIRECT) behind every packet the gateway sent this way before it, so
            // its reply is the state after them. It only reads, and its reply goes to the controller
            // alone: the one command a data port may bring (the gateways drop command frames from
            // their own ports).
            meta.drop = false;
            meta.drop_reason = 0;
            meta.is_command = true;
            meta.batch_from_port = hdr.flowmig_batch.isValid();
        } else if (meta.is_command && meta.batch_from_port && hdr.flowmig.opcode != CMD_SAVE) {
            // a later record of a batched path save that is not a SAVE: the rest is dropped unanswered
            // (the SAVEs before it only read)
            meta.is_command = false;
            meta.drop = true;
            meta.drop_reason = DROP_COMMAND_NOT_FROM_CPU;
        }
        meta.is_marker = false;
        if (!meta.is_command && !meta.sent_direct && !meta.drop) {
            if (hdr.udp.isValid() && hdr.ipv4.dst_addr == MARKER_DST_ADDR && hdr.udp.dst_port == MARKER_PORT) {
                // a path marker: every packet that came in ahead of it has updated its flow's state
                meta.is_marker = true;
                marker_punt.apply(hdr, meta.ingress_port, PACKET_IN_PATH_MARKER, std);
            } else {
                // a drain marker is forwarded like data, behind the packets queued ahead of it, but
                // never tracked
                meta.is_marker = hdr.udp.isValid() && hdr.ipv4.dst_addr == MARKER_DST_ADDR
                                 && hdr.udp.dst_port == MARKER_DRAIN_PORT;
                nic_forwarding.apply(hdr, meta, std);
                if (!meta.is_marker) {
                    flow_key.apply(hdr, meta);
                }
            }
        }
        // One place applies the flow state: commands, and data packets still being forwarded.
        if (meta.is_command || (!meta.sent_direct && !meta.drop && !meta.is_marker)) {
            flow_state.apply(hdr, meta, std);
        }
        if (meta.is_command) {
            command_reply.apply(hdr, meta, std);
        }
        drop_accounting.apply(meta, std);
    }
}

control FlowNicEgress(inout headers_t hdr,
                      inout local_metadata_t meta,
                      inout standard_metadata_t std) {
    PortTxStats() port_tx_stats;
    CommandBatchEgress() command_batch;

    apply {
        command_batch.apply(meta);
        if (!meta.batch_next) {
            port_tx_stats.apply(meta, std);
        }
    }
}

V1Switch(FlowmigParser(),
         FlowmigVerifyChecksum(),
         FlowNicIngress(),
         FlowNicEgress(),
         FlowmigComputeChecksum(),
         FlowmigDeparser()) main;
