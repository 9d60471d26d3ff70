"""Cheap guard that cnn/ runs on numpy 1.26 and 2.x alike: no alias removed in numpy 2.0 (or deprecated
since 1.20/1.25) appears in the package source."""

from __future__ import annotations

import re
from pathlib import Path

import cnn

REMOVED = [
    "int",
    "float",
    "bool",
    "object",
    "str",
    "complex",
    "long",
    "unicode",  # removed in 1.24
    "product",
    "cumproduct",
    "sometrue",
    "alltrue",
    "round_",  # removed in 2.0
    "float_",
    "complex_",
    "string_",
    "unicode_",
    "Inf",
    "Infinity",
    "NaN",
    "PINF",
    "NINF",
    "NZERO",
    "PZERO",
    "infty",
    "in1d",
    "row_stack",
    "trapz",
    "msort",
    "asfarray",
    "find_common_type",
    "cast",
    "source",
    "safe_eval",
    "set_string_function",
    "deprecate",
    "issubclass_",
    "issctype",
    "maximum_sctype",
]
PATTERN = re.compile(r"\b(?:np|numpy)\.(" + "|".join(map(re.escape, REMOVED)) + r")\b(?![\w])")


def test_pattern_catches_what_it_should():
    for bad in ("np.int(3)", "np.float", "x.astype(np.bool)", "np.product(s)", "numpy.NaN", "np.in1d(a, b)"):
        assert PATTERN.search(bad), bad
    for fine in ("np.int64", "np.float32", "np.bool_", "np.prod(s)", "np.nan", "np.inf", "np.integer", "np.isin"):
        assert not PATTERN.search(fine), fine


def test_cnn_source_uses_no_removed_numpy_alias():
    root = Path(cnn.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 8, f"expected the cnn package sources under {root}"
    hits = [
        f"{path.relative_to(root.parent)}:{lineno}: {line.strip()}"
        for path in files
        for lineno, line in enumerate(path.read_text().splitlines(), 1)
        if PATTERN.search(line)
    ]
    assert not hits, "numpy aliases removed in 2.0:\n" + "\n".join(hits)
