"""fal's official JavaScript client (@fal-ai/client, pinned in tests/js) against the sandbox and through the proxy.

tests/js/drive.mjs runs every check (subscribe polling and streaming, queue calls, streamStatus,
storage upload, auto-upload of Blobs; text-to-image, edit and multi); here it runs against the
sandbox directly, through the proxy with a student token, and through the proxy with the
client's ``proxyUrl`` (fal's proxy protocol). .ci/run installs it with ``npm ci``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kontext_nb.proxy import ProxyServer
from kontext_nb.sandbox import SandboxServer

from .conftest import CLASS_KEY

JS = Path(__file__).resolve().parents[1] / "js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not (JS / "node_modules" / "@fal-ai" / "client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=240)
    return JS / "node_modules"


def drive(base: str, key: str, mode: str, sandbox: str) -> list[dict[str, object]]:
    """drive.mjs's checks; ``sandbox``: the URL of the sandbox the jobs end at (its control API holds a job)."""
    env = {**os.environ, "BASE": base, "KEY": key, "MODE": mode, "SANDBOX": sandbox}
    done = subprocess.run(["node", "drive.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=240)
    checks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [c for c in checks if not c["ok"]]
    assert not failed and done.returncode == 0 and checks, (failed, done.stderr[-2000:])
    return checks


@pytest.mark.slow
def test_fals_js_client_against_the_sandbox_and_through_the_proxy(
    node_modules: Path, make_proxy: Callable[..., ProxyServer], upstream: SandboxServer
) -> None:
    upstream.configure(inference_time=0.2)
    server = make_proxy()
    token = server.classroom.add_student("Ada")
    direct = drive(upstream.url, CLASS_KEY, "direct", upstream.url)
    proxied = drive(server.url, token, "direct", upstream.url)
    via_proxy_url = drive(server.url, token, "proxyUrl", upstream.url)
    assert len(direct) == len(proxied) == 11 and len(via_proxy_url) == 12
    for check in direct + proxied + via_proxy_url:
        assert CLASS_KEY not in json.dumps(check)
