"""The journal in use, against the sandbox: rows, files, cache, references, rerun, lineage, budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from waiting import wait_for  # tests/waiting.py

import kontext_nb.sandbox as sandbox
from kontext_nb.errors import BudgetError, ConfirmationRequired, JournalError
from kontext_nb.journal import metadata
from kontext_nb.session import ENHANCE_NOTICE, Session

MakeSession = Callable[..., Session]


def test_row_is_written_before_submit_and_request_id_right_after(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.configure(slow_seconds=0.6, inference_time=0.6)
    sb.set_faults([{"route": "submit", "kind": "slow", "count": 1}])
    job = session.generate("journaled first", seed=1, wait=False, tags=["t1"])
    journal = session.tracker.journal
    wait_for(lambda: journal.count() == 1)
    row = journal.get(job.journal_id)
    assert row.status == "pending" and row.request_id is None and sb.stats()["submits"] == 0
    assert row.arguments["seed"] == 1 and row.tags == ("t1",) and row.source
    wait_for(lambda: journal.get(job.journal_id).status == "submitted")
    assert journal.get(job.journal_id).request_id == job.request_id
    assert not job.done(), "the request id is recorded while the job still runs"
    result = job.result(timeout=20)
    row = journal.get(job.journal_id)
    assert row.status == "done" and row.seed == 1 and row.cost == pytest.approx(0.08) and row.num_images == 1
    assert row.timings and row.nsfw == (False,) and [str(p) for p in row.paths] == [str(f) for f in result.files]


def test_images_are_saved_with_metadata_named_by_content(session: Session) -> None:
    r = session.generate("a fox with metadata", seed=77, num_images=2, output_format="png")
    assert len(r.files) == 2 and all(p.exists() for p in r.files)
    assert all(p.parent.name == "images" and len(p.stem) == 32 for p in r.files)
    assert [p.read_bytes() for p in r.files] == r.image_bytes
    meta = metadata.read(r.files[0])
    assert meta["prompt"] == "a fox with metadata" and meta["seed"] == 77
    assert meta["request_id"] == r.request_id and meta["journal_id"] == r.journal_id
    assert meta["endpoint"] == r.endpoint and meta["arguments"]["num_images"] == 2 and meta["kontext_nb_version"]
    with Image.open(r.files[0]) as im:
        assert im.text["prompt"] == "a fox with metadata" and im.text["seed"] == "77"
    jpeg = session.generate("a jpeg fox", seed=78)
    with Image.open(jpeg.files[0]) as im:
        assert im.getexif()[0x010E] == "a jpeg fox"
    assert metadata.read(jpeg.files[0])["seed"] == 78


def test_identical_request_with_explicit_seed_is_answered_from_the_journal(
    session: Session, sb: sandbox.SandboxServer, journal_url: str | None
) -> None:
    first = session.generate("cache me", seed=5, aspect_ratio="3:2")
    again = session.generate("cache me", seed=5, aspect_ratio="3:2", guidance_scale=3.5)
    assert sb.stats()["submits"] == 1
    assert again.cached and again.cost == 0 and again.image_bytes == first.image_bytes
    assert again.journal_id != first.journal_id and again.seed == 5
    forced = session.generate("cache me", seed=5, aspect_ratio="3:2", cache=False)
    assert not forced.cached and sb.stats()["submits"] == 2
    session.generate("no seed, no cache")
    session.generate("no seed, no cache")
    assert sb.stats()["submits"] == 4
    assert session.budget()["session"] == pytest.approx(0.08 * 4), "cached answers cost nothing"


def test_enhance_prompt_is_never_cached_and_said_once(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    notices: list[str] = []
    s = make_session()
    s.notice = notices.append
    s.generate("enhanced", seed=3, enhance_prompt=True)
    s.generate("enhanced", seed=3, enhance_prompt=True)
    assert sb.stats()["submits"] == 2
    assert notices.count(ENHANCE_NOTICE) == 1


def test_edit_cache_depends_on_input_bytes(session: Session, sb: sandbox.SandboxServer) -> None:
    red, blue = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    session.edit(red, "same words", seed=2)
    session.edit(red.copy(), "same words", seed=2)
    session.edit(blue, "same words", seed=2)
    assert sb.stats()["submits"] == 2


def test_references_name_jobs_everywhere(session: Session, journal_url: str | None) -> None:
    a = session.generate("first", seed=1)
    b = session.generate("second", seed=2)
    for ref in ("@last", "@-1", b.journal_id, f"@{b.journal_id}", str(b.journal_id), b):
        assert session.record(ref).id == b.journal_id, ref
    assert session.record("@-2").id == a.journal_id
    loaded = session.result("@-2")
    assert loaded.seed == 1 and loaded.image_bytes == a.image_bytes and loaded.ref == f"@{a.journal_id}"
    for bad, words in (("@-9", "there is no job @-9"), ("@999", "no job @999"), ("yesterday", "unknown job reference")):
        with pytest.raises(JournalError, match=words):
            session.record(bad)


def test_edits_record_their_parent_and_lineage(session: Session, journal_url: str | None) -> None:
    original = session.generate("a house", seed=10)
    winter = session.edit(original, "make it winter", seed=11)
    night = session.edit("@last", "make it night", seed=12)
    sibling = session.edit(original.journal_id, "make it summer", seed=13)
    assert winter.parent_id == original.journal_id and night.parent_id == winter.journal_id
    chain = session.lineage(night)
    assert [r.id for r in chain] == [original.journal_id, winter.journal_id, night.journal_id]
    assert [r.id for r in session.children(original)] == [winter.journal_id, sibling.journal_id]
    assert night.inputs[0].data == winter.image_bytes[0], "the edit used the parent's image from disk"


def test_rerun_keeps_the_seed_and_changes_what_is_asked(session: Session, sb: sandbox.SandboxServer) -> None:
    original = session.generate("a boat", aspect_ratio="16:9")
    same = session.rerun(original, cache=False)
    assert same.seed == original.seed and same.image_bytes[0][-2000:] == original.image_bytes[0][-2000:]
    assert same.arguments["aspect_ratio"] == "16:9"
    other = session.rerun("@-2", seed=999, guidance_scale=5)
    assert other.seed == 999 and other.arguments["guidance_scale"] == 5
    pro = session.rerun(original, model="pro", cache=False)
    assert pro.endpoint == "fal-ai/flux-pro/kontext/text-to-image" and pro.seed == original.seed
    edit = session.edit(original, "paint it", seed=4)
    again = session.rerun(edit, cache=False)
    assert again.parent_id == original.journal_id and again.endpoint == edit.endpoint
    assert again.inputs[0].data == edit.inputs[0].data
    assert sb.stats()["submits"] == 6


def test_budget_caps_stop_new_submissions(
    make_session: MakeSession, sb: sandbox.SandboxServer, journal_url: str | None
) -> None:
    s = make_session(budget_session=0.20)
    s.generate("one", num_images=2)  # $0.16
    with pytest.raises(BudgetError, match=r"would cost \$0.08.*cap is \$0.20 and \$0.16 is spent \+ \$0.00 reserved"):
        s.generate("too much")
    assert sb.stats()["submits"] == 1
    s.generate("cheaper", model="pro")  # $0.04 fits exactly
    assert s.budget()["session"] == pytest.approx(0.20) and s.budget()["session_left"] == pytest.approx(0)
    daily = make_session(budget_daily=0.10)
    with pytest.raises(BudgetError, match="today's"):
        daily.generate("over the day", num_images=1)  # 0.20 spent today already in this runs folder


def test_large_calls_need_confirmation(make_session: MakeSession, sb: sandbox.SandboxServer) -> None:
    s = make_session(confirm_above=0.20)
    with pytest.raises(ConfirmationRequired, match=r"4 images of max would cost \$0.32.*confirm=True"):
        s.generate("big", num_images=4)
    assert sb.stats()["submits"] == 0
    assert len(s.generate("big", num_images=4, confirm=True).images) == 4


def test_failed_and_cancelled_jobs_keep_their_rows(session: Session, sb: sandbox.SandboxServer) -> None:
    sb.set_faults([{"route": "submit", "kind": "500", "count": 1}])
    with pytest.raises(Exception, match="HTTP 500"):
        session.generate("refused")
    row = session.record("@last")
    assert row.status == "failed" and "HTTP 500" in (row.error or "") and row.request_id is None
    sb.configure(inference_time=2.0)
    job = session.generate("stopped", wait=False)
    wait_for(lambda: job.state == "running")
    job.cancel()
    wait_for(lambda: session.record(job.journal_id).status == "cancelled")
    assert session.record(job.journal_id).request_id == job.request_id


def test_unwritable_images_folder_keeps_the_row_and_the_result(make_session: MakeSession, tmp_path: Path) -> None:
    notices: list[str] = []
    s = make_session()
    s.notice = notices.append
    folder = s.tracker.journal.folder
    (folder / "images").write_text("a file where the images folder should be")
    r = s.generate("no room", seed=9)
    assert r.images and r.files == [] and r.save_error and "could not save" in r.save_error
    row = s.record(r)  # a full disk must not end the job: it stays collectable, with the error
    assert row.status == "submitted" and row.request_id == r.request_id and "could not save" in (row.error or "")
    assert any("still in result.images" in n for n in notices)
    (folder / "images").unlink()  # room again: resume saves them (collected again by request id, never resent)
    (again,) = s.resume()
    assert again.files and all(p.exists() for p in again.files)
    assert s.record(r).status == "done" and s.record(r).error is None


def test_history_search_and_export(session: Session, tmp_path: Path) -> None:
    session.generate("a red fox in snow", seed=1, tags="animals")
    session.generate("a blue whale", seed=2)
    session.generate("a red panda", seed=3, model="pro", tags=["animals"])
    assert [r.seed for r in session.history(search="red")] == [3, 1]
    assert [r.seed for r in session.history(tag="animals", limit=1)] == [3]
    assert [r.prompt for r in session.history(seed=2)] == ["a blue whale"]
    hist = session.history(endpoint="fal-ai/flux-pro/kontext/text-to-image")
    assert len(hist) == 1 and "a red panda" in hist._repr_mimebundle_()["text/html"]
    csv_path = hist.to_csv(tmp_path / "h.csv")
    assert "a red panda" in csv_path.read_text()


def test_delete_forgets_a_job(session: Session) -> None:
    r = session.generate("forget me", seed=4)
    path = r.files[0]
    session.delete(r)
    assert not path.exists()
    with pytest.raises(JournalError):
        session.record(r.journal_id)
