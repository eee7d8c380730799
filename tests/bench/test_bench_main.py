"""``python -m bench [NAME ...]``: a run of some modules keeps the others' figures; names are checked."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bench import __main__ as bench_main


@pytest.fixture
def fake_modules(monkeypatch):
    """Two benchmark modules, ``bench_alpha`` (counts its runs) and ``bench_beta``, in place of the real ones."""
    calls = {"alpha": 0, "beta": 0}

    def module(name: str, fail: bool = False) -> types.ModuleType:
        m = types.ModuleType(f"bench.bench_{name}")

        def run() -> dict:
            calls[name] += 1
            if fail:
                raise RuntimeError(f"{name} broke")
            return {name: {"value": calls[name]}, "shared": {name: calls[name]}}
        m.run = run
        return m

    mods = {"alpha": module("alpha"), "beta": module("beta")}
    monkeypatch.setattr(bench_main.pkgutil, "iter_modules",
                        lambda path: [types.SimpleNamespace(name=f"bench_{n}") for n in mods])
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, f"bench.bench_{n}", m)
    return calls, mods, module


def test_a_partial_run_keeps_the_other_modules_figures(tmp_path, fake_modules):
    calls, _, _ = fake_modules
    out = tmp_path / "results.json"
    assert bench_main.main([], out) == 0
    first = json.loads(out.read_text())
    assert first["alpha"] == {"value": 1} and first["beta"] == {"value": 1}
    assert bench_main.main(["beta"], out) == 0
    second = json.loads(out.read_text())
    assert second["alpha"] == {"value": 1} and second["beta"] == {"value": 2}     # alpha's kept
    assert second["shared"] == {"alpha": 1, "beta": 2}                           # merged key by key
    assert set(second["ran"]) == {"alpha", "beta"} and calls == {"alpha": 1, "beta": 2}


def test_a_full_run_starts_a_fresh_file(tmp_path, fake_modules):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"stale": {"from": "an old module"}, "errors": {"bench_gone": "x"}}))
    assert bench_main.main([], out) == 0
    res = json.loads(out.read_text())
    assert "stale" not in res and "errors" not in res


def test_a_failed_module_is_reported_and_its_old_error_replaced(tmp_path, fake_modules, monkeypatch):
    calls, mods, module = fake_modules
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"alpha": {"value": 7}, "errors": {"bench_alpha": "old", "bench_beta": "old"}}))
    monkeypatch.setitem(sys.modules, "bench.bench_beta", module("beta", fail=True))
    assert bench_main.main(["beta"], out) == 1
    res = json.loads(out.read_text())
    assert res["alpha"] == {"value": 7}
    assert res["errors"] == {"bench_alpha": "old", "bench_beta": "RuntimeError: beta broke"}
    monkeypatch.setitem(sys.modules, "bench.bench_beta", mods["beta"])
    assert bench_main.main(["beta"], out) == 0          # fixed: its error goes, the other's stays
    assert json.loads(out.read_text())["errors"] == {"bench_alpha": "old"}


def test_an_unknown_name_is_refused_with_exit_2(tmp_path, fake_modules, capsys):
    out = tmp_path / "results.json"
    assert bench_main.main(["gamma"], out) == 2
    err = capsys.readouterr().err
    assert "no benchmark named gamma" in err and "alpha, beta" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
