/*
 * flowmig: per-port traffic counters and egress queue telemetry (both programs).
 *
 * Arrays are indexed by port number (MAX_PORTS entries; CPU_PORT counts controller traffic).
 * The monitor reads the counters through P4Runtime CounterEntry; the queue registers are readable
 * where the target serves RegisterEntry (the embedded target does). Average queue delay over an
 * interval = delta(queue_delay_sum_us) / delta(tx packets).
 */
#ifndef FLOWMIG_PORT_STATS_P4
#define FLOWMIG_PORT_STATS_P4

#include "headers.p4"

control PortRxStats(in port_num_t port) {
    counter(MAX_PORTS, CounterType.packets_and_bytes) rx_port_counter;

    apply {
        rx_port_counter.count((bit<32>)port);
    }
}

control PortTxStats(inout local_metadata_t meta, in standard_metadata_t std) {
    counter(MAX_PORTS, CounterType.packets_and_bytes) tx_port_counter;
    register<bit<32>>(MAX_PORTS) queue_delay_last_us;   // deq_timedelta of the last packet
    register<bit<64>>(MAX_PORTS) queue_delay_sum_us;    // sum of deq_timedelta over all packets
    register<bit<32>>(MAX_PORTS) queue_depth_last;      // enq_qdepth of the last packet
    register<bit<32>>(MAX_PORTS) queue_depth_max;       // largest enq_qdepth (the monitor may reset it)

    apply {
        tx_port_counter.count((bit<32>)std.egress_port);
        queue_delay_last_us.write((bit<32>)std.egress_port, std.deq_timedelta);
        queue_delay_sum_us.read(meta.queue_delay_sum, (bit<32>)std.egress_port);
        queue_delay_sum_us.write((bit<32>)std.egress_port, meta.queue_delay_sum + (bit<64>)std.deq_timedelta);
        queue_depth_last.write((bit<32>)std.egress_port, (bit<32>)std.enq_qdepth);
        queue_depth_max.read(meta.queue_depth_max, (bit<32>)std.egress_port);
        if ((bit<32>)std.enq_qdepth > meta.queue_depth_max) {
            queue_depth_max.write((bit<32>)std.egress_port, (bit<32>)std.enq_qdepth);
        }
    }
}

#endif
