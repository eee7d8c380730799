/*
 * flowmig: checksum controls shared by both programs.
 *
 * Neither program rewrites IPv4 or L4 headers (hosts use static ARP, the switches forward on IPv4
 * without touching MACs or TTL), so only the IPv4 header checksum is verified and recomputed; the
 * TCP/UDP checksums (possibly left partial by checksum offload on veth) pass through untouched.
 */
#ifndef FLOWMIG_CHECKSUMS_P4
#define FLOWMIG_CHECKSUMS_P4

#include "headers.p4"

control FlowmigVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        // A mismatch sets standard_metadata.checksum_error; packets are not dropped for it.
        verify_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn,
              hdr.ipv4.total_len, hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
    }
}

control FlowmigComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn,
              hdr.ipv4.total_len, hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
    }
}

#endif
