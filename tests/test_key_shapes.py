"""The fal key in no shape (issue 20, point 3): a key pasted with a trailing CR, a LoRA URL carrying ?key=, a tag
holding it, the key URL- or base64-encoded anywhere in a request; an error httpx raises before anything is sent.

Real parts: the sandbox over HTTP, the journal's SQLite file, the runs folder on disk.
"""

from __future__ import annotations

import base64
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from budget import examples  # tests/budget.py: KONTEXT_HYPOTHESIS=deep for the full budget
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kontext_nb import config, keys
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.errors import NotSent, ValidationError
from kontext_nb.fal.transport import FalTransport
from kontext_nb.journal.db import DB_NAME
from kontext_nb.session import Session

MakeSession = Callable[..., Session]
KEY_ID, KEY_SECRET = "3f2a9c1e-5b7d-4e8f-9a0b", "0123456789abcdef0123456789abcdef"
KEY = f"{KEY_ID}:{KEY_SECRET}"


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(out, format="PNG")
    return out.getvalue()


DATA_URI = "data:image/png;base64," + base64.b64encode(_png()).decode()


@pytest.fixture(autouse=True)
def no_remembered_keys() -> Iterator[None]:
    """The keys these tests configure (hypothesis draws hundreds) are not redacted from later tests' messages."""
    yield
    keys.IN_USE.clear()


def _everything_in(folder: Path) -> bytes:
    """Every byte of every file under a folder (the journal, its WAL, images, thumbnails)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _journal_text(folder: Path) -> str:
    with sqlite3.connect(folder / DB_NAME) as db:
        return "\n".join(repr(row) for row in db.execute("SELECT * FROM jobs"))


def _no_key(text: str | bytes) -> bool:
    raw = text.encode() if isinstance(text, str) else text
    return all(part.encode() not in raw for part in (KEY, KEY_ID, KEY_SECRET))


def _keyed_session(make_session: MakeSession, monkeypatch: pytest.MonkeyPatch, fal_key: str, **changes: Any) -> Session:
    """A session that reads its key from FAL_KEY (as a notebook does), on the sandbox."""
    monkeypatch.setenv("FAL_KEY", fal_key)
    monkeypatch.delenv("FAL_KEY_ID", raising=False)
    monkeypatch.delenv("FAL_KEY_SECRET", raising=False)
    return make_session(key=None, **changes)


# -- 1. the key as loaded ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pasted", [KEY + "\r", KEY + "\n", f"  {KEY} ", KEY + "\r\n", "\t" + KEY])
def test_a_key_with_surrounding_whitespace_works_and_is_nowhere(
    make_session: MakeSession,
    sb: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pasted: str,
) -> None:
    s = _keyed_session(make_session, monkeypatch, pasted)
    result = s.generate("a lighthouse at dusk", seed=7)
    print(repr(result), s.budget(), s.info())
    assert sb.stats()["submits"] == 1 and result.images
    assert s.record("@last").status == "done"
    runs = tmp_path / "runs"
    assert _no_key(_everything_in(runs)) and _no_key(_journal_text(runs))
    out = capsys.readouterr()
    assert _no_key(out.out + out.err)


@pytest.mark.parametrize(("name", "pasted"), [("FAL_KEY", KEY[:10] + "\r" + KEY[10:]), ("FAL_KEY", KEY + "\x1bx")])
def test_a_key_with_an_inner_control_character_is_one_line_that_never_repeats_it(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, name: str, pasted: str
) -> None:
    s = _keyed_session(make_session, monkeypatch, pasted)
    with pytest.raises(ValidationError) as info:
        s.generate("a lighthouse at dusk", seed=7)
    message = str(info.value)
    assert "\n" not in message and name in message and "control character" in message
    assert _no_key(message) and KEY[:10] not in message
    assert sb.stats()["submits"] == 0 and s.tracker.journal.count() == 0


def test_key_id_and_secret_are_stripped_too(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.setenv("FAL_KEY_ID", KEY_ID + " \r\n")
    monkeypatch.setenv("FAL_KEY_SECRET", "\t" + KEY_SECRET + "\r")
    assert config.fal_key_from_env() == KEY
    s = make_session(key=None)
    s.generate("a red kite over a beach", seed=2)
    assert sb.stats()["submits"] == 1
    assert config.clean_key(" " + KEY + "\r\n", "key") == KEY


# -- 2. the key in any string of a request --------------------------------------------------------------------------
B64_SECRET = base64.b64encode(KEY_SECRET.encode()).decode()
URLSAFE_KEY = base64.urlsafe_b64encode(("!" + KEY).encode()).decode().rstrip("=")
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("a LoRA URL with ?key=", {"loras": [{"path": f"https://h.test/style.safetensors?key={KEY}", "scale": 0.8}]}),
    ("a LoRA URL, URL-encoded", {"loras": [{"path": "https://h.test/s.safetensors?k=" + urllib.parse.quote(KEY)}]}),
    ("a tag holding the key", {"tags": [KEY]}),
    ("a tag holding the secret, base64", {"tags": ["x" + B64_SECRET]}),
    ("a webhook carrying the key", {"webhook_url": f"https://hooks.test/done?token={KEY}"}),
    ("a prompt with the key base64 (urlsafe, no padding)", {"prompt": "a sign reading " + URLSAFE_KEY}),
]


@pytest.mark.parametrize(("shape", "changes"), SHAPES, ids=[s for s, _ in SHAPES])
def test_the_key_in_any_shape_of_a_request_is_refused_and_nothing_written(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shape: str, changes: Any
) -> None:
    s = _keyed_session(make_session, monkeypatch, KEY)
    call = {"prompt": "a fox in snow", "seed": 1, **changes}
    if "loras" in call:
        call.update(model="lora", image=DATA_URI)
    with pytest.raises(ValidationError, match="contains your fal key") as info:
        if "image" in call:
            s.edit(call.pop("image"), call.pop("prompt"), **call)
        else:
            s.generate(call.pop("prompt"), **call)
    assert "\n" not in str(info.value) and _no_key(str(info.value))
    assert sb.stats()["submits"] == 0 and s.tracker.journal.count() == 0
    assert _no_key(_everything_in(tmp_path / "runs"))


def test_the_magics_lora_and_tag_holding_the_key_send_nothing(
    shell: Any, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", KEY)
    for line in (f"a fox --tag {KEY}", f"a fox --model lora --lora https://h.test/a.safetensors?key={KEY}:0.7"):
        message = shell.usage_error(line)
        assert "contains your fal key" in message and _no_key(message)
    assert sb.stats()["submits"] == 0


# -- the property: any key, any structure, any encoding ---------------------------------------------------------------
KEY_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=60)
ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "url": lambda s: urllib.parse.quote(s, safe=""),
    "url+": urllib.parse.quote_plus,
    "url twice": lambda s: urllib.parse.quote(urllib.parse.quote(s, safe=""), safe=""),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 urlsafe": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "base64 unpadded": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "base64 wrapped at 16": lambda s: "\n".join(
        base64.b64encode(s.encode()).decode()[i : i + 16] for i in range(0, len(base64.b64encode(s.encode())), 16)
    ),
    "base64 then url": lambda s: urllib.parse.quote(base64.b64encode(s.encode()).decode(), safe=""),
}


@st.composite
def embedded(draw: st.DrawFn, secret: str) -> str:
    """The secret inside other text (any prefix: every base64 alignment), in one of the encodings."""
    prefix = draw(st.text(alphabet="abcxyz:/?=&-_ ", max_size=7))
    suffix = draw(st.text(alphabet="abcxyz:/?=&-_ ", max_size=7))
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    if encoding.startswith("base64"):  # the secret's bytes at any offset inside the encoded bytes
        return draw(st.text(alphabet="ab", max_size=3)) + ENCODINGS[encoding](prefix + secret + suffix)
    return prefix + ENCODINGS[encoding](secret) + suffix


def structures(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["path", "url", "meta"]), inner),
        max_leaves=8,
    )


@st.composite
def requests_holding(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(key, the string holding a piece of it, a nested structure with that string somewhere)."""
    key_id = draw(KEY_TEXT.filter(lambda t: ":" not in t))
    secret = draw(KEY_TEXT.filter(lambda t: ":" not in t))
    key = f"{key_id}:{secret}"
    piece = draw(st.sampled_from([key, key_id, secret]))
    plain = structures(st.text(alphabet="abc /", max_size=12) | st.integers() | st.none())
    holder = draw(embedded(piece))
    before, after = draw(plain), draw(plain)
    path = draw(st.lists(st.sampled_from(["list", "dict"]), max_size=3))
    nested: Any = holder
    for kind in path:
        nested = [before, nested, after] if kind == "list" else {"meta": before, "path": nested}
    return key, holder, nested


@settings(max_examples=examples(ci=75, deep=300), deadline=None)
@given(case=requests_holding())
def test_any_key_in_any_string_of_any_structure_in_any_encoding_is_found(case: tuple[str, str, Any]) -> None:
    key, _holder, nested = case
    parts = keys.secret_parts(key, environ={})
    found = keys.find_secret({"arguments": {"loras": nested}}, parts)
    assert found is not None
    assert found[0].startswith("arguments.loras")
    assert all(p not in keys.redact(str(nested), parts) for p in parts if p in str(nested))


@settings(
    max_examples=examples(ci=15, deep=40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=requests_holding(), where=st.sampled_from(["prompt", "tags", "webhook_url", "loras"]))
def test_the_one_send_path_refuses_it_and_writes_and_sends_nothing(
    make_session: MakeSession, sb: Any, tmp_path: Path, case: tuple[str, str, Any], where: str
) -> None:
    key, holder, _nested = case
    s = make_session(key=key)
    call: dict[str, Any] = {
        "prompt": {"prompt": f"a fox {holder}"},
        "tags": {"tags": ["t " + holder.replace("\n", "")]},
        "webhook_url": {"webhook_url": "https://hooks.test/x?q=" + urllib.parse.quote(holder)},
        "loras": {"loras": [{"path": "https://h.test/a.safetensors?k=" + urllib.parse.quote(holder), "scale": 1.0}]},
    }[where]
    try:
        with pytest.raises(ValidationError, match="contains your fal key") as info:
            if where == "loras":
                s.edit(DATA_URI, "a fox", model="lora", seed=1, **call)
            else:
                s.generate(call.pop("prompt", "a fox"), seed=1, **call)
        assert not keys.find_secret(str(info.value), keys.secret_parts(key, environ={}))
        assert sb.stats()["submits"] == 0 and s.tracker.journal.count() == 0
    finally:
        s.close()


# -- 3. the redactor: the last line of defence -----------------------------------------------------------------------
def test_errors_notices_and_journal_columns_pass_through_the_redactor(
    make_session: MakeSession, sb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kontext_nb.errors import FalError

    monkeypatch.setenv("FAL_KEY", KEY)
    for text in (f"boom {KEY}", f"boom {urllib.parse.quote(KEY)}", "boom " + base64.b64encode(KEY.encode()).decode()):
        assert _no_key(str(FalError(text))) and "[fal key]" in str(FalError(text))
    said: list[str] = []
    s = Session(Settings(base_url=sb.url, key=KEY, runs_dir=str(tmp_path / "r")), notice=said.append)
    s.notice(f"kontext_nb: a notice with {KEY_SECRET}")
    assert said == ["kontext_nb: a notice with [fal key]"]
    job_id = s.tracker.begin("fal-ai/flux-pro/kontext/max/text-to-image", {"prompt": "x"}, parent_id=None, tags=())
    s.tracker.journal.finished(job_id, status="failed", error=f"text holding {KEY}")
    s.tracker.journal.unconfirmed(job_id, error=f"text holding {urllib.parse.quote(KEY)}")
    assert _no_key(_journal_text(tmp_path / "r"))
    s.close()


def test_png_metadata_and_reports_pass_through_the_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    from kontext_nb.journal import metadata

    monkeypatch.setenv("FAL_KEY", KEY)
    png = metadata.embed(_png(), {"prompt": f"a sign reading {KEY}", "tags": [urllib.parse.quote(KEY_SECRET)]})
    assert _no_key(png) and _no_key(repr(metadata.read(png)))
    assert keys.redact("<p>" + base64.b64encode(KEY.encode()).decode() + "</p>").startswith("<p>[fal key]")


def test_a_configured_key_is_redacted_like_fal_key(make_session: MakeSession, sb: Any) -> None:
    from kontext_nb.errors import FalError

    s = make_session(key=f" {KEY}\n")  # kx.configure(key=...), pasted with a line break
    s.generate("a lighthouse at dusk", seed=9)
    assert sb.stats()["submits"] == 1
    assert str(FalError(f"an answer quoting {KEY_SECRET}")) == "an answer quoting [fal key]"


# -- 4. an error httpx raises before anything is sent -----------------------------------------------------------------
def test_an_illegal_header_value_is_not_sent_never_unconfirmed(sb: Any) -> None:
    import asyncio

    transport = FalTransport(sb.url, RetryPolicy(attempts=3, base_delay=0.01))

    async def post() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            await client.post(
                "https://queue.fal.run/fal-ai/flux-pro/kontext/max/text-to-image",
                json={"prompt": "x"},
                headers={"Authorization": f"Key {KEY}\r"},
            )

    with pytest.raises(NotSent) as info:
        asyncio.run(post())
    assert _no_key(str(info.value)) and "nothing was sent" in str(info.value)
    assert sb.stats()["submits"] == 0 and transport.retries == 0


def test_a_submit_httpx_refuses_locally_is_journaled_as_not_sent_and_released(
    make_session: MakeSession, sb: Any
) -> None:
    s = make_session(base_url=sb.url.replace("http://", "ftp://"), budget_session=0.10)
    with pytest.raises(NotSent, match="nothing was sent"):
        s.generate("a lighthouse at dusk", seed=7)
    row = s.record("@last")
    assert row.status == "failed" and row.cost == 0 and row.reserved == 0 and "nothing was sent" in (row.error or "")
    assert s.budget()["session"] == 0 and s.budget()["session_reserved"] == 0
    assert sb.stats()["submits"] == 0
