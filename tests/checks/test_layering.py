"""The house rules of checks/ and cnn/, read off the import statements (an ``ast`` walk, no imports run).

The folders show the flow: a vocabulary at the root, then kinds/, strategies/, adapt/ (the user's side,
standard library and numpy only), oracles/, pipeline/, explain/, sandbox/, front/. Each rule below says
which way imports may point; a module-level import cycle, a private name of cnn/, or a kind compared
with a string outside kinds/ breaks the build here, before it breaks the design.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VOCABULARY = {
    "checks",
    "checks.case",
    "checks.geometry",
    "checks.findings",
    "checks.compare",
    "checks.tolerances",
    "checks.report",
    "checks.subject",
    "checks.windows",
    "checks.job",
    "checks.settings",
}
STDLIB_ONLY = {"checks.settings", "checks.job", "checks.kinds", "checks.front.cli", "checks.front.argtypes"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(p): p
    for top in ("checks", "cnn")
    for p in sorted((REPO / top).rglob("*.py"))
    if "__pycache__" not in p.parts
}


def _imports(path: Path, *, module_level_only: bool = True) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each import; by default the module-level ones
    only (not inside functions, nor under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[str, list[str], int]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, [], node.lineno
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                yield base, [a.name for a in node.names], node.lineno
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                yield from visit(node.body)
                for handler in getattr(node, "handlers", []):
                    yield from visit(handler.body)
                yield from visit(getattr(node, "orelse", []))
                yield from visit(getattr(node, "finalbody", []))
            elif not module_level_only and isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                yield from visit(node.body)

    yield from visit(tree.body)


def _targets(module: str, imported: str, names: list[str]) -> set[str]:
    """The project modules an import statement loads (``from checks import kinds`` loads checks.kinds)."""
    submodules = {f"{imported}.{name}" for name in names if f"{imported}.{name}" in MODULES}
    plain = [name for name in names if f"{imported}.{name}" not in MODULES]
    found = set(submodules)
    if imported in MODULES and (plain or not names) and not module.startswith(imported + "."):
        found.add(imported)  # a package's own submodules reach its __init__ anyway: not an edge
    return found


def _edges() -> dict[str, set[str]]:
    return {
        m: {t for imported, names, _ in _imports(p) for t in _targets(m, imported, names)} - {m}
        for m, p in MODULES.items()
    }


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


RULES = [
    ("cnn imports nothing from checks", lambda m, t: _in(m, "cnn") and _in(t, "checks")),
    (
        "the vocabulary imports only itself and cnn",
        lambda m, t: m in VOCABULARY and not (t in VOCABULARY or _in(t, "cnn") or t == "checks.adapt.guard"),
    ),
    (
        "kinds never import adapt, pipeline, explain, sandbox or front",
        lambda m, t: (
            _in(m, "checks.kinds")
            and _in(t, "checks.adapt", "checks.pipeline", "checks.explain", "checks.sandbox", "checks.front")
        ),
    ),
    (
        "the user's side (adapt) imports no checker part",
        lambda m, t: (
            _in(m, "checks.adapt")
            and _in(
                t,
                "cnn",
                "checks.strategies",
                "checks.oracles",
                "checks.pipeline",
                "checks.explain",
                "checks.sandbox",
                "checks.front",
                "checks.api",
            )
        ),
    ),
    (
        "oracles never import adapt or kinds",
        lambda m, t: _in(m, "checks.oracles") and _in(t, "checks.adapt", "checks.kinds"),
    ),
    (
        "a verdict never depends on how it is worded (pipeline imports no explain, sandbox or front)",
        lambda m, t: _in(m, "checks.pipeline") and _in(t, "checks.explain", "checks.sandbox", "checks.front"),
    ),
    (
        "explain imports no front end",
        lambda m, t: _in(m, "checks.explain") and _in(t, "checks.front", "checks.sandbox"),
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_imports_point_the_way_the_rule_says(rule):
    name, broken = rule
    found = [f"{m} -> {t}" for m, targets in _edges().items() for t in sorted(targets) if broken(m, t)]
    assert not found, f"{name}:\n" + "\n".join(found)


def test_there_is_no_module_level_import_cycle():
    edges = _edges()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(STDLIB_ONLY))
def test_the_command_line_path_imports_only_the_standard_library_at_module_level(module):
    heavy = {"numpy", "hypothesis", "torch", "matplotlib", "cnn"}
    found = []
    for imported, _, line in _imports(MODULES[module]):
        top = imported.split(".")[0]
        if top in heavy or (imported in MODULES and imported not in STDLIB_ONLY and not _stdlib_only_module(imported)):
            found.append(f"line {line}: {imported}")
    assert not found, f"{module} imports more than the standard library: {found}"


def _stdlib_only_module(module: str) -> bool:
    """A project module whose own module-level imports are stdlib (and such project modules) only."""
    seen: set[str] = set()

    def ok(m: str) -> bool:
        if m in seen:
            return True
        seen.add(m)
        for imported, names, _ in _imports(MODULES[m]):
            if imported.split(".")[0] in {"numpy", "hypothesis", "torch", "matplotlib", "cnn", "pytest"}:
                return False
            if not all(ok(t) for t in _targets(m, imported, names)):
                return False
        return True

    return ok(module)


def test_only_the_torch_oracle_imports_torch_and_only_lazily():
    for module, path in MODULES.items():
        text = path.read_text()
        if re.search(r"^\s*(import torch|from torch)", text, re.M) or 'import_module("torch")' in text:
            assert module == "checks.oracles.torch_oracle", module
    assert all(imported != "torch" for imported, _, _ in _imports(MODULES["checks.oracles.torch_oracle"]))


def test_checks_imports_no_private_name_of_cnn():
    found = []
    for module, path in MODULES.items():
        if not _in(module, "checks"):
            continue
        for imported, names, line in _imports(path, module_level_only=False):
            if _in(imported, "cnn") and (any(n.startswith("_") for n in names) or "._" in imported):
                found.append(f"{module} line {line}: from {imported} import {names}")
    assert not found, "\n".join(found)


def test_no_module_of_checks_imports_a_private_name_of_another():
    # a name another module needs is part of its interface: give it a public name (found: worker._origin,
    # targets._pair_kinds, grade._write, cli._write_json, report._replay_for, ...)
    found = []
    for module, path in MODULES.items():
        if not _in(module, "checks"):
            continue
        for imported, names, line in _imports(path, module_level_only=False):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if _in(imported, "checks") and imported != module and private:
                found.append(f"{module} line {line}: from {imported} import {private}")
    assert not found, "\n".join(found)


def test_only_kinds_and_the_presets_compare_a_kind_with_a_name():
    pattern = re.compile(r"(?<!dtype\.)\bkind\s*(==|!=|in|not in)\s*\(?\"")  # a layer kind, not a dtype's
    found = []
    for module, path in MODULES.items():
        if _in(module, "checks") and not _in(module, "checks.kinds", "checks.adapt.presets"):
            found += [f"{module}: {line.strip()}" for line in path.read_text().splitlines() if pattern.search(line)]
    assert not found, "\n".join(found)


VIOLATIONS = {
    "cnn imports nothing from checks": ("cnn.conv", "checks.case"),
    "the vocabulary imports only itself and cnn": ("checks.case", "checks.kinds"),
    "kinds never import adapt, pipeline, explain, sandbox or front": ("checks.kinds.conv", "checks.adapt.layouts"),
    "the user's side (adapt) imports no checker part": ("checks.adapt.adapters", "checks.oracles.fd"),
    "oracles never import adapt or kinds": ("checks.oracles.fd", "checks.kinds"),
    "a verdict never depends on how it is worded (pipeline imports no explain, sandbox or front)": (
        "checks.pipeline.properties",
        "checks.explain.where",
    ),
    "explain imports no front end": ("checks.explain.where", "checks.front.cli"),
}


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_each_rule_catches_the_import_it_forbids(rule):
    name, broken = rule
    module, target = VIOLATIONS[name]
    assert broken(module, target) and not broken(target, target)
