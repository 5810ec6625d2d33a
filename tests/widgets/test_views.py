"""The panel's Gallery, Compare and History views, driven from Python against the sandbox (no browser)."""

from __future__ import annotations

import datetime
import gc
import io
import re
import time
from collections.abc import Callable
from typing import Any

import ipywidgets
import pytest
from ipywidgets.widgets.widget import _instances
from PIL import Image
from waiting import wait_for  # tests/waiting.py

from kontext_nb.jobs import Job
from kontext_nb.journal.db import JobRecord
from kontext_nb.result import Result
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session
from kontext_nb.widgets import theme
from kontext_nb.widgets.cards import Card, placeholder, shared
from kontext_nb.widgets.gallery import Gallery
from kontext_nb.widgets.history_view import HistoryView, row_label


def generated(session: Session, prompt: str, **arguments: Any) -> Result:
    result = session.generate(prompt, **arguments)
    assert isinstance(result, Result)
    return result


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.fixture
def gallery(session: Session) -> Any:
    made = Gallery(session)
    yield made
    made.close()


# -- Gallery ------------------------------------------------------------------------------------------------


def test_job_card_shows_queued_then_running_then_the_result(session: Session, sb: SandboxServer) -> None:
    sb.configure(queue_delay=0.5, inference_time=0.4)
    gallery = Gallery(session)
    job = session.generate("a lighthouse at dusk", seed=42, wait=False)
    assert isinstance(job, Job)
    card = gallery.add_job(job)
    seen = [card.status.value]
    card.status.observe(lambda change: seen.append(change["new"]), "value")
    assert "queued" in seen[0] and card.image.value == placeholder()
    assert "seed 42" in card.head.value and all(b.disabled for b in card.buttons.values())
    result = job.result(10)
    wait_for(lambda: not card.running)
    assert any("running" in s for s in seen), seen
    assert "done" in card.status.value and result.ref in card.status.value
    assert card.image.value != placeholder() and image_of(card.image.value).format == "JPEG"
    assert "seed 42" in card.head.value and "$0.08" in card.head.value and "cached" not in card.head.value
    assert "max · text-to-image" in card.head.value
    # open / download go through the panel's FileServer (a token, never a path or a file:// link)
    name = f"{result.journal_id:04d}-seed42-a-lighthouse-at-dusk.jpg"
    assert f'data-kx-action="open" data-kx-name="{name}"' in card.links.value
    assert f'data-kx-action="download" data-kx-name="{name}"' in card.links.value
    assert "file://" not in card.links.value and result.files[0].name not in card.links.value
    assert card.result is result and gallery.cards == [card]
    assert not any(b.disabled for b in card.buttons.values())
    gallery.close()


def test_failed_job_shows_its_error_on_the_card(session: Session, sb: SandboxServer, gallery: Gallery) -> None:
    sb.set_faults([{"route": "submit", "kind": "500", "count": 1}])
    job = session.generate("a fox", seed=1, wait=False)
    assert isinstance(job, Job)
    card = gallery.add_job(job)
    wait_for(lambda: not card.running)
    assert "failed" in card.status.value and "500" in card.status.value and theme.ERROR in card.status.value
    assert card.result is None and card.image.value == placeholder()
    assert card.buttons["use"].disabled and not card.buttons["rerun"].disabled
    assert session.record(job.journal_id).status == "failed"


def test_cached_results_are_marked(session: Session, gallery: Gallery) -> None:
    first = generated(session, "a red fox", seed=7)
    gallery.follow()
    again = generated(session, "a red fox", seed=7)
    assert again.cached
    wait_for(lambda: len(gallery.cards) == 1 and not gallery.cards[0].running)
    cached_card = gallery.cards[0]
    assert cached_card.result is again and "cached" in cached_card.head.value
    fresh = gallery.add_result(first)
    assert "cached" not in fresh.head.value and "$0.08" in fresh.head.value
    assert gallery.cards == [fresh, cached_card]


def test_nsfw_result_is_blurred_until_revealed(session: Session, gallery: Gallery) -> None:
    result = generated(session, "a nsfw test picture", seed=3)
    assert result.has_nsfw_concepts == [True]
    card = gallery.add_result(result)
    blurred = card.image.value
    assert blurred != card.thumbnail and card.reveal.layout.display != "none"
    assert "flagged NSFW" in card.status.value
    sharp, soft = image_of(card.thumbnail).convert("L"), image_of(blurred).convert("L")
    edges = [sum(abs(a - b) for a, b in zip(im.tobytes(), im.tobytes()[1:], strict=False)) for im in (sharp, soft)]
    assert edges[1] < edges[0] / 2  # blurred: far fewer sharp changes between neighbouring pixels
    card.reveal.click()
    assert card.image.value == card.thumbnail and card.reveal.description == "hide"
    card.reveal.click()
    assert card.image.value != card.thumbnail
    plain = gallery.add_result(generated(session, "a calm lake", seed=3))
    assert plain.reveal.layout.display == "none" and plain.image.value == plain.thumbnail


def test_card_buttons_call_back_with_their_result(session: Session) -> None:
    got: dict[str, list[Result]] = {"use": [], "seed": [], "compare": []}
    gallery = Gallery(
        session, on_use_as_input=got["use"].append, on_reuse_seed=got["seed"].append, on_compare=got["compare"].append
    )
    one, two = generated(session, "a cat", seed=1), generated(session, "a dog", seed=2, guidance_scale=5)
    card_one, card_two = gallery.add_result(one), gallery.add_result(two)
    assert set(card_one.buttons) == {"use", "seed", "rerun", "compare", "metadata"}
    card_two.buttons["use"].click()
    card_one.buttons["seed"].click()
    card_two.buttons["compare"].click()
    card_one.buttons["compare"].click()
    assert got["use"] == [two] and got["seed"] == [one] and got["compare"] == [two, one]
    assert got["use"][0] is two
    card_two.buttons["metadata"].click()
    meta = card_two.metadata.value
    assert card_two.metadata.layout.display != "none"
    for text in (two.request_id, two.endpoint, str(two.files[0]), "guidance_scale", "output_format", "5"):
        assert text in meta
    card_two.buttons["metadata"].click()
    assert card_two.metadata.layout.display == "none"
    gallery.close()


def test_a_failing_callback_is_shown_on_the_card(session: Session) -> None:
    def broken(result: Result) -> None:
        raise RuntimeError("no Create tab <here>")

    gallery = Gallery(session, on_use_as_input=broken)
    card = gallery.add_result(generated(session, "a cat", seed=1))
    card.buttons["use"].click()
    assert "no Create tab &lt;here&gt;" in card.status.value
    gallery.close()


def test_rerun_adds_a_card_with_a_new_seed_and_the_same_settings(
    session: Session, sb: SandboxServer, gallery: Gallery
) -> None:
    original = generated(session, "a paper boat", seed=11, guidance_scale=6, aspect_ratio="16:9")
    gallery.follow()
    card = gallery.add_result(original)
    card.buttons["rerun"].click()
    wait_for(lambda: len(gallery.cards) == 2 and not gallery.cards[0].running)
    assert len(gallery.cards) == 2  # announced to the gallery twice (follow, the card), shown once
    new = gallery.cards[0].result
    assert new is not None and new.seed != 11 and new.journal_id != original.journal_id
    assert f"seed {new.seed}" in gallery.cards[0].head.value
    assert {k: v for k, v in new.arguments.items() if k != "seed"} == {
        k: v for k, v in original.arguments.items() if k != "seed"
    }
    records = session.history()
    assert [r.id for r in records] == [new.journal_id, original.journal_id]
    assert records[0].seed == new.seed and records[0].arguments["guidance_scale"] == 6
    assert sb.stats()["submits"] == 2


def test_rerun_without_follow_still_shows_the_new_job(session: Session, gallery: Gallery) -> None:
    card = gallery.add_result(generated(session, "a paper boat", seed=11))
    job = card.rerun()
    assert isinstance(job, Job) and len(gallery.cards) == 2 and gallery.cards[0].job is job


def test_follow_shows_jobs_started_elsewhere_once(session: Session, gallery: Gallery) -> None:
    gallery.follow()
    gallery.follow()
    result = generated(session, "a kite over the sea", seed=5)
    wait_for(lambda: gallery.cards and not gallery.cards[0].running)
    assert len(gallery.cards) == 1 and gallery.cards[0].result is result
    job = session.generate("a second kite", seed=6, wait=False)
    assert isinstance(job, Job)
    assert gallery.add_job(job) is gallery.cards[0] and len(gallery.cards) == 2  # panel + follow: one card
    job.result(10)


def test_close_unsubscribes_and_leaks_no_widgets(session: Session) -> None:
    shared()
    before = len(_instances)
    gallery = Gallery(session)
    gallery.follow()
    generated(session, "a cat", seed=1)
    wait_for(lambda: gallery.cards and not gallery.cards[0].running)
    gallery.cards[0].buttons["metadata"].click()
    gallery.close()
    assert gallery.cards == [] and len(_instances) == before
    generated(session, "a dog", seed=2)
    assert gallery.cards == [] and not gallery.following


def test_cards_hold_small_thumbnails_not_full_images(make_session: Callable[..., Session], sb: SandboxServer) -> None:
    sb.configure(image_scale=1.0)
    session = make_session()
    gallery = Gallery(session, max_cards=2)
    ids = [generated(session, "a big picture", seed=s).journal_id for s in (1, 2, 3)]
    results = [session.result(i) for i in ids]  # read back from the journal: only this test holds them
    assert results[0].images[0].width >= 1024
    cards = [gallery.add_result(r) for r in results]
    assert gallery.cards == cards[:0:-1]  # newest first, the oldest dropped
    for card in gallery.cards:
        assert len(card.image.value) < 100_000 and max(image_of(card.image.value).size) <= 256
    del results, cards
    gc.collect()
    card = gallery.cards[0]
    assert card._result_ref is not None and card._result_ref() is None  # the card does not keep the full image
    again = card.result  # read back when a button needs it
    assert again is not None and again.journal_id == ids[2] and again.seed == 3 and again.images[0].width >= 1024
    gallery.close()


def test_running_card_counts_seconds_and_cancels(session: Session, sb: SandboxServer, gallery: Gallery) -> None:
    sb.configure(inference_time=5.0)
    job = session.generate("a slow picture", seed=1, wait=False)
    assert isinstance(job, Job)
    card = gallery.add_job(job)
    wait_for(lambda: re.search(r"running · [1-9] s", card.status.value), timeout=4)  # the elapsed time ticks on
    card.cancel.click()
    wait_for(lambda: not card.running)
    assert "cancelled" in card.status.value and card.cancel.layout.display == "none"


def test_a_card_needs_a_job_or_a_result() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Card()


# -- HistoryView ---------------------------------------------------------------------------------------------


def test_history_filters_by_words_seed_model_and_tag(session: Session) -> None:
    fox = generated(session, "a red fox", seed=42, tags="animals")
    lake = generated(session, "a calm lake", seed=7)
    pro = generated(session, "a red barn", seed=42, model="pro")
    view = HistoryView(session)
    assert row_label(view.records[0]) == f"{pro.ref} · seed 42 · pro · {time.strftime('%Y-%m-%d')} · a red barn"
    row = view.page.row(pro.journal_id)
    assert (row["ref"], row["seed"], row["model"], row["mode"]) == (pro.ref, 42, "pro", "text-to-image")
    assert (row["cost"], row["prompt"], row["rating"], row["usable"]) == ("$0.04", "a red barn", 0, True)
    assert view.listed == [pro.journal_id, lake.journal_id, fox.journal_id]
    view.search.value = "RED"
    assert view.listed == [pro.journal_id, fox.journal_id]
    view.model.value = "max"
    assert view.listed == [fox.journal_id]
    view.search.value = ""
    view.seed.value = " 7 "
    assert view.listed == [lake.journal_id]
    view.seed.value = ""
    view.tag.value = "#animals"
    assert view.listed == [fox.journal_id]
    view.tag.value = ""
    view.since.value = datetime.date.today() + datetime.timedelta(days=1)
    assert view.listed == [] and view.page.rows == []
    view.close()


def test_a_bad_seed_shows_an_error_and_does_not_query(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    generated(session, "a red fox", seed=42)
    view = HistoryView(session)
    calls: list[dict[str, Any]] = []
    real = session.history
    monkeypatch.setattr(session, "history", lambda **f: calls.append(f) or real(**f))
    shown = view.listed
    view.seed.value = "4x2"
    assert "4x2" in view.seed_error.value and "whole number" in view.seed_error.value
    assert calls == [] and view.listed == shown
    view.seed.value = "42"
    assert view.seed_error.value == "" and calls == [{"seed": 42, "limit": 50}]
    view.close()


def test_paging_shows_more(session: Session) -> None:
    for seed in range(3):
        generated(session, "a cat", seed=seed)
    view = HistoryView(session, page_size=2)
    assert len(view.listed) == 2 and view.page.more
    view.page.act("more")  # what the page's "more" sends
    assert len(view.listed) == 3 and not view.page.more
    view.close()


def test_selecting_shows_details_and_lineage(session: Session) -> None:
    source = generated(session, "a house", seed=1)
    edit = session.edit(source, "paint it <blue>", seed=2)
    assert isinstance(edit, Result)
    again = session.edit(edit, "add snow", seed=3)
    assert isinstance(again, Result)
    view = HistoryView(session)
    view.page.act("details", edit.journal_id)
    assert view.selected is not None and view.selected.id == edit.journal_id
    assert "paint it &lt;blue&gt;" in view.details.value and again.ref in view.details.value
    pictures = [box for box in view.lineage.children if isinstance(box, ipywidgets.VBox)]
    assert [box.children[1].description for box in pictures] == [source.ref, edit.ref]
    for box in pictures:
        assert max(image_of(box.children[0].value).size) <= 256
    pictures[0].children[1].click()  # a step of the lineage selects it
    assert view.selected.id == source.journal_id
    assert view.page.current == source.journal_id
    view.select(again.journal_id)
    refs = [box.children[1].description for box in view.lineage.children if isinstance(box, ipywidgets.VBox)]
    assert refs == [source.ref, edit.ref, again.ref]
    view.select(9999)
    assert "9999" in view.error.value
    view.close()


def test_load_hands_the_record_to_the_panel(session: Session) -> None:
    loaded: list[JobRecord] = []
    result = generated(session, "a red fox", seed=42)
    view = HistoryView(session, on_load=loaded.append)
    view.page.act("load", result.journal_id)
    assert [r.id for r in loaded] == [result.journal_id] and loaded[0].seed == 42
    view.close()


def test_a_resumed_job_takes_the_place_of_its_failed_card(make_session, sb) -> None:
    from kontext_nb.widgets.gallery import Gallery

    sb.configure(inference_time=0.6)
    session = make_session(job_timeout=0.2)
    gallery = Gallery(session)
    gallery.follow()
    try:
        job = session.generate("times out, then is resumed", seed=5, wait=False)
        with pytest.raises(Exception, match="no result after"):
            job.result(timeout=10)
        assert len(gallery.cards) == 1 and gallery.cards[0].job is job
        session.configure(session.settings.with_(job_timeout=30))
        (collected,) = session.resume()
        deadline = time.monotonic() + 5
        while gallery.cards[0].result is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(gallery.cards) == 1, "one card per journal job"
        assert gallery.cards[0].result is not None and gallery.cards[0].result.journal_id == collected.journal_id
    finally:
        gallery.close()
