"""Controller configuration: which switches exist and how to reach them, plus the FlowState HMAC key.

The switches and hosts come from the lab config file (``--config FILE``, its schema is
:mod:`controller.labconfig`: ``LabConfig``) and/or ``--switch NAME=HOST:PORT[:DEVICE_ID]`` arguments
(arguments win). ``p4info``/``json`` are optional: without them the controller reads the P4Info from
the switch.

The HMAC key of the FlowState integrity tags has no default. :func:`load_config` takes it from, in
order: ``hmac_key_file`` (``flowmig --hmac-key-file FILE``), ``$FLOWMIG_HMAC_KEY`` (the key in hex) or
``$FLOWMIG_HMAC_KEY_FILE`` (not both), the config file's ``hmac_key_file`` (the lab writes a random key
per run: :func:`write_key_file`). A key is hex of at least 16 bytes; a key file must not be readable
by group or others (mode 0600). A bad key (empty, short, not hex, unreadable or open file) is a
:class:`ConfigError`; no key at all leaves ``ControllerConfig.key`` None, and ``hmac_key`` then raises
ConfigError (``flowmig`` refuses ``migrate``/``save``/``restore`` before contacting anything).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .flowstate import MIN_KEY_BYTES
from .labconfig import ConfigError, LabConfig, SwitchEntry
from .p4rt.connection import DEFAULT_ELECTION_ID, SwitchOptions

__all__ = ["ENV_KEY", "ENV_KEY_FILE", "MIN_KEY_BYTES", "NO_KEY", "ConfigError", "ControllerConfig", "SwitchConfig",
           "load_config", "parse_key", "parse_switch_arg", "read_key_file", "resolve_key", "write_key_file"]

SwitchConfig = SwitchEntry          # the controller's name for a switch of the config (one class)

ENV_KEY = "FLOWMIG_HMAC_KEY"
ENV_KEY_FILE = "FLOWMIG_HMAC_KEY_FILE"
LAB_KEY_BYTES = 32
NO_KEY = (f"no HMAC key for the FlowState tags: give --hmac-key-file FILE, set ${ENV_KEY} (hex) or "
          f"${ENV_KEY_FILE}, or use a lab config that names its hmac_key_file")


@dataclass
class ControllerConfig:
    switches: dict[str, SwitchEntry] = field(default_factory=dict)
    # the lab config's hosts as plain dicts (HostEntry.to_dict()): the migrator and the VM move update them
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: bytes | None = None          # the FlowState HMAC key (None: none given; see hmac_key)
    key_source: str = ""              # where it came from, for messages ("--hmac-key-file k.hex", ...)
    tls: dict[str, str] = field(default_factory=dict)
    election_id: tuple[int, int] = DEFAULT_ELECTION_ID
    log_dir: str | None = "logs"
    connect_timeout: float = 5.0
    lab: LabConfig | None = None      # the config file as read (None with --switch arguments alone)
    # the migration journal shared by the lab's controllers (controller.journal): beside the config
    # file (``config.json`` -> ``config.journal``); None with --switch arguments alone (no journal: a
    # recovery then judges by the switches' entries alone)
    journal: str | None = None

    @property
    def hmac_key(self) -> bytes:
        """The FlowState HMAC key; ConfigError when none was given (there is no default key)."""
        if self.key is None:
            raise ConfigError(NO_KEY)
        return self.key

    def switch(self, name: str) -> SwitchEntry:
        try:
            return self.switches[name]
        except KeyError:
            raise ConfigError(f"unknown switch {name!r} (known: {', '.join(sorted(self.switches)) or 'none'})") \
                from None

    def options(self, name: str, **overrides: Any) -> SwitchOptions:
        sc = self.switch(name)
        kw: dict[str, Any] = dict(name=sc.name, address=sc.address, device_id=sc.device_id,
                                  election_id=self.election_id, cpu_port=sc.cpu_port, log_dir=self.log_dir,
                                  connect_timeout=self.connect_timeout,
                                  cacert=self.tls.get("cacert"), cert=self.tls.get("cert"),
                                  private_key=self.tls.get("private_key"),
                                  extra={"thrift_port": sc.thrift_port} if sc.thrift_port else {})
        kw.update(overrides)
        return SwitchOptions(**kw)

    def by_role(self, role: str) -> list[str]:
        return [n for n, s in self.switches.items() if s.role == role]


# ---- the HMAC key ------------------------------------------------------------------------------------
def parse_key(text: str, what: str) -> bytes:
    """A key from its hex text; ConfigError (naming ``what``) when empty, not hex or under 16 bytes."""
    t = text.strip()
    if not t:
        raise ConfigError(f"{what}: the HMAC key is empty")
    try:
        raw = bytes.fromhex(t)
    except ValueError:
        raise ConfigError(f"{what}: the HMAC key is not hex (make one: python3 -c "
                          f"'import secrets; print(secrets.token_hex(32))')") from None
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(f"{what}: the HMAC key is {len(raw)} bytes; it needs at least {MIN_KEY_BYTES}")
    return raw


def read_key_file(path: str | Path, what: str) -> bytes:
    """The key in a file (hex); ConfigError when unreadable, readable by group/others, or a bad key."""
    if not str(path):
        raise ConfigError(f"{what}: no file named")
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot read the key file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p}: the key file is not hex text") from None
    if mode & 0o077:
        raise ConfigError(f"{what} {p}: the key file is readable by others (mode {mode & 0o777:o}); "
                          f"chmod 600 it")
    return parse_key(text, f"{what} {p}")


def resolve_key(key_file: str | None = None, env: Mapping[str, str] | None = None,
                lab: LabConfig | None = None, source: str = "config") -> tuple[bytes | None, str]:
    """(key, where it came from) by precedence: ``key_file``, ``$FLOWMIG_HMAC_KEY`` or
    ``$FLOWMIG_HMAC_KEY_FILE``, the lab config's ``hmac_key_file``; (None, "") when none is given."""
    env = os.environ if env is None else env
    if key_file is not None:
        return read_key_file(key_file, "--hmac-key-file"), f"--hmac-key-file {key_file}"
    if ENV_KEY in env and ENV_KEY_FILE in env:
        raise ConfigError(f"both ${ENV_KEY} and ${ENV_KEY_FILE} are set: set one")
    if ENV_KEY in env:
        return parse_key(env[ENV_KEY], f"${ENV_KEY}"), f"${ENV_KEY}"
    if ENV_KEY_FILE in env:
        return read_key_file(env[ENV_KEY_FILE], f"${ENV_KEY_FILE}"), f"${ENV_KEY_FILE} {env[ENV_KEY_FILE]}"
    if lab is not None and lab.hmac_key_file is not None:
        return read_key_file(lab.hmac_key_file, f"{source}: hmac_key_file"), f"{source}: {lab.hmac_key_file}"
    return None, ""


def write_key_file(path: str | Path, nbytes: int = LAB_KEY_BYTES) -> Path:
    """Write a new random key (``nbytes`` bytes, hex) to ``path``, mode 0600 from its creation."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(nbytes) + "\n")
    os.replace(tmp, p)
    return p


# ---- switches ----------------------------------------------------------------------------------------
def parse_switch_arg(text: str) -> SwitchEntry:
    """``NAME=HOST:PORT[:DEVICE_ID]`` → SwitchEntry."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"bad --switch {text!r}: expected NAME=HOST:PORT[:DEVICE_ID]")
    parts = rest.rsplit(":", 2)
    if len(parts) == 3 and parts[2].isdigit() and parts[1].isdigit():
        addr, dev = f"{parts[0]}:{parts[1]}", int(parts[2])
    elif len(parts) >= 2 and parts[-1].isdigit():
        addr, dev = rest, 0
    else:
        raise ConfigError(f"bad --switch {text!r}: address must be HOST:PORT")
    return SwitchEntry(name=name, address=addr, device_id=dev)


def load_config(path: str | Path | None = None, switches: list[str] | None = None,
                hmac_key_file: str | None = None, env: Mapping[str, str] | None = None) -> ControllerConfig:
    """Build the configuration from a lab config file and/or ``--switch`` arguments (arguments win), and
    resolve the HMAC key (see the module docstring; ``env`` defaults to ``os.environ``)."""
    lab = LabConfig.load(path) if path is not None else None
    cfg = ControllerConfig(lab=lab)
    if lab is not None:
        cfg.switches = dict(lab.switches)
        cfg.hosts = {n: h.to_dict() for n, h in lab.hosts.items()}
        cfg.tls = dict(lab.tls)
        cfg.journal = str(Path(path).resolve().with_suffix(".journal"))
        if lab.election_id is not None:
            cfg.election_id = lab.election_id
    cfg.key, cfg.key_source = resolve_key(hmac_key_file, env, lab, str(path))
    for text in switches or []:
        sc = parse_switch_arg(text)
        old = cfg.switches.get(sc.name)
        cfg.switches[sc.name] = sc if old is None else replace(old, address=sc.address, device_id=sc.device_id)
    return cfg
