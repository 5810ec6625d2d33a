"""Results on the sandbox for the judging tests: a session of the test's own behind the module-level calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kontext_nb as kx
from kontext_nb.result import Result
from kontext_nb.session import Session


@pytest.fixture
def judged(make_session: Callable[..., Session]) -> Session:
    session = make_session()
    kx.set_session(session)
    return session


@pytest.fixture
def made(judged: Session) -> Callable[..., list[Result]]:
    """``made(n)``: n finished text-to-image results (seeds 1..n) in the test's journal."""

    def make(n: int, prompt: str = "a lighthouse", **arguments: object) -> list[Result]:
        results = []
        for seed in range(1, n + 1):
            result = kx.generate(prompt, seed=seed, **arguments)
            assert isinstance(result, Result)
            results.append(result)
        return results

    return make
