/*
 * flowmig: RoCEv2 queue-pair tracking on the working copy of one slot's state (meta.st_*).
 *
 * Request packets (every opcode but ACK, ATOMIC ACK and CNP) are sequenced: a PSN other than the
 * expected one is counted as out-of-sequence (never dropped) and the expectation follows the packet
 * (expected = psn + 1, modulo 2^24), so one gap counts once. ACKs record the acknowledged PSN.
 * The first packet of a newly learned queue pair sets the expectation without counting.
 */
#ifndef FLOWMIG_ROCE_TRACKING_P4
#define FLOWMIG_ROCE_TRACKING_P4

#include "headers.p4"

control RoceTracking(in headers_t hdr, inout local_metadata_t meta) {
    apply {
        meta.roce_out_of_seq = false;
        if (hdr.bth.opcode == BTH_OP_RC_ACK || hdr.bth.opcode == BTH_OP_RC_ATOMIC_ACK) {
            meta.st_roce_acked_psn = hdr.bth.psn;
        } else if (hdr.bth.opcode != BTH_OP_CNP) {
            if (!meta.learned && hdr.bth.psn != meta.st_roce_expected_psn) {
                meta.st_roce_oos_count = meta.st_roce_oos_count + 1;
                meta.roce_out_of_seq = true;
            }
            meta.st_roce_expected_psn = hdr.bth.psn + 1;
        }
    }
}

#endif
