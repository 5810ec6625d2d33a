"""What fal reports (issue 20): x-fal-billable-units, fal's Platform APIs (usage, request history, pricing), results
the queue no longer keeps, submits whose reply was lost, and kx.budget(reconcile=True). Against the real sandbox
over HTTP and a real journal; the pure parts (usage aggregation, the comparison, input matching) also by property.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from conftest import TEST_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import wait_for

from kontext_nb import endpoints
from kontext_nb.config import Settings
from kontext_nb.errors import FalError, JobTimeout, SubmitUnconfirmed
from kontext_nb.fal.collect import billed_cost
from kontext_nb.fal.platform import RequestItem, UsageLine, billable_units, same_input, the_one_sent
from kontext_nb.journal.reconcile import TOLERANCE, compare, journal_spend
from kontext_nb.sandbox import billing
from kontext_nb.session import Session

MakeSession = Callable[..., Session]
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"
TWO_HOURS = 7200.0


def history(sb: Any, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{sb.url}/v1/models/requests/by-endpoint", params=params, headers={"Authorization": f"Key {TEST_KEY}"}
    )
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


# -- x-fal-billable-units -------------------------------------------------------------------------------------------
def test_billable_units_are_kept_on_the_result_and_the_journal(session: Session, sb: Any) -> None:
    result = session.generate("two foxes", seed=1, num_images=2)
    assert result.billable_units == 2  # [max] bills per image: fal's header says 2
    row = session.record("@last")
    assert row.billable_units == 2 and row.cost == pytest.approx(0.16)
    assert session.result("@last").billable_units == 2
    assert sb.request_info(result.request_id)["billable_units"] == 2 and sb.stats()["billed"] == pytest.approx(0.16)


def test_billable_units_header_is_read_as_fal_sends_it() -> None:
    assert billable_units({"x-fal-billable-units": "3"}) == 3
    assert billable_units({"x-fal-billable-units": "3.008"}) == pytest.approx(3.008)
    assert billable_units({"x-fal-billable-units": "0"}) == 0  # a free request says so too
    for odd in ("", "many", "-1", "nan", "inf"):
        assert billable_units({"x-fal-billable-units": odd}) is None
    assert billable_units({}) is None


def test_per_megapixel_endpoints_bill_whole_megapixels() -> None:
    dev = endpoints.get_endpoint("fal-ai/flux-kontext/dev")
    assert billing.billable_units(dev, [(1024, 1024), (1025, 1024)]) == 3
    assert billing.billable_units(endpoints.get_endpoint(T2I), [(4096, 4096)]) == 1


def test_the_cost_is_what_fal_says_it_billed(session: Session, sb: Any) -> None:
    dev = endpoints.get_endpoint("fal-ai/flux-kontext/dev")
    assert billed_cost(dev, [(1024, 1024)], 2.5) == pytest.approx(0.0625), "fal's units, at fal's price"
    assert billed_cost(dev, [(1024, 1024), (2048, 1024)], None) == pytest.approx(0.075), "else from the sizes"
    result = session.generate("a megapixel fox", model="lora", seed=1)  # billed per megapixel
    assert result.billable_units == 1 and result.cost == pytest.approx(0.035)
    assert session.record("@last").cost == pytest.approx(0.035)


# -- the Platform API client against the sandbox -----------------------------------------------------------------
def test_pricing_comes_from_the_price_table(session: Session) -> None:
    engine = session.engine
    prices = engine.call(engine.platform.pricing([T2I, "fal-ai/flux-kontext/dev"]))
    assert {(p.endpoint_id, p.unit_price, p.unit) for p in prices} == {
        (T2I, 0.08, "image"),
        ("fal-ai/flux-kontext/dev", 0.025, "megapixel"),
    }


def test_request_history_pages_with_its_cursor(session: Session, sb: Any) -> None:
    made = [session.generate(f"a fox {i}", seed=i) for i in range(3)]
    engine = session.engine
    items = engine.call(engine.platform.requests(T2I, page_size=1))
    assert sorted(i.request_id for i in items) == sorted(r.request_id for r in made)
    assert all(i.status_code == 200 and i.json_output and i.json_input for i in items)
    assert history(sb, endpoint_id=T2I, limit="1")["has_more"] is True
    one = engine.call(engine.platform.find(T2I, made[1].request_id))
    assert one is not None and one.json_input is not None and one.json_input["prompt"] == "a fox 1"
    assert engine.call(engine.platform.find(T2I, "00000000-0000-0000-0000-000000000000")) is None


def test_a_refused_platform_call_is_one_line_without_the_key(make_session: MakeSession, sb: Any) -> None:
    sb.set_faults([{"route": "platform", "kind": "403"}])
    session = make_session()
    engine = session.engine
    with pytest.raises(FalError) as info:
        engine.call(engine.platform.usage([T2I], "2026-01-01", "2026-01-02"))
    assert "HTTP 403" in str(info.value) and "\n" not in str(info.value) and TEST_KEY not in str(info.value)


def test_the_sandbox_refuses_a_bad_platform_query_in_one_line(sb: Any) -> None:
    headers = {"Authorization": f"Key {TEST_KEY}"}
    for path, params, says in (
        ("usage", {}, "endpoint_id"),
        ("usage", {"endpoint_id": T2I, "timeframe": "fortnight"}, "timeframe"),
        ("usage", {"endpoint_id": T2I, "start": "yesterday"}, "ISO 8601"),
        ("usage", {"endpoint_id": T2I, "timezone": "Mars/Olympus"}, "timezone"),
        ("requests/by-endpoint", {"endpoint_id": T2I, "limit": "500"}, "limit"),
        ("requests/by-endpoint", {"endpoint_id": T2I, "status": "fine"}, "status"),
    ):
        answer = httpx.get(f"{sb.url}/v1/models/{path}", params=params, headers=headers)
        assert answer.status_code == 400 and says in answer.json()["detail"], (path, params, answer.text)
    assert httpx.get(f"{sb.url}/v1/models/usage", params={"endpoint_id": T2I}).status_code == 401, "a key is needed"


def test_usage_buckets_follow_the_asked_time_zone(session: Session, sb: Any) -> None:
    session.generate("a fox", seed=1)
    body = httpx.get(
        f"{sb.url}/v1/models/usage",
        params={
            "endpoint_id": T2I,
            "timeframe": "day",
            "timezone": "America/New_York",
            "expand": "time_series,summary",
        },
        headers={"Authorization": f"Key {TEST_KEY}"},
    ).json()
    (bucket,) = body["time_series"]
    assert bucket["bucket"].endswith(("-05:00", "-04:00")) and bucket["bucket"][11:19] == "00:00:00"
    assert body["summary"][0]["cost"] == pytest.approx(0.08)


# -- results fal no longer keeps in its queue ---------------------------------------------------------------------
def left_on_fal(session: Session, sb: Any, prompt: str, **arguments: Any) -> str:
    """A job fal completes but this session does not collect (its wait ran out): its request id."""
    sb.configure(inference_time=0.8)
    with pytest.raises(JobTimeout):
        session.generate(prompt, **arguments)
    rid = session.record("@last").request_id
    assert rid is not None
    wait_for(lambda: sb.request_info(rid)["status"] == "COMPLETED", timeout=30)
    return rid


def test_a_result_collected_after_fal_dropped_it_comes_from_the_request_history(
    make_session: MakeSession, sb: Any
) -> None:
    session = make_session(job_timeout=0.2)
    rid = left_on_fal(session, sb, "a fox after a long break", seed=11)
    sb.configure(clock_offset=TWO_HOURS)  # a long break: fal keeps a result one hour
    queue = httpx.get(f"{sb.url}/fal-ai/flux-pro/requests/{rid}", headers={"Authorization": f"Key {TEST_KEY}"})
    assert queue.status_code == 404, "the queue no longer has it"
    (result,) = session.resume()
    assert result.request_id == rid and result.images and result.seed == 11
    row = session.record("@last")
    assert row.status == "done" and row.files and all(p.exists() for p in row.paths)
    assert sb.stats()["submits"] == 1 and session.budget()["session"] == pytest.approx(0.08)


def test_a_large_result_expires_after_six_minutes_a_small_one_after_an_hour(session: Session, sb: Any) -> None:
    small = session.generate("a small answer", seed=1)
    large = session.generate("a large answer", seed=2, sync_mode=True)  # the images inline: far above 10 KB
    sb.configure(clock_offset=7 * 60)

    def kept(rid: str) -> int:
        url = f"{sb.url}/fal-ai/flux-pro/requests/{rid}"
        return httpx.get(url, headers={"Authorization": f"Key {TEST_KEY}"}).status_code

    assert kept(small.request_id) == 200 and kept(large.request_id) == 404
    sb.configure(clock_offset=61 * 60)
    assert kept(small.request_id) == 404
    assert billing.result_ttl(10 * 1024 - 1) == 3600 and billing.result_ttl(10 * 1024) == 360


def test_a_result_gone_from_queue_and_history_stays_a_clear_error(make_session: MakeSession, sb: Any) -> None:
    session = make_session(job_timeout=0.2)
    left_on_fal(session, sb, "a fox nobody keeps", seed=12, private=True, sync_mode=True)  # no payloads kept
    sb.configure(clock_offset=TWO_HOURS)
    assert session.resume() == []
    row = session.record("@last")
    assert row.status == "failed" and "X-Fal-Store-IO: 0" in (row.error or ""), row.error


# -- submits whose reply was lost ---------------------------------------------------------------------------------
def test_a_lost_reply_is_resolved_to_its_request_id_and_collected(session: Session, sb: Any) -> None:
    sb.set_faults([{"route": "submit", "kind": "lost-reply", "count": 1}])
    result = session.generate("accepted in silence", seed=4)
    assert result.images and sb.stats()["submits"] == 1, "found, not sent again"
    row = session.record("@last")
    assert row.status == "done" and row.request_id == result.request_id
    assert sb.request_info(result.request_id)["arguments"]["prompt"] == "accepted in silence"
    assert session.budget()["session"] == pytest.approx(0.08)


def test_an_unconfirmed_submit_is_found_later_by_resume(session: Session, sb: Any) -> None:
    sb.set_faults(
        [{"route": "submit", "kind": "lost-reply", "count": 1}, {"route": "platform", "kind": "403", "count": 1}]
    )
    with pytest.raises(SubmitUnconfirmed, match=r"kx\.resume"):
        session.generate("found on the second look", seed=5)
    assert session.record("@last").status == "unconfirmed"
    (result,) = session.resume()
    assert result.images and sb.stats()["submits"] == 1
    row = session.record("@last")
    assert row.status == "done" and row.request_id == result.request_id and row.cost == pytest.approx(0.08)
    assert session.budget()["session"] == pytest.approx(0.08) and session.budget()["session_reserved"] == 0


def test_a_submit_that_never_arrived_is_released_only_after_the_window(make_session: MakeSession, sb: Any) -> None:
    sb.set_faults([{"route": "submit", "kind": "drop", "count": 1}])  # dropped before fal queued it
    session = make_session()
    with pytest.raises(SubmitUnconfirmed):
        session.generate("lost on the way", seed=6)
    assert session.resume() == [] and session.record("@last").status == "unconfirmed", "too soon to know"
    assert session.budget()["session"] == pytest.approx(0.08)
    later = make_session(unconfirmed_after=0.0)  # as if an hour had passed: fal would list it by now
    assert later.resume() == []
    row = later.record("@last")
    assert row.status == "failed" and row.error_type == "not_sent" and row.cost == 0 and row.reserved == 0
    assert later.budget()["today"] == 0 and sb.stats()["submits"] == 0


def test_two_identical_candidates_are_never_guessed(make_session: MakeSession, sb: Any) -> None:
    session = make_session(unconfirmed_after=0.0)
    sb.set_faults(
        [{"route": "submit", "kind": "lost-reply", "count": 2}, {"route": "platform", "kind": "403", "count": 2}]
    )
    for _ in range(2):  # no seed: not joined, two requests with the same input
        with pytest.raises(SubmitUnconfirmed):
            session.generate("twins", cache=False)
    assert session.resume() == []
    assert [r.status for r in session.history()] == ["unconfirmed", "unconfirmed"], "ambiguous: both stay counted"
    assert sb.stats()["submits"] == 2


def test_a_request_alike_but_not_equal_proves_nothing(make_session: MakeSession, sb: Any, tmp_path: Any) -> None:
    """fal may keep an input differently than it was sent: one with the same prompt keeps the row counted."""
    elsewhere = make_session(runs_dir=str(tmp_path / "elsewhere"))
    elsewhere.generate("the same prompt", seed=1)
    session = make_session(unconfirmed_after=0.0)
    journal = session.tracker.journal
    row = journal.create(endpoint=T2I, arguments={"prompt": "the same prompt", "seed": 2}, reserved=0.08)
    journal.unconfirmed(row, error="the reply was lost")
    said: list[str] = []
    session.notice = said.append
    assert session.resume() == []
    assert journal.get(row).status == "unconfirmed" and any("stays unconfirmed" in n for n in said), said


# -- kx.budget(reconcile=True) -------------------------------------------------------------------------------------
def test_reconcile_agrees_when_the_journal_holds_every_job(session: Session, sb: Any) -> None:
    session.generate("a fox", seed=1)
    session.generate("an owl", seed=2, num_images=2)
    found = session.budget(reconcile=True)["reconcile"]
    assert found.ok, found
    (line,) = found.lines
    assert line.endpoint_id == T2I and line.journal == line.fal == pytest.approx(0.24) and line.jobs == 2


def test_reconcile_finds_a_job_fal_billed_that_the_journal_lacks(
    make_session: MakeSession, sb: Any, tmp_path: Any
) -> None:
    ours = make_session()
    elsewhere = make_session(runs_dir=str(tmp_path / "another-runs-folder"))  # same key, another journal
    ours.generate("a fox", seed=1)
    elsewhere.generate("an owl", seed=2)
    said: list[str] = []
    ours.notice = said.append
    found = ours.budget(reconcile=True)["reconcile"]
    (line,) = found.differences
    assert line.journal == pytest.approx(0.08) and line.fal == pytest.approx(0.16)
    assert line.difference == pytest.approx(0.08)
    assert said and "DIFFERENCE +$0.08" in said[0] and T2I in said[0]
    assert "DIFFERENCE +$0.08" in repr(found)


def test_reconcile_names_a_submit_fal_never_received(session: Session, sb: Any) -> None:
    sb.set_faults([{"route": "submit", "kind": "drop", "count": 1}])
    with pytest.raises(SubmitUnconfirmed):
        session.generate("lost on the way", seed=6)
    (line,) = session.budget(reconcile=True)["reconcile"].differences
    assert line.journal == pytest.approx(0.08) and line.fal == 0 and line.difference == pytest.approx(-0.08)


def test_reconcile_works_offline_on_the_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_FAL_URL"):
        monkeypatch.delenv(var, raising=False)
    session = Session(Settings(runs_dir=str(tmp_path / "runs")), notice=lambda message: None)
    try:
        session.generate("an offline fox", seed=1)
        found = session.budget(reconcile=True)["reconcile"]
        assert session.backend == "sandbox" and found.ok and found.lines[0].fal == pytest.approx(0.08)
    finally:
        session.close()  # stops its sandbox too


# -- properties -------------------------------------------------------------------------------------------------------
DAY0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
IDS = (T2I, "fal-ai/flux-pro/kontext/max", "fal-ai/flux-kontext/dev")
billed_lines = st.lists(
    st.builds(
        billing.Billed,
        request_id=st.uuids().map(str),
        endpoint_id=st.sampled_from(IDS),
        at=st.floats(DAY0, DAY0 + 5 * 86400, allow_nan=False),
        quantity=st.integers(0, 8).map(float),
        unit=st.just("image"),
        unit_price=st.sampled_from((0.04, 0.08)),
    ),
    max_size=40,
)


@settings(max_examples=examples(ci=20, deep=60), deadline=None)
@given(billed_lines, st.sampled_from(IDS), st.sampled_from(("hour", "day")))
def test_usage_buckets_add_up_to_what_was_billed(lines: list[billing.Billed], wanted: str, timeframe: str) -> None:
    start, end = DAY0 + 86400, DAY0 + 4 * 86400
    series = billing.time_series(lines, endpoint_ids=[wanted], start=start, end=end, timeframe=timeframe, zone="UTC")
    model: dict[str, float] = {}
    for line in lines:
        if line.endpoint_id == wanted and start <= line.at < end:
            model[line.endpoint_id] = model.get(line.endpoint_id, 0.0) + line.quantity * line.unit_price
    got = sum(r["cost"] for bucket in series for r in bucket["results"])
    assert math.isclose(got, sum(model.values()), abs_tol=1e-6)
    summed = sum(r["cost"] for r in billing.summary(lines, endpoint_ids=[wanted], start=start, end=end))
    assert math.isclose(summed, got, abs_tol=1e-6)
    buckets = [bucket["bucket"] for bucket in series]
    assert buckets == sorted(set(buckets)), "one entry per bucket, oldest first"


@settings(
    max_examples=examples(ci=3, deep=6), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from((T2I, "fal-ai/flux-pro/kontext/text-to-image")), st.integers(1, 3)),
        min_size=1,
        max_size=4,
    )
)
def test_the_sandbox_usage_api_reports_what_it_completed(
    make_session: MakeSession, sb: Any, jobs: list[tuple[str, int]]
) -> None:
    sb.reset()
    session = make_session()
    for i, (endpoint, n) in enumerate(jobs):
        model = "max" if endpoint == T2I else "pro"
        session.generate(f"job {i}", model=model, seed=i, num_images=n, cache=False)
    engine = session.engine
    today = dt.datetime.now(dt.timezone.utc).date()
    usage = engine.call(
        engine.platform.usage(
            [T2I, "fal-ai/flux-pro/kontext/text-to-image"],
            today.isoformat(),
            (today + dt.timedelta(days=1)).isoformat(),
        )
    )
    model_cost: dict[str, float] = {}
    for endpoint, n in jobs:
        model_cost[endpoint] = model_cost.get(endpoint, 0.0) + n * endpoints.get_endpoint(endpoint).price
    got = {u.endpoint_id: u.cost for u in usage}
    assert got.keys() == model_cost.keys()
    assert all(math.isclose(got[k], model_cost[k], abs_tol=1e-6) for k in got)
    assert all(u.day == today.isoformat() for u in usage)


days = st.sampled_from(("2026-03-01", "2026-03-02", "2026-03-03"))
cents = st.integers(0, 200).map(lambda c: c / 100)


@settings(max_examples=examples(ci=25, deep=80), deadline=None)
@given(
    st.dictionaries(st.tuples(days, st.sampled_from(IDS)), st.tuples(cents, cents, st.integers(0, 5)), max_size=6),
    st.lists(
        st.builds(UsageLine, days, st.sampled_from(IDS), st.just("image"), st.just(1.0), cents, cents), max_size=8
    ),
)
def test_the_comparison_accounts_for_every_dollar(
    spend: dict[tuple[str, str], tuple[float, float, int]], usage: list[UsageLine]
) -> None:
    lines = compare(spend, usage)
    assert len({(x.day, x.endpoint_id) for x in lines}) == len(lines)
    assert {(x.day, x.endpoint_id) for x in lines} == set(spend) | {(u.day, u.endpoint_id) for u in usage}
    total = sum(x.difference for x in lines)
    assert math.isclose(total, sum(u.cost for u in usage) - sum(s for s, _, _ in spend.values()), abs_tol=1e-6)
    for x in lines:
        assert x.agrees == (abs(x.fal - x.journal) <= TOLERANCE + 1e-9)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=examples(ci=30, deep=100), deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_value, max_size=5), st.dictionaries(st.text(max_size=6), json_leaf))
def test_an_input_matches_itself_with_fals_defaults_added(ours: dict[str, Any], defaults: dict[str, Any]) -> None:
    theirs = {**defaults, **ours}
    assert same_input(ours, theirs)
    item = RequestItem("r1", T2I, 200, json_input=theirs)
    assert the_one_sent([item], ours) == "r1" and the_one_sent([item], ours, known=["r1"]) is None
    assert the_one_sent([item, RequestItem("r2", T2I, 200, json_input=theirs)], ours) is None, "never guessed"


@settings(max_examples=examples(ci=30, deep=100), deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), json_leaf, min_size=1, max_size=5), st.data())
def test_a_changed_value_does_not_match(ours: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(ours)))
    other = data.draw(json_leaf.filter(lambda v: not same_input(ours[key], v)))
    assert not same_input(ours, {**ours, key: other})
    assert not same_input(ours, None), "a request fal kept no payload for matches nothing"


def test_a_journaled_image_label_matches_what_was_sent() -> None:
    ours = {"prompt": "night", "image_url": "data:image/png;sha256=abc", "seed": 3}
    assert same_input(ours, {"prompt": "night", "image_url": "data:image/png;base64,iVBOR", "seed": 3.0})
    assert not same_input(ours, {"prompt": "night", "seed": 3})


def test_journal_spend_counts_spent_and_held_per_utc_day() -> None:
    from kontext_nb.journal.db import JobRecord

    def row(created: float, cost: float, reserved: float = 0.0, cached: bool = False) -> JobRecord:
        return JobRecord(
            1, created, "done", T2I, "p", {}, None, None, None, (), None, None, (), None, cached, cost, 1, None, (),
            None, (), None, None, reserved=reserved,
        )  # fmt: skip

    spend = journal_spend(
        [row(DAY0 + 10, 0.08), row(DAY0 + 20, 0.0, 0.08), row(DAY0 + 86400, 0.04), row(DAY0, 0, cached=True)]
    )
    assert spend == {("2026-03-01", T2I): (0.08, 0.08, 2), ("2026-03-02", T2I): (0.04, 0.0, 1)}
