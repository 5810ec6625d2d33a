"""Issue 21, point 8: a rehearsal sandbox's control API answers only the proxy that started it.

Before, any local user who found its loopback port could inject a fault that failed every student's job.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from kontext_nb.proxy import start

from .conftest import T2I, auth, wait_until


def test_the_rehearsal_sandboxs_control_api_needs_the_token_only_the_proxy_holds(tmp_path: Path) -> None:
    with start(state_dir=tmp_path / "state", port=0, upstream="sandbox") as server:
        assert server.sandbox is not None
        token = server.classroom.add_student("Ada")
        rule = {"kind": "error", "status": 500, "route": "submit"}
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            for method, path in (("POST", "faults"), ("POST", "config"), ("POST", "reset"), ("GET", "stats")):
                body = {"rules": [rule]} if path == "faults" else {}
                stranger = client.request(method, f"{server.sandbox.url}/_sandbox/{path}", json=body)
                assert stranger.status_code == 401, path
            wrong = client.get(f"{server.sandbox.url}/_sandbox/stats", headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401
            assert client.post(f"{server.url}/{T2I}", json={"prompt": "x"}, headers=auth(token)).status_code == 200
        sandbox = server.sandbox
        wait_until(lambda: sandbox.stats()["submits"] == 1, "the job reached the sandbox")  # its own handle works
        assert "control_token" not in repr(server.sandbox.config)
