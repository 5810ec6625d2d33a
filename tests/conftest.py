"""Shared fixtures. ``sandbox``: the URL of a running fal-compatible sandbox with fast settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kontext_nb.sandbox

# fast settings: tiny images, short inference; each test starts from these, with a clean slate
SANDBOX_FAST = {
    "workers": 2,
    "queue_delay": 0.0,
    "inference_time": 0.05,
    "keepalive_seconds": 15.0,
    "image_scale": 0.25,
    "retry_after": 1,
    "slow_seconds": 0.3,
    "max_upload_bytes": 50 * 1024 * 1024,
    "stream": True,
}


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[kontext_nb.sandbox.SandboxServer]:
    """One sandbox for the whole run (starting one costs ~50 ms, but there is no need to)."""
    server = kontext_nb.sandbox.start(**SANDBOX_FAST)
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: kontext_nb.sandbox.SandboxServer) -> str:
    """The sandbox URL, reset (no requests, faults or counters) and set to the fast settings."""
    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    return sandbox_server.url
