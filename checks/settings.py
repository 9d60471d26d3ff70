"""The named settings every front end shares (the CLI, the grader, the sandbox, the pytest plugin, the API).

Standard library only at import: ``cnn-gradcheck --help`` reads this module and must not pay for numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class Profile:
    """One level of effort, named the same wherever it is chosen. examples: cases per property when a
    layer is checked (``cnn-gradcheck check --profile``); suite_examples and derandomize: the hypothesis
    profile of the project's own test suite (``pytest --hypothesis-profile``, registered by conftest.py),
    which sizes the property tests of the checker itself."""

    examples: int
    suite_examples: int
    derandomize: bool


PROFILES = {
    "dev": Profile(examples=10, suite_examples=20, derandomize=False),
    "ci": Profile(examples=25, suite_examples=60, derandomize=True),
    "thorough": Profile(examples=200, suite_examples=1000, derandomize=False),
}
DEFAULT_PROFILE = "ci"
DEFAULT_MAX_EXAMPLES = PROFILES[DEFAULT_PROFILE].examples
DEFAULT_SEED = 0
SELFTEST_MAX_EXAMPLES = 15
ORACLES = ("torch", "fd")


class Exit(IntEnum):
    """Exit statuses of every cnn-gradcheck command (README: "Exit statuses")."""

    OK = 0  # every check passed (grade: the run completed)
    FAILED = 1  # a layer failed a property (or timed out, ran out of memory, crashed)
    UNUSABLE = 2  # the target or the options cannot be used: nothing was judged
    INTERNAL = 3  # a bug in cnn-gradcheck itself
    UNJUDGED = 4  # nothing failed, but some gradient was judged by no oracle (e.g. --oracles torch, no torch)
    INTERRUPTED = 130  # Ctrl-C
    PIPE = 141  # the reader of the output went away (128 + SIGPIPE, as a shell reports it)


STATUS_EXIT = {
    "passed": Exit.OK,
    "failed": Exit.FAILED,
    "timeout": Exit.FAILED,
    "memory": Exit.FAILED,
    "crashed": Exit.FAILED,
    "not_judged": Exit.UNJUDGED,
    "error": Exit.UNUSABLE,
    "internal": Exit.INTERNAL,
}
"""How a check ended (``Report.outcome``) -> the exit status of ``cnn-gradcheck check``."""
