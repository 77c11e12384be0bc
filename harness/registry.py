"""Plugin discovery and the catalogue of methods, datasets, samplers and metrics.

Built-in plugins (``plugins/*``) are found through the ``bench`` entry-point group, the
same way a third-party distribution's plugins are, so the core never imports a paper.
``BENCH_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (tests register what they need);
``BENCH_PLUGINS=pkg.mod,other.mod`` registers extra modules by import path;
the harness's own core plugin (data sources, ranking scorer, metrics) is always there.
"""
from __future__ import annotations

import difflib
import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .api import RANKING_TASKS
from .api import AugmenterSpec, DatasetSpec, MethodSpec, MetricSpec, PluginError, SamplerSpec, SplitSpec

ENTRY_POINT_GROUP = "bench"


def closest(name: str, known: Iterable[str]) -> str:
    """A 'did you mean' suffix for error messages."""
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


@dataclass
class Catalogue:
    methods: dict[str, MethodSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    samplers: dict[str, SamplerSpec] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    splits: dict[str, SplitSpec] = field(default_factory=dict)
    augmenters: dict[str, AugmenterSpec] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin

    def method(self, name: str) -> MethodSpec:
        return self._get("method", self.methods, name)

    def dataset(self, name: str) -> DatasetSpec:
        return self._get("dataset", self.datasets, name)

    def sampler(self, name: str) -> SamplerSpec:
        return self._get("sampler", self.samplers, name)

    def metric(self, name: str) -> MetricSpec:
        return self._get("metric", self.metrics, name)

    def split(self, name: str) -> SplitSpec:
        return self._get("split strategy", self.splits, name)

    def augmenter(self, name: str) -> AugmenterSpec:
        return self._get("augmentation operator", self.augmenters, name)

    @staticmethod
    def _get(kind: str, table: dict, name: str):
        if name not in table:
            raise KeyError(f"unknown {kind} '{name}'.{closest(name, table)}"
                           f" Known: {', '.join(sorted(table)) or 'none'}.")
        return table[name]


class Registry:
    """A pluggy PluginManager plus the catalogue the registration hooks build."""

    def __init__(self, autoload: bool | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._dists: dict[str, md.Distribution] = {}  # plugin name -> its distribution
        self.load_errors: dict[str, str] = {}  # plugin name -> why it was skipped
        self.pm.add_hookspecs(hookspecs)
        from . import core_plugin

        self.register(core_plugin, name="bench.core")
        if autoload is None:
            autoload = os.environ.get("BENCH_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
        if autoload:
            self.load_entry_points()
        self.load_modules(os.environ.get("BENCH_PLUGINS", ""))
        self._catalogue: Catalogue | None = None

    # -- plugin management ----------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None) -> str:
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            registered = self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            detail = " ".join(str(exc).split())
            raise PluginError(f"plugin '{label}' implements a hook wrongly: {detail} "
                              f"See harness/hookspecs.py for the hook signatures.") from None
        except ValueError as exc:  # already registered under that name
            raise PluginError(f"plugin '{label}' could not be registered: {exc}") from None
        unknown = [hc.name for hc in (self.pm.get_hookcallers(plugin) or []) if hc.spec is None]
        if unknown:
            self.pm.unregister(plugin)
            raise PluginError(f"plugin '{label}' implements unknown hook(s) {unknown}."
                              f"{closest(unknown[0], self.hook_names())}")
        self._catalogue = None
        return registered

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._catalogue = None

    def load_entry_points(self) -> None:
        """Register every ``bench`` entry point. A plugin that fails to import or to
        register is skipped and recorded in ``load_errors`` (the CLI shows it), so one
        broken third-party plugin never takes the others down."""
        for dist in md.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or self.pm.get_plugin(ep.name) is not None:
                    continue
                if self.pm.is_blocked(ep.name):
                    continue
                where = f"plugin '{ep.name}' (distribution '{dist.metadata['name']}', {ep.value})"
                try:
                    plugin = ep.load()
                    self.register(plugin, name=ep.name)
                except PluginError as exc:
                    self.load_errors[ep.name] = f"{where}: {exc}"
                    continue
                except Exception as exc:
                    self.load_errors[ep.name] = (f"{where} failed to import: "
                                                 f"{type(exc).__name__}: {exc}")
                    continue
                self._dists[ep.name] = dist

    def load_entry_point(self, name: str) -> bool:
        """Register the one ``bench`` entry point called ``name`` (for a registry with only
        the named plugins: :func:`harness.testing.make_registry`). False if none is."""
        for dist in md.distributions():
            for ep in dist.entry_points:
                if ep.group == ENTRY_POINT_GROUP and ep.name == name:
                    if self.pm.get_plugin(name) is None:
                        self.register(ep.load(), name=name)
                        self._dists[name] = dist
                    return True
        return False

    def load_modules(self, spec: str) -> None:
        """Register plugin modules named in ``BENCH_PLUGINS`` (comma-separated import
        paths): handy for a plugin under development that is not installed yet."""
        import importlib

        for module in filter(None, (m.strip() for m in spec.split(","))):
            try:
                plugin = importlib.import_module(module)
            except Exception as exc:
                raise PluginError(f"BENCH_PLUGINS: could not import '{module}': "
                                  f"{type(exc).__name__}: {exc}") from exc
            if self.pm.get_plugin(module) is None:
                self.register(plugin, name=module)

    def hook_names(self) -> list[str]:
        return [n for n in dir(hookspecs) if n.startswith("bench_")]

    def plugins_info(self) -> list[dict[str, Any]]:
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            dist = self._dists.get(name)
            hooks = sorted(h.name for h in (self.pm.get_hookcallers(plugin) or []))
            rows.append({
                "name": name,
                "version": dist.version if dist else _harness_version(),
                "distribution": dist.metadata["name"] if dist else ("bench (core)" if name == "bench.core" else "(registered at runtime)"),
                "hooks": hooks,
            })
        return rows

    # -- catalogue ------------------------------------------------------------------------
    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = self._build_catalogue()
        return self._catalogue

    def _build_catalogue(self) -> Catalogue:
        cat = Catalogue()
        sections = [
            ("method", self.pm.hook.bench_register_methods, cat.methods),
            ("dataset", self.pm.hook.bench_register_datasets, cat.datasets),
            ("sampler", self.pm.hook.bench_register_samplers, cat.samplers),
            ("metric", self.pm.hook.bench_register_metrics, cat.metrics),
            ("split", self.pm.hook.bench_register_splits, cat.splits),
            ("augmenter", self.pm.hook.bench_register_augmenters, cat.augmenters),
        ]
        for kind, hook, table in sections:
            for impl in hook.get_hookimpls():
                for spec in impl.function() or []:
                    owner = (kind, spec.name)
                    if spec.name in table:
                        raise PluginError(f"{kind} '{spec.name}' is registered twice: by plugin "
                                          f"'{cat.owners[owner]}' and by '{impl.plugin_name}'.")
                    table[spec.name] = spec
                    cat.owners[owner] = impl.plugin_name
        return cat

    def plugin_version(self, kind: str, name: str) -> str:
        """``plugin@distribution==version`` of the plugin that registered ``name``."""
        owner = self.catalogue.owners.get((kind, name))
        dist = self._dists.get(owner or "")
        if dist is not None:
            return f"{owner}@{dist.metadata['name']}=={dist.version}"
        return f"{owner}@bench=={_harness_version()}"

    def part_version(self, kind: str, name: str) -> str:
        """:meth:`plugin_version` plus the spec's own ``version`` (``/v2``): either a
        distribution release or a bump of the spec reruns the cells that use it."""
        cat = self.catalogue
        table = {"method": cat.methods, "dataset": cat.datasets, "sampler": cat.samplers,
                 "metric": cat.metrics, "split": cat.splits, "augmenter": cat.augmenters}[kind]
        spec = table.get(name)
        return f"{self.plugin_version(kind, name)}/v{getattr(spec, 'version', '0')}"

    def cell_plugins(self, cell: Any) -> dict[str, str]:
        """Every plugin part a cell uses -> its version: the method, the dataset, its split
        strategy, each metric, and each sampler / augmentation operator the method's
        params name (a ``...sampler`` / ``...operator`` key whose value is registered).
        Keys are ``kind:name``."""
        from .scoring import MetricName

        used = {f"method:{cell.method.name}": self.part_version("method", cell.method.name),
                f"dataset:{cell.dataset.name}": self.part_version("dataset", cell.dataset.name)}
        for m in dict.fromkeys([*cell.metrics, cell.valid_metric]):
            base = MetricName.parse(m).base
            used[f"metric:{base}"] = self.part_version("metric", base)
        strategy = cell.dataset.split.strategy
        if strategy in self.catalogue.splits and cell.task in RANKING_TASKS:
            used[f"split:{strategy}"] = self.part_version("split", strategy)
        for sampler in sorted(named_parts(cell.method_params, self.catalogue.samplers, "sampler")):
            used[f"sampler:{sampler}"] = self.part_version("sampler", sampler)
        for op in sorted(named_parts(cell.method_params, self.catalogue.augmenters, "operator")):
            used[f"augmenter:{op}"] = self.part_version("augmenter", op)
        return used

    @staticmethod
    def plugins_tag(used: dict[str, str]) -> str:
        """The ``bench.plugin`` tag: ``kind:name=plugin@dist==version/vN`` for each part,
        method first, then the rest sorted."""
        method = [k for k in used if k.startswith("method:")]
        rest = sorted(k for k in used if not k.startswith("method:"))
        return "; ".join(f"{k}={used[k]}" for k in method + rest)


def named_parts(params: Any, registered: dict, suffix: str, key: str = "") -> set[str]:
    """Registered names a method's params refer to: string values under a key ending in
    ``suffix`` (``sampler``, ``base_sampler``, nested too) that are in ``registered``."""
    if isinstance(params, dict):
        return set().union(*(named_parts(v, registered, suffix, str(k)) for k, v in params.items()))
    if isinstance(params, (list, tuple)):
        return set().union(*(named_parts(v, registered, suffix, key) for v in params))
    if isinstance(params, str) and key.endswith(suffix) and params in registered:
        return {params}
    return set()


def _harness_version() -> str:
    try:
        return md.version("bench")
    except md.PackageNotFoundError:
        return "0+unknown"
