"""A corpus of bad input: %kontext lines and panel states that must fail with one clear line and send nothing.

Every case is its own test id. A magic line must raise IPython's UsageError (one line, no traceback, short
enough to read even when the input was 100k characters); a panel state must put its message beside the field
at fault (or on the tab's error line). After each, the sandbox has seen no submission. The lines here are new:
tests/magics/test_magics.py's BAD_LINES are not repeated (a test checks that).

Decisions written down here:
- a 100k-character prompt is a clean run (fal takes it; the journal and the image metadata keep it whole);
- RTL marks, zero-width joiners and emoji inside a prompt are a clean run, kept byte for byte;
- a prompt of nothing but invisible characters (zero-width space/joiner) is as empty as one of spaces;
- NUL characters and lone surrogates (``\\ud800``) cannot be sent as a prompt: refused before sending;
- an option given twice with different values is an error, not "the last one wins" (``--tag`` repeats).
"""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError
from magics.test_magics import BAD_LINES
from PIL import Image
from shell import Shell  # tests/shell.py

import kontext_nb as kx
import kontext_nb.sandbox as sandbox
from kontext_nb.session import Session
from kontext_nb.widgets import theme
from kontext_nb.widgets.create import CreateTab

MAX_MESSAGE = 500
"""Characters a one-line error may have: it names the bad value, it does not echo 100k of it."""
HUGE = 100_000
RED = f"color:{theme.ERROR}"


# -- files and variables the lines refer to ---------------------------------------------------------------------------
def png_bytes(size: tuple[int, int] = (64, 48), colour: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "orange").save(buf, "JPEG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


BOMB = (
    b"\x89PNG\r\n\x1a\n"
    + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30_000, 30_000, 1, 0, 0, 0, 0))
    + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
    + _chunk(b"IEND", b"")
)
"""A PNG that says it has 900 megapixels, in 69 bytes: PIL refuses it as a decompression bomb."""


def make_files(folder: Path) -> None:
    """Good and bad image files in ``folder`` (the test's own tmp_path)."""
    (folder / "ok.png").write_bytes(png_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("these are notes, not pixels\n")
    (folder / "truncated.jpg").write_bytes(jpeg_bytes()[:200])
    (folder / "header-only.png").write_bytes(png_bytes()[:33])
    (folder / "bomb.png").write_bytes(BOMB)
    with (folder / "huge.jpg").open("wb") as fh:  # 200 MB of zeros, sparse: a huge file that is no image
        fh.truncate(200 * 1024 * 1024)
    (folder / "folder.png").mkdir()
    (folder / "real.gif").write_bytes(b"GIF89a" + b"\x00" * 20)


def set_variables(ns: dict[str, Any]) -> None:
    ns.update(
        number=3.5,
        text="a sentence, not a path",
        none_value=None,
        table={"a": 1},
        junk=b"GIF87a but not really",
        empty_array=np.zeros((0, 0, 3), "uint8"),
        bright_array=np.full((8, 8, 3), 2.0),
        wide_array=np.zeros((8, 8, 3), "int64"),
        five=[png_bytes()] * 5,
        function=len,
    )


# -- magic lines -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    id: str
    line: str
    words: str
    """Text the UsageError must contain ({tmp} in line is the test's tmp_path)."""
    body: str | None = None
    """A cell body: run as %%kontext LINE with this body."""


L = Line
LINES: list[Line] = [
    # -- bad values of every option --
    L("seed-missing-value", "a fox --seed", "--seed"),
    L("seed-empty", "a fox --seed ''", "--seed"),
    L("seed-exponent", "a fox --seed 1e3", "not a whole number"),
    L("seed-inf", "a fox --seed inf", "not a whole number"),
    L("seed-nan", "a fox --seed nan", "not a whole number"),
    L("seed-nul", "a fox --seed '\x00'", "not a whole number"),
    # was an OverflowError from SQLite (journal.create), not a UsageError
    L("seed-beyond-64-bit", "a fox --seed 99999999999999999999999999", "--seed"),
    # int() refuses over 4300 digits; the message once echoed all 5000
    L("seed-5000-digits", "a fox --seed " + "9" * 5000, "--seed"),
    L("guidance-zero", "a fox --guidance 0", "out of range"),
    L("guidance-negative", "a fox --guidance -1", "out of range"),
    L("guidance-inf", "a fox --guidance inf", "not a finite number"),
    L("guidance-minus-inf", "a fox --guidance -inf", "--guidance"),
    L("guidance-overflow", "a fox --guidance 1e400", "not a finite number"),
    L("guidance-list-outside-sweep", "a fox --guidance 3,4", "not a number"),
    L("guidance-empty", "a fox --guidance ''", "not a number"),
    # the message once echoed all 100k characters
    L("guidance-100k-chars", "a fox --guidance " + "9" * HUGE, "--guidance"),
    L("num-images-zero", "a fox -n 0", "out of range"),
    L("num-images-negative", "a fox --num-images -1", "out of range"),
    L("num-images-float", "a fox -n 2.5", "not a whole number"),
    L("num-images-inf", "a fox -n inf", "not a whole number"),
    L("ratio-missing-value", "a fox --ar", "--aspect-ratio"),
    L("ratio-empty", "a fox --ar ''", "not allowed"),
    L("ratio-zero", "a fox --ar 0:0", "not allowed"),
    L("ratio-divide-by-zero", "a fox --ar 1:0", "not allowed"),
    # the message once echoed all 100k characters
    L("ratio-100k-chars", "a fox --ar " + "x" * HUGE, "--aspect-ratio"),
    L("format-upper-case", "a fox --format JPEG", "choose one of jpeg, png"),
    L("format-webp", "a fox --format webp", "choose one of jpeg, png"),
    L("safety-zero", "a fox --safety 0", "not allowed"),
    L("safety-float", "a fox --safety 1.5", "not allowed"),
    L("model-upper-case", "a fox --model MAX", "not allowed"),
    L("model-list-outside-sweep", "a fox --model max,pro", "not allowed"),
    # an empty --model once fell back to the default model silently
    L("model-empty", "a fox --model ''", "--model"),
    L("flag-with-value", "a fox --enhance=yes", "--enhance"),
    L("tag-missing-value", "a fox --tag", "--tag"),
    L("output-missing-name", "a fox -o", "-o"),
    # -o once took any text: the job ran and its Result landed in a variable no code can name
    L("output-not-a-name", "a fox -o 'not a name'", "-o"),
    L("output-keyword", "a fox -o class", "-o"),
    L("output-starts-with-digit", "a fox -o 1abc", "-o"),
    L("unknown-short-option", "a fox -x", "unknown option -x"),
    L("unknown-long-option-after-prompt-words", "a fox --no-cache --colour red", "unknown option --colour"),
    # -- options twice (the last one once won silently; --tag is the option meant to repeat) --
    L("seed-twice", "a fox --seed 1 --seed 2", "--seed"),
    L("num-images-twice-by-alias", "a fox -n 2 --num-images 3", "--num-images"),
    L("model-twice", "a fox --model max --model pro", "--model"),
    L("guidance-on-both-sides-of-dashes", "edit {tmp}/ok.png --guidance 2 -- make it blue --guidance 5", "--guidance"),
    # -- `--` misuse --
    L("dashes-alone", "--", "no prompt given"),
    L("edit-dashes-first", "edit -- a fox", "edit needs a SOURCE"),
    L("edit-two-dashes", "edit -- -- a fox", "edit needs a SOURCE"),
    L("edit-nothing-after-dashes", "edit {tmp}/ok.png --", "no prompt given"),
    L("multi-nothing-after-dashes", "edit {tmp}/ok.png {tmp}/ok.png -- ", "no prompt given"),
    L("edit-source-only", "edit {tmp}/ok.png", "no prompt given"),
    L("sweep-dashes-alone", "sweep --", "no prompt given"),
    # -- files: missing, empty, corrupt, not images, huge, folders --
    L("empty-file", "edit {tmp}/empty.png make it blue", "is empty"),
    L("text-file-named-png", "edit {tmp}/notes.png make it blue", "not an image"),
    L("truncated-jpeg", "edit {tmp}/truncated.jpg make it blue", "truncated.jpg"),
    L("png-header-only", "edit {tmp}/header-only.png make it blue", "header-only.png"),
    L("decompression-bomb", "edit {tmp}/bomb.png make it blue", "bomb.png"),
    L("huge-file-of-zeros", "edit {tmp}/huge.jpg make it blue", "is 200 MB; the largest accepted is 50 MB"),
    L("gif-header-only", "edit {tmp}/real.gif make it blue", "real.gif"),
    L("folder-as-image", "edit {tmp}/folder.png make it blue", "is a folder"),
    L("folder-with-slash", "edit {tmp}/folder.png/ make it blue", "is a folder"),
    L("dev-null", "edit /dev/null make it blue", "is not a regular file"),
    L("missing-file-in-multi", "edit {tmp}/ok.png {tmp}/gone.png -- both", "gone.png"),
    L("corrupt-file-in-multi", "edit {tmp}/ok.png {tmp}/notes.png -- both", "notes.png"),
    L("very-long-missing-path", "edit {tmp}/" + "x" * 5000 + ".png make it", "does not exist"),
    L("nul-in-path", "edit {tmp}/ok\x00.png make it", "ok"),
    L("url-with-space", "edit 'http://example.com/a b.png' make it blue", "contains spaces"),
    L("ftp-url", "edit ftp://example.com/a.png make it blue", "does not exist"),
    L("data-uri-bad-base64", "edit data:image/png;base64,!!!! make it blue", "invalid base64"),
    L("data-uri-not-an-image-type", "edit data:text/plain;base64,aGVsbG8= make it blue", "data URI"),
    L("data-uri-not-an-image", "edit data:image/png;base64,aGVsbG8= make it blue", "not an image"),
    # -- $var holding something that is not an image --
    L("var-float", "edit $number make it blue", "cannot use a float"),
    L("var-text", "edit $text make it blue", "does not exist"),
    L("var-none", "edit $none_value make it blue", "cannot use a NoneType"),
    L("var-dict", "edit $table make it blue", "cannot use a dict"),
    L("var-junk-bytes", "edit $junk make it blue", "not an image"),
    L("var-empty-array", "edit $empty_array make it blue", "is empty"),
    L("var-float-array-out-of-range", "edit $bright_array make it blue", "from 0 to 1"),
    L("var-int64-array", "edit $wide_array make it blue", "int64"),
    L("var-five-images", "edit $five make it blue", "5 source images"),
    L("var-function", "edit $function make it blue", "cannot use a builtin_function_or_method"),
    L("var-dollar-alone", "edit $ make it blue", "no variable named"),
    L("sweep-edit-var-float", "sweep edit $number 'make it {winter|night}'", "cannot use a float"),
    # -- unknown references --
    L("ref-zero", "edit @0 make it blue", "no job @0"),
    L("ref-minus-zero", "edit @-0 make it blue", "@-0"),
    L("ref-word", "edit @first make it blue", "@first"),
    L("ref-empty-journal-last", "show @last", "the journal is empty"),
    L("ref-empty-journal-compare", "compare @1 @2", "@1"),
    L("ref-empty-journal-lineage", "lineage @3", "@3"),
    L("ref-empty-journal-rerun", "rerun @last --seed 3", "the journal is empty"),
    L("ref-empty-journal-cancel", "cancel @-1", "the journal is empty"),
    L("compare-unknown-word", "compare nope", "unknown job reference"),
    # were OverflowErrors from SQLite (journal.get / nth_latest / search)
    L("ref-beyond-64-bit-edit", "edit @99999999999999999999999 make it blue", "@99999999999999999999999"),
    L("ref-beyond-64-bit-show", "show 99999999999999999999", "99999999999999999999"),
    L("ref-beyond-64-bit-back", "show @-99999999999999999999", "@-99999999999999999999"),
    L("history-seed-beyond-64-bit", "history --seed 99999999999999999999999", "--seed"),
    L("history-limit-beyond-64-bit", "history --limit 99999999999999999999999", "--limit"),
    L("history-limit-float", "history --limit 1e9", "--limit"),
    L("history-unknown-option", "history --since yesterday", "unknown option --since"),
    # -- subcommands given what they do not take --
    L("cancel-all-and-more", "cancel all now", "cancel takes one job reference"),
    L("lineage-without-ref", "lineage", "lineage takes one job reference"),
    L("rerun-two-refs", "rerun @1 @2", "rerun takes one job reference"),
    L("resume-with-argument", "resume now", "resume takes no arguments"),
    L("panel-with-argument", "panel now", "panel takes no arguments"),
    L("compare-without-refs", "compare", "compare takes job references"),
    # -- odd Unicode --
    # a lone surrogate once reached tracking.cache_key's str.encode(): UnicodeEncodeError, not a UsageError
    L("prompt-lone-surrogate", "a fox \ud800 in snow --seed 1", "prompt"),
    L("prompt-lone-low-surrogate", "\udfff", "prompt"),
    L("edit-prompt-lone-surrogate", "edit {tmp}/ok.png -- \ud800", "prompt"),
    L("tag-lone-surrogate", "a fox --tag \ud800", "--tag"),
    L("history-lone-surrogate", "history \ud800", "\\ud800"),
    # (decision above) NUL and invisible-only prompts were once sent to fal and charged
    L("prompt-nul", "a fox\x00 in snow --seed 1", "prompt"),
    L("prompt-only-nul", "\x00", "prompt"),
    L("prompt-only-zero-width", "\u200b\u200d\u2060 --seed 3", "prompt"),
    L("prompt-only-odd-spaces", "\u00a0\u3000\u2003 --seed 3", "no prompt given"),
    L("model-lone-surrogate", "a fox --model \ud800", "--model"),
    L("seed-fullwidth-letters", "a fox --seed ａｂｃ", "not a whole number"),
    # -- sweeps: unbalanced braces, too large, bad lists --
    L("sweep-unclosed-brace", "sweep 'a {cat|fox'", "unbalanced brace"),
    L("sweep-unopened-brace", "sweep 'a cat|fox}'", "unbalanced brace"),
    # the message once echoed the whole 100k prompt
    L("sweep-unbalanced-100k", "sweep '" + "x" * HUGE + " {cat|fox'", "unbalanced brace"),
    L("sweep-seed-range-too-long", "sweep 'a fox' --seed 0-100000", "at most 100"),
    L("sweep-seed-reversed", "sweep 'a fox' --seed 5-1", "reversed range"),
    L("sweep-seed-double-comma", "sweep 'a fox' --seed 1,,2", "empty value"),
    L("sweep-seed-trailing-comma", "sweep 'a fox' --seed 1,", "empty value"),
    L("sweep-guidance-step-zero", "sweep 'a fox' --guidance 1:20:0", "step"),
    L("sweep-guidance-negative-step", "sweep 'a fox' --guidance 1:20:-1", "step"),
    L("sweep-guidance-nan", "sweep 'a fox' --guidance nan,2", "not a finite number"),
    L("sweep-guidance-two-part-range", "sweep 'a fox' --guidance 1:2", "start:stop:step"),
    L("sweep-too-many-cells", "sweep 'a fox' --seed 1-100 --guidance 1:10:0.1", "at most 2000"),
    L("sweep-too-many-cells-3d", "sweep 'a {b|c|d|e}' -n 1,2,3,4 --seed 1-100 --guidance 1:20:1", "at most 2000"),
    L("sweep-too-expensive-unconfirmed", "sweep 'a fox' --seed 1-100 --guidance 1:10:0.5", "--yes"),
    L("sweep-bad-model", "sweep 'a fox' --model max,ultra", "'ultra' is not allowed"),
    L("sweep-bad-format", "sweep 'a fox' --format png,gif", "not allowed"),
    L("sweep-bad-ratio", "sweep 'a fox' --ar 16:9,16:10", "not allowed"),
    L("sweep-edit-missing-file", "sweep edit {tmp}/gone.png 'make it {winter|night}'", "gone.png"),
    L("sweep-tag-missing-value", "sweep 'a {cat|fox}' --seed 1-2 --tag", "--tag"),
    # -- cell magic --
    L("cell-empty-body", "--seed 3", "cell body is empty", body=""),
    L("cell-blank-body", "--seed 3", "no prompt given", body="   \n\n\t  "),
    L("cell-only-separators", "--seed 3", "no prompt given", body="---\n---\n"),
    L("cell-prompt-on-both", "a fox --seed 3", "not both", body="a dog"),
    L("cell-bad-option", "--guidance 30", "out of range", body="a dog"),
    L("cell-edit-without-source", "edit", "edit needs a SOURCE", body="make it blue"),
    L("cell-edit-missing-file", "edit {tmp}/gone.png", "gone.png", body="make it blue"),
    L("cell-batch-one-bad-prompt", "--seed 3", "prompt", body="a cat\n---\na \ud800 dog"),
    L("cell-panel-with-body", "panel", "panel takes no arguments", body="something"),
]


def test_corpus_is_new_and_large_enough() -> None:
    ids = [c.id for c in LINES]
    assert len(ids) == len(set(ids))
    assert len(LINES) >= 40
    assert not {c.line for c in LINES if c.body is None} & {line for line, _ in BAD_LINES}, "in test_magics already"


@pytest.fixture
def shell(shell: Shell, tmp_path: Path) -> Shell:
    """The shared test shell (tests/conftest.py) with the corpus's files and variables in place."""
    make_files(tmp_path)
    set_variables(shell.ip.user_ns)
    return shell


def usage_error(shell: Shell, line: str, body: str | None) -> str:
    with pytest.raises(UsageError) as info:
        if body is None:
            shell.line(line)
        else:
            shell.cell(line, body)
    message = str(info.value)
    assert message.strip(), "an empty message"
    assert "\n" not in message and "Traceback" not in message, message[:300]
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]}..."
    return message


@pytest.mark.parametrize("case", LINES, ids=[c.id for c in LINES])
def test_bad_magic_line_is_one_usage_error_and_sends_nothing(
    shell: Shell, sb: sandbox.SandboxServer, tmp_path: Path, case: Line
) -> None:
    line = case.line.replace("{tmp}", str(tmp_path))
    message = usage_error(shell, line, case.body)
    assert case.words in message, message
    assert sb.stats()["submits"] == 0


def test_a_fifo_as_image_does_not_hang_the_kernel(shell: Shell, sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    """images._from_path once opened anything that existed and was not a folder: open() on a FIFO blocks until a
    writer comes, so the kernel hung. What is not a regular file is refused."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = run_with_rescue(lambda: shell.line(f"edit {fifo} make it blue"), fifo)
    assert outcome != "hung", "the magic blocked on the FIFO (released by the test after 5 s)"
    assert isinstance(outcome, UsageError) and "pipe.png" in str(outcome), outcome
    assert sb.stats()["submits"] == 0


def run_with_rescue(call: Callable[[], Any], fifo: Path, wait: float = 5.0) -> Any:
    """Run call in a thread; if it blocks on the FIFO, open the FIFO's write end (so the read sees EOF) and report
    'hung'. Returns the exception raised, the value, or 'hung'."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(10)
        return "hung"
    return outcome[0]


HUGE_PROMPTS = {
    "plain": ("a fox in snow, " + "very " * (HUGE // 5), None),
    "with-a-name": ("a {animal} in snow, " + "very " * (HUGE // 5), "a otter in snow, " + "very " * (HUGE // 5)),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("prompt", "sent"), HUGE_PROMPTS.values(), ids=HUGE_PROMPTS.keys())
def test_a_huge_prompt_is_a_clean_run(shell: Shell, sb: sandbox.SandboxServer, prompt: str, sent: str | None) -> None:
    """Decision: 100k characters go to fal as they are; nothing is cut from the journal or the file's metadata.

    {name} was once filled by IPython's shell.var_expand, whose DollarFormatter.parse runs the regex
    ``(.*?)\\$...`` from every position to the end: quadratic (10k characters 1.4 s, 100k ~140 s), with or without
    a name in the prompt. The timeout keeps a regression from holding the suite for minutes."""
    shell.ip.user_ns["animal"] = "otter"
    expected = (sent or prompt).strip()
    result = shell.line(f"--seed 5 -- {prompt}")
    assert result.prompt == expected
    assert kx.get_session().record(result.journal_id).prompt == expected
    assert kx.read_metadata(result.files[0])["prompt"] == expected
    assert len(repr(result)) < 2000, "the text form shortens it"
    assert sb.stats()["submits"] == 1


ODD_BUT_FINE = {
    "rtl-marks": "a fox \u200f\u202eright to left\u202c\u200e in snow",
    "zero-width-joiner-family": "a family 👩\u200d👩\u200d👧 at the beach",
    "emoji": "🦊 in ❄️, 🎨 watercolor",
    "combining-accents": "cafe\u0301 at dusk",
    "arabic-and-hebrew": "a sign saying مرحبا and שלום",
}


@pytest.mark.parametrize("prompt", ODD_BUT_FINE.values(), ids=ODD_BUT_FINE.keys())
def test_odd_unicode_in_a_real_prompt_is_a_clean_run(shell: Shell, sb: sandbox.SandboxServer, prompt: str) -> None:
    result = shell.line(f"--seed 2 -- {prompt}")
    assert result.prompt == prompt
    assert kx.get_session().record(result.journal_id).prompt == prompt
    assert kx.read_metadata(result.files[0])["prompt"] == prompt
    assert sb.stats()["submits"] == 1


# -- panel states ------------------------------------------------------------------------------------------------------
def upload(tab: CreateTab, *files: tuple[str, bytes]) -> None:
    """What the browser sends when files are chosen (as in tests/widgets/test_panel.py)."""
    value = [
        {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": 0}
        for name, data in files
    ]
    tab.sources.upload.set_state({"value": value})


def guidance(text: str) -> Callable[[CreateTab, Path], None]:
    return lambda tab, tmp: setattr(tab.inputs.controls["guidance_scale"], "value", text)


def seed(text: str) -> Callable[[CreateTab, Path], None]:
    return lambda tab, tmp: setattr(tab.inputs.seed, "value", text)


def prompt(text: str) -> Callable[[CreateTab, Path], None]:
    return lambda tab, tmp: setattr(tab.prompt, "value", text)


def edit_with(*files: tuple[str, bytes], mode: str = "edit") -> Callable[[CreateTab, Path], None]:
    def spoil(tab: CreateTab, tmp: Path) -> None:
        tab.mode.value = mode
        upload(tab, *files)

    return spoil


def edit_path(text: str, mode: str = "edit") -> Callable[[CreateTab, Path], None]:
    def spoil(tab: CreateTab, tmp: Path) -> None:
        tab.mode.value = mode
        tab.sources.paths.value = text.replace("{tmp}", str(tmp))

    return spoil


def unreadable(tab: CreateTab, tmp: Path) -> None:
    """A path that exists but cannot be read (tests run as root, so chmod 000 would not do): a Unix socket."""
    path = tmp / "socket.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    tab.mode.value = "edit"
    tab.sources.paths.value = str(path)
    server.close()


def too_many_cells(tab: CreateTab, tmp: Path) -> None:
    tab.prompt.value = "a {cat|dog|fox|owl} in snow"
    tab.inputs.seed.value = "1-100"
    tab.inputs.controls["guidance_scale"].value = "1:20:1"


def cleared(tab: CreateTab, tmp: Path) -> None:
    tab.mode.value = "edit"
    upload(tab, ("cat.png", png_bytes()))
    tab.sources.clear.click()


def multi_with_one(tab: CreateTab, tmp: Path) -> None:
    tab.mode.value = "multi"
    upload(tab, ("cat.png", png_bytes()))


@dataclass(frozen=True)
class State:
    id: str
    spoil: Callable[[CreateTab, Path], None]
    where: str
    """'prompt', 'sources', 'error' (the tab's error line) or an input's name (its label beside the control)."""
    words: str


S = State
STATES: list[State] = [
    S("prompt-empty", prompt(""), "prompt", "prompt"),
    S("prompt-newlines-and-tabs", prompt("\n\t \n"), "prompt", "prompt"),
    # (decision above) once sent and charged
    S("prompt-only-zero-width", prompt("\u200b\u200d"), "prompt", "prompt"),
    S("prompt-nul", prompt("a\x00fox"), "prompt", "prompt"),
    # once "UnicodeEncodeError: 'utf-8' codec can't encode ..." on the tab's error line, not beside the prompt
    S("prompt-lone-surrogate", prompt("a \ud800 fox"), "prompt", "prompt"),
    S("prompt-unbalanced-brace", prompt("a {cat|fox"), "prompt", "unbalanced brace"),
    S("sweep-too-many-cells", too_many_cells, "error", "at most 2000"),
    S("guidance-word", guidance("strong"), "guidance_scale", "not a number"),
    S("guidance-too-high", guidance("25"), "guidance_scale", "out of range"),
    S("guidance-below-one", guidance("0.5"), "guidance_scale", "out of range"),
    S("guidance-nan", guidance("nan"), "guidance_scale", "not a finite number"),
    S("guidance-minus-inf", guidance("-inf"), "guidance_scale", "not a finite number"),
    S("guidance-double-comma", guidance("2,,3"), "guidance_scale", "empty value"),
    S("guidance-step-zero", guidance("1:20:0"), "guidance_scale", "step"),
    S("guidance-reversed", guidance("5:2:1"), "guidance_scale", "reversed"),
    S("seed-negative", seed("-5"), "seed", "seed"),
    S("seed-float", seed("1.5"), "seed", "not an integer"),
    S("seed-word", seed("lucky"), "seed", "not an integer"),
    S("seed-range-too-long", seed("1-500"), "seed", "at most 100"),
    S("seed-list-too-long", seed(",".join(str(i) for i in range(101))), "seed", "more than 100 values"),
    S("seed-reversed-range", seed("9-1"), "seed", "reversed"),
    # once "OverflowError: Python int too large to convert to SQLite INTEGER" on the tab's error line
    S("seed-beyond-64-bit", seed("99999999999999999999999"), "seed", "seed"),
    S("edit-source-cleared", cleared, "sources", "choose the image"),
    S("multi-no-source", edit_with(mode="multi"), "sources", "2 to 4"),
    # once "image_urls=[ImageInput(description='image bytes', url=None, content_type=... has 1 images"
    S("multi-one-source", multi_with_one, "sources", "2 to 4"),
    S("multi-five-sources", edit_with(*[(f"{i}.png", png_bytes()) for i in range(5)], mode="multi"), "sources", "5"),
    S("upload-empty-file", edit_with(("empty.png", b"")), "sources", "empty.png"),
    S("upload-text-file", edit_with(("notes.png", b"these are notes")), "sources", "notes.png"),
    S("upload-truncated-jpeg", edit_with(("photo.jpg", jpeg_bytes()[:200])), "sources", "photo.jpg"),
    S("upload-decompression-bomb", edit_with(("bomb.png", BOMB)), "sources", "bomb.png"),
    S(
        "upload-one-bad-of-two",
        edit_with(("a.png", png_bytes()), ("b.png", b"\x89PNG"), mode="multi"),
        "sources",
        "b.png",
    ),
    S("path-missing", edit_path("{tmp}/gone.png"), "sources", "does not exist"),
    S("path-folder", edit_path("{tmp}"), "sources", "is a folder"),
    S("path-unreadable", unreadable, "sources", "not a regular file"),
    S("url-with-spaces", edit_path("http://example.com/my photo.png"), "sources", "contains spaces"),
    S("data-uri-bad", edit_path("data:image/png;base64,@@@"), "sources", "data URI"),
    S("multi-path-one-missing", edit_path("{tmp}/gone.png\nhttp://example.com/b.png", "multi"), "sources", "gone.png"),
]


def test_panel_corpus_is_large_enough() -> None:
    assert len(STATES) >= 20 and len({s.id for s in STATES}) == len(STATES)


@pytest.fixture
def create(session: Session) -> Iterator[CreateTab]:
    tab = CreateTab(session)
    yield tab
    tab.close()


def label_for(tab: CreateTab, where: str) -> Any:
    if where == "prompt":
        return tab.prompt_error
    if where == "sources":
        return tab.sources.error
    if where == "error":
        return tab.error
    return tab.inputs.errors[where]


def all_labels(tab: CreateTab) -> dict[str, str]:
    labels = {"prompt": tab.prompt_error.value, "sources": tab.sources.error.value, "error": tab.error.value}
    labels.update({name: label.value for name, label in tab.inputs.errors.items()})
    return {k: v for k, v in labels.items() if v}


@pytest.mark.parametrize("state", STATES, ids=[s.id for s in STATES])
def test_bad_panel_state_is_shown_beside_the_field_and_sends_nothing(
    create: CreateTab, sb: sandbox.SandboxServer, tmp_path: Path, state: State
) -> None:
    create.prompt.value = "a red fox"
    state.spoil(create, tmp_path)
    create.generate_button.click()
    shown = all_labels(create)
    label = label_for(create, state.where).value
    assert label, f"nothing shown at {state.where!r}; shown instead: {shown}"
    assert RED in label and state.words in label, shown
    text = label.split(">", 1)[1].rsplit("<", 1)[0]
    assert "\n" not in text and "Traceback" not in text and len(text) <= MAX_MESSAGE * 2, text[:300]
    assert "ImageInput(" not in text and "Error: " not in text, f"a Python repr or exception name: {text[:200]}"
    assert create.jobs == [] and create.confirm_row.layout.display == "none"
    assert sb.stats()["submits"] == 0


def test_a_fifo_path_in_the_panel_does_not_hang(create: CreateTab, sb: sandbox.SandboxServer, tmp_path: Path) -> None:
    """As for the magics: typing a FIFO's path once blocked the kernel in SourcePicker._paths_changed."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    create.prompt.value = "a red fox"
    create.mode.value = "edit"
    outcome = run_with_rescue(lambda: setattr(create.sources.paths, "value", str(fifo)), fifo)
    assert outcome != "hung", "the panel blocked on the FIFO (released by the test after 5 s)"
    create.generate_button.click()
    assert "pipe.png" in create.sources.error.value and create.jobs == []
    assert sb.stats()["submits"] == 0
