"""Sweeps with a model axis: each model its own request shape, every cell priced before asking, the whole sweep
reserved at once (over a cap: refused whole, nothing sent: through the API, the magic and --bg), one grid with each
cell's cost, settings a model lacks shown '–' and listed, never dropped silently."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from declared import prices_declared  # tests/declared.py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from shell import Shell  # tests/shell.py

import kontext_nb as kx
from kontext_nb import models
from kontext_nb.errors import BudgetError, ConfirmationRequired, ValidationError
from kontext_nb.sandbox import SandboxServer
from kontext_nb.session import Session
from kontext_nb.sweep import build_sweep
from kontext_nb.views.grid import Grid

THREE = ["max", "fal-ai/bytedance/seedream/v4/edit", "fal-ai/flux-2-flex/edit"]
EDITORS = [m.endpoint_id for m in models.registry().all() if m.mode == "edit"]


@pytest.fixture(scope="module", autouse=True)
def priced() -> Iterator[None]:
    """Seedream and the others fal publishes no price for get a declared one here."""
    with prices_declared(0.03, EDITORS):
        yield


@pytest.fixture
def photo(tmp_path: Path) -> str:
    path = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(path)
    return str(path)


def _nothing_sent(session: Session, sb: SandboxServer) -> None:
    assert sb.stats()["submits"] == 0
    assert len(session.history()) == 0
    spent = session.budget()
    assert spent["session"] == spent["session_reserved"] == 0


def test_a_cross_model_sweep_over_a_cap_is_refused_whole_through_the_api(
    make_session: Callable[..., Session], sb: SandboxServer, photo: str
) -> None:
    session = make_session(budget_session=0.2)
    plan = session.plan_sweep(
        build_sweep("make it {winter|night}", {"seed": (1, 2)}, model=THREE, mode="edit"), source=photo
    )
    assert plan.cost > 0.2 and all(c < 0.2 for c in plan.costs)  # every cell alone would fit: the total does not
    with pytest.raises(BudgetError) as err:
        session.sweep("make it {winter|night}", source=photo, model=THREE, seed=[1, 2], confirm=True)
    assert "\n" not in str(err.value)
    _nothing_sent(session, sb)
    kx.set_session(session)
    with pytest.raises(BudgetError):
        kx.sweep("make it {winter|night}", source=photo, model=THREE, seed=[1, 2], confirm=True)
    _nothing_sent(session, sb)


def test_above_confirm_above_the_whole_sweep_asks_first(
    make_session: Callable[..., Session], sb: SandboxServer, photo: str
) -> None:
    session = make_session(confirm_above=0.1)
    with pytest.raises(ConfirmationRequired, match="confirm=True"):
        session.sweep("make it {winter|night}", source=photo, model=THREE, seed=[1, 2])
    _nothing_sent(session, sb)


@pytest.mark.parametrize("bg", ["", " --bg"])
def test_a_cross_model_sweep_over_a_cap_is_refused_whole_through_the_magic(
    shell: Shell, sb: SandboxServer, photo: str, bg: str
) -> None:
    kx.configure(budget_session=0.2)
    line = f"sweep edit {photo} 'make it {{winter|night}}' --model {','.join(THREE)} --seed 1,2 --yes{bg}"
    message = shell.usage_error(line)
    assert "cap" in message or "budget" in message
    _nothing_sent(kx.get_session(), sb)


def test_the_issue_s_sweep_draws_one_grid_with_costs_and_what_each_model_lacks(
    shell: Shell, sb: SandboxServer, photo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = photo
    shell.ip.user_ns["src"] = src
    grid = shell.line(
        "sweep edit $src 'make it {winter|night}' --model max,fal-ai/bytedance/seedream/v4/edit,"
        "fal-ai/flux-2-flex/edit --seed 1,2 --guidance 4 --yes"
    )
    assert isinstance(grid, Grid) and len(grid.results) == 12
    assert sb.stats()["submits"] == 12
    said = capsys.readouterr().out
    assert "guidance_scale: not taken by Seedream 4.0 Edit" in said
    assert grid.not_taken() == ["guidance_scale: not taken by Seedream 4.0 Edit"]
    text = repr(grid)
    assert text.splitlines()[-1] == "guidance_scale: not taken by Seedream 4.0 Edit"
    assert "seedream4-edit" in text and "$0.08" in text and "$0.03" in text  # labels: aliases; each cell's cost
    html = grid._repr_mimebundle_()["text/html"]
    assert "guidance_scale –" in html and "not taken by Seedream 4.0 Edit" in html
    for cell, result in zip(grid.sweep.cells, grid.results, strict=True):
        sent = dict(result.arguments)
        assert ("guidance_scale" in sent) is ("seedream" not in result.endpoint)
        assert ("image_urls" in sent) is (result.endpoint != "fal-ai/flux-pro/kontext/max")
        assert ("guidance_scale" in cell.not_taken) is ("seedream" in result.endpoint)
    found = shell.line("history --model seedream4-edit")
    assert len(found) == 4 and {r.endpoint for r in found} == {"fal-ai/bytedance/seedream/v4/edit"}
    kx.vote(grid.results[0], grid.results[-1])
    assert list(shell.line("ranking --by model")["model"]) == ["max", "flux2-flex-edit"]


def test_a_seed_sweep_over_a_model_without_a_seed_says_so_in_one_line(
    make_session: Callable[..., Session], sb: SandboxServer, photo: str
) -> None:
    said: list[str] = []
    session = make_session()
    session.notice = said.append
    grid = session.sweep("make it night", source=photo, model=["max", "reve-fast-edit"], seed=[1, 2])
    assert isinstance(grid, Grid)
    lines = [line for line in said if "seed" in line]
    assert len(lines) == 1 and "Reve Fast Edit" in lines[0] and "not reproducible" in lines[0]
    reve = [r for r in grid.results if isinstance(r, kx.Result) and "reve" in r.endpoint]
    assert len(reve) == 2 and all(not r.reproducible and "seed" not in r.arguments for r in reve)
    assert all(not session.record(r.journal_id).reproducible for r in reve)


def test_a_setting_no_model_of_the_sweep_takes_is_a_typo_refused_before_sending(
    make_session: Callable[..., Session], sb: SandboxServer, photo: str
) -> None:
    session = make_session()
    with pytest.raises(ValidationError, match="did you mean 'guidance_scale'"):
        session.sweep("x", source=photo, model=["max", "reve-fast-edit"], guidence_scale=[2, 3])
    assert sb.stats()["submits"] == 0


SETTINGS = {
    "guidance_scale": 3.5,
    "output_format": "png",
    "aspect_ratio": "16:9",
    "resolution": "2K",
    "num_images": 2,
    "enable_safety_checker": False,
}


@pytest.fixture(scope="module")
def prop_session(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    from conftest import SANDBOX_FAST, TEST_KEY

    from kontext_nb.config import Settings

    sandbox_server.reset()
    sandbox_server.configure(**SANDBOX_FAST)
    folder = tmp_path_factory.mktemp("sweep-prop")
    Image.new("RGB", (300, 200), (20, 120, 40)).save(folder / "photo.png")
    session = Session(
        Settings(base_url=sandbox_server.url, key=TEST_KEY, runs_dir=str(folder / "runs"), confirm_above=100),
        notice=lambda message: None,
    )
    yield session
    session.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chosen=st.lists(st.sampled_from(EDITORS), min_size=2, max_size=3, unique=True),
    asked=st.dictionaries(st.sampled_from(sorted(SETTINGS)), st.just(None), max_size=3),
)
def test_the_reservation_covers_the_bill_and_what_a_model_lacks_is_always_listed(
    prop_session: Session, sandbox_server: SandboxServer, chosen: list[str], asked: dict[str, None]
) -> None:
    options = {k: SETTINGS[k] for k in asked}
    takers = {k for k in options if any(k not in _lacks(m, k) for m in chosen)}
    options = {k: v for k, v in options.items() if k in takers}  # a setting no model takes is refused (a typo)
    photo = str(prop_session.runs_folder.parent / "photo.png")
    sweep = build_sweep("make it night", {"seed": (1, 2)}, model=chosen, base=options, mode="edit")
    listed = "\n".join(sweep.not_taken())
    for cell in sweep.cells:
        for name in options:
            if name in _lacks(cell.model, name):
                assert name in cell.not_taken and name not in cell.arguments
                assert f"{name}: not taken by" in listed
    plan = prop_session.plan_sweep(sweep, source=photo)
    grid = prop_session.sweep("make it night", source=photo, model=chosen, seed=[1, 2], **options)
    assert isinstance(grid, Grid)
    bills = {b["request_id"]: b["amount"] for b in sandbox_server.bills()["bills"]}
    for bound, result in zip(plan.costs, grid.results, strict=True):
        assert isinstance(result, kx.Result), result
        assert bills[result.request_id] <= bound + 1e-9, (result.endpoint, bills[result.request_id], bound)
        assert result.cost <= bound + 1e-9


def _lacks(model: str, name: str) -> tuple[str, ...]:
    from kontext_nb import endpoints
    from kontext_nb.sweep import cell_not_taken

    return cell_not_taken(endpoints.endpoint_for("edit", model), {name: None})


def test_rerun_on_another_model_and_the_config_s_model_in_magics(shell: Shell, sb: SandboxServer, photo: str) -> None:
    first = shell.line(f"edit {photo} make it night --seed 5")
    again = shell.line(f"rerun @{first.journal_id} --model reve-fast-edit")
    assert again.endpoint == "fal-ai/reve/fast/edit" and not again.reproducible
    assert "--model 'reve-fst-edit' is not allowed (did you mean 'reve-fast-edit'?)" in shell.usage_error(
        f"rerun @{first.journal_id} --model reve-fst-edit"
    )
    shell.ip.run_line_magic("config", "Kontext.model = 'qwen-edit'")
    assert shell.line(f"edit {photo} make it dusk --seed 6").endpoint == "fal-ai/qwen-image-edit"
    shell.ip.run_line_magic("config", "Kontext.model = 'max'")
