"""Backends and key hygiene: the offline sandbox default, KONTEXT_FAL_URL, and a canary key."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

import kontext_nb as kx
import kontext_nb.sandbox as sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.errors import FalError
from kontext_nb.fal.engine import Engine
from kontext_nb.session import Session

CANARY = "canary-fal-key-7f3a9c1e:5b2d8e4f6a0c"


def test_no_key_means_the_offline_sandbox_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL"):
        monkeypatch.delenv(var, raising=False)
    notices: list[str] = []
    s = Session(notice=notices.append)
    try:
        r = s.generate("offline fox", seed=1)
        s.generate("offline fox again", seed=2)
        assert r.images and s.backend == "sandbox"
        assert len(notices) == 1
        assert "sandbox" in notices[0] and "FAL_KEY" in notices[0] and "placeholders" in notices[0]
        info = s.info()
        assert info["backend"] == "sandbox" and info["key_set"] is False
        assert info["url"].startswith("http://127.0.0.1:")
    finally:
        s.close()


def test_kontext_fal_url_sends_all_traffic_there(monkeypatch: pytest.MonkeyPatch) -> None:
    with sandbox.running(inference_time=0.02, image_scale=0.25) as url:
        monkeypatch.setenv("KONTEXT_FAL_URL", url)
        monkeypatch.setenv("FAL_KEY", CANARY)
        s = Session(notice=lambda m: pytest.fail(f"unexpected notice {m}"))
        try:
            r = s.generate("through the env URL", seed=3)
            assert r.images and s.backend == "custom" and s.info()["key_set"] is True
            assert sandbox.control(url).stats()["submits"] == 1
        finally:
            s.close()


def test_module_level_api_uses_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    with sandbox.running(inference_time=0.02, image_scale=0.25) as url:
        monkeypatch.setenv("KONTEXT_FAL_URL", url)
        kx.set_session(None)
        try:
            r = kx.generate("module level", seed=4)
            job = kx.edit(r, "and an edit", seed=5, wait=False)
            assert isinstance(job, kx.Job) and isinstance(job.result(timeout=20), kx.Result)
            assert kx.get_session() is kx.get_session()
        finally:
            kx.get_session().close()
            kx.set_session(None)


def test_the_key_never_shows(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with sandbox.running(inference_time=0.05, image_scale=0.25, require_key=CANARY) as url:
        settings = Settings(base_url=url, key=CANARY)
        texts += [repr(settings), str(settings)]
        s = Session(settings, notice=texts.append)
        try:
            r = s.generate("<b>key check</b>", seed=1)
            job = s.generate("a job", wait=False)
            texts += [repr(s.engine), repr(job), str(job.status), repr(r), r._repr_mimebundle_()["text/html"]]
            job.result(timeout=20)
            texts += [repr(job), str(r.arguments), str(r.output), str(s.info())]
            control = sandbox.control(url)
            control.set_faults([{"route": "submit", "kind": "500", "count": 1}])
            with pytest.raises(FalError) as err:
                s.generate("fails")
            texts += [str(err.value), repr(err.value)]
            control.set_faults([{"route": r, "kind": "vanish", "count": 1} for r in ("status", "stream")])
            with pytest.raises(FalError) as err2:
                s.generate("vanishes")
            texts += [str(err2.value), repr(err2.value)]
        finally:
            s.close()
    fast = RetryPolicy(attempts=2, base_delay=0.01)
    wrong = Session(Settings(base_url=url, key=CANARY + "-wrong", retry=fast), notice=texts.append)
    with pytest.raises(FalError) as err3:
        wrong.generate("server is gone")
    texts += [str(err3.value)]
    wrong.close()
    texts += [rec.getMessage() for rec in caplog.records]
    everything = "\n".join(texts)
    assert "key check" in everything, "the texts were really collected"
    assert CANARY not in everything and CANARY.split(":")[0] not in everything


def test_engine_repr_and_settings_hide_the_key() -> None:
    engine = Engine(Settings(base_url="http://127.0.0.1:9", key=CANARY))
    try:
        assert CANARY not in repr(engine) and CANARY not in repr(engine.settings)
    finally:
        engine.close()


def test_importing_the_package_is_cheap() -> None:
    heavy = ("fal_client", "httpx", "PIL", "starlette")
    code = f"import sys, kontext_nb; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported at package import: {out.stdout}"


def test_public_functions_are_not_shadowed_by_submodules() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(kx.__path__):
        importlib.import_module(f"kontext_nb.{info.name}")  # importing a submodule sets kx.<name>
    for name in ("generate", "edit", "attach", "rerun", "resume", "load", "lineage", "children", "history", "delete"):
        assert callable(getattr(kx, name)) and not isinstance(getattr(kx, name), type(kx)), name


def test_every_job_is_announced_to_listeners(make_session) -> None:
    s = make_session()
    seen: list[kx.Job] = []
    stop = s.on_job(seen.append)
    r = s.generate("announced", seed=1)
    s.generate("announced", seed=1)  # a cached answer is announced too
    job = s.edit(r, "and an edit", seed=2, wait=False)
    job.result(timeout=20)
    stop()
    s.generate("not any more", seed=3)
    assert [j.journal_id for j in seen][:1] == [r.journal_id] and len(seen) == 3 and seen[2] is job
    assert seen[1].done() and seen[1].result(0).cached


def test_new_settings_keep_the_offline_sandbox_and_its_jobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL"):
        monkeypatch.delenv(var, raising=False)
    s = Session(Settings(job_timeout=0.3, runs_dir=str(tmp_path)), notice=lambda m: None)
    try:
        job = s.generate("slow on the sandbox", seed=1, wait=False)
        with pytest.raises(kx.JobTimeout, match=r"kx\.resume\(\)"):
            job.result(timeout=10)
        first_url = s.info()["url"]
        s.configure(s.settings.with_(job_timeout=30))
        assert s.info()["url"] == first_url, "the same sandbox, so the job left on it can be collected"
        (collected,) = s.resume()
        assert collected.journal_id == job.journal_id and collected.files
        assert s.budget()["session"] == 0.08
    finally:
        s.close()


def test_the_sandbox_is_announced_in_one_wording(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """%load_ext and the first job say the same line (the load does not know the sandbox's address yet)."""
    from kontext_nb.config import ANNOUNCED
    from kontext_nb.magics.greeting import greet

    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(kx.api, "current_session", lambda: None)
    ANNOUNCED.discard("sandbox")

    class Magics:
        runs_dir = str(tmp_path / "runs")  # no journal there: the greeting is the sandbox line alone
        terminal = False  # a notebook's kernel: the same words as the first job's notice

    capsys.readouterr()
    greet(Magics())  # type: ignore[arg-type]
    said_at_load = capsys.readouterr().out.strip()
    ANNOUNCED.discard("sandbox")
    notices: list[str] = []
    s = Session(Settings(runs_dir=str(tmp_path / "runs")), notice=notices.append)
    try:
        s.generate("offline fox", seed=1)
        url = s.info()["url"]
        assert notices == [said_at_load.replace("offline sandbox:", f"offline sandbox at {url}:")]
    finally:
        s.close()


def test_a_session_closes_while_a_job_callback_asks_for_its_journal(
    make_session, sb: sandbox.SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A job's callbacks run on the engine's thread; the panel's ask for the journal (``session.tracker``).
    Session.close held the session's lock while it waited for that thread, so a callback fired by the closing (the
    job's wait is stopped) waited for the lock: every panel test's teardown took the engine's two 5 s timeouts."""
    sb.configure(queue_delay=3600.0)
    session = make_session()
    job = session.generate("closed while held", wait=False)
    asked: list[str] = []
    job.on_update(lambda _job, _status: asked.append(session.tracker.journal.where))
    with caplog.at_level(logging.WARNING, logger="kontext_nb"):
        session.close()
    assert asked, "closing the session stops the job's wait, which its listeners hear"
    assert not [r.message for r in caplog.records if "did not stop" in r.message]
