"""Hypothesis profiles for the whole suite.

Chosen by ``--hypothesis-profile NAME`` (hypothesis's own pytest option) or the environment variable
``HYPOTHESIS_PROFILE``; ``dev`` otherwise. ``make test`` uses ``ci``.

- dev: quick local runs, random, with the example database.
(Each name's example counts live in checks.settings.PROFILES, beside the ones ``cnn-gradcheck check --profile``
uses.)
- ci: derandomised (same examples every run), no deadline, enough examples to matter, prints the
  ``@reproduce_failure`` blob so any failure can be replayed.
- thorough: many random examples, for a nightly job or a false-positive hunt.
"""

import os

from hypothesis import HealthCheck, settings

from checks.settings import PROFILES

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

# One table of named profiles (checks.settings.PROFILES) sizes both a check of a layer and this suite.
# derandomize is explicit everywhere: under CI=true hypothesis's own default is derandomised, and a
# profile registered without it would silently inherit that.
# Every profile prints the @reproduce_failure blob of a failure; a derandomised one needs no database.
for _name, _profile in PROFILES.items():
    settings.register_profile(
        _name,
        max_examples=_profile.suite_examples,
        derandomize=_profile.derandomize,
        deadline=None,
        print_blob=True,
        suppress_health_check=_SLOW_IS_FINE,
        **({"database": None} if _profile.derandomize else {}),
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_report_header(config):
    profile = config.getoption("hypothesis_profile", None) or os.environ.get("HYPOTHESIS_PROFILE", "dev")
    return (
        f"cnn-gradcheck: hypothesis profile '{profile}'. Replay a failure: rerun the failing test id with "
        f"--hypothesis-profile={profile} (derandomised profiles repeat exactly), or paste the printed "
        "@reproduce_failure decorator; add --hypothesis-seed=N to pin a random profile."
    )
