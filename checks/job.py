"""A Job: what one check is. Every front end builds one (the command line from its flags, the self-test from a
manifest entry, the grader per row, the pytest plugin from its options or ``[tool.cnn-gradcheck]``), the
sandbox receives one as JSON, and ``checks.api.check_job`` runs one.

Standard library only: the command line builds Jobs before anything heavy is imported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from checks.settings import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED, ORACLES

CALL_SECONDS = 10.0
"""Default wall-clock limit of one call into the layer (a hang ends as a failed check, not a stuck run)."""
MEMORY_BYTES = 2 * 1024**3
"""Default address space one call into the layer may add."""
IMPORT_SECONDS = 120.0
"""Default wall-clock limit of importing the user's module (generous: it may import torch or load data)."""
SHRINK_SECONDS = 20.0
"""Default time a failure may spend shrinking to a smaller case before the smallest found so far is reported."""


@dataclass(frozen=True)
class Job:
    """One check of one layer.

    target: TARGET as the user wrote it ("path/to/file.py:Name", "package.module:Name", a file of function
    pairs); kind, preset: how to adapt a class (None: not given); overrides: LayerSpec fields replaced on
    top of what the target gives, as sorted (field, value) pairs of JSON values; root: the folder relative
    targets start from (None: the current directory); seed, max_examples: the search; oracles: which
    oracles judge; only: the properties to run (None: all that apply); call_seconds, memory_bytes: limits
    of each call into the layer (None: none); import_seconds: the limit of importing its module;
    shrink_seconds: how long a failure may shrink (None: until hypothesis is done, 0: not at all).
    """

    target: str
    kind: str | None = None
    preset: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    root: str | None = None
    seed: int = DEFAULT_SEED
    max_examples: int = DEFAULT_MAX_EXAMPLES
    oracles: tuple[str, ...] = ORACLES
    only: tuple[str, ...] | None = None
    call_seconds: float | None = CALL_SECONDS
    memory_bytes: int | None = MEMORY_BYTES
    import_seconds: float | None = IMPORT_SECONDS
    shrink_seconds: float | None = SHRINK_SECONDS
    label: str = field(default="", compare=False)
    """How reports name the target ("" = the target text)."""

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target.strip():
            raise ValueError(f"target={self.target!r}: expected a TARGET string")
        if self.max_examples < 1:
            raise ValueError(f"max_examples={self.max_examples!r}: expected at least 1")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: expected >= 0")
        unknown = [o for o in self.oracles if o not in ORACLES]
        if unknown or not self.oracles:
            raise ValueError(f"oracles={self.oracles!r}: expected a non-empty subset of {ORACLES}")
        object.__setattr__(self, "overrides", tuple(sorted((str(k), v) for k, v in dict(self.overrides).items())))
        object.__setattr__(self, "oracles", tuple(self.oracles))
        if self.only is not None:
            object.__setattr__(self, "only", tuple(self.only))

    @property
    def shown(self) -> str:
        return self.label or self.target

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["overrides"] = dict(self.overrides)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """The Job a ``to_dict`` gave (unknown keys are an error: both sides are this module)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Job fields {sorted(unknown)}")
        values = dict(data)
        values["overrides"] = tuple(dict(values.get("overrides") or {}).items())
        for key in ("oracles", "only"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls.from_dict(json.loads(text))

    def replay_args(self) -> list[str]:
        """``cnn-gradcheck check`` arguments that run exactly this check again."""
        args = ["check", self.target]
        if self.kind:
            args += ["--kind", self.kind]
        if self.preset:
            args += ["--preset", self.preset]
        args += ["--seed", str(self.seed), "--max-examples", str(self.max_examples)]
        if tuple(self.oracles) != ORACLES:
            args += ["--oracles", ",".join(self.oracles)]
        if self.call_seconds != CALL_SECONDS and self.call_seconds is not None:
            args += ["--timeout", f"{self.call_seconds:g}"]
        if self.shrink_seconds != SHRINK_SECONDS:
            args += ["--shrink-time", "none" if self.shrink_seconds is None else f"{self.shrink_seconds:g}"]
        return args
