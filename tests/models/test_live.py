"""Any fal endpoint, live: fetched from a fal-compatible server (the sandbox, over HTTP), cached for a day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kontext_nb.errors import FalError, KontextError, ValidationError
from kontext_nb.models import Registry, live
from kontext_nb.session import Session

FLEX = "fal-ai/flux-2-flex/edit"
KEY = "test-key-0123456789abcdef"  # tests/conftest.py's TEST_KEY: the sessions' key


def test_a_live_model_is_fetched_cached_for_a_day_and_used_offline(session: Session, tmp_path: Path) -> None:
    engine = session.engine
    fetched: list[str] = []

    def openapi(eid: str) -> dict[str, Any]:
        fetched.append(eid)
        return engine.call(engine.platform.openapi(eid))

    def price(eid: str) -> dict[str, Any] | None:
        return engine.call(engine.platform.price(eid))

    def load(now: float, fetch: Any = openapi) -> Any:
        return live.load(Registry(lambda: {}), FLEX, tmp_path, fetch, price, now=lambda: now)

    m = load(1000.0)
    assert m.live and m.endpoint_id == FLEX and m.input("image_urls").kind == "images" and m.takes_seed
    assert fetched == [FLEX]
    cached = live.cache_path(tmp_path, FLEX)
    assert cached.parent == tmp_path / "models" and KEY not in cached.read_text()
    load(1000.0 + 3600)  # another kernel, within the day: the cache
    assert fetched == [FLEX]
    load(1000.0 + 90_000)  # older than a day: fetched again
    assert fetched == [FLEX, FLEX]

    def offline(eid: str) -> dict[str, Any]:
        raise FalError("could not connect to fal")

    assert load(1000.0 + 300_000, offline).endpoint_id == FLEX  # offline: the copy it has, however old


def test_unknown_offline_or_keyless_endpoints_are_one_line(session: Session, tmp_path: Path) -> None:
    engine = session.engine

    def openapi(eid: str) -> dict[str, Any]:
        return engine.call(engine.platform.openapi(eid))

    with pytest.raises(KontextError, match=r"could not load fal-ai/nope/edit from fal \(.*\): it is not in") as err:
        live.load(Registry(lambda: {}), "fal-ai/nope/edit", tmp_path, openapi, None)
    assert "\n" not in str(err.value) and KEY not in str(err.value)
    with pytest.raises(ValidationError, match=r"fal-ai/nope/edit is not in kontext_nb's snapshot and there is no fal"):
        live.load(Registry(lambda: {}), "fal-ai/nope/edit", tmp_path, None, None)
    with pytest.raises(ValidationError, match=r"model='../../etc' is not a fal endpoint id"):
        live.load(Registry(lambda: {}), "../../etc", tmp_path, openapi, None)


def test_session_model_finds_the_registrys_and_refuses_what_fal_does_not_serve(session: Session) -> None:
    assert session.model("flux2-flex-edit").endpoint_id == FLEX
    assert session.model(FLEX).pricing is not None
    with pytest.raises(KontextError, match=r"could not load fal-ai/nope/v9 from fal") as err:
        session.model("fal-ai/nope/v9")
    assert KEY not in str(err.value)
    with pytest.raises(
        ValidationError, match=r"model='flux2-flx-edit' is not a model .*did you mean 'flux2-flex-edit'"
    ):
        session.model("flux2-flx-edit")
