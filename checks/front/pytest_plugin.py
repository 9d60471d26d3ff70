"""pytest plugin: ``pytest --layer path/to/file.py:Name`` checks a layer, one test item per property.

Registered as the ``cnn_gradcheck`` pytest11 entry point, so it loads in every pytest run where
cnn-gradcheck is installed: importing it costs nothing heavy (numpy, hypothesis and torch load only
when a layer is given), and without a layer it does nothing at all.

Settings come from the command line or from ``[tool.cnn-gradcheck]`` in the rootdir's pyproject.toml
(the command line wins, key by key)::

    [tool.cnn-gradcheck]
    layer = "mynet/layers.py:Conv"   # relative to the rootdir (on the command line: to the cwd)
    kind = "conv"
    preset = "seed"
    seed = 0
    max_examples = 25

``layer`` may be a list, and ``--layer`` may be given several times: every layer is checked. A class given
without kind and preset, or a file given alone, has its layers' kinds and conventions inferred (checks.infer:
guessed from names, confirmed by each layer's forward); what cannot be inferred is a collection error that
says what to declare.

Items are named ``cnn-gradcheck::<Name>::<property>``; a failing one shows that property's part of
the report, and the header prints the flags that replay the run. The check runs once per process,
for every selected property (under xdist, once per worker). With a table the items join every run:
``-k "not cnn-gradcheck"`` or ``-p no:cnn_gradcheck`` leaves them out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checks.adapt.targets import KINDS, PRESETS
from checks.front import argtypes
from checks.job import Job
from checks.settings import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED

GROUP = "cnn-gradcheck"
OPTION_LAYER = "--layer"
OPTION_KIND = "--layer-kind"
OPTION_PRESET = "--layer-preset"
OPTION_SEED = "--layer-seed"
OPTION_MAX_EXAMPLES = "--layer-max-examples"
TABLE = "cnn-gradcheck"  # [tool.cnn-gradcheck] in pyproject.toml
NODE_PREFIX = "cnn-gradcheck"
# table key -> (option, its argparse dest)
KEYS = {
    "layer": (OPTION_LAYER, "cnn_gradcheck_layer"),
    "kind": (OPTION_KIND, "cnn_gradcheck_kind"),
    "preset": (OPTION_PRESET, "cnn_gradcheck_preset"),
    "seed": (OPTION_SEED, "cnn_gradcheck_seed"),
    "max_examples": (OPTION_MAX_EXAMPLES, "cnn_gradcheck_max_examples"),
}


_seed, _positive = argtypes.seed, argtypes.positive_int


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "cnn-gradcheck: check a layer's backward pass, one test per property")
    group.addoption(
        OPTION_LAYER,
        dest=KEYS["layer"][1],
        action="append",
        metavar="TARGET",
        help="layer to check (repeatable): path/to/file.py:Name (a LayerSpec or a class), package.module:Name, or "
        "a file (every layer in it); also [tool.cnn-gradcheck] layer = ... in pyproject.toml (a string or a list)",
    )
    group.addoption(OPTION_KIND, dest=KEYS["kind"][1], choices=KINDS, help="layer kind (classes and function pairs)")
    group.addoption(OPTION_PRESET, dest=KEYS["preset"][1], choices=PRESETS, help="how to drive a class")
    group.addoption(
        OPTION_SEED, dest=KEYS["seed"][1], type=_seed, metavar="N", help=f"hypothesis seed (default {DEFAULT_SEED})"
    )
    group.addoption(
        OPTION_MAX_EXAMPLES,
        dest=KEYS["max_examples"][1],
        type=_positive,
        metavar="N",
        help=f"cases per property (default {DEFAULT_MAX_EXAMPLES})",
    )


# -- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What to check; ``root`` anchors a relative layer path (the cwd for --layer, else the rootdir)."""

    layer: str
    kind: str | None
    preset: str | None
    seed: int
    max_examples: int
    root: Path

    def job(self, only: list[str] | None = None) -> Job:
        """The Job these settings describe (``only``: the selected properties)."""
        return Job(
            self.layer,
            kind=self.kind,
            preset=self.preset,
            root=str(self.root),
            seed=self.seed,
            max_examples=self.max_examples,
            only=tuple(only) if only else None,
        )

    def flags(self) -> str:
        """The exact command-line flags that replay this run."""
        parts = [OPTION_LAYER, self.layer]
        if self.kind:
            parts += [OPTION_KIND, self.kind]
        if self.preset:
            parts += [OPTION_PRESET, self.preset]
        parts += [OPTION_SEED, str(self.seed), OPTION_MAX_EXAMPLES, str(self.max_examples)]
        return " ".join(parts)


def read_table(pyproject: Path) -> dict[str, Any]:
    """``[tool.cnn-gradcheck]`` of ``pyproject`` (empty when absent), validated key by key."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return {}
    if TABLE not in text:  # the common case: no need to parse at all
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise pytest.UsageError(
                f"{pyproject}: reading [tool.{TABLE}] needs Python 3.11+ or the tomli package "
                f"(pip install tomli); or pass {OPTION_LAYER} and friends on the command line"
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{pyproject}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get(TABLE, {})
    if not isinstance(table, dict):
        raise pytest.UsageError(f"{pyproject}: [tool.{TABLE}] must be a table")
    _validate(table, f"{pyproject} [tool.{TABLE}]")
    return table


def _validate(table: dict[str, Any], where: str) -> None:
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise pytest.UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    layer = table.get("layer", "")
    if not (isinstance(layer, str) or (isinstance(layer, list) and layer and all(isinstance(x, str) for x in layer))):
        raise pytest.UsageError(f"{where}: layer must be a string or a list of strings, got {layer!r}")
    for key in ("kind", "preset"):
        if key in table and not isinstance(table[key], str):
            raise pytest.UsageError(f"{where}: {key} must be a string, got {table[key]!r}")
    if "kind" in table and table["kind"] not in KINDS:
        raise pytest.UsageError(f"{where}: kind must be one of {', '.join(KINDS)}, got {table['kind']!r}")
    if "preset" in table and table["preset"] not in PRESETS:
        raise pytest.UsageError(f"{where}: preset must be one of {', '.join(PRESETS)}, got {table['preset']!r}")
    for key, low in (("seed", 0), ("max_examples", 1)):
        value = table.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise pytest.UsageError(f"{where}: {key} must be an integer >= {low}, got {value!r}")


def resolve_settings(config: pytest.Config) -> list[Settings]:
    """The command line over the pyproject table, one Settings per layer; empty when neither names a layer."""
    table = read_table(config.rootpath / "pyproject.toml")
    given = {key: config.getoption(dest) for key, (_, dest) in KEYS.items()}
    merged = {key: given[key] if given[key] is not None else table.get(key) for key in KEYS}
    layers = merged["layer"] or []
    layers = [layers] if isinstance(layers, str) else list(layers)
    from_command_line = given["layer"] is not None
    return [
        Settings(
            layer=layer,
            kind=merged["kind"],
            preset=merged["preset"],
            seed=DEFAULT_SEED if merged["seed"] is None else merged["seed"],
            max_examples=merged["max_examples"] or DEFAULT_MAX_EXAMPLES,
            root=config.invocation_params.dir if from_command_line else config.rootpath,
        )
        for layer in dict.fromkeys(layers)  # the same layer twice is one layer
    ]


_SETTINGS = pytest.StashKey["list[Settings]"]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SETTINGS] = resolve_settings(config)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    every = config.stash.get(_SETTINGS, [])
    if not every:
        return None
    return [f"cnn-gradcheck: replay with {settings.flags()}" for settings in every]


# -- collection -------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection, so they apply to our items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    every = config.stash.get(_SETTINGS, [])
    if not every:
        return
    from checks.adapt.targets import TargetError, label

    for settings in _inferred(every):
        if isinstance(settings, tuple):  # a layer nothing could be inferred of: why, as a collection error
            node, why = f"{NODE_PREFIX}::{settings[0]}", settings[1]
            items.extend(session.genitems(Uninferred.from_parent(session, name=node, nodeid=node, why=why)))
            continue
        try:
            name = label(settings.layer, settings.kind)
        except TargetError:  # an unparsable TARGET: the collector reports why
            name = settings.layer
        collector = LayerCollector.from_parent(
            session, name=f"{NODE_PREFIX}::{name}", nodeid=f"{NODE_PREFIX}::{name}", settings=settings
        )
        items.extend(session.genitems(collector))


def _inferred(every: list[Settings]) -> list[Settings | tuple[str, str]]:
    """Each layer as it will be checked: a class without kind and preset, or a file alone, has its layers'
    kinds inferred in sandboxed workers (checks.infer); a layer that cannot be inferred becomes (its name,
    what to declare), for its collection error."""
    from dataclasses import replace

    from checks import api, infer
    from checks.adapt.targets import TargetError, parse
    from checks.sandbox.worker import LoadRefused

    out: list[Settings | tuple[str, str]] = []
    for settings in every:
        try:
            target = parse(settings.layer)
        except TargetError:
            out.append(settings)
            continue
        if settings.kind is not None or settings.preset is not None or not target.is_file:
            out.append(settings)
            continue
        try:
            found = infer.survey(settings.job())
        except LoadRefused:  # the collector says why, as for any unloadable layer
            out.append(settings)
            continue
        if target.name:
            found = [f for f in found if f.name == target.name]
            if not found:  # a LayerSpec or a name that is no layer class: loaded as given
                out.append(settings)
                continue
        for layer in found:
            inferred = infer.confirm(settings.job(), layer, api.check_job)
            if inferred.checkable:
                out.append(replace(settings, layer=inferred.target, kind=inferred.kind, preset=inferred.preset))
            else:
                out.append((inferred.name, f"cnn-gradcheck: {inferred.name}: {inferred.why}"))
    return out


class Uninferred(pytest.Collector):
    """A layer whose kind could not be inferred: collecting it is the error that says what to declare."""

    def __init__(self, *, why: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.why = why

    def collect(self) -> list[pytest.Item]:
        raise self.CollectError(self.why)


class LayerCollector(pytest.Collector):
    """The layer: loads the target, yields one PropertyItem per property, runs the check once."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.spec: Any = None
        self._report: Any = None
        self._error: BaseException | None = None

    def collect(self) -> list[pytest.Item]:
        """One item per property the layer has: its declaration is read by a sandboxed worker, like the
        check itself (collecting never imports the user's code into pytest's process)."""
        from checks import api
        from checks.adapt import targets

        try:
            self.spec = api.declaration(self.settings.job(), spelling=(OPTION_KIND, OPTION_PRESET))
        except targets.TargetError as exc:
            raise self.CollectError(f"cnn-gradcheck: cannot load {self.settings.layer}: {exc}") from None
        return [PropertyItem.from_parent(self, name=prop) for prop in api.property_names(self.spec)]

    def report_for(self, prop: str) -> Any:
        """The property's PropertyReport, from one check of every selected property (run once)."""
        from checks.api import check_job

        if self._error is not None:
            raise self._error
        if self._report is None:
            selected = [i.name for i in self.session.items if isinstance(i, PropertyItem) and i.parent is self]
            try:
                self._report = check_job(self.settings.job(selected))
            except Exception as exc:
                self._error = exc
                raise
        found = [p for p in self._report.properties if p.property == prop]
        if not found:  # not selected when the check ran (only under unusual plugins): check it alone
            extra = check_job(self.settings.job([prop]))
            self._report.properties.extend(extra.properties)
            found = extra.properties
        return found[0]


class PropertyFailed(AssertionError):
    """A property failed; ``str()`` is its part of the report."""


class PropertyItem(pytest.Item):
    """One property of the layer: passes, fails with the report text, or skips (skip / inconclusive)."""

    parent: LayerCollector

    def runtest(self) -> None:
        from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, SKIP
        from checks.report import Report

        collector = self.parent
        result = collector.report_for(self.name)
        if result.status == FAIL:
            part = Report(target=collector.settings.layer, kind=collector.spec.kind, properties=[result])
            raise PropertyFailed(f"{part.render(front='pytest')}\nreplay: pytest {collector.settings.flags()}")
        if result.status == NOT_JUDGED:
            why = result.findings[0].message if result.findings else "no oracle judged any case"
            if any(p.status == FAIL for p in collector._report.properties):
                pytest.skip(why)  # behind a fault another item fails on: said there, once
            raise PropertyFailed(f"{self.name}: {why} (a gradient no oracle judged is never a pass)")
        if result.status in (SKIP, INCONCLUSIVE):
            why = result.findings[0].message if result.findings else "no oracle could judge any case"
            pytest.skip(f"{result.status}: {why}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, PropertyFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.nodeid
