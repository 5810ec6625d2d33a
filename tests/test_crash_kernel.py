"""Crash safety in real kernels: SIGKILL with 4 jobs in flight; the next kernel's %load_ext collects them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

import kontext_nb.sandbox as sandbox

UPDATES: list[str] = []
"""The text of every display update the kernel sent (from any thread, for any cell)."""


def run(kc: Any, code: str, timeout: float = 60) -> str:
    """Execute code in the kernel; return everything it printed or displayed as text."""
    msg_id = kc.execute(code)
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["msg_type"] == "update_display_data":
            UPDATES.append(msg["content"]["data"].get("text/plain", ""))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            texts.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            texts.append(f"ERROR {content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(texts)
    raise AssertionError(f"cell did not finish: {code!r}")


def start_kernel(folder: Path, url: str) -> tuple[KernelManager, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("FAL_KEY", "KONTEXT_HOME")}
    env["KONTEXT_FAL_URL"] = url
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(folder), env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


@pytest.mark.slow
def test_killed_kernel_jobs_are_announced_and_resumed(tmp_path: Path) -> None:
    with sandbox.running(workers=4, inference_time=3.0, image_scale=0.25) as url:
        control = sandbox.control(url)
        km, kc = start_kernel(tmp_path, url)
        try:
            run(kc, "%load_ext kontext_nb")
            run(
                kc,
                "import kontext_nb as kx\njobs = [kx.generate(f'in flight {i}', seed=i, wait=False) for i in range(4)]",
            )
            code = (
                "import time\nj = kx.get_session().tracker.journal\n"
                "while any(j.get(x.journal_id).status != 'submitted' for x in jobs): time.sleep(0.02)\n"
                "print('all submitted')"
            )
            assert "all submitted" in run(kc, code)
            process = km.provisioner.process  # the kernel process itself
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)  # reaped, as Jupyter's server reaps a dead kernel
        finally:
            kc.stop_channels()
            km.cleanup_resources() if hasattr(km, "cleanup_resources") else None
        assert control.stats()["submits"] == 4

        km2, kc2 = start_kernel(tmp_path, url)
        try:
            said = run(kc2, "%load_ext kontext_nb")  # returns at once; the collecting goes on in the background
            assert "collecting 4 jobs a stopped kernel left on fal (@1, @2, @3, @4)" in said
            code = (
                "import time\nfrom kontext_nb.journal import Journal\nj = Journal('kontext-runs')\n"
                "while any(r.status != 'done' for r in j.search()): time.sleep(0.05)\n"
                "print(sorted(r.seed for r in j.search()), all(p.is_file() for r in j.search() for p in r.paths))"
            )
            assert "[0, 1, 2, 3] True" in run(kc2, code, timeout=120)
            assert control.stats()["submits"] == 4, "nothing was submitted again"
            assert "nothing to collect" in run(kc2, "%kontext resume")
            while not UPDATES:  # the load's output, updated once the collecting ended (bounded by get_iopub_msg)
                msg = kc2.get_iopub_msg(timeout=60)
                if msg["msg_type"] == "update_display_data":
                    UPDATES.append(msg["content"]["data"].get("text/plain", ""))
            assert UPDATES == [
                "kontext_nb: collected @1 (1 image), @2 (1 image), @3 (1 image), @4 (1 image), saved in the runs folder"
            ]
        finally:
            kc2.stop_channels()
            km2.shutdown_kernel(now=True)
