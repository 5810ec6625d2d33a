"""Issue 21, point 9: a blocked word stays blocked however it is disguised, and ordinary prompts pass.

A property test over Unicode's confusables (the table the proxy folds with), combining marks and format
characters, plus the issue's own counterexamples kept as regression cases.
"""

from __future__ import annotations

import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kontext_nb.proxy.fold import disguises, fold
from kontext_nb.proxy.policy import Blocklist

BLOCKED = ["cat", "nude", "gore", "blood bath", "weapon"]
WORDS = Blocklist(BLOCKED)
MARKS = [chr(c) for c in range(0x0300, 0x0370)] + ["\u0332", "\u20dd", "\u0489", "\u1ab0", "\u1dc0"]
FORMAT = [
    *"\u00ad\u034f\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e",
    *"\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff\ufe0f\ufff9\ufffa\ufffb",
    "\U000e0001",
    "\U000e0041",
    "\U000e007f",
    "\U0001d173",
]
NORMAL = [
    "a cathedral at dusk, oil painting",
    "concatenate the scattered catalogue",
    "a nudibranch on a coral reef",
    "a bloodhound in the snow",
    "a bath full of rubber ducks",
    "portrait of Ada Lovelace, café lighting, naïve style",
    "東京の夜景、雨上がり",
    "Ночной город под дождём",
    "a gorilla eating a mango",
    "a weaponsmith's workshop sign reading 'closed'",
]


@st.composite
def disguised(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(BLOCKED))
    out = []
    for letter in word:
        if letter == " ":
            out.append(draw(st.sampled_from([" ", "  ", "\u00a0", "\u2003", "\t"])))
            continue
        options = [letter, letter.upper(), *disguises(letter)]
        out.append(draw(st.sampled_from(options)))
        out += draw(st.lists(st.sampled_from(MARKS + FORMAT), max_size=3))
    return "".join(out)


@settings(max_examples=examples(ci=100, deep=400), deadline=None)
@given(disguised())
@example("c̲a̲t̲")
@example("ćat")
@example("ṇude")
@example("ᏟᎪᎢ")
@example("ꓚꓮꓔ")
@example("ᴄᴀᴛ")
@example("c\ufff9at")
@example("𝐠𝐨𝐫𝐞")
def test_a_disguised_blocked_word_is_still_blocked(word: str) -> None:
    assert WORDS.matches(f"please draw a {word} here"), (word, fold(word))


@pytest.mark.parametrize("prompt", NORMAL)
def test_ordinary_prompts_pass(prompt: str) -> None:
    assert not WORDS.matches(prompt), fold(prompt)
