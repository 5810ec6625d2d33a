"""Compare, history, ranking and reports treat the model as one more setting: labels by alias, history by model,
the ranking of models (by="model") with its uncertainty, a model column in the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import kontext_nb as kx
from kontext_nb.errors import ValidationError
from kontext_nb.result import Result
from kontext_nb.session import Session
from kontext_nb.views.compare import Comparison

MODELS = ("max", "flux2-flex-edit", "qwen-edit")


@pytest.fixture
def edits(judged: Session, tmp_path: Path) -> list[Result]:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (30, 90, 160)).save(photo)
    grid = kx.sweep("make it winter", source=str(photo), model=list(MODELS), seed=[1, 2])
    results = [r for r in grid.results if isinstance(r, Result)]
    assert len(results) == 6
    return results


def test_the_model_is_a_column_and_a_filter_of_history(edits: list[Result]) -> None:
    frame = kx.history().to_pandas()
    assert set(frame["model"]) == set(MODELS)
    assert {r.model for r in kx.history(model="qwen-edit")} == {"qwen-edit"}
    with pytest.raises(ValidationError, match="did you mean 'qwen-edit'"):
        kx.history(model="qwen-edt")


def test_a_comparison_across_models_labels_each_by_its_alias(edits: list[Result]) -> None:
    labels = Comparison(edits[:3]).labels
    assert [label.split(" · ")[1] for label in labels] == [r.model for r in edits[:3]]
    assert Comparison([edits[0], edits[1]]).labels == [edits[0].ref, edits[1].ref]  # one model: refs alone


def test_the_ranking_groups_by_model_when_asked_and_a_report_has_a_model_column(
    edits: list[Result], tmp_path: Path
) -> None:
    by_model = {r.model: r for r in edits}
    best, middle, worst = (by_model[m] for m in ("qwen-edit", "max", "flux2-flex-edit"))
    for _ in range(3):
        kx.vote(best, middle)
        kx.vote(middle, worst)
        kx.vote(best, worst)
    kx.vote(edits[0], edits[1])  # within one model: says nothing about the models
    per_result = kx.ranking(edits)
    assert "model" in per_result.columns and per_result.iloc[0]["model"] == "qwen-edit"
    models = kx.ranking(edits, by="model")
    assert list(models["model"]) == ["qwen-edit", "max", "flux2-flex-edit"]
    assert (models["uncertainty"] > 0).all() and list(models["results"]) == [2, 2, 2]
    assert models["comparisons"].sum() == 2 * 9
    with pytest.raises(ValidationError, match="by='seed' is not allowed"):
        kx.ranking(edits, by="seed")
    page = kx.report(edits, tmp_path / "report.html").read_text()
    assert "<th>model</th>" in page and "<h3>Models</h3>" in page and "flux2-flex-edit" in page
