"""The named settings every front end shares (the CLI, the grader, the sandbox, the pytest plugin, the API).

Standard library only at import: ``cnn-gradcheck --help`` reads this module and must not pay for numpy.
The suite's own hypothesis profiles (the project's conftest.py) are a different thing: they size the
property tests of the checker itself, not a check of a user's layer.
"""

from __future__ import annotations

from enum import IntEnum

PROFILES = {"dev": 10, "ci": 25, "thorough": 200}
"""--profile name -> cases per property."""
DEFAULT_PROFILE = "ci"
DEFAULT_MAX_EXAMPLES = PROFILES[DEFAULT_PROFILE]
DEFAULT_SEED = 0
SELFTEST_MAX_EXAMPLES = 15
ORACLES = ("torch", "fd")


class Exit(IntEnum):
    """Exit statuses of every cnn-gradcheck command (README: "Exit statuses")."""

    OK = 0  # every check passed (grade: the run completed)
    FAILED = 1  # a layer failed a property (or timed out, ran out of memory, crashed)
    UNUSABLE = 2  # the target or the options cannot be used: nothing was judged
    INTERNAL = 3  # a bug in cnn-gradcheck itself
    INTERRUPTED = 130  # Ctrl-C


STATUS_EXIT = {
    "passed": Exit.OK,
    "failed": Exit.FAILED,
    "timeout": Exit.FAILED,
    "memory": Exit.FAILED,
    "crashed": Exit.FAILED,
    "error": Exit.UNUSABLE,
    "internal": Exit.INTERNAL,
}
"""How a sandboxed check ended -> the exit status of ``check --isolate``."""
