"""Issue 22 point 9: after a kernel restart, resume of a job the in-kernel offline sandbox held says that the
sandbox restarted and nothing was charged, not "fal no longer knows request ... 404"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kontext_nb.config import Settings
from kontext_nb.session import Session

KERNEL = r"""
import os, sys, time
import kontext_nb.sandbox
from kontext_nb.config import Settings
from kontext_nb.session import Session

s = Session(Settings(runs_dir=sys.argv[1]), notice=lambda message: None)
s.engine
kontext_nb.sandbox.control(s.info()["url"]).configure(queue_delay=3600)
job = s.generate("a lighthouse", seed=1, wait=False)
while s.record(job.journal_id).request_id is None:
    time.sleep(0.01)
print(s.backend, job.journal_id, flush=True)
os._exit(0)  # as a kernel restart ends it: nothing closed, nothing cancelled
"""


def test_resume_after_the_in_kernel_sandbox_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL", "KONTEXT_HOME"):
        monkeypatch.delenv(name, raising=False)
    runs = str(tmp_path / "runs")
    kernel = subprocess.run([sys.executable, "-c", KERNEL, runs], capture_output=True, text=True, timeout=120)
    assert kernel.returncode == 0, kernel.stderr[-2000:]
    journal_id = int(kernel.stdout.split()[-1])  # the kernel stopped with its job held by its sandbox

    said: list[str] = []
    second = Session(Settings(runs_dir=runs), notice=said.append)
    try:
        assert second.resume() == []
        record = second.record(journal_id)
        assert record.status == "failed" and record.cost in (None, 0)
        assert "offline sandbox restarted" in (record.error or "") and "nothing was charged" in (record.error or "")
        assert "fal no longer knows" not in " ".join(said) + (record.error or "")
        assert any("offline sandbox restarted" in s for s in said), said
    finally:
        second.close()
