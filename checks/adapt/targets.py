"""Targets: turn ``path/to/file.py:Name`` or ``package.module:Name`` (plus a kind and a preset) into a LayerSpec.

- ``Name`` is a LayerSpec: used as is (its kind wins; a different ``kind`` is an error).
- ``Name`` is a class: ``preset`` says how to drive it (``seed``, ``nchw``, or ``function_pair`` with the
  class as the namespace of the functions); without a preset this is an error that says so.
- no ``Name`` (``file.py`` or ``file.py:``), or ``preset="function_pair"``: CS231n-style function pairs
  found in the module (``presets.function_pair``); the kind may be omitted when the module holds the
  pair of one kind only.

Every failure raises ``TargetError`` whose message is one line naming the target and the reason. The
user's module runs under ``checks.adapt.guard.call``: its exceptions (``SystemExit`` included), a hang and
its printing are contained. A file is imported under a module name unique to its resolved path, so two
``layers.py`` in different folders never collide in ``sys.modules``.
"""

from __future__ import annotations

import hashlib
import importlib
import keyword
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from checks.job import IMPORT_SECONDS
from checks.kinds import USER_NAMES as KINDS

PRESETS = ("seed", "function_pair", "nchw")
_MODULE_PREFIX = "_cnn_gradcheck_target_"
_FOUND_LIMIT = 12


class TargetError(Exception):
    """The target cannot be loaded or adapted; ``str()`` is one line a person can act on. ``cause`` is the
    guard's typed cause (a checks.adapt.guard.Cause) when running the user's code failed, else None."""

    def __init__(self, reason: str, cause: object | None = None, origin: dict | None = None) -> None:
        super().__init__(" ".join(str(reason).split()))
        self.cause = cause
        self.origin = origin


@dataclass(frozen=True)
class Target:
    """A parsed TARGET: ``location`` is a file path or a dotted module name; ``name`` the attribute
    after the colon ("" or None for function pairs); ``is_file`` tells which kind of location."""

    text: str
    location: str
    name: str | None
    is_file: bool

    @property
    def where(self) -> str:
        """The location as the user wrote it, for messages."""
        return self.location


def parse(text: str) -> Target:
    """Split TARGET at its last colon when what follows is empty or a (dotted) identifier.

    ``a/b.py:Conv`` -> file a/b.py, name Conv; ``a/b.py:`` and ``a/b.py`` -> file, no name;
    ``pkg.mod:Conv`` -> module pkg.mod, name Conv; ``pkg.mod`` -> module, no name.
    """
    text = text.strip()
    if not text:
        raise TargetError("empty TARGET: expected path/to/file.py:Name or package.module:Name")
    location, name = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and (tail == "" or _is_dotted_identifier(tail)):
        location, name = head, tail or None
    is_file = location.endswith(".py") or "/" in location or os.sep in location or Path(location).is_file()
    if not is_file and not _is_dotted_identifier(location):
        raise TargetError(f"{text}: not a .py file or a dotted module name")
    return Target(text, location, name, is_file)


def _is_dotted_identifier(text: str) -> bool:
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in text.split("."))


# -- importing ----------------------------------------------------------------------------------------


def module_name_for(path: Path) -> str:
    """A sys.modules name unique to the resolved path: the stem (for readable reprs) and a digest."""
    resolved = str(path.resolve())
    stem = re.sub(r"\W", "_", path.stem)
    return f"{_MODULE_PREFIX}{stem}_{hashlib.sha1(resolved.encode()).hexdigest()[:12]}"


@contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """``directory`` first on sys.path while the user's module imports (for its sibling modules)."""
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _guarded(stage: str, fn: Callable[..., Any], *args: Any, seconds: float | None = IMPORT_SECONDS) -> Any:
    """fn(*args) under checks.adapt.guard (no memory cap: importing torch maps a lot of address space)."""
    from checks.adapt.guard import Limits, call

    return call(stage, fn, *args, limits=Limits(seconds=seconds, memory_bytes=None))


def _describe_failure(where: str, fault: BaseException, filename: str | None) -> str:
    """One line for a LayerFault raised while importing ``filename`` (shown as ``where``).

    The guard chains the user's exception as ``__cause__``; for sys.exit, a time-out or memory it words
    the reason itself and the original exception is only the ``__context__`` (still good for a line)."""
    original = fault.__cause__ or fault.__context__ or fault
    if isinstance(original, SyntaxError):
        line = f"line {original.lineno}: " if original.lineno else ""
        shown = where if _same_file(original.filename, filename) else (original.filename or where)
        return f"{shown}: {line}{type(original).__name__}: {original.msg}"
    lineno = _user_line(original, filename)
    prefix = f"{where}: line {lineno}: " if lineno else f"{where}: "
    if fault.__cause__ is None:
        return f"{prefix}importing it {getattr(fault, 'detail', fault)}"
    text = str(original).strip()
    return f"{prefix}{type(original).__name__}" + (f": {text.splitlines()[0]}" if text else "")


def _same_file(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _user_line(exc: BaseException, filename: str | None) -> int | None:
    """The line of ``filename`` in exc's traceback (its last frame there), if any."""
    if filename is None or exc.__traceback__ is None:
        return None
    lines = [fs.lineno for fs in traceback.extract_tb(exc.__traceback__) if _same_file(fs.filename, filename)]
    return lines[-1] if lines else None


_FILE_CACHE: dict[tuple[str, int, int], ModuleType] = {}


def import_file(path: Path, shown: str | None = None, seconds: float | None = IMPORT_SECONDS) -> ModuleType:
    """Import the Python file at ``path`` under a unique module name (cached per path and mtime), within
    ``seconds``."""
    import importlib.util

    shown = shown or str(path)
    if not path.exists():
        raise TargetError(f"{shown}: no such file")
    if not path.is_file():
        raise TargetError(f"{shown}: not a file")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    shadow = _shadow(path.resolve().parent)
    use = _foreign_use(path) if shadow is not None else None
    if shadow is not None and use is not None:
        raise TargetError(_shadowed(shown, shadow, f"line {use[0]}", use[1]))
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{shown}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickle and typing look a class's module up here
    from checks.adapt.guard import LayerFault

    try:
        with _on_sys_path(str(path.resolve().parent)):
            _guarded("import", spec.loader.exec_module, module, seconds=seconds)
    except LayerFault as fault:
        sys.modules.pop(name, None)
        reason = _describe_failure(shown, fault, str(path))
        wanted = _package_import(fault) if shadow is not None else None
        if shadow is not None and wanted is not None:  # e.g. a sibling module of theirs imports their checks
            reason = _shadowed(shown, shadow, _innermost(fault.__cause__, path), wanted)
        raise TargetError(reason, fault.cause, fault.origin) from None
    _FILE_CACHE[key] = module
    return module


def import_dotted(dotted: str, root: Path, seconds: float | None = IMPORT_SECONDS) -> ModuleType:
    """Import ``package.module`` with ``root`` first on sys.path, within ``seconds``."""
    from checks.adapt.guard import LayerFault

    try:
        with _on_sys_path(str(root)):
            return _guarded("import", importlib.import_module, dotted, seconds=seconds)
    except LayerFault as fault:
        cause = fault.__cause__
        shadow, wanted = _shadow(Path(root).resolve()), _package_import(fault)
        if shadow is not None and wanted is not None:
            raise TargetError(_shadowed(dotted, shadow, None, wanted), fault.cause) from None
        if isinstance(cause, ModuleNotFoundError) and cause.name and dotted.startswith(cause.name):
            raise TargetError(f"{dotted}: no module named {cause.name!r} (searched {root} and sys.path)") from None
        filename = None
        if cause is not None and cause.__traceback__ is not None:
            frames = traceback.extract_tb(cause.__traceback__)
            filename = next((f.filename for f in reversed(frames) if "importlib" not in f.filename), None)
        raise TargetError(_describe_failure(dotted, fault, filename), fault.cause, fault.origin) from None


def import_target(target: Target, root: Path | None = None, seconds: float | None = IMPORT_SECONDS) -> ModuleType:
    """The module a parsed target names; a relative file path is taken relative to ``root`` (default: cwd)."""
    base = Path(root) if root is not None else Path.cwd()
    if target.is_file:
        path = Path(target.location)
        return import_file(path if path.is_absolute() else base / path, target.location, seconds)
    return import_dotted(target.location, base, seconds)


# -- a user's module named like the checker's own package ----------------------------------------------

_PACKAGE = "checks"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""cnn-gradcheck's own package folder: a layer that imports ``checks`` always gets this one."""


def _shadow(folder: Path) -> Path | None:
    """The user's ``checks.py`` or ``checks/`` in ``folder``, a module named like cnn-gradcheck's own package
    (and not that package), or None."""
    for candidate in (folder / f"{_PACKAGE}.py", folder / _PACKAGE):
        try:
            if candidate.exists() and candidate.resolve() != _PACKAGE_DIR:
                return candidate
        except OSError:  # unreadable: nothing can be imported from it either
            continue
    return None


def _ours(name: str) -> bool:
    """Whether ``checks.<name>`` is something cnn-gradcheck's package has: a public name or a submodule."""
    from checks import __all__ as public

    return name in public or (_PACKAGE_DIR / name).is_dir() or (_PACKAGE_DIR / f"{name}.py").is_file()


def _foreign_use(path: Path) -> tuple[int, str] | None:
    """(line, what) of the first use in ``path`` of a ``checks`` name that cnn-gradcheck's package lacks
    (``from checks import numerical_grad``, ``import checks.utils``, ``checks.numerical_grad(...)``): code written
    for a module of the user's own named checks. Read from the source (ast), nothing is run."""
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):  # the import itself will say what is wrong
        return None
    aliases: set[str] = set()
    uses: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == _PACKAGE:
                    if rest and not _ours(rest.split(".")[0]):
                        uses.append((node.lineno, alias.name))
                    if not rest or alias.asname is None:  # `import checks.x as y` binds y to checks.x instead
                        aliases.add(alias.asname or _PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top, _, rest = node.module.partition(".")
            if top == _PACKAGE:
                names = [rest.split(".")[0]] if rest else [a.name for a in node.names if a.name != "*"]
                uses += [(node.lineno, f"{_PACKAGE}.{n}") for n in names if not _ours(n)][:1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if not _ours(node.attr):
                uses.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return min(uses) if uses else None


def _shadowed(shown: str, shadow: Path, where: str | None, what: str) -> str:
    """One line: the user's code (at ``where``: "line 3", "helpers.py line 1") means their own ``checks``,
    which a checked layer cannot import."""
    at = f"{where} uses" if where else "uses"
    yours, new = (str(shadow), "my_checks.py") if shadow.suffix else (f"{shadow}/", "my_checks/")
    return (
        f"{shown}: {at} `{what}` from your own {yours}, but `checks` is cnn-gradcheck's package and a checked layer "
        f"always gets that one; rename your {shadow.name} (e.g. to {new}) and import it by its new name"
    )


def _innermost(exc: BaseException | None, path: Path) -> str | None:
    """Where in the user's folder ``exc`` was raised: "line N" of ``path`` itself, "other.py line N" of a
    sibling it imported, or None."""
    if exc is None or exc.__traceback__ is None:
        return None
    folder = path.resolve().parent
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename and _inside(f.filename, folder)]
    if not frames:
        return None
    last = frames[-1]
    return (
        f"line {last.lineno}"
        if _same_file(last.filename, str(path))
        else f"{Path(last.filename).name} line {last.lineno}"
    )


def _inside(filename: str, folder: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def _package_import(fault: BaseException) -> str | None:
    """The ``checks...`` module name a failed import asked for, if that is what failed."""
    original = fault.__cause__
    name = getattr(original, "name", None) if isinstance(original, ImportError) else None
    return name if name and name.split(".")[0] == _PACKAGE else None


# -- adapting -----------------------------------------------------------------------------------------


def _found(module: ModuleType) -> str:
    """The classes and LayerSpecs a module defines, for a 'no name' message."""
    from checks.adapt.adapters import LayerSpec

    names = []
    for attr, value in vars(module).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, LayerSpec) or (
            isinstance(value, type) and getattr(value, "__module__", None) == module.__name__
        ):
            names.append(attr)
    if not names:
        return "it defines no classes or LayerSpecs"
    more = f", ... ({len(names) - _FOUND_LIMIT} more)" if len(names) > _FOUND_LIMIT else ""
    return "found: " + ", ".join(names[:_FOUND_LIMIT]) + more


def _check_kind(kind: str | None, option: str = "--kind") -> None:
    if kind is not None and kind not in KINDS:
        raise TargetError(f"{option} must be one of {', '.join(KINDS)}; got {kind!r}")


def _check_preset(preset: str | None, option: str = "--preset") -> None:
    if preset is not None and preset not in PRESETS:
        raise TargetError(f"{option} must be one of {', '.join(PRESETS)}; got {preset!r}")


def pair_kinds(namespace: Any) -> list[str]:
    """The kinds whose complete function pair ``namespace`` holds."""
    from checks.adapt import presets

    kinds = []
    for kind in KINDS:
        try:
            presets.function_pair(kind, namespace)
        except (ValueError, TypeError):
            continue
        kinds.append(kind)
    return kinds


def _require_spec(where: str, kind: str) -> None:
    """TargetError for a kind whose shapes only a LayerSpec can declare (checks.kinds.DECLARED_SHAPES)."""
    from checks.kinds import declares_shapes

    if declares_shapes(kind):
        raise TargetError(
            f"{where}: a {kind} layer's shapes cannot be guessed: write a LayerSpec({kind!r}, build=..., "
            "shapes={'input': ..., 'output': ..., <param>: ...}, params=...) and point TARGET at it"
        )


def _function_pair(where: str, namespace: Any, kind: str | None) -> Any:
    from checks.adapt import presets

    if kind is None:
        kinds = pair_kinds(namespace)
        if len(kinds) != 1:
            has = f"it has {', '.join(kinds)} pairs" if kinds else "it has no complete function pair"
            raise TargetError(f"{where}: function pairs need --kind ({has})")
        kind = kinds[0]
    _require_spec(where, kind)
    try:
        return presets.function_pair(kind, namespace)
    except (ValueError, TypeError) as exc:
        raise TargetError(f"{where}: cannot adapt it as {kind} function pairs: {exc}") from None


def _adapt_class(where: str, cls: type, kind: str | None, preset: str | None) -> Any:
    from checks.adapt import presets
    from checks.adapt.guard import LayerFault

    if preset is None:
        raise TargetError(
            f"{where} is a class: say how to drive it with --preset {'|'.join(PRESETS)} (and --kind), "
            "or point TARGET at a LayerSpec"
        )
    if kind is None:
        raise TargetError(f"{where}: --preset {preset} needs --kind ({', '.join(KINDS[:4])})")
    _require_spec(where, kind)
    if preset == "function_pair":
        return _function_pair(where, vars(cls), kind)
    adapt = presets.seed if preset == "seed" else presets.nchw
    try:
        return _guarded("adapt", adapt, kind, cls)  # the seed preset may build a probe instance
    except LayerFault as fault:
        cause = fault.__cause__ if fault.__cause__ is not None else fault
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if not isinstance(cause, (ValueError, LayerFault)):
            reason = f"{type(cause).__name__}: {reason}"
        raise TargetError(f"cannot adapt {where} with --preset {preset} --kind {kind}: {reason}") from None


def load(
    text: str,
    *,
    kind: str | None = None,
    preset: str | None = None,
    root: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    import_seconds: float | None = IMPORT_SECONDS,
    kind_option: str = "--kind",
    preset_option: str = "--preset",
) -> Any:
    """The LayerSpec that TARGET ``text`` names (see the module docstring), with the LayerSpec fields in
    ``overrides`` replaced, and ``origin`` saying where it came from; ``root`` anchors relative file
    paths and dotted imports (default: the current directory). ``kind_option`` and ``preset_option`` are
    how the options are spelt in messages (the pytest plugin prefixes them)."""
    import dataclasses

    from checks.adapt.adapters import Origin

    spec = _load(text, kind, preset, root, import_seconds, kind_option, preset_option)
    if overrides:
        try:
            spec = dataclasses.replace(spec, **dict(overrides))
        except (TypeError, ValueError) as exc:
            raise TargetError(f"options {dict(overrides)}: {exc}") from None
    origin = Origin(
        text,
        kind or spec.kind,
        preset,
        tuple(sorted((overrides or {}).items())),
        None if root is None else str(Path(root).resolve()),
    )
    spec = dataclasses.replace(spec, origin=origin)
    _check_declaration(text, spec)
    return spec


def _check_declaration(text: str, spec: Any) -> None:
    """TargetError unless the spec's declaration survives the way to the checker (JSON, then
    ``Declaration.from_dict``): a description the checker cannot read is the description's mistake, said here in
    one line, not a garbled reply from the worker."""
    import json

    from checks.adapt.adapters import Declaration

    try:
        Declaration.from_dict(json.loads(json.dumps(spec.declaration().to_dict(), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise TargetError(f"its declaration cannot be used: {exc}") from None


def _load(
    text: str,
    kind: str | None,
    preset: str | None,
    root: Path | str | None,
    import_seconds: float | None,
    kind_option: str,
    preset_option: str,
) -> Any:
    from checks.adapt.adapters import LayerSpec

    _check_kind(kind, kind_option)
    _check_preset(preset, preset_option)
    target = parse(text)
    module = import_target(target, Path(root) if root is not None else None, import_seconds)
    where = target.location
    if not target.name:
        if preset not in (None, "function_pair"):
            raise TargetError(f"{where}: --preset {preset} needs a class: write TARGET as {where}:ClassName")
        return _function_pair(where, module, kind)
    try:
        obj = module
        for part in target.name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise TargetError(f"no name {target.name!r} in {where} ({_found(module)})") from None
    shown = f"{where}:{target.name}"
    if isinstance(obj, LayerSpec):
        if kind is not None and kind != obj.kind:
            raise TargetError(f"{shown} is a {obj.kind!r} LayerSpec, but {kind_option} {kind} was given")
        if preset is not None:
            raise TargetError(f"{shown} is a LayerSpec already: drop {preset_option} {preset}")
        return obj
    if preset == "function_pair":
        if isinstance(obj, (type, ModuleType, dict)):
            return _function_pair(shown, obj if not isinstance(obj, type) else vars(obj), kind)
        raise TargetError(f"{shown} is {_a(obj)}: --preset function_pair needs a module, class or dict")
    if isinstance(obj, type):
        return _adapt_class(shown, obj, kind, preset)
    raise TargetError(f"{shown} is {_a(obj)}, not a class or a LayerSpec")


def _a(obj: Any) -> str:
    if isinstance(obj, ModuleType):
        return "a module"
    if callable(obj):
        return "a function" if type(obj).__name__ == "function" else f"a callable {type(obj).__name__}"
    name = type(obj).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def label(text: str, kind: str | None = None) -> str:
    """A short display name for TARGET: its Name, else the module's stem and the kind (``layers_naive.conv``)."""
    target = parse(text)
    if target.name:
        return target.name
    stem = Path(target.location).stem if target.is_file else target.location.rsplit(".", 1)[-1]
    return f"{stem}.{kind}" if kind else stem
