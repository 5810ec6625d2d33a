"""The typo guard: a line whose first word is a subcommand, or close to one, is never a paid prompt.

The first word of every line that becomes a prompt (the %kontext line, every line of a %%kontext cell body) is read
after options, case-insensitively, and compared with every subcommand by Damerau-Levenshtein distance (a
transposition is one edit). Within two edits it is a UsageError with a did-you-mean, whatever
follows, and nothing is sent. Two exceptions keep real prompts working: an English word ("snow", "sheep", "make" are
near "show", "sweep", "rate") is a prompt unless the rest reads like a subcommand's arguments (@12, $var, a file,
{a|b}, "all"). Quoting the text, or -- before it, always makes a prompt.
"""

from __future__ import annotations

import functools
import io
import re
import shlex
from dataclasses import dataclass

from IPython.core.error import UsageError

from ._words import WORDS
from .parse import SUBCOMMANDS, make_parser

MAX_DISTANCE = 2
QUOTES = ("'", '"')
PUNCTUATION = ".,;:!?"
COMMAND_LIKE = re.compile(
    r"^(?:@\S*|\$[A-Za-z_]\w*|all|\S*\{[^{}]*\|[^{}]*\}\S*|\S+\.(?:png|jpe?g|webp|gif|safetensors)|https?://\S*)$", re.I
)
"""Words that belong to a subcommand's arguments, not to a prompt: job references, variables, files, alternatives."""


def distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (unrestricted: any two edits, a transposition among them, count as two), capped at
    MAX_DISTANCE + 1. The Lowrance-Wagner algorithm."""
    if abs(len(a) - len(b)) > MAX_DISTANCE:
        return MAX_DISTANCE + 1
    far = len(a) + len(b)
    last_row: dict[str, int] = {}
    d = [[far] * (len(b) + 2)] + [[far] + [0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i + 1][1] = i
    for j in range(len(b) + 1):
        d[1][j + 1] = j
    for i in range(1, len(a) + 1):
        last_col = 0
        for j in range(1, len(b) + 1):
            k, col = last_row.get(b[j - 1], 0), last_col
            cost = 0 if a[i - 1] == b[j - 1] else 1
            if cost == 0:
                last_col = j
            d[i + 1][j + 1] = min(
                d[i][j] + cost,
                d[i + 1][j] + 1,
                d[i][j + 1] + 1,
                d[k][col] + (i - k - 1) + 1 + (j - col - 1),
            )
        last_row[a[i - 1]] = i
    return min(d[len(a) + 1][len(b) + 1], MAX_DISTANCE + 1)


def closest(word: str) -> str | None:
    """The subcommand a first word stands for (exactly, in another case, or within two edits), if any."""
    folded = word.casefold()
    if folded in SUBCOMMANDS:
        return folded
    best = min(SUBCOMMANDS, key=lambda s: (distance(folded, s), -len(s)))
    return best if distance(folded, best) <= MAX_DISTANCE else None


@dataclass(frozen=True)
class Word:
    """One word of a line as typed: its text after shell quoting, whether it was quoted, where it stands."""

    text: str
    quoted: bool
    start: int
    end: int


def words_of(line: str) -> list[Word]:
    """The shell-style words of a line (as parse.split makes them), each with its place and whether it was quoted."""
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    out, position = [], 0
    try:
        while (token := lexer.get_token()) is not None:
            end = stream.tell()
            raw = line[position:end]
            start = position + len(raw) - len(raw.lstrip())
            raw = raw.strip()
            out.append(Word(token, raw.startswith(QUOTES), start, start + len(raw)))
            position = end
    except ValueError:
        return out  # an unclosed quote: parse.split says so
    return out


@functools.cache
def _takes_value() -> frozenset[str]:
    """The options that take a value (on first use: the parser reads the model registry, which %load_ext must not)."""
    parser = make_parser("", sweep=True)
    return frozenset(o for a in parser._actions if a.nargs != 0 for o in a.option_strings)


def check_line(line: str) -> None:
    """%kontext LINE (or the %%kontext line) with no subcommand: its first prompt word must not be one."""
    words = words_of(line)
    i = 0
    while i < len(words):
        text = words[i].text
        if text == "--" and not words[i].quoted:
            return
        if text.startswith("-") and len(text) > 1 and not words[i].quoted:
            i += 2 if text in _takes_value() else 1
            continue
        break
    if i >= len(words) or words[i].quoted:
        return
    first = words[i]
    rest = [w.text for w in words[i + 1 :]]
    _model_word(first.text, rest, (line[: first.start] + line[first.end :]).strip())
    problem = _typo(first.text, rest)
    if problem is None:
        return
    word, meant, attached = problem
    after = (attached + " " if attached else "") + (line[: first.start] + line[first.end :]).strip()
    text = line.strip()
    raise UsageError(
        f"{word!r} is not a subcommand (did you mean %kontext {' '.join([meant, *after.split()][:12])}?); "
        f'nothing was sent. For an image of this text, quote it (%kontext "{_cut(text)}") or write '
        f"%kontext -- {_cut(text)}"
    )


def check_cell(body: str) -> None:
    """Every line of a %%kontext cell body that starts with a subcommand (or close to one) is refused."""
    for number, raw in enumerate(body.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(QUOTES) or line == "--" or line.startswith(("-- ", "--\t")):
            continue
        first, *rest = line.split()
        _model_word(first, rest, " ".join(rest), f"line {number} of the cell")
        problem = _typo(first, rest)
        if problem is None:
            continue
        word, meant, attached = problem
        suggestion = " ".join([meant, *([attached] if attached else []), *rest][:12])
        raise UsageError(
            f"line {number} of the cell starts with {word!r}, not a prompt (did you mean %kontext {suggestion}?); "
            "nothing was sent. For a prompt starting with it, quote the line or start it with --"
        )


def _typo(first: str, rest: list[str]) -> tuple[str, str, str] | None:
    """(the word as typed, the subcommand meant, a reference typed onto it) when a first word is a subcommand's."""
    head, attached = first, ""
    if "@" in first[1:]:  # rerun@1
        head, _, tail = first.partition("@")
        attached = "@" + tail
    word = head.strip(PUNCTUATION)
    meant = closest(word) if word else None
    if meant is None:
        return None
    real_word = word.casefold() in WORDS and not attached
    if real_word and not any(COMMAND_LIKE.match(w) for w in rest):
        return None
    return head, meant, attached


def _model_word(first: str, rest: list[str], after: str, where: str = "") -> None:
    """A first word that names a model (an alias such as qwen-edit, or an endpoint id) was meant as --model, not as
    the start of a paid prompt; an English word or a Kontext name (max, pro) stays a prompt unless the rest reads like
    arguments (a file, @12, $var)."""
    from ..models import registry

    word = first.strip(PUNCTUATION)
    if not word or registry().find(word) is None:
        return
    plain = word.casefold() in WORDS or word.casefold() in ("max", "pro", "dev", "lora")  # "Max the dog"
    if plain and not any(COMMAND_LIKE.match(w) for w in rest):
        return
    model = registry().find(word)
    verb = "edit " if model is not None and model.mode != "text-to-image" and rest else ""
    suggestion = _cut(f"{verb}{after} --model {word}".strip())
    head = f"{where} starts with {word!r}, a model" if where else f"{word!r} is a model"
    raise UsageError(
        f"{head}, not a subcommand or a prompt (did you mean %kontext {suggestion}?); nothing was sent. "
        "For a prompt starting with it, quote it or start it with --"
    )


def with_prompt_hint(message: str, command: str, line: str) -> str:
    """A subcommand's usage error, for a line that may have been meant as a prompt ("duel between two samurai")."""
    rest = line.split()[1:]
    plain = [w for w in rest if not (COMMAND_LIKE.match(w) or w.startswith("-") or w.isdigit())]
    if not command or not plain or "quote" in message.casefold():
        return message
    return f'{message.rstrip(".")}. A prompt starting with "{command}"? Quote it: %kontext "{_cut(line.strip())}"'


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strip_escape(line: str) -> str:
    """A cell line written '-- words' is the prompt 'words' (the guard passed it by)."""
    stripped = line.lstrip()
    return stripped[2:].lstrip() if stripped == "--" or stripped.startswith(("-- ", "--\t")) else line
