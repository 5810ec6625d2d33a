"""%kontext sweep: lists and {a|b} alternatives become a grid of jobs, shown as a labelled grid."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

import kontext_nb as kx

from ..errors import KontextError
from ..request import build_request
from .commands import (
    _inputs,
    _prompts,
    _source,
    _split_at_dashes,
    _usage,
    confirm,
    fill_names,
    submit_all,
    wait_all,
)
from .live import LiveOutput
from .parse import parse


def run_sweep(magics: Any, tokens: list[str], cell: str | None) -> Any:
    from ..grid import Grid
    from ..sweep import build_sweep

    editing = bool(tokens) and tokens[0] == "edit"
    head, tail = _split_at_dashes(tokens[1:] if editing else tokens)
    parsed = parse("sweep edit" if editing else "sweep", head, sweep=True)
    words = parsed.words + tail
    sources: list[Any] = []
    if editing:
        if not words:
            raise UsageError('sweep edit needs a SOURCE: %kontext sweep edit @last "make it {winter|night}" --seed 1-4')
        sources, words = [_source(magics, words[0])], words[1:]
    # {a|b} alternatives first: expanding {name} on the whole prompt would fail on them
    prompt = _prompts(magics, " ".join(words), cell, expand=False)[0]
    mode = "edit" if editing else "text-to-image"
    options: dict[str, Any] = dict(parsed.inputs)
    if parsed.model:
        options["model"] = parsed.model
    fixed = {k: v for k, v in _inputs(magics, _no_inputs(parsed), mode).items() if k not in options}
    try:
        sweep = build_sweep(prompt, options, model=magics.model, base=fixed)
    except KontextError as exc:
        raise UsageError(_usage(exc, parsed)) from None
    session = kx.get_session()
    requests = []
    try:
        for c in sweep.cells:
            text = fill_names(c.prompt, magics.shell.user_ns)
            if editing:
                requests.append(session.prepare_edit(sources[0], text, model=c.model, **c.arguments))
            else:
                requests.append((build_request(mode, text, model=c.model, **c.arguments), None))
    except KontextError as exc:
        raise UsageError(_usage(exc, parsed)) from None
    print(f"kontext_nb: sweep of {sweep.describe()}")
    confirm(magics, sweep.cost(), f"this sweep ({sweep.images()} images)", parsed.yes)
    jobs = submit_all(session, requests, parsed)
    outcomes = wait_all(jobs, LiveOutput(jobs, terminal=magics.terminal), keep_errors=True)
    grid = Grid(sweep, outcomes)
    if parsed.output:
        magics.shell.user_ns[parsed.output] = grid
    return grid


def _no_inputs(parsed: Any) -> Any:
    """The parsed line without its swept options: what the config fills in for every cell."""
    from dataclasses import replace

    return replace(parsed, inputs={})
