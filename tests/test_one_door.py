"""One door: every public call, subcommand, flag and button that can cost money goes through the one function that
reserves, checks and sends (issue 20). Found by introspection, so a door added later fails here until it is listed.

The proof, for each path: the engine's submit (the only code that POSTs a job to fal) counts every call and notes
any made while the door is not on the calling thread's stack; the sandbox counts the submits that reached it. A path
is through the door when no engine submit happened outside it and the sandbox saw no more submits than the engine
made from inside it. Paths listed as sending must really send (so this test can fail); the others must send nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from PIL import Image
from shell import Shell  # tests/shell.py
from waiting import wait_for

import kontext_nb as kx
from kontext_nb import api
from kontext_nb.fal.engine import Engine
from kontext_nb.magics.parse import SUBCOMMANDS, make_parser
from kontext_nb.session import Session
from kontext_nb.sweep import build_sweep

DOOR: tuple[type, str] = (Session, "_send")
"""The one door. If it moves (a ledger module, a new name), change this line: every check below follows it."""
SENDER: tuple[type, str] = (Engine, "submit")
"""What actually sends a job to fal; it must only ever be reached from inside the door."""
T2I = "fal-ai/flux-pro/kontext/max/text-to-image"


@dataclass
class Door:
    """Counts of the door and the sender, and where the sender was reached from outside the door."""

    entered: int = 0
    sent: int = 0
    sent_inside: int = 0
    outside: list[str] = field(default_factory=list)
    _depth: threading.local = field(default_factory=threading.local)

    def inside(self) -> bool:
        return getattr(self._depth, "n", 0) > 0


@pytest.fixture
def door(monkeypatch: pytest.MonkeyPatch) -> Door:
    counts = Door()
    door_cls, door_name = DOOR
    real_door = getattr(door_cls, door_name)
    sender_cls, sender_name = SENDER
    real_sender = getattr(sender_cls, sender_name)

    def through_door(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.entered += 1
        counts._depth.n = getattr(counts._depth, "n", 0) + 1
        try:
            return real_door(self, *args, **kwargs)
        finally:
            counts._depth.n -= 1

    def sender(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.sent += 1
        if counts.inside():
            counts.sent_inside += 1
        else:
            counts.outside.append("".join(traceback.format_stack()[-10:-1]))  # the nearest callers
        return real_sender(self, *args, **kwargs)

    monkeypatch.setattr(door_cls, door_name, through_door)
    monkeypatch.setattr(sender_cls, sender_name, sender)
    return counts


@dataclass
class World:
    """What the drivers need: the session, the sandbox, images on disk, a shell for magics."""

    session: Session
    sb: Any
    folder: Path
    shell: Shell | None = None
    seeds: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**6)))

    def seed(self) -> int:
        return next(self.seeds)

    @property
    def photo(self) -> str:
        return str(self.folder / "photo.png")

    @property
    def mask(self) -> str:
        return str(self.folder / "mask.png")


def _world(session: Session, sb: Any, folder: Path, shell: Shell | None = None) -> World:
    Image.new("RGB", (96, 64), (200, 120, 40)).save(folder / "photo.png")
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (20, 10, 60, 40))
    mask.save(folder / "mask.png")
    world = World(session, sb, folder, shell)
    before = sb.stats()["submits"]
    session.generate("the first fox", seed=world.seed())  # so references (@last, @1) have something to name
    session.edit("@last", "the first edit", seed=world.seed())
    assert sb.stats()["submits"] - before == 2
    return world


LAST = ("delete", "prune", "close")
"""Paths that take away what the others name (@1, @last): run after them."""


def in_order(table: dict[str, Any]) -> list[str]:
    return sorted(table, key=lambda name: (name in LAST, name))


def every_path(door: Door, world: World, paths: dict[str, tuple[bool, Callable[[], Any]]]) -> None:
    """Prove each path; report every one that fails, not just the first."""
    assert not door.outside, f"the setup (generate, edit) sent outside the door:\n{door.outside[0]}"
    problems = []
    for name, (sends, run) in paths.items():
        try:
            through_the_door(door, world, name, run, sends=sends)
        except AssertionError as exc:
            problems.append(str(exc).split("\nassert ")[0])
    assert not problems, "\n".join(problems)


def through_the_door(door: Door, world: World, name: str, run: Callable[[], Any], *, sends: bool) -> None:
    """Run one path and prove it: sends only from inside the door, and sends (or not) as listed."""
    before_door, before_sent, before_sb = door.sent_inside, door.sent, world.sb.stats()["submits"]
    before_outside = len(door.outside)
    try:
        run()
    finally:
        wait_for(lambda: not world.session.active_jobs(), timeout=60, interval=0.02)
        wait_for(lambda: world.sb.stats()["in_queue"] + world.sb.stats()["in_progress"] == 0, timeout=60)
    outside = door.outside[before_outside:]
    assert not outside, f"{name} reached {SENDER[0].__name__}.{SENDER[1]} outside the door:\n{outside[0]}"
    reached = world.sb.stats()["submits"] - before_sb
    assert door.sent - before_sent == door.sent_inside - before_door
    assert reached <= door.sent_inside - before_door, f"{name}: {reached} submits reached fal by another way"
    if sends:
        assert reached >= 1, f"{name} is listed as sending but sent nothing: its driver no longer exercises it"
    else:
        assert reached == 0, f"{name} is listed as free but sent {reached} job(s): list it as sending"


# -- the module-level calls and the package's public names ---------------------------------------------------------
SENDS, FREE = True, False
API_CALLS: dict[str, tuple[bool, Callable[[World], Any]]] = {
    "generate": (SENDS, lambda c: kx.generate("a fox", seed=c.seed())),
    "edit": (SENDS, lambda c: kx.edit(c.photo, "make it night", seed=c.seed())),
    "inpaint": (SENDS, lambda c: kx.inpaint(c.photo, "a red hat", mask=c.mask, seed=c.seed())),
    "rerun": (SENDS, lambda c: kx.rerun("@last", seed=c.seed())),
    "sweep": (SENDS, lambda c: kx.sweep("a {cat|fox}", source=c.photo, model=["max", "reve-fast-edit"])),
    "resume": (FREE, lambda c: kx.resume()),
    "attach": (FREE, lambda c: kx.attach(kx.history()[0].request_id or "", endpoint=kx.history()[0].endpoint)),
    "budget": (FREE, lambda c: kx.budget()),
    "changes": (FREE, lambda c: kx.changes("@last")),
    "children": (FREE, lambda c: kx.children("@1")),
    "compare": (FREE, lambda c: kx.compare("@last", "@-2")),
    "configure": (FREE, lambda c: kx.configure(concurrency=4)),
    "current_session": (FREE, lambda c: kx.current_session()),
    "get_session": (FREE, lambda c: kx.get_session()),
    "set_session": (FREE, lambda c: kx.set_session(c.session)),
    "delete": (FREE, lambda c: kx.delete("@1", files=False)),
    "duel": (FREE, lambda c: kx.duel(["@last", "@-2"])),
    "help": (FREE, lambda c: kx.help()),
    "history": (FREE, lambda c: kx.history("fox")),
    "lineage": (FREE, lambda c: kx.lineage("@last")),
    "load": (FREE, lambda c: kx.load("@last")),
    "mask": (FREE, lambda c: kx.mask(c.photo)),
    "model": (FREE, lambda c: kx.model("max")),
    "models": (FREE, lambda c: kx.models("kontext")),
    "set_price": (FREE, lambda c: kx.set_price("hunyuan3-instruct", 0.05)),
    "prepare_image": (FREE, lambda c: kx.prepare_image(c.photo)),
    "prune": (FREE, lambda c: kx.prune(older_than_days=365)),
    "ranking": (FREE, lambda c: kx.ranking()),
    "rate": (FREE, lambda c: kx.rate("@last", 4)),
    "read_metadata": (FREE, lambda c: kx.read_metadata(kx.history()[0].paths[0])),
    "register_score": (FREE, lambda c: kx.register_score("one", None)),
    "report": (FREE, lambda c: kx.report(["@last", "@-2"], c.folder / "report.html")),
    "vote": (FREE, lambda c: kx.vote("@last", "@-2")),
}
NOT_CALLS: dict[str, str] = {
    "BudgetError": "an error type",
    "ConfirmationRequired": "an error type",
    "FalError": "an error type",
    "ImageInputError": "an error type",
    "JobCancelled": "an error type",
    "JobFailed": "an error type",
    "JobTimeout": "an error type",
    "JournalError": "an error type",
    "KontextError": "an error type",
    "ValidationError": "an error type",
    "ImageInput": "a value type",
    "Job": "a handle of a job already sent (result, cancel, on_update send nothing new)",
    "JobStatus": "a value type",
    "Result": "a value type",
    "Settings": "a value type",
    "SubmitOptions": "a value type (fal's submit options)",
    "MaskPainter": "a widget that paints a mask: sends nothing (covered by kx.mask)",
    "__version__": "a string",
    "endpoints": "the Kontext family's Endpoints, built from the model registry: no calls to fal",
    "Session": "its public methods are listed in SESSION_CALLS below",
    "Panel": "its buttons are clicked in test_every_panel_button_goes_through_the_door",
    "Engine": "the sender itself, below the door: a program that drives an Engine directly has no journal and no caps "
    "by its own choice (kontext_nb never does: the sender is only reached from inside the door)",
}


def test_every_public_name_is_listed() -> None:
    public = set(kx.__all__) | {n for n, f in vars(api).items() if inspect.isfunction(f) and not n.startswith("_")}
    public -= {"annotations"}
    listed = set(API_CALLS) | set(NOT_CALLS)
    assert not public - listed, (
        f"new public names: list each in API_CALLS (with a driver) or NOT_CALLS: {public - listed}"
    )
    assert not listed - public, f"listed but no longer public: {listed - public}"


def test_every_module_level_call_goes_through_the_door(
    door: Door, make_session: Callable[..., Session], sb: Any, tmp_path: Path
) -> None:
    session = make_session()
    kx.set_session(session)
    world = _world(session, sb, tmp_path)
    paths = {
        f"kx.{name}": (API_CALLS[name][0], lambda name=name: API_CALLS[name][1](world)) for name in in_order(API_CALLS)
    }
    every_path(door, world, paths)


# -- Session's public methods ---------------------------------------------------------------------------------------
SESSION_CALLS: dict[str, tuple[bool, Callable[[World], Any]]] = {
    "generate": (SENDS, lambda c: c.session.generate("a fox", seed=c.seed(), wait=False)),
    "edit": (SENDS, lambda c: c.session.edit(c.photo, "night", seed=c.seed())),
    "inpaint": (SENDS, lambda c: c.session.inpaint(c.photo, "a hat", mask=c.mask, seed=c.seed())),
    "rerun": (SENDS, lambda c: c.session.rerun("@last", seed=c.seed(), wait=False)),
    "run": (SENDS, lambda c: c.session.run(c.session.prepare_edit(c.photo, "dusk", seed=c.seed())[0])),
    "submit": (SENDS, lambda c: c.session.submit(c.session.prepare_edit(c.photo, "dawn", seed=c.seed())[0])),
    "submit_all": (
        SENDS,
        lambda c: c.session.submit_all([c.session.prepare_edit(c.photo, f"noon {i}", seed=c.seed()) for i in (1, 2)]),
    ),
    "sweep": (SENDS, lambda c: c.session.sweep("a {cat|fox}", model="max,flux2-flex-edit", seed=[c.seed()])),
    "plan_sweep": (FREE, lambda c: c.session.plan_sweep(build_sweep("a {cat|fox}", {}), source=None)),
    "resume": (FREE, lambda c: c.session.resume()),
    "attach": (FREE, lambda c: c.session.attach(c.session.record("@1").request_id or "", endpoint=T2I, wait=True)),
    "prepare_edit": (FREE, lambda c: c.session.prepare_edit(c.photo, "x")),
    "prepare_inpaint": (FREE, lambda c: c.session.prepare_inpaint(c.photo, "x", mask=c.mask)),
    "active_jobs": (FREE, lambda c: c.session.active_jobs()),
    "budget": (FREE, lambda c: c.session.budget()),
    "reconciled": (FREE, lambda c: c.session.reconciled()),
    "proxy_view": (FREE, lambda c: c.session.proxy_view()),
    "children": (FREE, lambda c: c.session.children("@1")),
    "close": (FREE, lambda c: None),  # closes the session: run last by the fixture
    "configure": (FREE, lambda c: c.session.configure(c.session.settings.with_(concurrency=3))),
    "delete": (FREE, lambda c: c.session.delete("@1", files=False)),
    "history": (FREE, lambda c: c.session.history()),
    "info": (FREE, lambda c: c.session.info()),
    "model": (FREE, lambda c: c.session.model("fal-ai/flux-2-flex/edit")),
    "job": (FREE, lambda c: c.session.job("@last")),
    "lineage": (FREE, lambda c: c.session.lineage("@last")),
    "on_job": (FREE, lambda c: c.session.on_job(lambda job: None)()),
    "prune": (FREE, lambda c: c.session.prune(older_than_days=365)),
    "record": (FREE, lambda c: c.session.record("@last")),
    "result": (FREE, lambda c: c.session.result("@last")),
    "engine": (FREE, lambda c: c.session.engine),
    "tracker": (FREE, lambda c: c.session.tracker),
    "settings": (FREE, lambda c: c.session.settings),
    "runs_folder": (FREE, lambda c: c.session.runs_folder),
}


def test_every_session_method_is_listed() -> None:
    public = {n for n, _ in inspect.getmembers(Session) if not n.startswith("_")}
    public -= {"notice", "backend"}  # attributes set in __init__: a callback and a label
    assert not public - set(SESSION_CALLS), (
        f"new Session methods: list them in SESSION_CALLS: {public - set(SESSION_CALLS)}"
    )
    assert not set(SESSION_CALLS) - public, f"listed but gone: {set(SESSION_CALLS) - public}"


def test_every_session_method_goes_through_the_door(
    door: Door, make_session: Callable[..., Session], sb: Any, tmp_path: Path
) -> None:
    session = make_session()
    world = _world(session, sb, tmp_path)

    def run(name: str) -> None:
        value = SESSION_CALLS[name][1](world)
        for job in value if isinstance(value, list) else [value]:
            if isinstance(job, kx.Job):
                job.result(30)

    paths = {
        f"Session.{name}": (SESSION_CALLS[name][0], lambda name=name: run(name)) for name in in_order(SESSION_CALLS)
    }
    every_path(door, world, paths)


# -- every %kontext subcommand, every option, --bg, sweeps, %%kontext batches -------------------------------------
MAGIC_LINES: dict[str, tuple[bool, list[str]]] = {
    "": (SENDS, ["a plain fox", "a fox in the background --bg"]),
    "edit": (SENDS, ["edit photo.png make it night", "edit photo.png photo.png -- two of them", "edit @last at dusk"]),
    "inpaint": (SENDS, ["inpaint photo.png --mask mask.png a red hat", "inpaint @last --mask mask.png --ref @1 a hat"]),
    "sweep": (SENDS, ["sweep 'a {cat|fox} in snow' --yes", "sweep edit @last 'make it {day|night}' --yes --bg"]),
    "rerun": (SENDS, ["rerun @last --seed 99", "rerun @1 --seed 98 --bg"]),
    "resume": (FREE, ["resume"]),
    "compare": (FREE, ["compare @1 @2", "compare @2"]),
    "history": (FREE, ["history fox --limit 5"]),
    "show": (FREE, ["show @last"]),
    "lineage": (FREE, ["lineage @last"]),
    "cancel": (FREE, ["cancel all"]),
    "status": (FREE, ["status"]),
    "panel": (FREE, ["panel"]),
    "rate": (FREE, ["rate @last 4"]),
    "duel": (FREE, ["duel @1 @2"]),
    "ranking": (FREE, ["ranking"]),
    "changes": (FREE, ["changes @2"]),
    "report": (FREE, ["report @1 @2 -o report.html"]),
    "help": (FREE, ["help"]),
}
OPTION_LINES: dict[str, str] = {
    "--seed": "a seeded fox --seed 4242",
    "--aspect-ratio": "a wide fox --aspect-ratio 16:9",
    "--num-images": "two foxes --num-images 2",
    "--guidance": "a guided fox --guidance 5",
    "--format": "a png fox --format png",
    "--safety": "a safe fox --safety 1",
    "--steps": "edit photo.png a rough fox --model dev --steps 12",
    "--accel": "edit photo.png a quick fox --model dev --accel regular",
    "--resolution": "edit photo.png a square fox --model dev --resolution 1:1",
    "--image-size": "a sized fox --model lora --image-size 320x240",
    "--strength": "inpaint photo.png --mask mask.png a strong hat --strength 0.5",
    "--enhance": "an enhanced fox --enhance",
    "--sync": "a synchronous fox --sync",
    "--no-safety-checker": "an unchecked fox --model lora --no-safety-checker",
    "--lora": "a styled fox --model lora --lora https://example.com/style.safetensors:0.8",
    "--model": "a pro fox --model pro",
    "--mask": "inpaint photo.png --mask mask.png a masked hat",
    "--ref": "inpaint photo.png --mask mask.png --ref photo.png a referenced hat",
    "--no-cache": "a fresh fox --seed 5 --no-cache",
    "--bg": "a background fox --bg",
    "--tag": "a tagged fox --tag zoo",
    "-o": "a named fox -o named",
    "--yes": "an approved fox --yes",
    "--private": "a private fox --private",
}
CELL_BATCHES = [("--seed 31", "a red fox\n---\na grey owl"), ("--bg", "a hare\n---\na stoat")]


def test_every_subcommand_and_option_is_listed() -> None:
    assert set(MAGIC_LINES) == {"", *SUBCOMMANDS}, f"new subcommands: {set(SUBCOMMANDS) - set(MAGIC_LINES)}"
    options = {
        a.option_strings[0]
        for parser in (make_parser(""), make_parser("inpaint"), make_parser("sweep", sweep=True))
        for a in parser._actions
        if a.option_strings
    }
    assert options == set(OPTION_LINES), f"new or gone options: {options ^ set(OPTION_LINES)}"
    for option, line in OPTION_LINES.items():
        assert option in line.split(), f"{option}'s line does not use it"


@pytest.fixture
def magic_world(shell: Shell, sb: Any, tmp_path: Path) -> World:
    return _world(kx.get_session(), sb, tmp_path, shell)


def test_every_subcommand_option_and_batch_goes_through_the_door(door: Door, magic_world: World) -> None:
    shell = magic_world.shell
    assert shell is not None
    paths: dict[str, tuple[bool, Callable[[], Any]]] = {}
    for subcommand in sorted(MAGIC_LINES):
        sends, lines = MAGIC_LINES[subcommand]
        for line in lines:
            paths[f"%kontext {line}"] = (sends, lambda line=line: shell.line(line))
    for line in OPTION_LINES.values():
        paths[f"%kontext {line}"] = (SENDS, lambda line=line: shell.line(line))
    for line, body in CELL_BATCHES:
        paths[f"%%kontext {line}"] = (SENDS, lambda line=line, body=body: shell.cell(line, body))
    every_path(door, magic_world, paths)


# -- the panel: every button -------------------------------------------------------------------------------------------
def _buttons(widget: Any, seen: set[int] | None = None) -> Iterator[w.Button]:
    """Every Button in a widget tree (children, and widgets held in attributes of the panel's parts)."""
    seen = set() if seen is None else seen
    if id(widget) in seen:
        return
    seen.add(id(widget))
    if isinstance(widget, w.Button):
        yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from _buttons(child, seen)


def test_every_panel_button_goes_through_the_door(
    door: Door, make_session: Callable[..., Session], sb: Any, tmp_path: Path
) -> None:
    session = make_session()
    world = _world(session, sb, tmp_path)
    panel = kx.Panel(session)
    try:
        panel.create.prompt.value = "a panel fox"
        through_the_door(door, world, "the panel's Generate", panel.create.generate_button.click, sends=True)
        wait_for(lambda: len(list(_buttons(panel.widget))) > 0, timeout=10)
        clicked: dict[str, int] = {}
        for button in list(_buttons(panel.widget)):
            label = button.description or button.tooltip or "(no label)"
            before = sb.stats()["submits"]

            with contextlib.suppress(Exception):  # a button that refuses in this state still must not send outside
                button.click()
            wait_for(lambda: not session.active_jobs(), timeout=60, interval=0.02)
            assert not door.outside, f"the panel's {label!r} button sent outside the door:\n{door.outside[0]}"
            clicked[label] = sb.stats()["submits"] - before
        assert clicked, "no buttons found in the panel"
        assert sb.stats()["submits"] <= door.sent_inside
    finally:
        panel.close()
