"""Fixtures shared by the controller tests on the virtual fig2 (tests/controller/vfabric.py): one
fabric and one connected controller per test module (a module may define its own to override)."""

from __future__ import annotations

import pytest
from vfabric import VFabric

from controller.config import load_config
from controller.runtime import Controller


@pytest.fixture(scope="module")
def vf(tmp_path_factory):
    f = VFabric(tmp_path_factory.mktemp("vfabric"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def cfg_path(vf, tmp_path_factory):
    """The fabric's lab config (LabConfig, with its HMAC key file), as a lab writes it."""
    return vf.write_config(tmp_path_factory.mktemp("vcfg") / "config.json")


@pytest.fixture(scope="module")
def ctrl(cfg_path):
    cfg = load_config(cfg_path)
    cfg.log_dir = None
    c = Controller(cfg, hosts=cfg.hosts).start()
    yield c
    c.close()
