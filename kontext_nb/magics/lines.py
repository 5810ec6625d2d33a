"""From a %kontext line to checked requests: prompts, {name} filling, sources, options, confirmation."""

from __future__ import annotations

import os
import re
import types
from typing import TYPE_CHECKING, Any

from IPython.core.error import StdinNotImplementedError, UsageError

from .. import api, endpoints
from ..endpoints import format_cost, format_price
from ..errors import KontextError, ValidationError
from ..request import Request, build_request
from .parse import Parsed, convert, option_for, shown
from .typos import check_cell, strip_escape

if TYPE_CHECKING:
    from . import Kontext


PROMPT_SEPARATOR = re.compile(r"^\s*---\s*$", re.M)


def split_at_dashes(tokens: list[str]) -> tuple[list[str], list[str]]:
    if "--" in tokens:
        i = tokens.index("--")
        return tokens[:i], tokens[i + 1 :]
    return tokens, []


def prompts_of(magics: Kontext, line_prompt: str, cell: str | None, *, expand: bool = True) -> list[str]:
    """The line's prompt, or the cell body (``---`` lines separate prompts), with {name} filled in.

    No line of a cell body may start with a subcommand or a misspelling of one (typos.check_cell): a line is quoted or
    starts with -- to be a prompt anyway (the -- is dropped)."""
    if cell is not None and cell.strip():
        if line_prompt.strip():
            raise UsageError("give the prompt either on the %%kontext line or in the cell body, not both")
        check_cell(cell)
        body = "\n".join(strip_escape(line) for line in cell.splitlines())
        parts = [p.strip() for p in PROMPT_SEPARATOR.split(body)]
    else:
        parts = [line_prompt.strip()]
    prompts = [fill_names(p, magics.user_ns) if expand else p for p in parts if p]
    if not prompts:
        raise UsageError("no prompt given: %kontext a red fox in snow --seed 42 (see %kontext help)")
    return prompts


NAME_IN_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")


PLAIN_VALUES = (str, int, float)
"""What may fill {name}: text and numbers (anything else could carry a secret, or be printed whole)."""
UNSAFE_NAMES = frozenset({"In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii", "_", "__", "___", "exit", "quit"})
"""IPython's history and shell objects: never a prompt's source."""


def fill_names(prompt: str, namespace: dict[str, Any]) -> str:
    """{name} (or {name.attribute}) from the notebook's variables; anything else in braces stays as written.

    IPython's own expansion would evaluate any expression between braces, and $name too: a prompt pasted from a
    web page must never run code, and "$5" is a price, not a variable. Only plain values fill a prompt, and
    attributes only of ordinary objects (not modules, the environment or IPython's history): ``{os.environ}``
    would put the fal key into the prompt, the journal and the image files.
    """

    def lookup(match: re.Match[str]) -> str:
        first, *rest = match.group(1).split(".")
        if first not in namespace:
            return match.group(0)
        value = namespace[first]
        for attribute in rest:
            _refuse_container(match.group(0), first, value)
            if attribute.startswith("_") or not hasattr(value, attribute):
                return match.group(0)
            value = getattr(value, attribute)
        if not isinstance(value, PLAIN_VALUES) or first in UNSAFE_NAMES:
            raise UsageError(
                f"{match.group(0)} is {_kind(value, first)}: only text and numbers fill a prompt "
                "(put the words you want in a variable, or write them out)"
            )
        return str(value)

    return NAME_IN_BRACES.sub(lookup, prompt) if "{" in prompt else prompt


def _refuse_container(braces: str, first: str, value: Any) -> None:
    if isinstance(value, types.ModuleType) or value is os.environ or first in UNSAFE_NAMES:
        raise UsageError(
            f"{braces}: {first} is {_kind(value, first)}, and its attributes do not fill prompts "
            "(only text and numbers from your own variables do)"
        )


def _kind(value: Any, name: str) -> str:
    if name in UNSAFE_NAMES:
        return "IPython's history"
    if isinstance(value, types.ModuleType):
        return "a module"
    if value is os.environ or isinstance(value, type(os.environ)):
        return "the environment"
    return f"a {type(value).__name__}"


def source_of(magics: Kontext, word: str) -> Any:
    if word.startswith("$"):
        name = word[1:]
        if name not in magics.user_ns:
            raise UsageError(f"no variable named {name!r} in the notebook (from {word})")
        return magics.user_ns[name]
    return word


def model_of(magics: Kontext, parsed: Parsed, mode: str | None = None) -> str:
    """--model (or Kontext.model): max, pro, dev, lora or an endpoint id; inpainting is LoRA's alone."""
    if parsed.model is None and mode is not None and not _serves(magics.model, mode):
        return endpoints.models_for(mode)[-1]  # e.g. inpaint: lora, whatever Kontext.model says
    model = magics.model if parsed.model is None else parsed.model
    if model not in endpoints.MODELS and model not in endpoints.ENDPOINTS:
        try:
            known_model(model)
        except KontextError as exc:
            raise UsageError(str(exc).replace(f"model={model!r}", f"--model {model!r}", 1)) from None
    return model


def _serves(model: str, mode: str) -> bool:
    """Whether a model (a Kontext name, or any the registry knows) has an endpoint for this mode."""
    if model in endpoints.MODELS:
        return model in endpoints.models_for(mode)
    try:
        endpoints.endpoint_for(mode, model)
    except KontextError:
        return False
    return True


def known_model(name: str) -> str:
    """A model name the registry knows (alias as typed, or endpoint id), or, with a fal key, any endpoint id loaded
    live (kx.model); else one short line naming what is allowed."""
    from ..sweep import known_model as named
    from ..sweep import unknown_model

    if not named(name):
        if "/" not in name or name != name.strip():
            raise ValidationError(unknown_model(name).replace(f"model={name!r}", f"--model {name!r}", 1), field="model")
        api.get_session().model(name)  # live with a key; offline: the one line saying so
    return name


# the magics' settings (%config Kontext.guidance, .output_format) and the [max] defaults they start from
_SETTINGS = (("guidance_scale", "guidance"), ("output_format", "output_format"), ("aspect_ratio", "aspect_ratio"))


def inputs_of(magics: Kontext, parsed: Parsed, mode: str) -> dict[str, Any]:
    """The typed inputs, plus the magics' settings where this endpoint takes them.

    A setting left at [max]'s default does not override another model's own default ([dev] and
    LoRA have guidance 2.5, and LoRA png): only a setting the user changed does.
    """
    inputs = {name: convert(name, value) for name, value in parsed.inputs.items()}
    try:
        ep = endpoints.endpoint_for(mode, model_of(magics, parsed, mode))
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None
    return {**settings_for(magics, ep), **inputs}


def settings_for(magics: Kontext, ep: endpoints.Endpoint) -> dict[str, Any]:
    """The magics' settings this endpoint takes (a sweep across models asks once per cell)."""
    base = endpoints.endpoint_for("text-to-image", "max")
    out: dict[str, Any] = {}
    for name, trait in _SETTINGS:
        if not any(f.name == name for f in ep.inputs):
            continue
        if name == "aspect_ratio" and ep.mode != "text-to-image":
            continue
        value, own = getattr(magics, trait), ep.field(name)
        if value != base.field(name).default or not own.has_default or own.default == value:
            out[name] = value
    return out


def request_of(magics: Kontext, parsed: Parsed, mode: str, prompt: str) -> Request:
    try:
        return build_request(
            mode,
            prompt,
            model=model_of(magics, parsed, mode),
            private=parsed.private,
            **inputs_of(magics, parsed, mode),
        )
    except KontextError as exc:
        raise UsageError(usage(exc, parsed)) from None


def usage(exc: Exception, parsed: Parsed | None = None) -> str:
    """A validation message in the words the user typed: '--guidance 25 is out of range: ...'."""
    name = getattr(exc, "field", None)
    images = ("prompt", "image_url", "image_urls", "mask_url", "reference_image_url", "model")
    if not isinstance(exc, ValidationError) or not name or name in images:
        return str(exc)
    message = str(exc)
    typed = parsed.inputs.get(name) if parsed is not None else None
    if message.startswith(f"{name}=") and isinstance(typed, str):
        typed = typed if len(typed) <= 40 else shown(typed)
        return f"{option_for(name)} {typed} {message.split(' ', 1)[1]}"
    return f"{option_for(name)}: {message}"


def confirm(magics: Kontext, cost: float, what: str, yes: bool, *, estimated: bool = False) -> None:
    """Ask before spending more than the threshold (the API's confirm=True, asked as a question in a terminal; a
    notebook gets the one-line refusal, so no cell ever waits on stdin)."""
    threshold = api.get_session().settings.confirm_above
    if yes or cost <= threshold + 1e-9:
        return
    price = format_price(cost, estimate=estimated)
    refusal = f"{what} would cost {price}: add --yes (-y) to go ahead"
    if not magics.terminal:  # a notebook never waits on an input box: Run All would stop there
        raise UsageError(refusal)
    question = f"{what} will cost {price} (more than {format_cost(threshold)}). Go ahead? [y/N] "
    try:
        answer = input(question)
    except (StdinNotImplementedError, EOFError, OSError):
        raise UsageError(refusal) from None
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("nothing was sent")
