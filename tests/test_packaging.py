"""Issue 22 point 9: pyproject's license is an SPDX string (PEP 639), which setuptools 77+ reads without the
deprecation warning a ``{text = ...}`` table draws at every build."""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_string_and_setuptools_reads_it() -> None:
    text = PYPROJECT.read_text(encoding="utf-8")  # tomllib is 3.11+; the package supports 3.10
    assert re.search(r'^license = "MIT"', text, re.MULTILINE), "license: an SPDX string, not a {text = ...} table"
    found = re.search(r'^requires = \[[^\]]*"setuptools>=(\d+)', text, re.MULTILINE)
    assert found and int(found[1]) >= 77, "PEP 639 license strings need setuptools 77 or newer to build"
