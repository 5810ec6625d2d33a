"""What each %kontext subcommand does. Each takes the magics object, the line's words and the cell."""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError

import kontext_nb as kx

from .. import endpoints
from ..errors import KontextError, ValidationError
from ..jobs import Job
from ..render import format_cost
from ..request import Request, build_request
from ..result import Results
from .live import LiveOutput
from .parse import Parsed, convert, option_for, parse, shown, split

PROMPT_SEPARATOR = re.compile(r"^\s*---\s*$", re.M)


# -- making images -------------------------------------------------------------------------------
def cmd_generate(magics: Any, tokens: list[str], cell: str | None) -> Any:
    head, tail = _split_at_dashes(tokens)
    parsed = parse("", head)
    words = parsed.words + tail
    prompts = _prompts(magics, " ".join(words), cell)
    session = kx.get_session()
    requests = [(_request(magics, parsed, "text-to-image", p), None) for p in prompts]
    return _run(magics, session, requests, parsed)


def cmd_edit(magics: Any, tokens: list[str], cell: str | None) -> Any:
    head, tail = _split_at_dashes(tokens)
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
    prompts = _prompts(magics, " ".join(words), cell)
    session = kx.get_session()
    source = [_source(magics, s) for s in sources]
    requests = []
    for prompt in prompts:
        inputs = _inputs(magics, parsed, "edit")
        try:
            request, parent = session.prepare_edit(
                source if len(source) > 1 else source[0], prompt, model=_model(magics, parsed), **inputs,
                private=parsed.private,
            )  # fmt: skip
        except KontextError as exc:
            raise UsageError(_usage(exc, parsed)) from None
        requests.append((request, parent))
    return _run(magics, session, requests, parsed)


def cmd_rerun(magics: Any, tokens: list[str], cell: str | None) -> Any:
    parsed = parse("rerun", tokens)
    if len(parsed.words) != 1:
        raise UsageError("rerun takes one job reference: %kontext rerun @12 --seed 7")
    changes = {k: convert(k, v) for k, v in parsed.inputs.items()}
    if parsed.model:
        changes["model"] = parsed.model
    session = kx.get_session()
    from ..repeat import rerun_request

    try:
        request, parent = rerun_request(session.record(parsed.words[0]), changes, session.settings.max_input_side)
    except KontextError as exc:
        raise UsageError(_usage(exc, parsed)) from None
    return _run(magics, session, [(request, parent)], parsed)


def _split_at_dashes(tokens: list[str]) -> tuple[list[str], list[str]]:
    if "--" in tokens:
        i = tokens.index("--")
        return tokens[:i], tokens[i + 1 :]
    return tokens, []


def _prompts(magics: Any, line_prompt: str, cell: str | None, *, expand: bool = True) -> list[str]:
    """The line's prompt, or the cell body (``---`` lines separate prompts), with {name} filled in."""
    if cell is not None and cell.strip():
        if line_prompt.strip():
            raise UsageError("give the prompt either on the %%kontext line or in the cell body, not both")
        parts = [p.strip() for p in PROMPT_SEPARATOR.split(cell)]
    else:
        parts = [line_prompt.strip()]
    prompts = [fill_names(p, magics.shell.user_ns) if expand else p for p in parts if p]
    if not prompts:
        raise UsageError("no prompt given: %kontext a red fox in snow --seed 42 (see %kontext help)")
    return prompts


NAME_IN_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")


def fill_names(prompt: str, namespace: dict[str, Any]) -> str:
    """{name} (or {name.attribute}) from the notebook's variables; anything else in braces stays as written.

    IPython's own expansion would evaluate any expression between braces, and $name too: a prompt pasted from a
    web page must never run code, and "$5" is a price, not a variable.
    """

    def lookup(match: re.Match[str]) -> str:
        first, *rest = match.group(1).split(".")
        if first not in namespace:
            return match.group(0)
        value = namespace[first]
        for attribute in rest:
            if attribute.startswith("_") or not hasattr(value, attribute):
                return match.group(0)
            value = getattr(value, attribute)
        return str(value)

    return NAME_IN_BRACES.sub(lookup, prompt) if "{" in prompt else prompt


def _source(magics: Any, word: str) -> Any:
    if word.startswith("$"):
        name = word[1:]
        if name not in magics.shell.user_ns:
            raise UsageError(f"no variable named {name!r} in the notebook (from {word})")
        return magics.shell.user_ns[name]
    return word


def _model(magics: Any, parsed: Parsed) -> str:
    model = magics.model if parsed.model is None else parsed.model
    if model not in endpoints.MODELS:
        raise UsageError(
            f"--model {model!r} is not allowed: choose one of max, pro{endpoints.suggest(model, endpoints.MODELS)}"
        )
    return model


def _inputs(magics: Any, parsed: Parsed, mode: str) -> dict[str, Any]:
    inputs = {name: convert(name, value) for name, value in parsed.inputs.items()}
    inputs.setdefault("guidance_scale", magics.guidance)
    inputs.setdefault("output_format", magics.output_format)
    if mode == "text-to-image":
        inputs.setdefault("aspect_ratio", magics.aspect_ratio)
    return inputs


def _request(magics: Any, parsed: Parsed, mode: str, prompt: str) -> Request:
    try:
        return build_request(
            mode, prompt, model=_model(magics, parsed), private=parsed.private, **_inputs(magics, parsed, mode)
        )
    except KontextError as exc:
        raise UsageError(_usage(exc, parsed)) from None


def _usage(exc: Exception, parsed: Parsed | None = None) -> str:
    """A validation message in the words the user typed: '--guidance 25 is out of range: ...'."""
    name = getattr(exc, "field", None)
    if not isinstance(exc, ValidationError) or not name or name in ("prompt", "image_url", "image_urls", "model"):
        return str(exc)
    message = str(exc)
    typed = parsed.inputs.get(name) if parsed is not None else None
    if message.startswith(f"{name}=") and isinstance(typed, str):
        typed = typed if len(typed) <= 40 else shown(typed)
        return f"{option_for(name)} {typed} {message.split(' ', 1)[1]}"
    return f"{option_for(name)}: {message}"


def confirm(magics: Any, cost: float, what: str, yes: bool) -> None:
    """Ask before spending more than the threshold (the API's confirm=True, asked as a question)."""
    threshold = kx.get_session().settings.confirm_above
    if yes or cost <= threshold + 1e-9:
        return
    question = f"{what} will cost {format_cost(cost)} (more than {format_cost(threshold)}). Go ahead? [y/N] "
    try:
        answer = input(question)
    except (StdinNotImplementedError, EOFError, OSError):
        raise UsageError(f"{what} would cost {format_cost(cost)}: add --yes (-y) to go ahead") from None
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("nothing was sent")


def _run(magics: Any, session: Any, requests: list[tuple[Request, int | None]], parsed: Parsed) -> Any:
    """Check the cost, submit, show one live output, and return the Result(s) (or Jobs with --bg)."""
    cost = sum(r.cost for r, _ in requests)
    images = sum(r.num_images for r, _ in requests)
    confirm(magics, cost, f"{images} image{'s' if images != 1 else ''}", parsed.yes)
    jobs = submit_all(session, requests, parsed)
    background = magics.background if parsed.bg is None else parsed.bg
    live = LiveOutput(jobs, terminal=magics.terminal, background=background)
    if background:
        _finish_in_background(live, jobs)
        value: Any = jobs[0] if len(jobs) == 1 else jobs
        if parsed.output:
            magics.shell.user_ns[parsed.output] = value
        return value if magics.terminal else None
    results = wait_all(jobs, live)
    value = results[0] if len(results) == 1 else Results(results)
    if parsed.output:
        magics.shell.user_ns[parsed.output] = value
    return value


def submit_all(session: Any, requests: list[tuple[Request, int | None]], parsed: Parsed) -> list[Job]:
    """Send every request (already paid for in the user's mind: confirm=True); all or none."""
    jobs: list[Job] = []
    try:
        for request, parent in requests:
            jobs.append(
                session.run(
                    request, wait=False, cache=not parsed.no_cache, confirm=True, tags=parsed.tags, parent_id=parent
                )
            )
    except KontextError as exc:  # a budget cap reached part way: take back what was sent
        for job in jobs:
            job.cancel()
        raise UsageError(str(exc)) from None
    return jobs


def wait_all(jobs: list[Job], live: LiveOutput, *, keep_errors: bool = False) -> list[Any]:
    """Every job's Result (or, with keep_errors, its error); an interrupt cancels them all on fal."""
    outcomes: list[Any] = []
    try:
        for job in jobs:
            try:
                outcomes.append(job.result())
            except KontextError as exc:
                if not keep_errors:
                    raise
                outcomes.append(exc)
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel()
        raise
    finally:
        live.refresh()
    return outcomes


def _finish_in_background(live: LiveOutput, jobs: list[Job]) -> None:
    from ..render import result_html

    def done(job: Job, status: Any) -> None:
        if live.finished:
            html = "".join(result_html(j.result(0)) for j in jobs if j.state == "done")
            live.show_results(html)

    for job in jobs:
        job.on_update(done)
    if live.finished:
        done(jobs[0], None)


# -- looking back -------------------------------------------------------------------------------
def cmd_history(magics: Any, tokens: list[str], cell: str | None) -> Any:
    from .parse import _Parser

    p = _Parser(prog="%kontext history", add_help=False, allow_abbrev=False)
    p.add_argument("words", nargs="*")
    p.add_argument("--seed", type=_int("--seed"))
    p.add_argument("--limit", type=_int("--limit"), default=50)
    p.add_argument("--tag")
    p.add_argument("--status")
    args = p.parse_intermixed_args(tokens)
    _text_ok("search words", " ".join(args.words))
    _text_ok("--tag", args.tag or "")
    return kx.history(" ".join(args.words) or None, seed=args.seed, limit=args.limit, tag=args.tag, status=args.status)


def _text_ok(what: str, text: str) -> None:
    if "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text):
        raise UsageError(f"{what} {shown(text)}: a NUL character or an unpaired surrogate is not valid text")


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


def _one_ref(command: str, tokens: list[str]) -> str:
    if len(tokens) != 1:
        raise UsageError(f"{command} takes one job reference: %kontext {command} @12 (or @last, @-2)")
    return tokens[0]


def _guard(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except KontextError as exc:
        raise UsageError(str(exc)) from None


def cmd_show(magics: Any, tokens: list[str], cell: str | None) -> Any:
    return _guard(kx.load, _one_ref("show", tokens))


def cmd_lineage(magics: Any, tokens: list[str], cell: str | None) -> Any:
    from ..records import History

    chain = _guard(kx.lineage, _one_ref("lineage", tokens))
    return History(list(reversed(chain)))


def cmd_cancel(magics: Any, tokens: list[str], cell: str | None) -> Any:
    session = kx.get_session()
    if tokens == ["all"]:
        jobs = session.active_jobs()
    else:
        job = _guard(session.job, _one_ref("cancel", tokens))
        if job is None:
            raise UsageError(f"{tokens[0]} is not running in this session: nothing to cancel")
        jobs = [job]
    cancelled = [j for j in jobs if j.cancel()]
    print(f"kontext_nb: cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}")
    return None


def cmd_resume(magics: Any, tokens: list[str], cell: str | None) -> Any:
    if tokens:
        raise UsageError("resume takes no arguments")
    results = _guard(kx.resume)
    if not results:
        print("kontext_nb: nothing to collect")
        return None
    return Results(results)


def cmd_status(magics: Any, tokens: list[str], cell: str | None) -> Any:
    info = _guard(kx.get_session().info)
    caps = []
    for name, label in (("session", "session"), ("daily", "today")):
        cap = info.get(f"{name}_cap")
        caps.append(f"{label} {format_cost(info[f'spent_{label}'])}" + (f" of {format_cost(cap)}" if cap else ""))
    lines = [
        f"backend: {info['backend']} ({info['url']})",
        f"fal key: {'set' if info['key_set'] else 'not set'}",
        f"spent: {', '.join(caps)}, {format_cost(info['spent_total'])} in total",
        f"jobs in flight: {info['jobs_in_flight']} (at most {info['concurrency']} at once)",
        f"runs folder: {info['runs_dir']}",
    ]
    print("\n".join(lines))
    return None


def cmd_compare(magics: Any, tokens: list[str], cell: str | None) -> Any:
    from ..compare import Comparison

    if not tokens:
        raise UsageError("compare takes job references: %kontext compare @3 @5 (or one edit: with its source)")
    results = [_guard(kx.load, t) for t in tokens]
    if len(results) == 1:
        try:
            return Comparison.edit_and_source(results[0])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return Comparison(results)


def cmd_panel(magics: Any, tokens: list[str], cell: str | None) -> Any:
    """%kontext panel: the interactive panel (a new one closes the previous one)."""
    if tokens or (cell is not None and cell.strip()):
        raise UsageError("panel takes no arguments: %kontext panel")
    return kx.Panel()


def cmd_sweep(magics: Any, tokens: list[str], cell: str | None) -> Any:
    from .sweeping import run_sweep

    return run_sweep(magics, tokens, cell)


__all__ = ["split"]
