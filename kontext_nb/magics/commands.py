"""What each %kontext subcommand does. Each takes the magics object, the line's words and the cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .. import api as kx
from .. import endpoints
from ..endpoints import format_cost
from ..errors import KontextError
from ..request import Request
from ..result import Results
from .lines import inputs_of, known_model, model_of, prompts_of, request_of, source_of, split_at_dashes, usage
from .parse import convert, option_for, parse, shown, split
from .running import run

if TYPE_CHECKING:
    from . import Kontext


TERMINAL_PANEL = (
    "kontext_nb: the panel needs a notebook front end (JupyterLab, Notebook 7, VS Code or Colab); "
    "here, use the %kontext lines (%kontext help)"
)


# -- making images -------------------------------------------------------------------------------
def cmd_generate(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    head, tail = split_at_dashes(tokens)
    parsed = parse("", head)
    words = parsed.words + tail
    prompts = prompts_of(magics, " ".join(words), cell)
    session = kx.get_session()
    requests: list[tuple[Request, int | None]] = [
        (request_of(magics, parsed, "text-to-image", p), None) for p in prompts
    ]
    return run(magics, session, requests, parsed)


def cmd_edit(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    head, tail = split_at_dashes(tokens)
    parsed = parse("edit", head)
    if "--" in tokens:  # SRC1 SRC2 -- PROMPT: options may stand on either side
        after = parse("edit", tail)
        twice = sorted(set(parsed.inputs) & set(after.inputs))
        if twice:
            raise UsageError(f"{option_for(twice[0])} given twice (before and after --); give it once")
        sources, words = parsed.words, after.words
        parsed.inputs.update(after.inputs)
        parsed.tags += after.tags
        for name in ("model", "bg", "output"):
            if getattr(after, name) is not None:
                setattr(parsed, name, getattr(after, name))
        for name in ("no_cache", "yes", "private"):
            setattr(parsed, name, getattr(parsed, name) or getattr(after, name))
    else:
        sources, words = parsed.words[:1], parsed.words[1:]
    if not sources:
        raise UsageError("edit needs a SOURCE: %kontext edit SOURCE PROMPT (a path, URL, @last, @12, @-2 or $var)")
    prompts = prompts_of(magics, " ".join(words), cell)
    session = kx.get_session()
    source = [source_of(magics, s) for s in sources]
    requests = []
    for prompt in prompts:
        inputs = inputs_of(magics, parsed, "edit" if len(source) == 1 else "multi")
        try:
            request, parent = session.prepare_edit(
                source if len(source) > 1 else source[0], prompt, model=model_of(magics, parsed), **inputs,
                private=parsed.private,
            )  # fmt: skip
        except KontextError as exc:
            raise UsageError(usage(exc, parsed)) from None
        requests.append((request, parent))
    return run(magics, session, requests, parsed)


def cmd_inpaint(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext inpaint SOURCE --mask MASK [--ref IMAGE] PROMPT: repaint the mask's white region (LoRA endpoint)."""
    parsed = parse("inpaint", tokens)
    if not parsed.words:
        raise UsageError("inpaint needs a SOURCE: %kontext inpaint SOURCE --mask MASK [--ref IMAGE] PROMPT")
    if parsed.mask is None:
        raise UsageError("inpaint needs --mask MASK (a path, @12, $m: white where the image is repainted)")
    source, words = source_of(magics, parsed.words[0]), parsed.words[1:]
    mask = source_of(magics, parsed.mask)
    ref = source_of(magics, parsed.ref) if parsed.ref is not None else None
    prompts = prompts_of(magics, " ".join(words), cell)
    session = kx.get_session()
    requests = []
    for prompt in prompts:
        inputs = inputs_of(magics, parsed, "inpaint")
        try:
            request, parent = session.prepare_inpaint(
                source, prompt, mask=mask, reference=ref, model=model_of(magics, parsed, "inpaint"), **inputs,
                private=parsed.private,
            )  # fmt: skip
        except KontextError as exc:
            raise UsageError(usage(exc, parsed)) from None
        requests.append((request, parent))
    return run(magics, session, requests, parsed)


def cmd_rerun(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    parsed = parse("rerun", tokens)
    if len(parsed.words) != 1:
        raise UsageError("rerun takes one job reference: %kontext rerun @12 --seed 7")
    changes = {k: convert(k, v) for k, v in parsed.inputs.items()}
    session = kx.get_session()
    from ..journal.rerun import rerun_request

    try:
        if parsed.model:  # any model (an endpoint id the registry lacks is loaded live, with a key)
            changes["model"] = known_model(parsed.model)
        record = session.record(source_of(magics, parsed.words[0]))
        request, parent = rerun_request(record, changes, session.settings.max_input_side)
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    return run(magics, session, [(request, parent)], parsed)


# -- looking back -------------------------------------------------------------------------------
def cmd_history(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    from .parse import UsageParser

    p = UsageParser(prog="%kontext history", add_help=False, allow_abbrev=False)
    p.add_argument("words", nargs="*")
    p.add_argument("--seed", type=_int("--seed"))
    p.add_argument("--limit", type=_int("--limit"), default=50)
    p.add_argument("--tag")
    p.add_argument("--status")
    p.add_argument("--min-rating", type=_int("--min-rating"))
    p.add_argument("--model")
    args = p.parse_intermixed_args(tokens)
    _text_ok("search words", " ".join(args.words))
    _text_ok("--tag", args.tag or "")
    return _guard(
        lambda: kx.history(
            " ".join(args.words) or None,
            seed=args.seed,
            limit=args.limit,
            tag=args.tag,
            status=args.status,
            min_rating=args.min_rating,
            model=args.model,
        )
    )


def _text_ok(what: str, text: str) -> None:
    problem = endpoints.text_problem(text)
    if problem:
        raise UsageError(f"{what} {shown(text)}: {problem} is not valid text")


def _int(option: str) -> Any:
    def convert_int(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{option} {shown(text)} is not a whole number") from None
        if not 0 <= value < 2**63:
            raise UsageError(f"{option} {shown(text)} is out of range: a whole number from 0 to {2**63 - 1}")
        return value

    return convert_int


def _one_ref(command: str, tokens: list[str], magics: Kontext | None = None) -> Any:
    """The one job a command names: @12, @last, @-2, or $name (a notebook's own result, right in any order)."""
    if len(tokens) != 1:
        raise UsageError(f"{command} takes one job reference: %kontext {command} @12 (or @last, @-2, $name)")
    return source_of(magics, tokens[0]) if magics is not None else tokens[0]


def _guard(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except KontextError as exc:
        raise UsageError(str(exc)) from None


def cmd_show(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    return _guard(kx.load, _one_ref("show", tokens, magics))


def cmd_lineage(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    from ..views.history import History

    chain = _guard(kx.lineage, _one_ref("lineage", tokens, magics))
    return History(list(reversed(chain)))


def cmd_cancel(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    session = kx.get_session()
    if tokens == ["all"]:
        jobs = session.active_jobs()
    else:
        job = _guard(session.job, _one_ref("cancel", tokens, magics))
        if job is None:
            raise UsageError(f"{tokens[0]} is not running in this session: nothing to cancel")
        jobs = [job]
    cancelled = [j for j in jobs if j.cancel()]
    print(f"kontext_nb: cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}")
    return None


def cmd_resume(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    if tokens:
        raise UsageError("resume takes no arguments")
    results = _guard(kx.resume)
    if not results:
        print("kontext_nb: nothing to collect")
        return None
    return Results(results)


def cmd_status(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    if tokens:
        raise UsageError("status takes no arguments: %kontext status")
    info = _guard(kx.get_session().info)
    caps = []
    for name, label in (("session", "session"), ("daily", "today")):
        cap = info.get(f"{name}_cap")
        held = info.get(f"{name if name == 'session' else 'today'}_reserved") or 0
        reserved = f" + {format_cost(held)} reserved" if held else ""
        day = f" ({info['day']} {info['timezone']})" if label == "today" else ""
        caps.append(
            f"{label}{day} {format_cost(info[f'spent_{label}'])}{reserved}" + (f" of {format_cost(cap)}" if cap else "")
        )
    from ..fal.proxy_view import describe

    where = [f"backend: {line}" for line in describe(info["proxy"])[:1]] if info.get("proxy") else []
    lines = [
        *(where or [f"backend: {info['backend']} ({info['url']})"]),
        *(describe(info["proxy"])[1:] if info.get("proxy") else []),
        f"fal key: {'set' if info['key_set'] else 'not set'}",
        f"spent: {', '.join(caps)}, {format_cost(info['spent_total'])} in total",
        *(
            [f"over reservation: {', '.join(info['overruns'])}; nothing is sent until kx.budget(acknowledge=True)"]
            if info["overruns"]
            else []
        ),
        f"jobs in flight: {info['jobs_in_flight']} (at most {info['concurrency']} at once)",
        f"runs folder: {info['runs_dir']}",
    ]
    print("\n".join(lines))
    return None


def cmd_compare(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext compare @3 @5: the compare view of the panel's Compare tab (one edit: beside its source)."""
    from ..widgets.compared import compare

    if not tokens:
        raise UsageError("compare takes job references: %kontext compare @3 @5 (or one edit: with its source)")
    results = [_guard(kx.load, source_of(magics, t)) for t in tokens]
    return _guard(compare, *results)


def cmd_panel(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext panel: the interactive panel (a new one closes the previous one)."""
    if tokens or (cell is not None and cell.strip()):
        raise UsageError("panel takes no arguments: %kontext panel")
    if magics.terminal:
        print(TERMINAL_PANEL)
        return None
    from ..widgets.panel import Panel

    return Panel()


# -- judging ---------------------------------------------------------------------------------------
def cmd_rate(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext rate @12 4: 1-5 stars, 0 clears."""
    if len(tokens) != 2:
        raise UsageError("rate takes a job reference and 0-5 stars: %kontext rate @12 4 (0 clears)")
    try:
        stars = int(tokens[1])
    except ValueError:
        raise UsageError(f"rate: stars {shown(tokens[1])} is not allowed: give a whole number from 0 to 5") from None
    rating = _guard(kx.rate, tokens[0], stars)
    print(f"kontext_nb: {tokens[0]} " + (f"rated {rating} of 5" if rating else "no longer rated"))
    return None


def cmd_duel(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext duel @3 @5 @7 [--voter NAME]: a blind duel (no references: the last 12 finished results)."""
    from .parse import UsageParser

    p = UsageParser(prog="%kontext duel", add_help=False, allow_abbrev=False)
    p.add_argument("refs", nargs="*")
    p.add_argument("--voter")
    args = p.parse_intermixed_args(tokens)
    from ..widgets.duel import duel

    return _guard(lambda: duel(args.refs or None, voter=args.voter))


def cmd_ranking(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext ranking [@3 @5 ...] [--by model]: the results (or their models) ranked from the votes, best first."""
    from .parse import UsageParser

    p = UsageParser(prog="%kontext ranking", add_help=False, allow_abbrev=False)
    p.add_argument("refs", nargs="*")
    p.add_argument("--by", choices=("model",))
    args = p.parse_intermixed_args(tokens)
    return _guard(lambda: kx.ranking(args.refs or None, by=args.by))


def cmd_changes(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext changes @12: what an edit changed compared with its source."""
    return _guard(kx.changes, _one_ref("changes", tokens))


def cmd_report(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    """%kontext report @3 @5 -o report.html [--size 512] [--title T] [--zip]; no references: the whole history."""
    from .parse import UsageParser

    p = UsageParser(prog="%kontext report", add_help=False, allow_abbrev=False)
    p.add_argument("refs", nargs="*")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--size", type=_int("--size"), default=512)
    p.add_argument("--title")
    p.add_argument("--zip", action="store_true")
    args = p.parse_intermixed_args(tokens)
    items = args.refs or kx.history()
    path = _guard(lambda: kx.report(items, args.output, size=args.size, title=args.title, zip=args.zip))
    print(f"kontext_nb: wrote {path}" + (f" and {path.with_suffix('.zip')}" if args.zip else ""))
    return None


def cmd_sweep(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    from .sweeping import run_sweep

    return run_sweep(magics, tokens, cell)


__all__ = ["split"]
