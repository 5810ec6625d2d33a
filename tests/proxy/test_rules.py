"""The proxy's pure parts: quota arithmetic, policy (endpoints, safety, blocklist), the fair queue, tokens."""

from __future__ import annotations

import pytest

from kontext_nb import endpoints
from kontext_nb.proxy.dispatch import FairQueue
from kontext_nb.proxy.limits import Limits, Refusal, Usage, check, to_micros
from kontext_nb.proxy.policy import MISSING, Blocklist, endpoint_refusal, enforce_safety
from kontext_nb.proxy.roster import check_token, clean_name, token_hash

MAX = to_micros(0.08)
PRO = to_micros(0.04)


def kind(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.kind


def test_images_per_day_allows_exactly_up_to_the_limit() -> None:
    limits = Limits(images_per_day=3, dollars_per_session=None, jobs_in_flight=None)
    assert check(limits, Usage(images_today=2), Usage(), 1, MAX) is None
    refused = check(limits, Usage(images_today=3), Usage(), 1, MAX)
    assert refused is not None and (refused.kind, refused.status) == ("images-per-day", 429)
    assert "3 of your 3 images today" in refused.message
    assert kind(check(limits, Usage(images_today=2), Usage(), 2, MAX)) == "images-per-day"  # 2 asked, 1 left


def test_dollars_are_exact_at_the_cap() -> None:
    """25 max jobs are exactly $2.00: in floats they sum to 2.0000000000000004 and the 25th would be refused."""
    limits = Limits(images_per_day=None, dollars_per_session=2.0, jobs_in_flight=None)
    spent = 0
    for _ in range(24):
        spent += to_micros(endpoints.get_endpoint("fal-ai/flux-pro/kontext/max").cost(1))
    assert check(limits, Usage(spent_micros=spent), Usage(), 1, MAX) is None
    refused = check(limits, Usage(spent_micros=spent + MAX), Usage(), 1, MAX)
    assert kind(refused) == "dollars-per-session" and refused is not None
    assert "costs $0.08 and you have $0.00 left of your $2.00" in refused.message
    assert kind(check(limits, Usage(spent_micros=to_micros(1.97)), Usage(), 1, PRO)) == "dollars-per-session"


def test_class_limits_and_jobs_in_flight() -> None:
    limits = Limits(
        images_per_day=None,
        dollars_per_session=None,
        jobs_in_flight=2,
        class_images_per_day=10,
        class_dollars_per_session=1.0,
    )
    assert check(limits, Usage(in_flight=1), Usage(images_today=9), 1, MAX) is None
    assert kind(check(limits, Usage(in_flight=2), Usage(), 1, MAX)) == "jobs-in-flight"
    assert kind(check(limits, Usage(), Usage(images_today=10), 1, MAX)) == "class-images-per-day"
    assert kind(check(limits, Usage(), Usage(spent_micros=to_micros(0.96)), 1, MAX)) == "class-dollars-per-session"
    assert check(limits, Usage(), Usage(spent_micros=to_micros(0.92)), 1, MAX) is None
    unlimited = Limits(None, None, None, None, None, None)
    assert check(unlimited, Usage(10**6, 10**12, 10**3), Usage(10**6, 10**12, 10**3), 4, MAX * 4) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"images_per_day": -1},
        {"jobs_in_flight": 1.5},
        {"class_in_flight": 0},
        {"dollars_per_session": -0.01},
        {"max_safety_tolerance": "7"},
        {"images_per_day": True},
    ],
)
def test_limits_refuse_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)  # type: ignore[arg-type]


def test_limits_describe_says_every_limit() -> None:
    text = Limits().describe()
    assert "40 images/day" in text and "$2.00 per session" in text and "2 jobs in flight" in text
    assert "8 jobs upstream at once" in text and "safety_tolerance at most 2" in text
    assert Limits(max_safety_tolerance=3).max_safety_tolerance == "3"  # type: ignore[arg-type]


def test_only_kontext_endpoints_pass() -> None:
    for endpoint_id in endpoints.ENDPOINTS:
        assert endpoint_refusal(endpoint_id) is None
    refused = endpoint_refusal("fal-ai/flux/dev")
    assert refused is not None and (refused.kind, refused.status) == ("endpoint", 403)
    assert "fal-ai/flux-pro/kontext/max/text-to-image" in refused.message and "'fal-ai/flux/dev'" in refused.message


def test_safety_tolerance_is_capped_at_the_class_level() -> None:
    assert enforce_safety("1", "2") == ("1", None)  # stricter than the class: kept
    assert enforce_safety("2", "2") == ("2", None)
    assert enforce_safety(MISSING, "3") == ("3", "not given: set to the class level 3")
    assert enforce_safety("2", "1") == ("1", "lowered from 2 (the default) to the class level 1")
    refused = enforce_safety("5", "2")
    assert isinstance(refused, Refusal) and (refused.kind, refused.status) == ("safety-tolerance", 403)
    assert "safety_tolerance='5'" in refused.message and "choose 1 to 2" in refused.message
    refused = enforce_safety("3", "1")
    assert isinstance(refused, Refusal) and "choose 1 (1 is the strictest)" in refused.message
    assert enforce_safety("4", "6") == ("4", None)


def test_blocklist_matches_whole_words_and_phrases_in_any_case() -> None:
    words = Blocklist(["gore", "Blood  Bath", "", "  "])
    assert len(words) == 2
    assert words.matches("a GORE scene") and words.matches("gore") and words.matches("(gore!)")
    assert words.matches("a blood\nbath at dawn") and words.matches("ＧＯＲＥ")  # full-width letters fold
    assert not words.matches("gorebeast") and not words.matches("Igor eats") and not words.matches("bloodbath")
    refused = words.refusal("lots of gore")
    assert refused is not None and (refused.kind, refused.status) == ("blocklist", 403)
    assert "gore" not in refused.message  # the list is the instructor's, not told to students
    assert Blocklist().refusal("anything") is None


def test_blocklist_file_skips_comments_and_blank_lines(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "blocked.txt"
    path.write_text("# words for class 3B\n\ngore\n  # indented comment\nblood bath\n", encoding="utf-8")
    words = Blocklist.from_file(path)
    assert words.phrases == ("gore", "blood bath")


def test_fair_queue_serves_students_in_turn() -> None:
    queue = FairQueue()
    for i in range(3):
        queue.push("ada", f"a{i}")
    queue.push("bo", "b0")
    queue.push("cy", "c0")
    queue.push("cy", "c1")
    assert queue.order() == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert queue.position("c1") == 4 and queue.position("zz") is None
    assert queue.pop() == "a0"
    queue.push("dee", "d0")  # a newcomer joins the end of the current round
    assert queue.order() == ["b0", "c0", "a1", "d0", "c1", "a2"]
    assert queue.remove("cy", "c0") and not queue.remove("cy", "c0") and not queue.remove("nobody", "x")
    popped = [queue.pop() for _ in range(len(queue))]
    assert popped == ["b0", "c1", "a1", "d0", "a2"]  # cy keeps its turn: c0 was withdrawn, c1 takes its place
    assert queue.pop() is None and len(queue) == 0


def test_names_and_tokens() -> None:
    assert clean_name("  Ada \t Lovelace ") == "Ada Lovelace"
    for bad in ("", "   ", "x" * 101, "a\x00b"):
        with pytest.raises(ValueError):
            clean_name(bad)
    with pytest.raises(ValueError):
        check_token("short")
    with pytest.raises(ValueError):
        check_token("has a space in it, long enough")
    assert token_hash("kxs-abc") == token_hash("kxs-abc") != token_hash("kxs-abd")
    assert len(token_hash("x")) == 64
