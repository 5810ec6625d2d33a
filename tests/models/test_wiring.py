"""Every snapshot model through the session's calls (kx.generate / kx.edit / kx.inpaint) against the sandbox: shaped by
the one adapter, priced before sending by the registry's bound (never below what came back), journaled with its
endpoint and whether it is reproducible; reruns across models; history by model; a model word is never a prompt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SANDBOX_FAST, TEST_KEY
from declared import prices_declared  # tests/declared.py
from PIL import Image

from kontext_nb import models
from kontext_nb.config import Settings
from kontext_nb.errors import KontextError, ValidationError
from kontext_nb.request import build_request
from kontext_nb.result import Result
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session

NAMES = models.registry().endpoint_ids()


@pytest.fixture(scope="module")
def priced() -> Iterator[None]:
    with prices_declared(0.05, NAMES):
        yield


@pytest.fixture(scope="module")
def world(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory, priced: None) -> Iterator[Any]:
    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    folder = tmp_path_factory.mktemp("wiring")
    Image.new("RGB", (96, 64), (200, 120, 40)).save(folder / "photo.png")
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (20, 10, 60, 40))
    mask.save(folder / "mask.png")
    settings = Settings(base_url=sandbox_server.url, key=TEST_KEY, runs_dir=str(folder / "runs"))
    session = Session(settings, notice=lambda message: None)
    yield session, folder
    session.close()


@pytest.mark.parametrize("endpoint_id", NAMES)
def test_every_snapshot_model_round_trips_through_the_session(endpoint_id: str, world: Any) -> None:
    session, folder = world
    model = models.registry().get(endpoint_id)
    photo, mask = str(folder / "photo.png"), str(folder / "mask.png")
    seed = {"seed": 7} if model.takes_seed else {}
    # confirm=True: GPT-image's bound holds its output text tokens at their cap (over the default $1 threshold)
    if model.mode == "text-to-image":
        request = build_request("text-to-image", "a lighthouse in fog", model=endpoint_id, **seed)
        result = session.generate("a lighthouse in fog", model=endpoint_id, timeout=60, confirm=True, **seed)
    elif model.mode == "inpaint":
        request, _ = session.prepare_inpaint(photo, "a red hat", mask=mask, model=endpoint_id, **seed)
        result = session.inpaint(photo, "a red hat", mask=mask, model=endpoint_id, timeout=60, confirm=True, **seed)
    elif model.mode == "multi":
        request, _ = session.prepare_edit([photo, photo], "both in one", model=endpoint_id, **seed)
        result = session.edit([photo, photo], "both in one", model=endpoint_id, timeout=60, confirm=True, **seed)
    else:
        request, _ = session.prepare_edit(photo, "make it winter", model=endpoint_id, **seed)
        result = session.edit(photo, "make it winter", model=endpoint_id, timeout=60, confirm=True, **seed)
    assert request.endpoint.id == endpoint_id
    assert request.reproducible is model.takes_seed
    assert isinstance(result, Result)
    assert result.endpoint == endpoint_id and result.image_bytes
    record = session.record(result.journal_id)
    assert record.endpoint == endpoint_id
    assert record.reproducible is model.takes_seed
    assert record.cost <= request.cost + 1e-9, "the reservation was below what came back"
    if model.takes_seed:
        assert record.seed == 7 and result.seed == 7, "the seed sent (or returned) is journaled"
    assert result.cost > 0 or model.pricing is None


def test_several_sources_go_to_a_model_that_takes_them(world: Any) -> None:
    session, folder = world
    photo = str(folder / "photo.png")
    request, _ = session.prepare_edit([photo] * 5, "all five", model="nano-banana-2-edit")
    assert len(request.arguments["image_urls"]) == 5
    with pytest.raises(ValidationError, match="5 source images") as err:
        session.prepare_edit([photo] * 5, "all five", model="max")
    assert "\n" not in str(err.value)


def test_an_endpoint_id_outside_the_snapshot_is_one_line_and_sends_nothing(world: Any) -> None:
    session, folder = world
    before = len(session.history())
    with pytest.raises(KontextError, match="not in kontext_nb's snapshot") as err:  # fetched: fal says 404
        session.edit(str(folder / "photo.png"), "x", model="fal-ai/not-a-model/v9")
    assert "\n" not in str(err.value) and "fal-ai/not-a-model/v9" in str(err.value)
    assert len(session.history()) == before


def test_a_seed_given_to_a_model_without_one_is_one_line(world: Any) -> None:
    session, folder = world
    with pytest.raises(ValidationError, match="takes no seed, so its images are not reproducible") as err:
        session.prepare_edit(str(folder / "photo.png"), "x", model="reve-fast-edit", seed=3)
    assert "\n" not in str(err.value)


def test_a_setting_another_model_lacks_is_refused_naming_it(world: Any) -> None:
    session, folder = world
    with pytest.raises(ValidationError, match="safety_tolerance") as err:
        session.prepare_edit(str(folder / "photo.png"), "x", model="reve-fast-edit", safety_tolerance="2")
    assert "\n" not in str(err.value)


def test_an_unknown_model_offline_is_one_line_naming_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match=r"not allowed|not a model") as err:
        build_request("text-to-image", "x", model="seedream-v9")
    assert "\n" not in str(err.value) and "did you mean" in str(err.value)


def test_size_and_count_are_sent_as_each_model_takes_them(world: Any) -> None:
    session, folder = world
    flex, _ = session.prepare_edit(str(folder / "photo.png"), "x", model="flux2-flex-edit", aspect_ratio="16:9")
    assert flex.arguments["image_size"] == "landscape_16_9" and "aspect_ratio" not in flex.arguments
    assert isinstance(flex.arguments["image_urls"], list)
    assert any("landscape_16_9" in n for n in flex.notices)


def test_rerun_on_another_model_says_what_it_left_out(world: Any) -> None:
    session, folder = world
    first = session.edit(str(folder / "photo.png"), "make it night", model="max", seed=11, timeout=60)
    request, _ = _rerun_request(session, first.journal_id, model="reve-fast-edit")
    assert request.endpoint.id == "fal-ai/reve/fast/edit" and "seed" not in request.arguments
    assert any("left out" in n and "seed" in n and "safety_tolerance" in n for n in request.notices)
    again = session.rerun(first.journal_id, model="flux2-flex-edit", timeout=60)
    assert again.endpoint == "fal-ai/flux-2-flex/edit" and again.arguments["seed"] == 11
    flex = session.history(model="flux2-flex-edit")
    assert flex[0].id == again.journal_id and {r.endpoint for r in flex} == {"fal-ai/flux-2-flex/edit"}
    assert len(session.history(model="flux2-flex-edit", limit=1)) == 1
    assert all(r.model == "max" for r in session.history(model="max"))
    assert session.history(model="max").to_pandas()["reproducible"].all()


def _rerun_request(session: Session, ref: Any, **changes: Any) -> Any:
    from kontext_nb.journal.rerun import rerun_request

    return rerun_request(session.record(ref), dict(changes), session.settings.max_input_side)


def test_history_by_an_unknown_model_is_one_line(world: Any) -> None:
    session, _ = world
    with pytest.raises(ValidationError, match="did you mean"):
        session.history(model="flux2-flex-edt")


def test_a_model_word_first_is_never_a_paid_prompt() -> None:
    from IPython.core.error import UsageError

    from kontext_nb.magics.typos import check_cell, check_line

    with pytest.raises(UsageError, match=r"'qwen-edit' is a model.*--model qwen-edit"):
        check_line("qwen-edit photo.png make it night")
    with pytest.raises(UsageError, match="line 2 of the cell starts with 'nano-banana-2-edit', a model"):
        check_cell("a fox\nnano-banana-2-edit a hare")
    check_line("Max the dog on a beach")  # a Kontext name that is also a word stays a prompt
    check_line("a fox --model seedream4-edit")
