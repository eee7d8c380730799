/*
 * flowmig: the gateway's forwarding: per-flow entries, IPv4 routes, hash placement on the NIC group.
 *
 * Order of decisions for an IPv4 packet:
 *   1. `flow_forwarding` (exact 5-tuple, as the packet carries it): what migration rewrites.
 *      set_nic_port(port) pins the flow; suspend_flow(mode, port) suspends it: its packets go to the
 *      controller (SUSPEND_PUNT, lossless) or are dropped (SUSPEND_DROP), except replayed packets
 *      (PACKET_OUT_FORWARD), which go to `port` - the flow's new path.
 *      Lossless flip: forward_after_drain(port, drain) forwards to `port` only once the controller has
 *      replayed every punted packet of the flow: registers drain_punted[drain] (punts of the flow, counted
 *      by suspend_flow and forward_after_drain) and drain_replayed[drain] (its replays seen by
 *      forward_after_drain). A data packet arriving while they differ is punted too (queued behind the
 *      outstanding ones at the controller); a replay is counted and forwarded. Packets are executed one
 *      at a time, so when the counts are equal every punt has been forwarded: strict order. drain 0
 *      counts nothing (no drain slot).
 *      Lease: both actions carry (lease_us, lease_gen). A data packet (not a replay) of an entry with
 *      drain != 0 and lease_us != 0 (re)starts the lease when drain_lease_gen[drain] != lease_gen (the
 *      entry was written anew: store the gen and now); once now - drain_lease_since[drain] > lease_us the
 *      lease has expired: the packet goes to the entry's `port` whatever the action would do (no punt,
 *      no drop) and drain_lease_expired[drain] counts it. A live controller renews by rewriting the entry
 *      with a new gen; a dead one costs the flow at most the lease.
 *   2. otherwise `ipv4_routes` (LPM on dst): route_to_port(port) for hosts on this side,
 *      route_via_nics(group_size) for destinations behind the NICs, where
 *   3. `nic_group` maps hash(normalized key) mod group_size -> NIC port. The key is normalized
 *      (FlowKey), so both directions of a connection get the same index; with the same group size
 *      and index order on both gateways, both directions cross the same NIC, which a stateful NIC
 *      requires.
 */
#ifndef FLOWMIG_GATEWAY_FORWARDING_P4
#define FLOWMIG_GATEWAY_FORWARDING_P4

#include "headers.p4"

control GatewayForwarding(inout headers_t hdr,
                          inout local_metadata_t meta,
                          inout standard_metadata_t std) {
    direct_counter(CounterType.packets_and_bytes) flow_forwarding_counter;
    direct_counter(CounterType.packets_and_bytes) ipv4_routes_counter;
    direct_counter(CounterType.packets_and_bytes) nic_group_counter;
    register<bit<32>>(DRAIN_SLOTS) drain_punted;     // punts of the flow holding the index
    register<bit<32>>(DRAIN_SLOTS) drain_replayed;   // its replays seen by forward_after_drain
    register<bit<32>>(DRAIN_SLOTS) drain_lease_gen;  // lease_gen of the entry whose lease runs
    register<bit<48>>(DRAIN_SLOTS) drain_lease_since; // when it started (ingress_global_timestamp, us)
    counter(DRAIN_SLOTS, CounterType.packets) drain_lease_expired;   // packets let through by an expired lease

    bit<32> lease_len_us;    // the hit entry's lease (0: none)
    bit<32> lease_id;        // and its generation
    bit<32> lease_seen;      // drain_lease_gen[drain]
    bit<48> lease_since;     // drain_lease_since[drain]
    bool    lease_expired;

    // ---- per-flow entries ----

    action set_nic_port(port_num_t port) {
        std.egress_spec = port;
        flow_forwarding_counter.count();
    }

    action suspend_flow(bit<8> mode, port_num_t port, bit<32> drain, bit<32> lease_us, bit<32> lease_gen) {
        meta.suspended = true;
        meta.suspend_mode = mode;
        meta.suspend_port = port;
        meta.drain_index = drain;
        lease_len_us = lease_us;
        lease_id = lease_gen;
        flow_forwarding_counter.count();
    }

    action forward_after_drain(port_num_t port, bit<32> drain, bit<32> lease_us, bit<32> lease_gen) {
        meta.draining = true;
        meta.suspend_port = port;
        meta.drain_index = drain;
        lease_len_us = lease_us;
        lease_id = lease_gen;
        flow_forwarding_counter.count();
    }

    action use_routes() {
        flow_forwarding_counter.count();
    }

    table flow_forwarding {
        key = {
            hdr.ipv4.src_addr : exact @name("src_addr");
            hdr.ipv4.dst_addr : exact @name("dst_addr");
            hdr.ipv4.protocol : exact @name("proto");
            meta.l4_src_port  : exact @name("src_port");
            meta.l4_dst_port  : exact @name("dst_port");
        }
        actions = {
            set_nic_port;
            suspend_flow;
            forward_after_drain;
            @defaultonly use_routes;
        }
        const default_action = use_routes();
        counters = flow_forwarding_counter;
        size = 16384;
    }

    // ---- routes ----

    action route_to_port(port_num_t port) {
        std.egress_spec = port;
        ipv4_routes_counter.count();
    }

    action route_via_nics(bit<32> group_size) {
        meta.via_nics = true;
        hash(meta.nic_index, HashAlgorithm.crc16, (bit<16>)0,
             { meta.key_addr_lo, meta.key_addr_hi, meta.key_port_lo, meta.key_port_hi,
               meta.key_proto, meta.key_qpn },
             group_size);
        ipv4_routes_counter.count();
    }

    action drop_no_route() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_ROUTE;
        ipv4_routes_counter.count();
    }

    table ipv4_routes {
        key = {
            hdr.ipv4.dst_addr : lpm @name("dst_addr");
        }
        actions = {
            route_to_port;
            route_via_nics;
            @defaultonly drop_no_route;
        }
        const default_action = drop_no_route();
        counters = ipv4_routes_counter;
        size = 1024;
    }

    // ---- NIC group (hash placement) ----

    action set_group_port(port_num_t port) {
        std.egress_spec = port;
        nic_group_counter.count();
    }

    action drop_no_nic() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_NIC;
        nic_group_counter.count();
    }

    table nic_group {
        key = {
            meta.nic_index : exact @name("index");
        }
        actions = {
            set_group_port;
            @defaultonly drop_no_nic;
        }
        const default_action = drop_no_nic();
        counters = nic_group_counter;
        size = 64;
    }

    apply {
        meta.via_nics = false;
        meta.suspended = false;
        meta.draining = false;
        meta.drain_index = 0;
        lease_len_us = 0;
        lease_id = 0;
        lease_expired = false;
        if (flow_forwarding.apply().hit) {
            // the lease of a suspension / drain (an index outside the registers has none)
            if ((meta.suspended || meta.draining) && !meta.replay && lease_len_us != 0
                    && meta.drain_index != 0 && meta.drain_index < DRAIN_SLOTS) {
                drain_lease_gen.read(lease_seen, meta.drain_index);
                if (lease_seen != lease_id) {
                    // a new entry (or a renewal): its lease starts now
                    drain_lease_gen.write(meta.drain_index, lease_id);
                    drain_lease_since.write(meta.drain_index, std.ingress_global_timestamp);
                } else {
                    drain_lease_since.read(lease_since, meta.drain_index);
                    if (std.ingress_global_timestamp - lease_since > (bit<48>)lease_len_us) {
                        lease_expired = true;
                        drain_lease_expired.count(meta.drain_index);
                    }
                }
            }
            if (lease_expired) {
                // nobody renewed it: resume by itself toward the entry's port
                std.egress_spec = meta.suspend_port;
            } else if (meta.suspended) {
                if (meta.replay) {
                    std.egress_spec = meta.suspend_port;
                } else if (meta.suspend_mode == SUSPEND_DROP) {
                    meta.drop = true;
                    meta.drop_reason = DROP_SUSPENDED;
                } else {
                    meta.punt = true;
                    if (meta.drain_index != 0) {
                        drain_punted.read(meta.drain_punted_n, meta.drain_index);
                        drain_punted.write(meta.drain_index, meta.drain_punted_n + 1);
                    }
                }
            } else if (meta.draining) {
                if (meta.drain_index == 0) {
                    std.egress_spec = meta.suspend_port;
                } else if (meta.replay) {
                    drain_replayed.read(meta.drain_replayed_n, meta.drain_index);
                    drain_replayed.write(meta.drain_index, meta.drain_replayed_n + 1);
                    std.egress_spec = meta.suspend_port;
                } else {
                    drain_punted.read(meta.drain_punted_n, meta.drain_index);
                    drain_replayed.read(meta.drain_replayed_n, meta.drain_index);
                    if (meta.drain_punted_n != meta.drain_replayed_n) {
                        // punts still outstanding: queue behind them at the controller
                        meta.punt = true;
                        drain_punted.write(meta.drain_index, meta.drain_punted_n + 1);
                    } else {
                        std.egress_spec = meta.suspend_port;
                    }
                }
            }
        } else {
            ipv4_routes.apply();
            if (meta.via_nics) {
                nic_group.apply();
            }
        }
    }
}

#endif
