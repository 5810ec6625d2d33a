"""Issue 14: the Gallery opens with the journal's recent results (a new kernel is not an empty page), new cards
stand out, and History offers thumbnails and actions, with every source of a multi-reference edit in its lineage."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import waiting  # tests/waiting.py

from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.gallery import HIDDEN, Gallery
from kontext_nb.widgets.history_view import HistoryView
from kontext_nb.widgets.panel import GALLERY, Panel

wait_for = partial(waiting.wait_for, timeout=15.0)


def test_a_new_kernel_s_gallery_shows_the_journal(make_session: Callable[..., Session], tmp_path: object) -> None:
    first = make_session()
    made = [first.generate(f"a lighthouse, study {i}", seed=i) for i in range(3)]
    first.close()
    later = make_session()  # a new kernel on the same runs folder
    gallery = Gallery(later, page_size=2)
    try:
        gallery.load_recent()
        ids = [c.journal_id for c in gallery.cards]
        assert ids == [made[2].journal_id, made[1].journal_id]  # newest first, one page
        assert all(c.thumbnail[:2] == b"\xff\xd8" for c in gallery.cards)  # the saved JPEG thumbnails
        assert gallery.older.layout.display != "none"
        gallery.older.click()
        assert [c.journal_id for c in gallery.cards] == [m.journal_id for m in reversed(made)]
        card = gallery.cards[0]
        assert isinstance(card.result, Result) and card.result.seed == 2  # read back when a button needs it
        fresh = later.generate("a new one", seed=9)
        gallery.follow()
        gallery.add_result(fresh)
        assert gallery.cards[0].journal_id == fresh.journal_id  # new results go first, old ones stay below
        new = gallery.cards[0]
        assert "kontext-new" in new.widget._dom_classes
        assert gallery.grid.children[0] is new.widget  # the one scrolling grid, newest first
        # the browser is asked to scroll the grid to it: named by the card's own class
        assert new.css_class in new.widget._dom_classes and "kontext-card" in new.widget._dom_classes
        assert gallery.reveal.target == new.css_class and gallery.reveal.serial == 1
        assert len({c.css_class for c in gallery.cards}) == len(gallery.cards)
        gallery.seen()
        assert "kontext-new" not in new.widget._dom_classes
        assert gallery.grid.children[0] is new.widget and gallery.reveal.serial == 1
    finally:
        gallery.close()
        later.close()


def test_the_panel_fills_its_gallery_from_the_journal(make_session: Callable[..., Session]) -> None:
    first = make_session()
    old = first.generate("an old result", seed=4)
    first.close()
    session = make_session()
    panel = Panel(session)
    try:
        wait_for(lambda: any(c.journal_id == old.journal_id for c in panel.gallery.cards))
        session.generate("a new result", seed=5)
        wait_for(lambda: "1 new" in panel.tab.titles[GALLERY])
        panel.tab.selected_index = GALLERY
        assert panel.tab.titles[GALLERY] == "Gallery"
    finally:
        panel.close()
        session.close()


def test_history_rows_act_on_their_job(session: Session) -> None:
    a = session.generate("a cat", seed=1)
    b = session.generate("a sofa", seed=2)
    both = session.edit([a, b], "the cat on the sofa", seed=3)
    used: list[Result] = []
    view = HistoryView(session, on_use=used.append)
    try:
        thumb = view.page.row(both.journal_id)["thumb"]
        assert bytes(thumb.value)[:2] == b"\xff\xd8"  # the row's own thumbnail: the saved JPEG, as a buffer
        view.page.act("use", both.journal_id)
        assert [r.journal_id for r in used] == [both.journal_id]
        view.page.act("details", both.journal_id)
        assert view.selected is not None and view.selected.id == both.journal_id
        assert view.page.current == both.journal_id
        assert bytes(view.preview.value)[:2] == b"\xff\xd8"
        refs = [
            getattr(item, "description", "") for box in view.lineage.children for item in getattr(box, "children", ())
        ]
        assert a.ref in refs and b.ref in refs  # every source of the multi-reference edit
    finally:
        view.close()


def test_two_rows_compare_opens_those_two(session: Session) -> None:
    old = session.generate("an old lighthouse", seed=1)
    session.generate("in between", seed=2)
    new = session.generate("a new lighthouse", seed=3)
    pairs: list[tuple[int | None, int | None]] = []
    alone: list[Result] = []
    view = HistoryView(
        session, on_compare=alone.append, on_compare_pair=lambda x, y: pairs.append((x.journal_id, y.journal_id))
    )
    try:
        page = view.page
        page.act("compare", old.journal_id)
        assert view.picked == old.journal_id and pairs == []  # waits for a second row
        assert page.picked == old.journal_id and page.alone
        view.refresh()  # a refresh keeps the pick
        assert page.picked == old.journal_id
        page.act("compare", new.journal_id)
        assert pairs == [(old.journal_id, new.journal_id)]  # the old one beside the new one
        assert view.picked is None and page.picked == 0
        page.act("compare", new.journal_id)
        page.act("compare", new.journal_id)  # the same row again takes the pick back
        assert view.picked is None and len(pairs) == 1
        page.act("compare", new.journal_id)
        page.act("cancel", new.journal_id)  # the pick bar's cancel (or Esc)
        assert view.picked is None
        page.act("compare", new.journal_id)
        page._on_message(page, {"type": "alone"}, [])  # or only that one, added to Compare (the bar's message)
        assert [r.journal_id for r in alone] == [new.journal_id] and view.picked is None
    finally:
        view.close()


def test_history_pages_its_rows(session: Session) -> None:
    made = [session.generate(f"a row picture {i}", seed=40 + i) for i in range(5)]
    view = HistoryView(session, page_size=2)
    try:
        assert view.listed == [made[4].journal_id, made[3].journal_id]  # one page: two rows, two thumbnails
        assert len(view.page.rows) == 2
        kept = view.page.thumb(made[4].journal_id)
        assert kept is not None
        view.page._on_message(view.page, {"type": "more"}, [])  # the page's "more"
        assert view.listed == [m.journal_id for m in reversed(made)][:4]
        assert view.page.thumb(made[4].journal_id) is kept  # thumbnails already sent are kept, not sent again
        view.search.value = "picture 1"
        assert view.listed == [made[1].journal_id] and kept.comm is None  # those no longer listed are closed
    finally:
        view.close()


def test_a_journal_card_links_through_the_file_server(make_session: Callable[..., Session]) -> None:
    """A card read back from the journal opens and downloads like a new one: through the panel's FileServer, with a
    readable name (a file:// link shows as dead text in JupyterLab and works nowhere once the folder is elsewhere)."""
    first = make_session()
    made = first.generate("a red fox in snow", seed=42)
    first.close()
    later = make_session()
    gallery = Gallery(later)
    try:
        gallery.load_recent()
        (card,) = gallery.cards
        name = f"{made.journal_id:04d}-seed42-a-red-fox-in-snow.jpg"
        assert f'data-kx-action="open" data-kx-name="{name}"' in card.links.value
        assert f'data-kx-action="download" data-kx-name="{name}"' in card.links.value
        assert "file://" not in card.links.value and made.files[0].name not in card.links.value
    finally:
        gallery.close()
        later.close()


def test_history_details_open_files_through_the_file_server(session: Session) -> None:
    """A History row's details name its files as links the panel's FileServer serves: never a file:// URL, which
    JupyterLab shows as dead text and no browser opens from a notebook."""
    from kontext_nb.widgets.history_view import details_html

    made = session.generate("a red fox in snow", seed=42)
    page = details_html(session.record(made.journal_id), [])
    name = f"{made.journal_id:04d}-seed42-a-red-fox-in-snow.jpg"
    assert f'data-kx-action="open" data-kx-name="{name}"' in page
    assert "file://" not in page and 'href="#"' in page


def test_gallery_search_and_rating_filter(session: Session) -> None:
    """Issue 22 point 6: the Gallery has search (prompt words, or a seed) and a rating filter, like History."""
    fox = session.generate("a red fox in snow", seed=11)
    cat = session.generate("a grey cat on a sofa", seed=12)
    assert isinstance(fox, Result) and isinstance(cat, Result)
    session.tracker.journal.set_rating(fox.journal_id, 4)  # type: ignore[arg-type]
    gallery = Gallery(session)
    try:
        gallery.load_recent()
        shown = lambda: sorted(c.journal_id for c in gallery.cards if HIDDEN not in c.widget._dom_classes)  # noqa: E731
        assert shown() == sorted([fox.journal_id, cat.journal_id])
        gallery.search.value = "cat"
        assert shown() == [cat.journal_id] and "1 of 2 shown" in gallery.header.value
        gallery.search.value = "11"
        assert shown() == [fox.journal_id], "a number finds its seed"
        gallery.search.value = ""
        gallery.min_rating.value = 4
        assert shown() == [fox.journal_id]
        gallery.min_rating.value = 0
        assert len(shown()) == 2 and "(filtered)" not in gallery.header.value
    finally:
        gallery.close()


def test_history_rates_from_a_row_and_filters_by_rating(session: Session) -> None:
    """A row's stars rate the job (journal and files, as kx.rate); History's rating filter lists the rated."""
    fox = session.generate("a red fox in snow", seed=21)
    cat = session.generate("a grey cat on a sofa", seed=22)
    view = HistoryView(session)
    try:
        page = view.page
        page._on_message(page, {"type": "action", "action": "rate", "id": fox.journal_id, "stars": 4}, [])
        assert page.row(fox.journal_id)["rating"] == 4 and session.record(fox.journal_id).rating == 4
        page.act("rate", cat.journal_id, stars=9)  # refused in one line, shown in the page
        assert "stars" in page.message and session.record(cat.journal_id).rating is None
        page.act("rate", cat.journal_id, stars=2)
        assert page.message == ""
        view.min_rating.value = 3
        assert view.listed == [fox.journal_id]
        view.min_rating.value = 2
        assert view.listed == [cat.journal_id, fox.journal_id]
        page.act("rate", fox.journal_id, stars=0)  # clears it
        assert session.record(fox.journal_id).rating is None
        page._on_message(page, {"type": "action", "action": "delete", "id": cat.journal_id}, [])  # not an action
        page._on_message(page, {"type": "action", "action": "use", "id": "1; drop"}, [])  # not an id
        assert session.record(cat.journal_id).rating == 2
    finally:
        view.close()
