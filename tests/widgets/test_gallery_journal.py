"""Issue 14: the Gallery opens with the journal's recent results (a new kernel is not an empty page), new cards
stand out, and History offers thumbnails and actions, with every source of a multi-reference edit in its lineage."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import waiting  # tests/waiting.py

from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.widgets.gallery import Gallery
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
        assert "kontext-new" in gallery.cards[0].widget._dom_classes
        assert gallery.fresh.children == (gallery.cards[0].widget,)  # above the grid, however it is scrolled
        assert gallery.cards[0].widget not in gallery.grid.children
        gallery.seen()
        assert "kontext-new" not in gallery.cards[0].widget._dom_classes
        assert gallery.fresh.children == () and gallery.grid.children[0] is gallery.cards[0].widget
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


def test_history_shows_the_picked_job_with_actions(session: Session) -> None:
    a = session.generate("a cat", seed=1)
    b = session.generate("a sofa", seed=2)
    both = session.edit([a, b], "the cat on the sofa", seed=3)
    used: list[Result] = []
    compared: list[Result] = []
    view = HistoryView(session, on_use=used.append, on_compare=compared.append)
    try:
        view.rows.value = both.journal_id
        assert bytes(view.preview.value)[:2] == b"\xff\xd8"
        view.use.click()
        view.compare_button.click()
        assert [r.journal_id for r in used + compared] == [both.journal_id] * 2
        refs = [
            getattr(item, "description", "") for box in view.lineage.children for item in getattr(box, "children", ())
        ]
        assert a.ref in refs and b.ref in refs  # every source of the multi-reference edit
    finally:
        view.close()


def test_history_rows_have_thumbnails(session: Session) -> None:
    made = [session.generate(f"a row picture {i}", seed=40 + i) for i in range(2)]
    view = HistoryView(session)
    try:
        view.search.value = "row picture"
        items = view.thumbnails.children
        assert [i.children[1].description for i in items] == [made[1].ref, made[0].ref]  # newest first, like the list
        assert bytes(items[0].children[0].value)[:2] == b"\xff\xd8"
        items[1].children[1].click()
        assert view.selected is not None and view.selected.id == made[0].journal_id
    finally:
        view.close()
