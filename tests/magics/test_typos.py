"""The typo guard (issue 20, point 2): a misspelt subcommand with arguments is never a paid prompt, real prompts are.

Every test runs the real magics against the real sandbox and counts what reached it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from shell import Shell  # tests/shell.py

from kontext_nb.magics._words import WORDS
from kontext_nb.magics.parse import SUBCOMMANDS
from kontext_nb.magics.typos import COMMAND_LIKE, check_cell, check_line, distance

DATA = Path(__file__).resolve().parents[1] / "data"
PROMPTS = [p for p in (DATA / "prompts.txt").read_text(encoding="utf-8").splitlines() if p.strip()]
STARTING_WITH_A_SUBCOMMAND = [
    p for p in (DATA / "prompts_starting_with_a_subcommand.txt").read_text(encoding="utf-8").splitlines() if p.strip()
]

THE_TEN = [  # the issue's lines: each was sent as a paid prompt
    ("canel all", "cancel all"),
    ("Cancel all", "cancel all"),
    ("cancle all", "cancel all"),
    ("CANCEL ALL", "cancel ALL"),
    ("stauts all", "status all"),
    ("histroy fox", "history fox"),
    ("hisotry --seed 42", "history --seed 42"),
    ("edti photo.jpg make it night", "edit photo.jpg make it night"),
    ("swep 'a {cat|fox} in snow'", "sweep 'a {cat|fox} in snow'"),
    ("sohw @1 big", "show @1 big"),
]


@pytest.mark.parametrize(("line", "meant"), THE_TEN)
def test_the_issues_ten_lines_send_nothing(shell: Shell, sb: Any, line: str, meant: str) -> None:
    message = shell.usage_error(line)
    assert f"did you mean %kontext {meant}?" in message and "nothing was sent" in message
    assert f'%kontext "{line}"' in message or "quote it" in message
    assert sb.stats()["submits"] == 0


@pytest.mark.parametrize(("line", "meant"), THE_TEN)
def test_the_ten_lines_in_a_cell_body_send_nothing_not_even_the_other_prompts(
    shell: Shell, sb: Any, line: str, meant: str
) -> None:
    with pytest.raises(UsageError, match=r"line 3 of the cell starts with .* \(did you mean %kontext "):
        shell.cell("--seed 3", f"a red fox in snow\n---\n{line}")
    assert sb.stats()["submits"] == 0


def test_options_before_the_word_do_not_hide_it(shell: Shell, sb: Any) -> None:
    assert "did you mean %kontext cancel --seed 4 all?" in shell.usage_error("--seed 4 canel all")
    assert "did you mean %kontext history --bg fox?" in shell.usage_error("--bg history fox")
    with pytest.raises(UsageError, match="did you mean %kontext cancel all"):
        shell.cell("canel all", "a fox")
    assert sb.stats()["submits"] == 0


def test_quoting_or_dashes_make_a_prompt_of_it(shell: Shell, sb: Any) -> None:
    shell.line('"canel all" --seed 1')
    shell.line("--seed 2 -- Cancel all")
    shell.cell("--seed 3", '"sohw @1 big" on a neon sign\n---\n-- hisotry --seed 42')
    assert sb.stats()["submits"] == 4
    import kontext_nb as kx

    prompts = sorted(r.prompt for r in kx.history(limit=4))
    assert prompts == ['"sohw @1 big" on a neon sign', "Cancel all", "canel all", "hisotry --seed 42"]


# -- real prompts still send ------------------------------------------------------------------------------------------
def test_the_corpus_has_two_hundred_varied_prompts() -> None:
    assert len(PROMPTS) == len(set(PROMPTS)) == 200
    firsts = {p.split()[0].casefold().strip(".,") for p in PROMPTS}
    near = {w for w in firsts if any(distance(w, s) <= 2 for s in SUBCOMMANDS)}
    assert len(firsts) > 120 and len(near) > 60, "the corpus must try the guard with words close to subcommands"


def test_every_prompt_of_the_corpus_passes_the_guard_on_a_line() -> None:
    for prompt in PROMPTS:
        check_line(prompt if "'" not in prompt else f"-- {prompt}")
        if "'" not in prompt:
            check_line(prompt)


def test_every_prompt_of_the_corpus_still_sends(shell: Shell, sb: Any) -> None:
    """All 200 in one %%kontext cell (the cell path checks every line) and a sample on the line."""
    shell.cell("--yes --bg -o jobs", "\n---\n".join(PROMPTS))
    for job in shell.ip.user_ns["jobs"]:
        job.result(60)
    for prompt in PROMPTS[:: len(PROMPTS) // 10]:
        shell.line(prompt.replace("'", "") + " --seed 5")
    assert sb.stats()["submits"] == 200 + 10


def test_a_prompt_starting_with_a_subcommands_name_is_quoted(shell: Shell, sb: Any) -> None:
    """The rule: a first word that is a subcommand (in any case: "Show me a cat") is a command, not a prompt."""
    for prompt in [*STARTING_WITH_A_SUBCOMMAND, "Show me a cat", "Edo period street scene"]:
        if prompt.startswith("history "):  # a search of the journal: nothing sent, nothing to say
            shell.line(prompt)
            continue
        with pytest.raises(UsageError, match=r"(?i)quote"):
            shell.line(prompt.replace("'", ""))
    assert sb.stats()["submits"] == 0
    for seed, prompt in enumerate(STARTING_WITH_A_SUBCOMMAND[:3]):
        shell.line(f'"{prompt}" --seed {seed}')
        shell.line(f"--seed {seed + 10} -- {prompt}")
    assert sb.stats()["submits"] == 6


# -- generated misspellings -------------------------------------------------------------------------------------------
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@st.composite
def misspellings(draw: st.DrawFn) -> str:
    """A subcommand with up to two edits (insert, delete, substitute, swap neighbours) and its case changed."""
    word = list(draw(st.sampled_from(SUBCOMMANDS)))
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["insert", "delete", "substitute", "transpose"]))
        i = draw(st.integers(0, len(word) - 1))
        if kind == "insert":
            word.insert(i, draw(st.sampled_from(LETTERS)))
        elif kind == "delete" and len(word) > 2:
            del word[i]
        elif kind == "substitute":
            word[i] = draw(st.sampled_from(LETTERS))
        elif kind == "transpose" and i + 1 < len(word):
            word[i], word[i + 1] = word[i + 1], word[i]
    cases = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if up else c for c, up in zip(word, cases, strict=True))


ARGUMENTS = st.lists(
    st.sampled_from(
        [
            *("all", "fox", "@1", "@last", "$img", "photo.jpg", "--seed", "42", "big", "make", "it", "night"),
            *("{cat|fox}", "-n", "'a cat in snow'", "--", "--bg", "https://x.test/a.png"),
        ]
    ),
    max_size=6,
)


def _is_typo(word: str, arguments: list[str]) -> bool:
    """What the guard must refuse: every misspelling but an English word followed by prompt words."""
    return word.casefold() not in WORDS or any(COMMAND_LIKE.match(a.strip("'")) for a in arguments)


@settings(
    max_examples=examples(ci=40, deep=150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(word=misspellings(), arguments=ARGUMENTS)
def test_generated_misspellings_with_any_arguments_send_nothing(
    shell: Shell, sb: Any, word: str, arguments: list[str]
) -> None:
    assume(_is_typo(word, arguments) and word not in SUBCOMMANDS)  # a lowercase subcommand runs as itself
    line = " ".join([word, *arguments])
    with pytest.raises(UsageError, match=r"nothing was sent"):
        shell.line(line)
    with pytest.raises(UsageError, match=r"nothing was sent"):
        shell.cell("--yes", f"a fox\n{line}")
    assert sb.stats()["submits"] == 0


@settings(max_examples=examples(ci=100, deep=300), deadline=None)
@given(word=misspellings(), arguments=ARGUMENTS)
def test_the_guard_refuses_every_misspelling_it_must(word: str, arguments: list[str]) -> None:
    """The pure guard, many more examples: the line and the cell body agree."""
    assume(_is_typo(word, arguments))
    with pytest.raises(UsageError, match="did you mean"):
        check_cell(" ".join([word, *arguments]))
    if word not in SUBCOMMANDS:
        with pytest.raises(UsageError, match="did you mean"):
            check_line(" ".join([word, *arguments]))


def test_the_word_list_holds_only_english_words_near_a_subcommand() -> None:
    assert all(w not in SUBCOMMANDS and any(distance(w, s) <= 2 for s in SUBCOMMANDS) for w in WORDS)
    typos = {"canel", "cancle", "stauts", "histroy", "hisotry", "edti", "swep", "sohw", "comapre", "panle"}
    assert not typos & WORDS
    assert {"snow", "sheep", "make", "rain", "art", "candle", "statue", "she"} <= WORDS


@pytest.mark.parametrize(("word", "meant"), [("iet", "edit"), ("tsauts", "status"), ("pnael", "panel")])
def test_counterexamples_two_edits_that_overlap_are_two(word: str, meant: str) -> None:
    """Found by hypothesis: a deletion then a transposition next to it ('edit' -> 'eit' -> 'iet') is two edits
    (unrestricted Damerau-Levenshtein), where optimal string alignment counts three and let it through."""
    assert distance(word, meant) <= 2
    with pytest.raises(UsageError, match=f"did you mean %kontext {meant} all"):
        check_line(f"{word} all")
