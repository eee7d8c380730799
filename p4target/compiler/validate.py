"""Structural validation of BMv2 JSON as simple_switch loads it (referential integrity, widths).

Run on every compiled program before it is returned (an inconsistency is an internal compiler error,
never a silently broken output) and by the tests: every name a node refers to must exist, every field
reference must name a declared header field, transition values must have the key's byte width.
"""
from __future__ import annotations

from typing import Any

# BMv2's expression evaluator keeps data and booleans on separate stacks: an operand of the wrong kind is
# not a load-time error but undefined behaviour at run time, so the kinds are checked here.
_BOOL_OPS = {"==", "!=", ">", "<", ">=", "<=", "and", "or", "not", "d2b", "valid", "valid_union"}
_BOOL_ARGS = {"and", "or", "not", "b2d"}
_DATA_ARGS = {"+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "~", ">", "<", ">=", "<=", "d2b",
              "two_comp_mod", "sat_cast", "usat_cast"}


def expr_kind(v: Any, where: str, errs: list[str]) -> str:
    """Kind of a BMv2 expression operand (``data``, ``bool``, ``header``, ``stack``...), as
    P4Objects::build_expression infers it; operand-kind mismatches are appended to ``errs``."""
    if v is None:
        return "none"
    if not isinstance(v, dict):
        return "other"       # access_field's offset
    t = v.get("type")
    if t in ("field", "hexstr", "local", "stack_field", "register", "runtime_data", "lookahead"):
        return "data"
    if t == "bool":
        return "bool"
    if t == "header":
        return "header"
    if t == "header_stack":
        return "stack"
    if t != "expression":
        return "other"
    e = v["value"]
    if "op" not in e:
        return expr_kind(e, where, errs)
    op = e["op"]
    if op not in OPERATORS:
        errs.append(f"{where}: unknown operator {op}")
    left = expr_kind(e.get("left"), where, errs)
    right = expr_kind(e.get("right"), where, errs)
    if op == "?":
        if expr_kind(e.get("cond"), where, errs) != "bool":
            errs.append(f"{where}: '?' condition is not boolean")
        if left != right:
            errs.append(f"{where}: '?' branches of kinds {left} and {right}")
        return left
    if op in ("==", "!=") and (left != right or left not in ("data", "bool", "header")):
        errs.append(f"{where}: '{op}' between {left} and {right}")
    want = "bool" if op in _BOOL_ARGS else "data" if op in _DATA_ARGS else None
    if want is not None:
        for side, k in (("left", left), ("right", right)):
            if k != "none" and k != want:
                errs.append(f"{where}: operand {side} of '{op}' is {k}, not {want}")
    if op == "access_field" or op == "dereference_header_stack":
        return "data" if op == "access_field" else "header"
    return "bool" if op in _BOOL_OPS else "data"


# What simple_switch's loader knows: primitives (with their parameter counts), expression operators,
# match types and parser operations. Anything else makes it refuse the whole JSON.
PRIMITIVES = {"assign": 2, "assign_VL": 2, "assign_header": 2, "assign_union": 2, "assign_header_stack": 2,
              "assign_union_stack": 2, "push": 2, "pop": 2, "assume": 1, "assert": 1, "exit": 0, "log_msg": 2,
              "modify_field": 2, "modify_field_rng_uniform": 3, "add_header": 1, "remove_header": 1,
              "mark_to_drop": 1, "generate_digest": 2, "clone_ingress_pkt_to_egress": 2,
              "clone_egress_pkt_to_egress": 2, "resubmit": 1, "recirculate": 1,
              "modify_field_with_hash_based_offset": 4, "execute_meter": 3, "count": 2, "register_read": 3,
              "register_write": 3, "truncate": 1, "_jump": 1, "_jump_if_zero": 2}
OPERATORS = {"+", "-", "%", "/", "*", "<<", ">>", "&", "|", "^", "~", "==", "!=", ">", "<", ">=", "<=", "and",
             "or", "not", "b2d", "d2b", "two_comp_mod", "sat_cast", "usat_cast", "valid", "valid_union", "?",
             "last_stack_index", "size_stack", "access_field", "dereference_header_stack",
             "dereference_union_stack", "access_union_header"}
MATCH_TYPES = {"exact", "lpm", "ternary", "range", "valid"}
PARSER_OPS = {"extract", "extract_VL", "set", "verify", "primitive", "shift", "advance"}

REQUIRED = ["header_types", "headers", "header_stacks", "field_lists", "errors", "enums", "parsers",
            "parse_vsets", "deparsers", "meter_arrays", "counter_arrays", "register_arrays", "calculations",
            "learn_lists", "actions", "pipelines", "checksums", "extern_instances", "field_aliases", "__meta__"]


def validate(j: dict[str, Any]) -> list[str]:  # noqa: C901 - one walk over the document
    errs: list[str] = []
    for k in REQUIRED:
        if k not in j:
            errs.append(f"missing top-level key {k}")
    if errs:
        return errs
    htypes = {t["name"]: {f[0]: f[1] for f in t["fields"]} for t in j["header_types"]}
    headers = {h["name"]: h["header_type"] for h in j["headers"]}
    stacks = {s["name"]: s for s in j["header_stacks"]}
    for h, t in headers.items():
        if t not in htypes:
            errs.append(f"header {h}: unknown type {t}")
    for k in ("headers", "header_types", "actions", "register_arrays", "counter_arrays", "meter_arrays",
              "calculations", "learn_lists"):
        ids = [x["id"] for x in j[k]]
        if len(ids) != len(set(ids)):
            errs.append(f"{k}: duplicate ids")
        names = [x["name"] for x in j[k]]
        if len(names) != len(set(names)):
            errs.append(f"{k}: duplicate names")
    # simple_switch's loader rejects duplicate ids per object kind across pipelines/parsers too
    for kind_name, objs in (("tables", [t for p in j["pipelines"] for t in p["tables"]]),
                            ("conditionals", [c for p in j["pipelines"] for c in p["conditionals"]]),
                            ("parse states", [s for p in j["parsers"] for s in p["parse_states"]]),
                            ("checksums", j["checksums"]), ("field_lists", j["field_lists"])):
        ids = [x["id"] for x in objs]
        if len(ids) != len(set(ids)):
            errs.append(f"{kind_name}: duplicate ids")
    actions = {a["id"]: a for a in j["actions"]}
    action_names = {a["name"] for a in j["actions"]}
    named = {k: {x["name"] for x in j[k]} for k in ("register_arrays", "counter_arrays", "meter_arrays",
                                                     "calculations")}

    def field(v: Any, where: str) -> None:
        h, f = v
        if h not in headers:
            errs.append(f"{where}: unknown header {h}")
        elif f != "$valid$" and f not in htypes[headers[h]]:
            errs.append(f"{where}: unknown field {h}.{f}")

    def value(v: Any, where: str, nrd: int | None = None) -> None:
        if v is None or isinstance(v, (int, bool, str)):
            return
        if isinstance(v, list):
            for x in v:
                value(x, where, nrd)
            return
        t = v.get("type")
        if t == "field":
            field(v["value"], where)
        elif t in ("header",):
            if v["value"] not in headers:
                errs.append(f"{where}: unknown header {v['value']}")
        elif t == "header_stack":
            if v["value"] not in stacks:
                errs.append(f"{where}: unknown stack {v['value']}")
        elif t == "stack_field":
            if v["value"][0] not in stacks:
                errs.append(f"{where}: unknown stack {v['value'][0]}")
        elif t in ("runtime_data", "local"):
            if nrd is None or not 0 <= v["value"] < nrd:
                errs.append(f"{where}: runtime data index {v['value']} out of range")
        elif t == "hexstr":
            int(v["value"], 16)
        elif t in ("register_array", "counter_array", "meter_array", "calculation"):
            if v["value"] not in named[t + "s" if t != "calculation" else "calculations"]:
                errs.append(f"{where}: unknown {t} {v['value']}")
        elif t == "expression":
            inner = v["value"]
            if "op" in inner:
                for k in ("left", "right", "cond"):
                    if k in inner and isinstance(inner[k], dict):
                        value(inner[k], where, nrd)
            else:
                value(inner, where, nrd)
        elif t == "parameters_vector":
            value(v["value"], where, nrd)
        elif t in ("bool", "string", "lookahead", "regular", "stack", "payload"):
            pass
        else:
            errs.append(f"{where}: unknown value type {t}")

    def kind(v: Any, want: str, where: str) -> None:
        got = expr_kind(v, where, errs)
        if got != want:
            errs.append(f"{where}: expression is {got}, not {want}")

    def prim_params(p: dict[str, Any], where: str, nrd: int | None) -> None:
        if PRIMITIVES.get(p["op"], -1) != len(p["parameters"]):
            errs.append(f"{where}: primitive {p['op']} with {len(p['parameters'])} parameters")
        value(p["parameters"], where, nrd)
        for x in p["parameters"]:
            if isinstance(x, dict) and x.get("type") == "expression":
                kind(x["value"], "data", f"{where} {p['op']}")

    for a in j["actions"]:
        n = len(a["runtime_data"])
        prims = a["primitives"]
        for p in prims:
            prim_params(p, f"action {a['name']}", n)
            if p["op"] in ("_jump", "_jump_if_zero"):
                target = int(p["parameters"][-1]["value"], 16)
                if not 0 <= target <= len(prims):
                    errs.append(f"action {a['name']}: jump target {target} out of range")
    for ps in j["parsers"]:
        states = {s["name"] for s in ps["parse_states"]}
        if ps["init_state"] not in states:
            errs.append("parser: init state missing")
        for s in ps["parse_states"]:
            for op in s["parser_ops"]:
                if op["op"] not in PARSER_OPS:
                    errs.append(f"state {s['name']}: unknown parser op {op['op']}")
                if op["op"] != "primitive":
                    value(op["parameters"], f"state {s['name']}")
                if op["op"] == "verify":
                    kind(op["parameters"][0], "bool", f"state {s['name']} verify")
                elif op["op"] == "set" and op["parameters"][1]["type"] == "expression":
                    kind(op["parameters"][1]["value"], "data", f"state {s['name']} set")
                elif op["op"] == "primitive":
                    prim_params(op["parameters"][0], f"state {s['name']}", None)
                if op["op"] == "extract":
                    p = op["parameters"][0]
                    if p["type"] == "regular" and p["value"] not in headers:
                        errs.append(f"state {s['name']}: extract of unknown header {p['value']}")
            klen = 0
            for k in s["transition_key"]:
                value(k, f"state {s['name']} key")
                if k["type"] == "field":
                    h, f = k["value"]
                    w = 1 if f == "$valid$" else htypes.get(headers.get(h, ""), {}).get(f, 0)
                    klen += (w + 7) // 8
                elif k["type"] == "stack_field":
                    st = stacks.get(k["value"][0])
                    klen += (htypes.get(st["header_type"], {}).get(k["value"][1], 0) + 7) // 8 if st else 0
                elif k["type"] == "lookahead":
                    klen += (k["value"][1] + 7) // 8
            for t in s["transitions"]:
                if t["next_state"] is not None and t["next_state"] not in states:
                    errs.append(f"state {s['name']}: unknown next state {t['next_state']}")
                if t["type"] == "hexstr" and len(t["value"]) - 2 != 2 * klen:
                    errs.append(f"state {s['name']}: transition value {t['value']} is not {klen} bytes")
    for d in j["deparsers"]:
        for h in d["order"]:
            if h not in headers:
                errs.append(f"deparser: unknown header {h}")
    for pl in j["pipelines"]:
        nodes = {t["name"] for t in pl["tables"]} | {c["name"] for c in pl["conditionals"]}
        if pl["init_table"] is not None and pl["init_table"] not in nodes:
            errs.append(f"pipeline {pl['name']}: unknown init_table {pl['init_table']}")
        for t in pl["tables"]:
            where = f"table {t['name']}"
            for k in t["key"]:
                field(k["target"], where)
                if k["match_type"] not in MATCH_TYPES:
                    errs.append(f"{where}: match type {k['match_type']} unknown to simple_switch")
            for ent in t.get("entries", []):
                if [m["match_type"] for m in ent["match_key"]] != [k["match_type"] for k in t["key"]]:
                    errs.append(f"{where}: entry match types differ from the key's")
            for aid, an in zip(t["action_ids"], t["actions"], strict=True):
                if aid not in actions or actions[aid]["name"] != an:
                    errs.append(f"{where}: action id {aid} is not {an}")
            for k, nx in t["next_tables"].items():
                if nx is not None and nx not in nodes:
                    errs.append(f"{where}: unknown next node {nx}")
                if k not in ("__HIT__", "__MISS__") and k not in action_names:
                    errs.append(f"{where}: next_tables for unknown action {k}")
            if t["base_default_next"] is not None and t["base_default_next"] not in nodes:
                errs.append(f"{where}: unknown base_default_next")
            de = t.get("default_entry")
            if de is not None:
                a = actions.get(de["action_id"])
                if a is None or len(de["action_data"]) != len(a["runtime_data"]):
                    errs.append(f"{where}: bad default entry")
        for c in pl["conditionals"]:
            value(c["expression"], f"conditional {c['name']}")
            kind(c["expression"], "bool", f"conditional {c['name']}")
            for k in ("true_next", "false_next"):
                if c[k] is not None and c[k] not in nodes:
                    errs.append(f"conditional {c['name']}: unknown {k} {c[k]}")
    for c in j["calculations"]:
        value(c["input"], f"calculation {c['name']}")
    for c in j["checksums"]:
        field(c["target"], f"checksum {c['name']}")
        if c.get("if_cond") is not None:
            kind(c["if_cond"], "bool", f"checksum {c['name']}")
        if c["calculation"] not in named["calculations"]:
            errs.append(f"checksum {c['name']}: unknown calculation")
    for ll in j["learn_lists"]:
        value(ll["elements"], f"learn list {ll['name']}")
    return errs
