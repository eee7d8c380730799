"""Fixtures for the topology tests: lab options in a temp dir and a lab whose leftovers are checked."""

from __future__ import annotations

import pytest
from topo_helpers import assert_no_leftovers


@pytest.fixture
def lab_options(tmp_path):
    from topologies.network import LabOptions
    # other labs on this machine (other test runs) hold the machine-wide lab lock for a while
    return LabOptions(run_dir=tmp_path / "run", log_dir=tmp_path / "logs", lock_timeout=600)


@pytest.fixture
def clean_lab():
    """Collects labs a test starts; at teardown stops them and asserts nothing of them is left."""
    labs = []
    yield labs.append
    errors = []
    for lab in labs:
        lab.stop()
        try:
            assert_no_leftovers(lab)
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n".join(errors)
