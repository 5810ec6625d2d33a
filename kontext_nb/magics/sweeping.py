"""%kontext sweep: lists and {a|b} alternatives become a grid of jobs, shown as a labelled grid."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .. import api as kx
from ..errors import KontextError
from .lines import confirm, fill_names, model_of, prompts_of, settings_for, source_of, split_at_dashes, usage
from .live import LiveOutput
from .parse import convert, parse
from .running import submit_all, wait_all

if TYPE_CHECKING:
    from . import Kontext


def run_sweep(magics: Kontext, tokens: list[str], cell: str | None) -> Any:
    from ..sweep import build_sweep, sweepable
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
    fixed = {k: convert(k, options.pop(k)) for k in list(options) if k not in sweepable()}
    try:
        sweep = build_sweep(prompt, options, model=model_of(magics, _no_inputs(parsed), mode), base=fixed, mode=mode)
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    if sweep.count() < 2:  # "sweep of the northern lights" was a prompt, not a grid of one
        raise UsageError(
            "a sweep needs something to vary: {a|b} in the prompt or a list (--seed 1,2,3); nothing was sent"
        )
    session = kx.get_session()
    named = replace(sweep, cells=tuple(replace(c, prompt=fill_names(c.prompt, magics.user_ns)) for c in sweep.cells))
    try:  # each cell takes the settings its own model takes (a dev cell keeps dev's defaults)
        plan = session.plan_sweep(
            named, source=sources[0] if editing else None, defaults=lambda ep: settings_for(magics, ep)
        )
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    sweep, requests = plan.sweep, list(plan.requests)
    print(f"kontext_nb: sweep of {plan.describe()}")
    for line in plan.not_taken():
        print(f"kontext_nb: {line}")
    confirm(magics, plan.cost, f"this sweep ({sweep.images()} images)", parsed.yes, estimated=plan.estimated)
    jobs = submit_all(session, requests, parsed)
    outcomes = wait_all(
        jobs, LiveOutput(jobs, terminal=magics.terminal, ledger=session.tracker.journal), keep_errors=True
    )
    grid = Grid(sweep, outcomes)
    if parsed.output:
        magics.user_ns[parsed.output] = grid
    return grid


def _no_inputs(parsed: Any) -> Any:
    """The parsed line without its swept options: what the config fills in for every cell."""
    return replace(parsed, inputs={}, model=None)
