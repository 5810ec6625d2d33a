"""%kontext sweep: lists and {a|b} alternatives become a grid of jobs, shown as a labelled grid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .. import api as kx
from ..errors import KontextError
from ..request import build_request
from .lines import confirm, fill_names, model_of, prompts_of, settings_for, source_of, split_at_dashes, usage
from .live import LiveOutput
from .parse import convert, parse
from .running import submit_all, wait_all

if TYPE_CHECKING:
    from . import Kontext


def run_sweep(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    from ..sweep import SWEEPABLE, build_sweep
    from ..views.grid import Grid

    editing = bool(tokens) and tokens[0] == "edit"
    head, tail = split_at_dashes(tokens[1:] if editing else tokens)
    parsed = parse("sweep edit" if editing else "sweep", head, sweep=True)
    words = parsed.words + tail
    sources: list[Any] = []
    if editing:
        if not words:
            raise UsageError('sweep edit needs a SOURCE: %kontext sweep edit @last "make it {winter|night}" --seed 1-4')
        sources, words = [source_of(magics, words[0])], words[1:]
    # {a|b} alternatives first: expanding {name} on the whole prompt would fail on them
    prompt = prompts_of(magics, " ".join(words), cell, expand=False)[0]
    mode = "edit" if editing else "text-to-image"
    options: dict[str, Any] = dict(parsed.inputs)
    if parsed.model:
        options["model"] = parsed.model
    # what cannot be an axis (LoRAs, image_size) is the same for every cell
    fixed = {k: convert(k, options.pop(k)) for k in list(options) if k not in SWEEPABLE}
    try:
        sweep = build_sweep(prompt, options, model=model_of(magics, _no_inputs(parsed), mode), base=fixed, mode=mode)
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    if sweep.count() < 2:  # "sweep of the northern lights" was a prompt, not a grid of one
        raise UsageError(
            "a sweep needs something to vary: {a|b} in the prompt or a list (--seed 1,2,3); nothing was sent"
        )
    session = kx.get_session()
    requests = []
    try:
        for c in sweep.cells:
            text = fill_names(c.prompt, magics.user_ns)
            # each cell takes the settings its own model takes (a dev cell keeps dev's defaults)
            args = {**settings_for(magics, sweep.endpoint(c)), **c.arguments}
            if editing:
                requests.append(session.prepare_edit(sources[0], text, model=c.model, **args))
            else:
                requests.append((build_request(mode, text, model=c.model, **args), None))
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    sizes = [r.input_size for r, _ in requests if r.input_size]
    if sizes:  # the grid's line then prices per-megapixel cells from the source, as the requests do
        from dataclasses import replace

        sweep = replace(sweep, input_size=sizes[0])
    print(f"kontext_nb: sweep of {_describe(sweep, requests)}")
    cost = sum(r.cost for r, _ in requests)  # each cell priced by its own model, from its own request
    estimated = any(r.estimated for r, _ in requests)
    confirm(magics, cost, f"this sweep ({sweep.images()} images)", parsed.yes, estimated=estimated)
    jobs = submit_all(session, requests, parsed)
    outcomes = wait_all(
        jobs, LiveOutput(jobs, terminal=magics.terminal, ledger=session.tracker.journal), keep_errors=True
    )
    grid = Grid(sweep, outcomes)
    if parsed.output:
        magics.user_ns[parsed.output] = grid
    return grid


def _describe(sweep: Any, requests: list[Any]) -> str:
    """The sweep's line with the price of its actual requests (an edit's input size known)."""
    from ..endpoints import format_price

    head = sweep.describe().rsplit(" · ", 1)[0]
    cost = sum(r.cost for r, _ in requests)
    return f"{head} · {format_price(cost, estimate=any(r.estimated for r, _ in requests))}"


def _no_inputs(parsed: Any) -> Any:
    """The parsed line without its swept options: what the config fills in for every cell."""
    from dataclasses import replace

    return replace(parsed, inputs={}, model=None)
