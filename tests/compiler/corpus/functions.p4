/* P4 functions (inlined): a value-returning function with early return and a void function with an
 * inout parameter, called from an action and from the apply block. */
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; bit<8> c; }
struct headers { h_t h; }
struct meta_t { bit<8> x; }
bit<8> max8(in bit<8> p, in bit<8> q) {
    if (p > q) {
        return p;
    }
    return q;
}
void bump(inout bit<8> v, in bit<8> by) {
    v = v + by;
}
parser P(packet_in p, out headers hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { p.extract(hdr.h); transition accept; }
}
control I(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) {
    action a() { hdr.h.c = max8(hdr.h.a, hdr.h.b); bump(hdr.h.c, 1); }
    table t { actions = { a; } default_action = a(); }
    apply {
        t.apply();
        bit<8> z = max8(hdr.h.b, 8w100);
        hdr.h.a = z;
        sm.egress_spec = 1;
    }
}
control V(inout headers hdr, inout meta_t m) { apply { } }
control E(inout headers hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control C(inout headers hdr, inout meta_t m) { apply { } }
control D(packet_out p, in headers hdr) { apply { p.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
