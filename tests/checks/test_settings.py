"""checks.settings: one table of named settings and exit statuses that every front end reads."""

from __future__ import annotations

import inspect
import subprocess
import sys

from checks import api, settings
from checks.front import grade
from checks.job import Job
from checks.pipeline import runner
from checks.report import ENDED


def test_every_way_a_check_ends_has_an_exit_status_and_only_the_documented_ones_are_used():
    assert set(settings.STATUS_EXIT) >= {"passed", "failed", "not_judged", "error", *ENDED.values()}
    assert {int(e) for e in settings.Exit} == {0, 1, 2, 3, 4, 130, 141}
    assert settings.STATUS_EXIT["passed"] == 0 and settings.STATUS_EXIT["error"] == 2


def test_the_default_example_count_is_the_default_profiles_and_every_front_end_uses_it():
    assert settings.DEFAULT_MAX_EXAMPLES == settings.PROFILES[settings.DEFAULT_PROFILE].examples
    defaults = [
        inspect.signature(api.check).parameters["max_examples"].default,
        Job.__dataclass_fields__["max_examples"].default,
        inspect.signature(grade.grade).parameters["max_examples"].default,
        runner.Runner.__dataclass_fields__["max_examples"].default,
    ]
    assert defaults == [settings.DEFAULT_MAX_EXAMPLES] * len(defaults)


def test_the_settings_import_nothing_but_the_standard_library():
    code = "import sys, checks.settings; print(sorted(m for m in ('numpy', 'hypothesis', 'torch') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
