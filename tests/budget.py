"""How hard the hypothesis tests search: a small budget in the default run (CI), the full one on demand.

``KONTEXT_HYPOTHESIS=deep pytest ...`` gives every property and state-machine test the budget it was written with
(``deep``); the default run gives each the smaller ``ci`` number: still a search on every run, and the kept
``@example`` counterexamples always run. Anything else in the variable is refused in one line.
``@settings(max_examples=examples(ci=60, deep=300))``; tests/conftest.py loads the matching hypothesis profile for
tests that set no budget of their own (on top of hypothesis's own CI profile when it detects CI: derandomized).
"""

from __future__ import annotations

import os

VARIABLE = "KONTEXT_HYPOTHESIS"
MODE = os.environ.get(VARIABLE, "")
if MODE not in ("", "deep"):
    raise SystemExit(f"{VARIABLE}={MODE!r} is not a hypothesis budget: use deep, or leave it unset for the default")
DEEP = MODE == "deep"


def examples(ci: int, deep: int) -> int:
    """``max_examples`` for this run: ``deep`` with KONTEXT_HYPOTHESIS=deep, else ``ci``."""
    assert 0 < ci <= deep, (ci, deep)
    return deep if DEEP else ci
