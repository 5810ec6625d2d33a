"""The code stays ruff-clean, ruff-formatted and type-checked (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import background  # tests/background.py

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check() -> None:
    out = ruff("check", "kontext_nb", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    out = ruff("format", "--check", "kontext_nb", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    """Types are checked in strict mode (configuration in pyproject.toml's [tool.mypy]). In a whole run mypy started
    in the background as the run began (tests/background.py); this collects what it said."""
    code, output = background.result(background.MYPY)
    assert code == 0, output
