"""Table commands of the runtime CLI, with ``simple_switch_CLI``'s syntax, handles and output.

    table_add MyIngress.ipv4_lpm ipv4_forward 10.0.1.0/24 => 00:00:00:00:01:01 1
    table_add acl drop 0x0800&&&0xffff 10.0.0.0&&&0xff000000 => 10      (ternary/range: priority last)

Match syntax per key: exact ``V``, lpm ``V/LEN``, ternary ``V&&&MASK``, range ``LO->HI``, valid
``0|1``. Handles are BMv2's: ``(version << 24) | index`` from the pipeline's tables. Priorities are
BMv2's (a smaller number wins): the pipeline keeps P4Runtime's ``2**31 - 1 - priority``, as PI does.
This is a mixin of ``runtime.RuntimeCommands`` (``self.info``, ``self.out``, ``self._pipeline()``).
"""

from __future__ import annotations

import time
from typing import Any

from p4target.switch.runtime_info import (
    BadParam,
    Bytes,
    MatchKeyError,
    OperationError,
    RuntimeDataError,
    TableDef,
    UsageError,
    data_hex,
    hexstr,
    parse_param,
)

PRIORITY_PIVOT = (1 << 31) - 1
INDEX_MASK = 0xFFFFFF

# pipeline TableError code -> BMv2 TableOperationErrorCode, per operation
_ADD_CODES = {"ALREADY_EXISTS": "DUPLICATE_ENTRY", "RESOURCE_EXHAUSTED": "TABLE_FULL",
              "INVALID_ARGUMENT": "BAD_MATCH_KEY"}


def _table_error(exc: Exception, codes: dict[str, str] | None = None) -> OperationError:
    code = getattr(exc, "code", "")
    return OperationError("table", (codes or {}).get(code, "ERROR"))


def _int_arg(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"Bad format for {what}") from None


def _pop_priority(table: TableDef, args: list[str]) -> int:
    if not table.has_priority:
        return 0
    try:
        return int(args.pop(-1))
    except (ValueError, IndexError):
        raise UsageError("Table is ternary, but could not extract a valid priority from args") from None


class TableCommands:
    """``table_*`` commands (mixed into RuntimeCommands)."""

    info: Any
    out: Any
    _timeouts: dict[tuple[str, int], tuple[int, float]]

    # ------------------------------------------------------------------ helpers
    def _table(self, name: str) -> tuple[TableDef, Any]:
        tdef = self.info.lookup("table", name)
        return tdef, self._pipeline().tables[tdef.name]

    def _parse_key(self, tdef: TableDef, words: list[str]) -> list[tuple[str, Any]]:
        """[(kind, value)] with Bytes values, as the CLI sends them (raises MatchKeyError)."""

        def one(text: str, bw: int) -> Bytes:
            try:
                return parse_param(text, bw)
            except BadParam as exc:
                raise MatchKeyError(f"Error while parsing {text} - {exc}") from None

        out: list[tuple[str, Any]] = []
        for key, word in zip(tdef.keys, words, strict=False):
            kind, bw = key.match_type, key.bitwidth
            if kind == "exact":
                out.append((kind, one(word, bw)))
            elif kind == "lpm":
                prefix, sep, length = word.partition("/")
                if not sep or "/" in length:
                    raise MatchKeyError(f"Invalid LPM value {word}, use '/' to separate prefix and length")
                try:
                    plen = int(length)
                except ValueError:
                    raise MatchKeyError(f"Invalid LPM prefix length in {word}") from None
                out.append((kind, (one(prefix, bw), plen)))
            elif kind == "ternary":
                parts = word.split("&&&")
                if len(parts) != 2:
                    raise MatchKeyError(f"Invalid ternary value {word}, use '&&&' to separate key and mask")
                value, mask = one(parts[0], bw), one(parts[1], bw)
                if value.width != mask.width:
                    raise MatchKeyError(f"Key and mask have different lengths in expression {word}")
                out.append((kind, (value, mask)))
            elif kind == "range":
                parts = word.split("->")
                if len(parts) != 2:
                    raise MatchKeyError(f"Invalid range value {word}, use '->' to separate range start "
                                        "and range end")
                lo, hi = one(parts[0], bw), one(parts[1], bw)
                if lo.width != hi.width:
                    raise MatchKeyError(f"start and end have different lengths in expression {word}")
                if lo.value > hi.value:
                    raise MatchKeyError(f"start is less than end in expression {word}")
                out.append((kind, (lo, hi)))
            else:  # valid
                try:
                    out.append((kind, bool(int(word))))
                except ValueError:
                    raise MatchKeyError(f"Invalid valid value {word}") from None
        return out

    @staticmethod
    def _key_str(kind: str, v: Any) -> str:
        if kind == "exact":
            return f"EXACT-{v.printable()}"
        if kind == "lpm":
            return f"LPM-{v[0].printable()}/{v[1]}"
        if kind == "ternary":
            return f"TERNARY-{v[0].printable()} &&& {v[1].printable()}"
        if kind == "range":
            return f"RANGE-{v[0].printable()} -> {v[1].printable()}"
        return "VALID-"

    def _to_matches(self, tdef: TableDef, table: Any, parsed: list[tuple[str, Any]]) -> list:
        from p4target.pipeline import Match

        matches = []
        for key, spec, (kind, v) in zip(tdef.keys, table.keys, parsed, strict=True):
            full = (1 << key.bitwidth) - 1
            if kind == "exact":
                value = v.value & full
                if key.mask:
                    tz = (key.mask & -key.mask).bit_length() - 1
                    value = (value & key.mask) >> tz
                matches.append(Match(spec.match_type, value=value & ((1 << spec.bitwidth) - 1)))
            elif kind == "lpm":
                plen = v[1]
                if not 0 <= plen <= key.bitwidth:
                    raise OperationError("table", "BAD_MATCH_KEY")
                prefix = full ^ ((1 << (key.bitwidth - plen)) - 1)
                matches.append(Match("lpm", value=v[0].value & prefix, prefix_len=plen))
            elif kind == "ternary":
                mask = v[1].value & full
                matches.append(Match("ternary", value=v[0].value & mask, mask=mask))
            elif kind == "range":
                matches.append(Match("range", value=v[0].value & full, high=v[1].value & full))
            else:
                matches.append(Match(spec.match_type, value=int(v)))
        return matches

    def _priority(self, tdef: TableDef, table: Any, priority: int) -> int:
        if not table.needs_priority:
            return 0
        if not 0 <= priority < PRIORITY_PIVOT:
            raise OperationError("table", "ERROR")
        return PRIORITY_PIVOT - priority

    def _action_data(self, action: Any, words: list[str], name: str) -> list[Bytes]:
        if len(words) != len(action.params):
            raise UsageError(f"Action {name} needs {len(action.params)} parameters")
        data = []
        for word, (_pname, bw) in zip(words, action.params, strict=True):
            try:
                data.append(parse_param(word, bw))
            except BadParam as exc:
                raise RuntimeDataError(f"Error while parsing {word} - {exc}") from None
        return data

    @staticmethod
    def _param_values(action: Any, data: list[Bytes]) -> list[int]:
        return [d.value & ((1 << bw) - 1) for d, (_n, bw) in zip(data, action.params, strict=True)]

    def _entry(self, table: Any, handle: int) -> Any:
        entries = table.entries()
        for e in entries:
            if e.handle == handle:
                return e
        if handle >= 0 and any(e.handle & INDEX_MASK == handle & INDEX_MASK for e in entries):
            raise OperationError("table", "EXPIRED_HANDLE")
        raise OperationError("table", "INVALID_HANDLE")

    def _action_entry_line(self, action: str | None, params: list[int]) -> str:
        if action is None:
            return "EMPTY"
        return f"Action entry: {action} - " + ", ".join(data_hex(v) for v in params)

    def _dump_entry(self, tdef: TableDef, table: Any, e: Any) -> None:
        self.out(f"Dumping entry {hex(e.handle)}")
        self.out("Match key:")
        w = max([20] + [len(k.name) for k in tdef.keys])
        for key, m in zip(tdef.keys, e.match, strict=False):
            full = (1 << key.bitwidth) - 1
            nb = key.width
            if key.match_type == "exact":
                value = m.value
                if key.mask:
                    value <<= (key.mask & -key.mask).bit_length() - 1
                text = hexstr(value, nb)
            elif key.match_type == "lpm":
                text = f"{hexstr(0 if m.wildcard else m.value, nb)}/{0 if m.wildcard else m.prefix_len}"
            elif key.match_type == "ternary":
                mask = 0 if m.wildcard else (full if m.mask is None else m.mask)
                text = f"{hexstr(m.value & mask, nb)} &&& {hexstr(mask, nb)}"
            elif key.match_type == "range":
                lo, hi = (0, full) if m.wildcard else (m.value, m.high)
                text = f"{hexstr(lo, nb)} -> {hexstr(hi, nb)}"
            else:
                text = "01" if m.value else "00"
            self.out(f"* {key.name:{w}}: {key.match_type.upper():10}{text}")
        if table.needs_priority:
            self.out(f"Priority: {PRIORITY_PIVOT - e.priority}")
        self.out(self._action_entry_line(e.action, e.params))
        ttl = self._timeouts.get((tdef.name, e.handle & INDEX_MASK))
        if ttl is not None:
            since = int((time.monotonic() - ttl[1]) * 1000)
            self.out(f"Life: {since}ms since hit, timeout is {ttl[0]}ms")

    # ------------------------------------------------------------------ listing
    def do_show_tables(self, line: str) -> None:
        "List tables defined in the P4 program: show_tables"
        self.exactly_n_args(line.split(), 0)
        for name in sorted(self.info.tables):
            self.out(self.info.tables[name].describe())

    def do_show_actions(self, line: str) -> None:
        "List actions defined in the P4 program: show_actions"
        self.exactly_n_args(line.split(), 0)
        for name in sorted(self.info.actions):
            self.out(self.info.actions[name].describe())

    def do_table_show_actions(self, line: str) -> None:
        "List one table's actions as per the P4 program: table_show_actions <table_name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        tdef = self.info.lookup("table", args[0])
        for name in sorted(tdef.actions):
            self.out(self.info.actions[name].describe())

    def do_table_info(self, line: str) -> None:
        "Show info about a table: table_info <table_name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        tdef = self.info.lookup("table", args[0])
        self.out(tdef.describe())
        self.out("*" * 80)
        for name in sorted(tdef.actions):
            self.out(self.info.actions[name].describe())

    def do_table_num_entries(self, line: str) -> None:
        "Return the number of entries in a match table (direct or indirect): table_num_entries <table name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        _tdef, table = self._table(args[0])
        self.out(len(table.entries()))

    # ------------------------------------------------------------------ entries
    def _table_and_action(self, args: list[str]) -> tuple[str, str, TableDef, Any, Any]:
        """``<table name> <action name> ...`` (3 words at least): the names, the table's definition and
        state, and the action (UsageError when the table has no such action)."""
        self.at_least_n_args(args, 3)
        tname, aname = args[0], args[1]
        tdef, table = self._table(tname)
        action = self.info.table_action(tdef, aname)
        if action is None:
            raise UsageError(f"Table {tname} has no action {aname}")
        return tname, aname, tdef, table, action

    def do_table_add(self, line: str) -> None:
        "Add entry to a match table: table_add <table name> <action name> <match fields> => <action parameters> [priority]"
        args = line.split()
        tname, aname, tdef, table, action = self._table_and_action(args)
        priority = _pop_priority(tdef, args)
        rest = args[2:]
        if not rest:
            raise UsageError(f"Table {tname} needs {len(tdef.keys)} key fields")
        cut = rest.index("=>") if "=>" in rest else len(rest) - 1
        words, pwords = rest[:cut], rest[cut + 1:]
        if len(words) != len(tdef.keys):
            raise UsageError(f"Table {tname} needs {len(tdef.keys)} key fields")
        data = self._action_data(action, pwords, action.name)
        parsed = self._parse_key(tdef, words)
        self.out("Adding entry to", tdef.match_type, "match table", tname)
        self.out("{:20} {}".format("match key:", "\t".join(self._key_str(k, v) for k, v in parsed)))
        self.out("{:20} {}".format("action:", aname))
        self.out("{:20} {}".format("runtime data:", "\t".join(d.printable() for d in data)))
        matches = self._to_matches(tdef, table, parsed)
        try:
            entry = table.add(matches, action.name, self._param_values(action, data),
                              self._priority(tdef, table, priority))
        except OperationError:
            raise
        except Exception as exc:
            raise _table_error(exc, _ADD_CODES) from None
        self.out("Entry has been added with handle", entry.handle)

    def do_table_modify(self, line: str) -> None:
        "Add entry to a match table: table_modify <table name> <action name> <entry handle> [action parameters]"
        args = line.split()
        tname, _, tdef, table, action = self._table_and_action(args)
        handle = _int_arg(args[2], "entry handle")
        pwords = args[4:] if len(args) > 3 and args[3] == "=>" else args[3:]
        data = self._action_data(action, pwords, action.name)
        self.out("Modifying entry", handle, "for", tdef.match_type, "match table", tname)
        entry = self._entry(table, handle)
        try:
            table.modify(entry.match, entry.priority, action.name, self._param_values(action, data))
        except Exception as exc:
            raise _table_error(exc) from None

    def do_table_delete(self, line: str) -> None:
        "Delete entry from a match table: table_delete <table name> <entry handle>"
        args = line.split()
        self.exactly_n_args(args, 2)
        tdef, table = self._table(args[0])
        handle = _int_arg(args[1], "entry handle")
        self.out("Deleting entry", handle, "from", args[0])
        entry = self._entry(table, handle)
        try:
            table.delete(entry.match, entry.priority)
        except Exception as exc:
            raise _table_error(exc) from None

    def do_table_clear(self, line: str) -> None:
        "Clear all entries in a match table (direct or indirect), but not the default entry: table_clear <table name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        tdef, table = self._table(args[0])
        try:
            table.clear()
        except Exception as exc:
            raise _table_error(exc) from None
        for key in [k for k in self._timeouts if k[0] == tdef.name]:
            del self._timeouts[key]

    def do_table_set_default(self, line: str) -> None:
        "Set default action for a match table: table_set_default <table name> <action name> <action parameters>"
        args = line.split()
        self.at_least_n_args(args, 2)
        tname, aname = args[0], args[1]
        tdef, table = self._table(tname)
        action = self.info.table_action(tdef, aname)
        if action is None:
            raise UsageError(f"Table {tname} has no action {aname}")
        data = self._action_data(action, args[2:], aname)
        self.out("Setting default action of", tname)
        self.out("{:20} {}".format("action:", aname))
        self.out("{:20} {}".format("runtime data:", "\t".join(d.printable() for d in data)))
        if tdef.default_entry_const:
            raise OperationError("table", "DEFAULT_ENTRY_IS_CONST")
        if tdef.default_action_const and action.name != tdef.default_action:
            raise OperationError("table", "DEFAULT_ACTION_IS_CONST")
        try:
            table.set_default(action.name, self._param_values(action, data))
        except Exception as exc:
            raise _table_error(exc, {"PERMISSION_DENIED": "DEFAULT_ACTION_IS_CONST"}) from None

    def do_table_reset_default(self, line: str) -> None:
        "Reset default entry for a match table: table_reset_default <table name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        _tdef, table = self._table(args[0])
        table.reset_default()

    def do_table_set_timeout(self, line: str) -> None:
        "Set a timeout in ms for a given entry; the table has to support timeouts: table_set_timeout <table_name> <entry handle> <timeout (ms)>"
        args = line.split()
        self.exactly_n_args(args, 3)
        tdef, table = self._table(args[0])
        if not tdef.support_timeout:
            raise UsageError(f"Table {args[0]} does not support entry timeouts")
        handle = _int_arg(args[1], "entry handle")
        timeout = _int_arg(args[2], "timeout")
        self.out("Setting a", timeout, "ms timeout for entry", handle)
        self._entry(table, handle)
        # like BMv2, the timeout belongs to the entry's slot: an entry added later in it keeps it
        self._timeouts[(tdef.name, handle & INDEX_MASK)] = (timeout, time.monotonic())

    # ------------------------------------------------------------------ dumps
    def do_table_dump(self, line: str) -> None:
        "Display entries in a match-table: table_dump <table name>"
        args = line.split()
        self.exactly_n_args(args, 1)
        tdef, table = self._table(args[0])
        self.out("==========")
        self.out("TABLE ENTRIES")
        for e in table.entries():
            self.out("**********")
            self._dump_entry(tdef, table, e)
        self.out("==========")
        self.out("Dumping default entry")
        self.out(self._action_entry_line(*table.get_default()))
        self.out("==========")

    def do_table_dump_entry(self, line: str) -> None:
        "Display some information about a table entry: table_dump_entry <table name> <entry handle>"
        args = line.split()
        self.exactly_n_args(args, 2)
        tdef, table = self._table(args[0])
        handle = _int_arg(args[1], "entry handle")
        self._dump_entry(tdef, table, self._entry(table, handle))

    def do_table_dump_entry_from_key(self, line: str) -> None:
        "Display some information about a table entry: table_dump_entry_from_key <table name> <match fields> [priority]"
        args = line.split()
        self.at_least_n_args(args, 1)
        tdef, table = self._table(args[0])
        priority = _pop_priority(tdef, args)
        words = args[1:]
        if len(words) != len(tdef.keys):
            raise UsageError(f"Table {args[0]} needs {len(tdef.keys)} key fields")
        matches = self._to_matches(tdef, table, self._parse_key(tdef, words))
        try:
            entry = table.get(matches, self._priority(tdef, table, priority))
        except Exception:
            entry = None
        if entry is None:
            raise OperationError("table", "BAD_MATCH_KEY")
        self._dump_entry(tdef, table, entry)

    # ------------------------------------------------------------------ indirect tables
    def _indirect(self, line: str, n: int, with_group: bool = False) -> None:
        args = line.split()
        self.at_least_n_args(args, n)
        tdef = self.info.lookup("table", args[0])
        if with_group and tdef.indirect != "indirect_ws":
            raise UsageError("Cannot run this command on non-indirect table, or on indirect table with no selector")
        if tdef.indirect is None:
            raise UsageError("Cannot run this command on non-indirect table")
        raise UsageError("action profiles are not supported by p4target-switch")

    def do_table_indirect_add(self, line: str) -> None:
        "Add entry to an indirect match table: table_indirect_add <table name> <match fields> => <member handle> [priority]"
        self._indirect(line, 2)

    def do_table_indirect_add_with_group(self, line: str) -> None:
        "Add entry to an indirect match table: table_indirect_add <table name> <match fields> => <group handle> [priority]"
        self._indirect(line, 2, with_group=True)

    def do_table_indirect_delete(self, line: str) -> None:
        "Delete entry from an indirect match table: table_indirect_delete <table name> <entry handle>"
        self.exactly_n_args(line.split(), 2)
        self._indirect(line, 2)

    def do_table_indirect_set_default(self, line: str) -> None:
        "Set default member for indirect match table: table_indirect_set_default <table name> <member handle>"
        self.exactly_n_args(line.split(), 2)
        self._indirect(line, 2)

    def do_table_indirect_create_member(self, line: str) -> None:
        "[DEPRECATED!] Add a member to an indirect match table: table_indirect_create_member <table name> <action_name> [action parameters]\nUse 'act_prof_create_member' instead"
        self._indirect(line, 1)

    def _act_prof(self, line: str, n: int) -> None:
        args = line.split()
        self.at_least_n_args(args, n)
        self.info.lookup("action profile", args[0])
        raise UsageError("action profiles are not supported by p4target-switch")

    def do_act_prof_create_member(self, line: str) -> None:
        "Add a member to an action profile: act_prof_create_member <action profile name> <action_name> [action parameters]"
        self._act_prof(line, 2)

    def do_act_prof_dump(self, line: str) -> None:
        "Display entries in an action profile: act_prof_dump <action profile name>"
        self.exactly_n_args(line.split(), 1)
        self._act_prof(line, 1)
