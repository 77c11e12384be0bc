"""Plugin discovery, wrong signatures, listing commands."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.api import PluginError
from harness.cli import app
from harness.hookspecs import hookimpl
from harness.registry import Registry

cli = CliRunner()


def test_builtin_plugins_come_from_entry_points():
    reg = Registry()
    info = {p["name"]: p for p in reg.plugins_info()}
    assert info["baselines"]["distribution"] == "bench"
    assert "bench_train" in info["baselines"]["hooks"]
    assert {"pop", "bpr_mf", "lightgcn"} <= set(reg.catalogue.methods)


def test_autoload_can_be_disabled(monkeypatch):
    monkeypatch.setenv("BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = Registry()
    assert "bpr_mf" not in reg.catalogue.methods
    assert "ml-100k" in reg.catalogue.datasets  # the core plugin is always there


class WrongSignature:
    @hookimpl
    def bench_train(self, method, params, dataset, ctx, extra_argument):
        return None


class UnknownHook:
    @hookimpl
    def bench_trian(self, method):
        return None


def test_wrong_signature_names_the_plugin():
    reg = Registry(autoload=False)
    with pytest.raises(PluginError, match="plugin 'my-broken-plugin'.*extra_argument"):
        reg.register(WrongSignature(), name="my-broken-plugin")


def test_unknown_hook_is_refused_with_suggestion():
    reg = Registry(autoload=False)
    with pytest.raises(PluginError, match="bench_trian.*bench_train"):
        reg.register(UnknownHook(), name="typo-plugin")


def test_duplicate_method_names_are_refused():
    from harness.api import MethodSpec

    class Dupe:
        @hookimpl
        def bench_register_methods(self):
            return [MethodSpec("pop", ("topk",))]

    reg = Registry()
    reg.register(Dupe(), name="dupe")
    with pytest.raises(PluginError, match="'pop' is registered twice"):
        reg.catalogue


def test_ls_and_plugins_commands():
    out = cli.invoke(app, ["ls", "methods"])
    assert out.exit_code == 0 and "bpr_mf" in out.output
    out = cli.invoke(app, ["ls", "metrics"])
    assert out.exit_code == 0 and "ndcg" in out.output and "ranx" in out.output
    out = cli.invoke(app, ["ls", "method"])
    assert out.exit_code == 2 and "methods" in out.output
    out = cli.invoke(app, ["plugins", "--json"])
    rows = json.loads(out.stdout)
    assert any(r["name"] == "baselines" and "bench_train" in r["hooks"] for r in rows)


def test_a_broken_entry_point_is_skipped_with_a_warning(monkeypatch):
    import importlib.metadata as md

    broken = md.EntryPoint(name="broken", value="no_such_module_xyz", group="bench")

    class FakeDist:
        entry_points = [broken]
        metadata = {"name": "bench-broken"}

    real = md.distributions
    monkeypatch.setattr(md, "distributions", lambda: [*real(), FakeDist()])
    reg = Registry()
    assert "no_such_module_xyz" in reg.load_errors["broken"]
    assert "bench-broken" in reg.load_errors["broken"]
    assert "bpr_mf" in reg.catalogue.methods  # the others still load
