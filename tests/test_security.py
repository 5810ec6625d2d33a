"""The fal key stays secret, user text never runs as HTML, and files go only where they belong.

One module-scoped scenario does what a user does — generate, edit, multi-reference, sweep (magics and Python),
history, show, compare, lineage, rerun, status, the panel's buttons, and failures (faults, a refused key, a
timeout) — with a canary fal key, hostile prompts, and every file write of the process recorded (an audit hook).
The tests then search what it left:

(a) the canary appears in no file, repr, HTML, widget state, exception, log line (DEBUG) or printed output, nor in
    a notebook run by nbclient with FAL_KEY=canary in its environment;
(b) the prompts ``<img src=x onerror=alert(1)>`` and ``</script><script>alert(2)</script>`` rendered by headless
    Chromium (the system one, via Playwright) in every HTML output fire no dialog, add no script or event handler,
    and read as text;
(c) every file written is inside the runs folder or at a path the test asked for, and no file name holds prompt
    text (``../../etc/passwd``, ``a/b\\c:d*?``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
import waiting  # tests/waiting.py
from canary import leaks as find_leaks
from canary import new_canary
from IPython.testing import globalipapp
from shell import Shell  # tests/shell.py

import kontext_nb as kx
import kontext_nb.sandbox
from kontext_nb.config import RetryPolicy, Settings
from kontext_nb.magics.live import LiveOutput
from kontext_nb.session import Session
from kontext_nb.views.compare import Comparison
from kontext_nb.widgets import history_view
from kontext_nb.widgets.panel import COMPARE, Panel

CANARY = new_canary()
REVOKED = "revoked-" + CANARY
"""A key the sandbox refuses; it contains the canary, so showing it anywhere is caught too."""
XSS = ("<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>")
PATHS = ("../../etc/passwd", "a/b\\c:d*?")
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "magics.ipynb"
CHROMIUM = os.environ.get("KONTEXT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def leaks(data: str | bytes) -> list[str]:
    """The forms of the canary found in data (canary.leaks: as written, pieces of its secret part, hex, base64...)."""
    return find_leaks(data, CANARY)


# -- recording every file write of the process ------------------------------------------------------------------------
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_recording = threading.Event()
_writes: list[tuple[str, str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recording.is_set():
        return
    try:  # an exception in an audit hook would fail the operation it audits
        _note_write(event, args)
    except Exception as exc:
        _writes.append(("audit hook error", repr(exc)))


def _note_write(event: str, args: tuple[Any, ...]) -> None:
    paths: list[Any] = []
    if event == "open":
        path, mode, flags = (*args, None, None)[:3]
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writing:
            paths.append(path)
    elif event in ("os.mkdir", "os.symlink", "os.link", "os.truncate", "shutil.copyfile", "shutil.copytree"):
        paths.append(args[1] if event.startswith(("os.symlink", "os.link", "shutil")) else args[0])
    elif event == "os.rename":
        paths.append(args[1])
    elif event == "sqlite3.connect":
        paths.append(args[0])
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            text = os.fsdecode(path)
            if text and text != ":memory:" and not text.startswith("file::memory:"):
                _writes.append((event, os.path.abspath(text)))


_hooked: list[bool] = []


def record_writes() -> None:
    """Start recording (the hook is added on first use; it cannot be removed, and does nothing while not recording)."""
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked.append(True)
    _writes.clear()
    _recording.set()


# -- what the scenario leaves behind -----------------------------------------------------------------------------------
@dataclass
class World:
    root: Path
    runs: Path
    explicit: list[Path]
    """Files the scenario asked for by path (grid.save, history.to_csv, ...)."""
    texts: dict[str, str] = field(default_factory=dict)
    """Everything shown or said: reprs, HTML, widget states, exception texts, notices."""
    html: dict[str, str] = field(default_factory=dict)
    """HTML outputs by kind, for the browser."""
    writes: list[tuple[str, str]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)

    def see(self, label: str, value: Any) -> Any:
        """Keep what a user would see of value: its repr, its text and HTML forms."""
        texts = [repr(value)]
        bundle = getattr(value, "_repr_mimebundle_", None)
        if callable(bundle):
            forms = bundle()
            texts += [str(v) for v in forms.values()]
            if "text/html" in forms:
                self.html[label] = forms["text/html"]
        self.texts[label] = "\n".join(texts)
        return value

    def failure(self, label: str, call: Callable[[], Any]) -> BaseException:
        """Run call, which must fail; keep the exception as str, repr, traceback, attributes and causes."""
        try:
            call()
        except Exception as exc:
            parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(vars(exc))]
            render = getattr(exc, "_render_traceback_", None)
            if callable(render):
                parts += render()
            cause: BaseException | None = exc
            while cause is not None:
                parts.append(repr(cause))
                cause = cause.__cause__ or cause.__context__
            self.texts[f"exception: {label}"] = "\n".join(parts)
            return exc
        raise AssertionError(f"{label}: expected a failure")


class LogCollector(logging.Handler):
    """What caplog does, for a module-scoped scenario: every record at DEBUG, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + f" args={record.args!r}")


wait_for = partial(waiting.wait_for, timeout=20.0)


def widget_texts(widget: Any) -> tuple[str, list[str]]:
    """Every widget's state below widget (as JSON-ish text), and the values of its HTML widgets."""
    states, htmls = [], []

    def walk(x: Any) -> None:
        state = x.get_state()
        states.append(repr({k: v for k, v in state.items() if not isinstance(v, (bytes, memoryview))}))
        states.extend(bytes(v).decode("latin-1") for v in state.values() if isinstance(v, (bytes, memoryview)))
        if isinstance(x, (w.HTML, w.HTMLMath)):
            htmls.append(x.value)
        for child in getattr(x, "children", ()):
            walk(child)

    walk(widget)
    return "\n".join(states), htmls


# -- the scenario ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("security")
    runs, cwd, home, temp, exports = (root / n for n in ("runs", "cwd", "home", "tmp", "exports"))
    for folder in (cwd, home, temp, exports):
        folder.mkdir()
    world = World(root, runs, [cwd / "grid.png", exports / "history.csv", exports / "history.json"])
    globalipapp.start_ipython()  # IPython's own profile folder is made before HOME moves and recording starts
    passwd = Path("/etc/passwd").stat().st_mtime_ns if Path("/etc/passwd").exists() else None
    logs = LogCollector()
    out, err = io.StringIO(), io.StringIO()
    root_logger = logging.getLogger()
    noisy = ("httpx", "httpcore", "fal_client", "kontext_nb", "uvicorn", "uvicorn.error", "asyncio", "PIL")
    levels = {name: logging.getLogger(name).level for name in ("", *noisy)}
    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.chdir(cwd)
        mp.setenv("HOME", str(home))
        mp.setenv("TMPDIR", str(temp))
        mp.setattr(tempfile, "tempdir", str(temp))
        mp.setenv("FAL_KEY", CANARY)  # also where fal_client would look for it
        mp.delenv("KONTEXT_FAL_URL", raising=False)
        mp.setenv("KONTEXT_HOME", str(runs))  # %load_ext looks there (see test_load_ext_looks_only_in_...)
        root_logger.addHandler(logs)
        for name in levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        stack.callback(root_logger.removeHandler, logs)
        stack.callback(lambda: [logging.getLogger(n).setLevel(lv) for n, lv in levels.items()])
        url = stack.enter_context(
            kontext_nb.sandbox.running(
                require_key=CANARY, workers=4, inference_time=0.05, image_scale=0.25, retry_after=0, slow_seconds=2.0
            )
        )
        control = kontext_nb.sandbox.control(url)
        settings = Settings(
            base_url=url,
            key=CANARY,
            runs_dir=str(runs),
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
        )
        notices: list[str] = []
        session = Session(settings, notice=notices.append)
        stack.callback(session.close)
        kx.set_session(session)
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        record_writes()
        stack.callback(_recording.clear)
        play(world, session, control, settings)
        _recording.clear()
        world.texts["notices"] = "\n".join(notices)
        world.stats = control.stats()
    world.writes = list(_writes)
    world.logs = logs.lines
    world.stdout, world.stderr = out.getvalue(), err.getvalue()
    if passwd is not None:
        assert Path("/etc/passwd").stat().st_mtime_ns == passwd
    yield world


def play(world: World, session: Session, control: Any, settings: Settings) -> None:
    """What a user does, in one kernel."""
    see = world.see
    # -- the Python API --
    r1 = see("result-img", kx.generate(XSS[0], seed=1))
    r2 = see("result-script", kx.generate(XSS[1], seed=2, output_format="png"))
    r3 = see("result-passwd", kx.generate(PATHS[0], seed=3))
    r4 = see("result-odd-name", kx.generate(PATHS[1], seed=4, num_images=2, output_format="png"))
    edit = see("edit", kx.edit(r1, XSS[1] + " at night", seed=5))
    multi = see("multi", kx.edit([r1, r2], XSS[0] + " together", seed=6))
    see("edit-uploaded", kx.edit(noise_png(), XSS[0] + " uploaded", seed=8))  # > 256 KiB: through fal storage
    job = kx.generate("a job " + XSS[0], seed=7, wait=False)
    see("job", job)
    see("job-result", job.result(20))
    see("job-status", job.status)
    see("cached", kx.generate(XSS[0], seed=1))
    see("rerun", kx.rerun(r2, guidance_scale=5))
    see("load", kx.load(r3.journal_id))
    see("lineage", kx.lineage(edit))
    see("children", kx.children(r1))
    see("budget", kx.budget())
    see("info", session.info())
    see("settings", settings)
    see("session", session)
    see("engine", session.engine)
    see("history", kx.history())
    see("history-search", kx.history("script"))
    see("comparison", Comparison([r1, r2, edit]))
    before_after = Comparison.edit_and_source(edit)
    see("comparison-edit", before_after)
    world.html["slider"] = before_after.slider_html()
    world.texts["slider"] = world.html["slider"]
    world.html["live-status"] = LiveOutput([job], terminal=True)._html()
    history = kx.history()
    history.to_csv(world.root / "exports" / "history.csv")
    history.to_json(world.root / "exports" / "history.json")
    for path in (*r1.files, *r2.files, *r3.files, *r4.files, *edit.files, *multi.files):
        world.texts[f"metadata {path.name}"] = json.dumps(kx.read_metadata(path), default=str)
    with contextlib.redirect_stdout(io.StringIO()) as helped:
        kx.help()
    world.texts["help"] = helped.getvalue()

    # -- the magics, in an IPython shell --
    ip = globalipapp.get_ipython()
    xmode = ip.InteractiveTB.mode
    ip.run_line_magic("load_ext", "kontext_nb")
    try:
        magics(world, ip, control)
    finally:
        ip.run_line_magic("xmode", xmode)
        ip.run_line_magic("unload_ext", "kontext_nb")
        ip.config.pop("Kontext", None)

    # -- the panel --
    panel = Panel(session)
    try:
        clicks(world, panel, control)
    finally:
        panel.close()

    # -- failures --
    failures(world, session, control, settings)
    world.results += [r1, r2, r3, r4, edit, multi]


def noise_png(side: int = 420) -> bytes:
    """Random pixels: a PNG larger than inline_max_bytes, so it is uploaded to (the sandbox's) fal storage."""
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    assert len(buf.getvalue()) > Settings().inline_max_bytes
    return buf.getvalue()


def magics(world: World, ip: Any, control: Any) -> None:
    see = world.see

    def line(text: str, label: str) -> Any:
        return see(f"magic {label}", ip.run_line_magic("kontext", text))

    def cell(source: str, label: str) -> Any:
        """A whole cell, as a notebook runs it: errors are shown (to the captured stdout), not raised."""
        result = ip.run_cell(source, store_history=True)
        world.texts[f"cell {label}"] = repr(result.result) + repr(result.error_in_exec or result.error_before_exec)
        return result

    line(f"{XSS[0]} --seed 11 -o m1", "img")
    line(f"'{XSS[1]}' --seed 12 --format png", "script")
    line(f"'{PATHS[1]}' --seed 13", "odd-name")
    line(f"--seed 14 -- {PATHS[0]}", "passwd")
    line(f"edit @last '{XSS[0]} in winter' --seed 15", "edit")
    line(f"edit $m1 @-2 -- {XSS[1]} side by side --seed 16", "multi")
    grid = line(f"sweep '{{{XSS[0]}|{XSS[1]}}}' --seed 1,2 -o g", "sweep")
    world.html["grid"] = grid._repr_mimebundle_()["text/html"]
    grid.save(Path.cwd() / "grid.png")
    odd = line(f"sweep '{{{PATHS[0]}|{PATHS[1]}}}' --seed 3", "sweep-paths")
    world.texts["magic sweep-paths"] += repr(odd.metadata())
    see("magic batch", ip.run_cell_magic("kontext", "--seed 17", f"{XSS[0]} batch\n---\n{XSS[1]} batch"))
    world.html["history-magic"] = line("history --limit 50", "history")._repr_mimebundle_()["text/html"]
    line("history script --limit 5", "history-search")
    line("show @1", "show")
    world.html["comparison-magic"] = line("compare @1 @2 @5", "compare")._repr_mimebundle_()["text/html"]
    world.html["comparison-edit-magic"] = line("compare @5", "compare-edit")._repr_mimebundle_()["text/html"]
    world.html["lineage"] = line("lineage @5", "lineage")._repr_mimebundle_()["text/html"]
    line("rerun @1 --seed 18", "rerun")
    cell("%kontext status", "status")
    cell("%kontext help", "help")
    cell("%kontext resume", "resume")
    cell("%kontext a fox --seed nope", "usage-error")
    cell("%kontext a fox --seed 19 --bg -o bg", "background")
    ip.user_ns["bg"].result(20)
    # failures, shown by IPython as a notebook would; Verbose tracebacks print every frame's local variables
    ip.run_line_magic("xmode", "Verbose")
    cell("import kontext_nb as kx\nkx.get_session().run(None)", "verbose-traceback")
    control.set_faults([{"route": "submit", "kind": "500"}])
    cell("%kontext a failing fox --seed 20", "submit-500")
    control.set_faults([{"route": "result", "kind": "503"}])
    cell("%kontext a fox whose result is lost --seed 21", "result-503")
    control.set_faults([{"route": "submit", "kind": "500", "rate": 0.5}], seed=4)
    failed_grid = ip.run_line_magic("kontext", f"sweep '{XSS[0]} {{a|b|c}}' --seed 30-33 --no-cache")
    world.html["grid-with-failures"] = failed_grid._repr_mimebundle_()["text/html"]
    world.texts["grid-with-failures"] = repr(failed_grid) + world.html["grid-with-failures"]
    control.set_faults([])


def clicks(world: World, panel: Panel, control: Any) -> None:
    create = panel.create
    cards = []
    for prompt in XSS:
        create.prompt.value = prompt
        (job,) = create.generate()
        card = wait_for(lambda j=job: next((c for c in panel.gallery.cards if c.journal_id == j.journal_id), None))
        wait_for(lambda c=card: c.result is not None)
        card.buttons["metadata"].click()
        card.buttons["compare"].click()
        cards.append(card)
    cards[0].buttons["use"].click()
    create.prompt.value = XSS[1] + " as an edit"
    (edit,) = create.generate()
    edit.result(20)
    create.mode.value = "text-to-image"
    create.prompt.value = f"{{{XSS[0]}|{XSS[1]}}}"
    create.inputs.seed.value = "1,2"
    create.generate()
    wait_for(lambda: panel.tab.selected_index == COMPARE and panel.compare.grid is not None)
    panel.compare.export_grid()
    cards[0].buttons["rerun"].click()
    wait_for(lambda: not panel.session.active_jobs())
    control.set_faults([{"route": "submit", "kind": "500", "count": 1}])
    create.inputs.seed.value = "77"
    create.prompt.value = XSS[0] + " that fails"
    (failing,) = create.generate()
    wait_for(failing.done)
    failed_card = wait_for(lambda: next((c for c in panel.gallery.cards if c.journal_id == failing.journal_id), None))
    wait_for(lambda: not failed_card.running)
    failed_card.buttons["metadata"].click()
    control.set_faults([])
    panel.history.refresh()
    panel.history.select(edit.journal_id)
    wait_for(lambda: all(j.done() for j in create.jobs))
    time.sleep(0.3)  # the last card updates arrive on the engine thread
    states, _ = widget_texts(panel.widget)
    world.texts["panel widget states"] = states
    for name, part in (
        ("panel-create", create.widget),
        ("panel-gallery", panel.gallery.widget),
        ("panel-compare", panel.compare.widget),
        ("panel-history", panel.history.widget),
    ):
        world.html[name] = "\n".join(widget_texts(part)[1])
    world.html["panel-header"] = panel.header.value
    world.html["history-details"] = history_view.details_html(panel.session.record(edit.journal_id), [])


def failures(world: World, session: Session, control: Any, settings: Settings) -> None:
    fail = world.failure
    control.set_faults([{"route": "submit", "kind": "500"}])
    fail("submit 500", lambda: kx.generate(XSS[0] + " no luck", seed=40))
    control.set_faults([{"route": "status", "kind": "drop"}, {"route": "stream", "kind": "drop"}])
    fail("dropped connections", lambda: kx.generate("a fox, dropped", seed=41))
    control.set_faults([{"route": "any", "kind": "vanish", "count": 3}])
    fail("vanished request", lambda: kx.generate("a fox that vanishes", seed=42))
    control.set_faults([{"route": "submit", "kind": "429"}])
    fail("rate limited", lambda: kx.generate("a fox, rate limited", seed=43))
    control.set_faults([])
    control.configure(inference_time=2.0)
    timed = Session(settings.with_(job_timeout=0.3), notice=lambda m: world.texts.setdefault("notice timeout", m))
    try:
        fail("timeout", lambda: timed.generate("a slow fox", seed=44))
    finally:
        timed.close()
    control.configure(inference_time=0.05)
    refused = Session(settings.with_(key=REVOKED), notice=lambda m: None)
    try:
        fail("refused key", lambda: refused.generate("a fox with a revoked key", seed=45))
        world.see("refused key info", refused.info())
    finally:
        refused.close()
    control.set_faults([{"route": "upload", "kind": "500"}])
    fail("upload refused", lambda: kx.edit(noise_png(), "an upload that fails", seed=46))
    control.set_faults([])
    fail("bad input", lambda: kx.generate("a fox", seed=-1))
    fail("bad source", lambda: kx.edit(b"not an image", "make it blue"))


# -- (a) the canary ----------------------------------------------------------------------------------------------------
def test_the_scenario_really_ran(world: World) -> None:
    assert world.stats["submits"] >= 30 and world.stats["completed"] >= 25
    assert len(world.html) >= 15
    assert "fal key: set" in world.stdout, "the magics' status line says a key is set (without showing it)"
    assert "exception: refused key" in world.texts and "401" in world.texts["exception: refused key"]
    assert "HTTP 500" in world.html["grid-with-failures"], "some sweep cells failed"
    assert world.stats["requests"].get("upload", 0) >= 2 and "upload" in world.texts["exception: upload refused"]
    gallery, compare = world.html["panel-gallery"], world.html["panel-compare"]
    assert "<table" in gallery and "failed" in gallery, "a card's metadata and a failed card are shown"
    assert "kontext-grid" in compare, "the Compare tab shows a grid (the comparison itself is drawn in the browser)"
    assert 'data-kx-action="download"' in compare and "file://" not in compare, "the exported grid's download link"


def test_no_canary_in_the_runs_folder(world: World) -> None:
    files = [p for p in world.runs.rglob("*") if p.is_file()]
    assert any(p.name.startswith("journal.sqlite3") for p in files) and len(files) > 20
    found = {str(p.relative_to(world.runs)): leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in found.items() if v} == {}
    for path in world.runs.glob("images/*"):
        assert not leaks(json.dumps(kx.read_metadata(path), default=str)), path


def test_no_canary_in_files_the_user_asked_for(world: World) -> None:
    for path in world.explicit:
        assert path.exists() and not leaks(path.read_bytes()), path


def test_no_canary_in_any_output_exception_or_widget(world: World) -> None:
    assert len(world.texts) > 50
    found = {label: leaks(text) for label, text in world.texts.items()}
    assert {k: v for k, v in found.items() if v} == {}


def test_no_canary_in_logs_at_debug(world: World) -> None:
    assert len(world.logs) > 100, "DEBUG logging was on (httpx, httpcore, kontext_nb, ...)"
    assert [line for line in world.logs if leaks(line)] == []


def test_no_canary_in_printed_output(world: World) -> None:
    assert "kontext: " in world.stdout and "FalError" in world.stdout, "live lines and the failures shown"
    assert "Traceback" in world.stdout and "self=<kontext_nb.session.Session" in world.stdout, "xmode Verbose"
    assert "UsageError" in world.stderr
    assert leaks(world.stdout) == [] and leaks(world.stderr) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOK.parent.glob("*.ipynb")))
def test_no_canary_in_a_notebook_run_with_fal_key_set(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every notebook, run with the canary as FAL_KEY: not in its outputs, the saved file, or any file written."""
    import nbformat
    from nbclient import NotebookClient

    notebook = tmp_path / name
    shutil.copy(NOTEBOOK.parent / name, notebook)
    for name in ("FAL_KEY_ID", "FAL_KEY_SECRET", "KONTEXT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KEY", CANARY)
    with kontext_nb.sandbox.running(require_key=CANARY, workers=4, inference_time=0.2, image_scale=0.25) as url:
        monkeypatch.setenv("KONTEXT_FAL_URL", url)
        nb = nbformat.read(notebook, as_version=4)
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        nbformat.write(nb, notebook)
        submits = kontext_nb.sandbox.control(url).stats()["submits"]
    saved = notebook.read_text()
    assert submits >= 3, "the kernel's jobs were accepted: it sent the canary key"
    if name in ("magics.ipynb", "classroom.ipynb"):
        assert "backend: custom" in saved and "fal key: set" in saved
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert leaks(saved) == []
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "journal.sqlite3" for p in written)
    assert {str(p): leaks(p.read_bytes()) for p in written if leaks(p.read_bytes())} == {}


# -- (b) prompts as HTML -----------------------------------------------------------------------------------------------
# kind -> the hostile prompts that must read as text on the page
HTML_KINDS: dict[str, tuple[str, ...]] = {
    "result-img": (XSS[0],),
    "result-script": (XSS[1],),
    "result-passwd": (PATHS[0],),
    "result-odd-name": (PATHS[1],),
    "edit": (XSS[1],),
    "multi": (XSS[0],),
    "edit-uploaded": (XSS[0],),
    "job": (),
    "job-result": (XSS[0],),
    "cached": (XSS[0],),
    "rerun": (XSS[1],),
    "load": (PATHS[0],),
    "history": XSS,
    "history-search": (XSS[1],),
    "lineage": XSS,
    "comparison": XSS,
    "comparison-edit": (),
    "slider": (),
    "live-status": (),
    "magic img": (XSS[0],),
    "magic script": (XSS[1],),
    "magic passwd": (PATHS[0],),
    "magic odd-name": (PATHS[1],),
    "magic edit": (XSS[0],),
    "magic multi": (XSS[1],),
    "magic sweep": XSS,
    "grid": XSS,
    "magic sweep-paths": PATHS,
    "magic batch": XSS,
    "magic history": XSS,
    "history-magic": XSS,
    "magic history-search": (XSS[1],),
    "magic show": (XSS[0],),
    "magic compare": XSS,
    "comparison-magic": XSS,
    "magic compare-edit": (),
    "comparison-edit-magic": (),
    "magic lineage": XSS,
    "magic rerun": (XSS[0],),
    "grid-with-failures": (XSS[0],),
    "panel-create": (),
    "panel-gallery": XSS,
    "panel-compare": XSS,
    "panel-history": (XSS[1],),
    "history-details": (XSS[1],),
    "panel-header": (),
}


@dataclass
class Rendered:
    dialogs: list[str]
    scripts: int
    handlers: list[str]
    broken_images: int
    text: str


class Browser:
    """One headless Chromium page that shows HTML with no network and reports what ran."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)
        page.route("**/*", lambda route: route.abort())  # nothing leaves the page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def render(self, body: str) -> Rendered:
        self.dialogs = []
        page = self.page
        page.set_content(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
        page.wait_for_load_state("load")  # every image has loaded or failed: an onerror has fired by now
        found = page.evaluate(
            """() => ({
                scripts: document.querySelectorAll('script').length,
                handlers: [...document.querySelectorAll('*')].flatMap(e =>
                    [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
                broken: [...document.images].filter(i => i.getAttribute('src') === 'x').length,
                text: document.body.innerText,
            })"""
        )
        page.wait_for_timeout(20)  # a dialog raised from a handler arrives as its own event
        return Rendered(list(self.dialogs), found["scripts"], found["handlers"], found["broken"], found["text"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('Playwright is missing: pip install -e ".[test]" (the browser checks need it; never skip them)')
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium or set KONTEXT_CHROMIUM")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield Browser(chromium.new_page())
        finally:
            chromium.close()


def test_the_browser_check_catches_a_real_injection(browser: Browser) -> None:
    """The check works: the prompts pasted raw do run."""
    raw = browser.render(f"<div>{XSS[0]}</div><div>{XSS[1]}</div>")
    assert sorted(raw.dialogs) == ["1", "2"] and raw.scripts == 1 and raw.broken_images == 1
    assert raw.handlers == ["IMG onerror"]


@pytest.mark.parametrize(("kind", "visible"), HTML_KINDS.items(), ids=HTML_KINDS.keys())
def test_hostile_prompts_are_text_in_every_html_output(
    world: World, browser: Browser, kind: str, visible: tuple[str, ...]
) -> None:
    assert kind in world.html, f"the scenario made no {kind} HTML"
    shown = browser.render(world.html[kind])
    assert shown.dialogs == [], f"a dialog fired: {shown.dialogs}"
    assert shown.scripts == 0 and shown.handlers == [] and shown.broken_images == 0
    text = " ".join(shown.text.split())
    for prompt in visible:
        assert prompt in text, f"{prompt!r} is not shown as text"


def test_every_html_output_was_checked(world: World) -> None:
    assert set(world.html) == set(HTML_KINDS)


# -- (c) files ---------------------------------------------------------------------------------------------------------
RUNS_NAMES = re.compile(
    r"^(journal\.sqlite3(-wal|-shm|-journal)?"
    r"|(images|inputs|thumbs)/[0-9a-f]{32}\.(png|jpg|webp)"
    r"|grids/grid-\d{8}-\d{6}(-\d+)?(-p\d+)?\.png)$"
)


def test_files_are_written_only_in_the_runs_folder(world: World) -> None:
    allowed = [
        world.runs,
        *world.explicit,
        *(p.with_name(f"{p.stem}-p{n}.png") for p in world.explicit for n in (1, 2)),
    ]
    outside = sorted({(event, path) for event, path in world.writes if not any(_under(Path(path), a) for a in allowed)})
    assert outside == []
    assert any(_under(Path(p), world.runs) for _, p in world.writes), "the audit hook saw the runs folder written"
    on_disk = [p for p in world.root.rglob("*") if p.is_file()]
    strays = [str(p) for p in on_disk if not any(_under(p, a) for a in allowed)]
    assert strays == []


def test_file_names_never_hold_prompt_text(world: World) -> None:
    names = sorted(str(p.relative_to(world.runs)) for p in world.runs.rglob("*") if p.is_file())
    assert [n for n in names if not RUNS_NAMES.match(n)] == []
    folders = sorted(str(p.relative_to(world.root)) for p in world.root.rglob("*") if p.is_dir())
    assert set(folders) <= {"runs", "cwd", "home", "tmp", "exports"} | {f"runs/{d}" for d in RUNS_SUBFOLDERS}
    written = " ".join(path for _, path in world.writes)
    for word in ("passwd", "onerror", "script", "b\\c", "d*?"):
        assert word not in written
    for result in world.results:
        assert all(_under(Path(f), world.runs) for f in result.files)


RUNS_SUBFOLDERS = ("images", "inputs", "thumbs", "grids")


def _under(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


def test_load_ext_looks_only_in_the_sessions_runs_folder(
    make_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BUG: magics/greeting.py opens the journal of KONTEXT_HOME (or ./kontext-runs) to look for uncollected jobs,
    not the session's runs folder: with ``kx.configure(runs_dir=...)`` (or a Session's Settings) it opens, and
    SQLite writes beside, a journal the session does not use, and its "not collected" notice is about that one."""
    from kontext_nb.journal.db import Journal

    elsewhere = tmp_path / "kontext-runs-from-before"
    Journal(elsewhere).close()
    before = {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()}
    monkeypatch.setenv("KONTEXT_HOME", str(elsewhere))
    session = make_session()
    kx.set_session(session)
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    record_writes()
    try:
        ip.run_line_magic("load_ext", "kontext_nb")
    finally:
        _recording.clear()
        ip.run_line_magic("unload_ext", "kontext_nb")
        ip.config.pop("Kontext", None)
    runs = Path(session.settings.runs_dir or "")
    assert [(e, p) for e, p in _writes if not _under(Path(p), runs)] == []
    assert {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()} == before


def test_a_config_change_keeps_the_runs_folder_and_the_budget(
    make_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG: Kontext._settings_changed (magics/__init__.py) calls kx.configure(concurrency=..., runs_dir=self.runs_dir
    or None, budget_session=..., budget_daily=..., confirm_above=...) with every magics setting whenever one changes,
    so ``%config Kontext.thumbnail_size = 256`` drops a runs folder and a budget cap set with kx.configure or
    Settings: jobs then go to another folder, and the cap is gone."""
    from kontext_nb.errors import BudgetError
    from kontext_nb.views import render

    session = make_session(budget_session=0.10)
    kx.set_session(session)
    monkeypatch.setattr(render, "THUMBNAIL_SIDE", render.THUMBNAIL_SIDE)
    runs = session.settings.runs_dir
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "kontext_nb")
    try:
        ip.run_line_magic("config", "Kontext.thumbnail_size = 256")
        assert (session.settings.runs_dir, session.settings.budget_session) == (runs, 0.10)
        first = kx.generate("a fox", seed=1)
        assert all(_under(Path(f), Path(runs or "")) for f in first.files)
        with pytest.raises(BudgetError):
            kx.generate("a second fox", seed=2)
    finally:
        ip.run_line_magic("unload_ext", "kontext_nb")
        ip.config.pop("Kontext", None)


# -- prompt text is data ---------------------------------------------------------------------------------------------
@pytest.fixture
def shell(shell: Shell) -> Any:
    """The shared test shell (tests/conftest.py), as IPython's own InteractiveShell."""
    return shell.ip


def test_braces_in_a_prompt_never_run_code(shell: Any, sb: kontext_nb.sandbox.SandboxServer) -> None:
    """BUG: commands._prompts (and sweeping.run_sweep) fill {name} with IPython's shell.var_expand, a
    FullEvalFormatter: any Python expression between braces runs in the kernel. A prompt pasted from a web page,
    ``a {__import__("os").system("...")} fox``, runs the command. The README promises {name} from the notebook's
    variables, which a name lookup gives without eval."""
    calls: list[str] = []
    shell.user_ns["trap"] = lambda *a: calls.append("called") or "TRAPPED"
    shell.user_ns["animal"] = "otter"
    for line, body in (
        ("a {trap()} fox --seed 1", None),
        ("--seed 2", "a {trap()} in the cell body"),
        ("sweep 'a {trap()} {cat|fox}' --seed 3", None),
    ):
        try:
            result = shell.run_cell_magic("kontext", line, body) if body else shell.run_line_magic("kontext", line)
        except Exception as exc:  # refusing the prompt is fine too
            assert "Usage" in type(exc).__name__, exc
        else:
            for r in getattr(result, "results", None) or [result]:
                assert "TRAPPED" not in r.prompt
    assert calls == []
    assert shell.run_line_magic("kontext", "a {animal} at dusk --seed 4").prompt == "a otter at dusk"


def test_a_dollar_sign_in_a_prompt_is_kept(shell: Any, sb: kontext_nb.sandbox.SandboxServer) -> None:
    """BUG: the same var_expand also expands ``$name`` (IPython's DollarFormatter): "a price tag reading $5" is sent
    as "a price tag reading 5", and "$price" becomes the value of a variable called price."""
    shell.user_ns["price"] = 7
    assert shell.run_line_magic("kontext", "'a price tag reading $5' --seed 1").prompt == "a price tag reading $5"
    assert shell.run_line_magic("kontext", "'a sign: $price' --seed 2").prompt == "a sign: $price"
