"""Reading a %kontext line: shell-style words, options for every fal input, clear errors.

Every problem becomes IPython's UsageError with one readable line, before anything is sent.
"""

from __future__ import annotations

import argparse
import difflib
import keyword
import random
import shlex
from dataclasses import dataclass, field
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .. import endpoints

SUBCOMMANDS = (
    "edit",
    "inpaint",
    "sweep",
    "compare",
    "history",
    "show",
    "rerun",
    "lineage",
    "cancel",
    "resume",
    "status",
    "panel",
    "rate",
    "duel",
    "ranking",
    "changes",
    "report",
    "help",
)

# option -> fal input; the option's allowed values come from endpoints (never repeated here)
INPUT_OPTIONS: dict[str, str] = {
    "--seed": "seed",
    "--aspect-ratio": "aspect_ratio",
    "--num-images": "num_images",
    "--guidance": "guidance_scale",
    "--format": "output_format",
    "--safety": "safety_tolerance",
    "--steps": "num_inference_steps",
    "--accel": "acceleration",
    "--resolution": "resolution_mode",
    "--image-size": "image_size",
    "--strength": "strength",
}
FLAG_INPUTS: dict[str, str] = {"--enhance": "enhance_prompt", "--sync": "sync_mode"}
OFF_FLAGS: dict[str, str] = {"--no-safety-checker": "enable_safety_checker"}
ALIASES = {"--ar": "--aspect-ratio", "-n": "--num-images"}


class _Once(argparse.Action):
    """Store a value, refusing a second one: '--seed 1 --seed 2' is a mistake, not a choice."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            raise UsageError(f"{'/'.join(self.option_strings)} given twice; give it once")
        setattr(namespace, self.dest, values)


class _OnceFlag(_Once):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["nargs"] = 0
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        super().__call__(parser, namespace, True, option)


class UsageParser(argparse.ArgumentParser):
    """argparse whose errors are IPython UsageErrors with a did-you-mean."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            bad = message.split(":", 1)[1].split()[0]
            options = [o for a in self._actions for o in a.option_strings]
            close = difflib.get_close_matches(bad, options, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown option {bad}{hint}; see %kontext help")
        raise UsageError(message.replace("argument ", "option ", 1))


def make_parser(command: str, *, sweep: bool = False) -> UsageParser:
    """The options a generating command takes (generate, edit, sweep, rerun)."""
    p = UsageParser(prog=f"%kontext {command}".strip(), add_help=False, allow_abbrev=False)
    p.add_argument("words", nargs="*")
    for option, name in INPUT_OPTIONS.items():
        aliases = [a for a, target in ALIASES.items() if target == option]
        f = _field(name)
        p.add_argument(
            option, *aliases, dest=name, action=_Once, metavar=_metavar(f), help=f"{f.description} ({f.allowed()})"
        )
    for option, name in FLAG_INPUTS.items():
        p.add_argument(option, dest=name, action=_OnceFlag, default=None, help=_field(name).description)
    for option, name in OFF_FLAGS.items():
        p.add_argument(option, dest=name, action="store_const", const=False, default=None, help=f"send {name}=False")
    p.add_argument(
        "--lora",
        dest="loras",
        action="append",
        default=None,
        metavar="URL[:SCALE]",
        help="a LoRA (URL, Hugging Face name or local .safetensors), with its scale; repeatable (--model lora)",
    )
    p.add_argument(
        "--model",
        dest="model",
        action=_Once,
        metavar="|".join(endpoints.MODELS) + "|ALIAS|ID" + ("[,...]" if sweep else ""),
        help="FLUX.1 Kontext [max], [pro], [dev] (edit) or lora (with --lora), any model kx.models() lists by its "
        "alias (qwen-edit, seedream4-edit) or an endpoint id",
    )
    if command == "inpaint":
        p.add_argument("--mask", dest="mask", action=_Once, metavar="MASK", help="white = repaint: path, @12, $m")
        p.add_argument("--ref", dest="ref", action=_Once, metavar="IMAGE", help="reference_image_url (default: SOURCE)")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", help="run even if the journal has this result")
    p.add_argument(
        "--bg", dest="bg", action="store_true", default=None, help="return at once; the output keeps updating"
    )
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG", help="tag the job (repeatable)")
    p.add_argument("-o", dest="output", action=_Once, metavar="NAME", help="also store the result in this variable")
    p.add_argument("--yes", "-y", dest="yes", action="store_true", help="no confirmation above the budget threshold")
    p.add_argument("--private", dest="private", action="store_true", help="sync_mode plus X-Fal-Store-IO: 0")
    return p


def _field(name: str) -> endpoints.Field:
    return endpoints.field_spec(name)


def _metavar(f: endpoints.Field) -> str:
    return "|".join(f.choices) if f.kind == "enum" and len(f.choices) <= 3 else f.name.upper()


def split(line: str) -> list[str]:
    """Shell-style words; an unclosed quote is a UsageError, not a traceback."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot read the line: {exc} (an unclosed quote?)") from None


@dataclass
class Parsed:
    """A generating command, read but not yet checked against the endpoint."""

    words: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)
    """Option values as typed (strings), keyed by fal input name."""
    model: str | None = None
    mask: str | None = None
    ref: str | None = None
    no_cache: bool = False
    bg: bool | None = None
    tags: list[str] = field(default_factory=list)
    output: str | None = None
    yes: bool = False
    private: bool = False


def parse(command: str, tokens: list[str], *, sweep: bool = False) -> Parsed:
    namespace = make_parser(command, sweep=sweep).parse_intermixed_args(tokens)
    values = vars(namespace)
    names = [*INPUT_OPTIONS.values(), *FLAG_INPUTS.values(), *OFF_FLAGS.values(), "loras"]
    inputs = {name: values[name] for name in names if values.get(name) is not None}
    for tag in values["tags"]:
        if not tag.strip() or endpoints.text_problem(tag):
            raise UsageError(f"--tag {shown(tag)}: a tag must be non-empty, valid text")
    output = values["output"]
    if output is not None and (not output.isidentifier() or keyword.iskeyword(output)):
        raise UsageError(f"-o {shown(output)}: give a Python variable name (letters, digits, _; not a keyword)")
    return Parsed(
        words=list(values["words"]),
        inputs=inputs,
        model=values["model"],
        mask=values.get("mask"),
        ref=values.get("ref"),
        no_cache=values["no_cache"],
        bg=values["bg"],
        tags=values["tags"],
        output=values["output"],
        yes=values["yes"],
        private=values["private"],
    )


def shown(text: str, limit: int = 40) -> str:
    """A typed value in a message: quoted, and cut when long (a message stays one readable line)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


RANDOM_SEED = -1
SEED_RANGE = 2**31


def convert(name: str, text: Any) -> Any:
    """One option's text as the value fal expects; range checks are left to endpoints.validate."""
    if not isinstance(text, str):
        return text
    f = _field(name)
    if f.kind == "size" and "x" in text:  # --image-size 640x480
        w, _, h = text.partition("x")
        try:
            return {"width": int(w), "height": int(h)}
        except ValueError:
            raise UsageError(
                f"{option_for(name)} {shown(text)}: give a preset or WIDTHxHEIGHT ({f.allowed()})"
            ) from None
    option = option_for(name)
    if f.kind == "integer":
        try:
            number = int(text)
        except ValueError:
            raise UsageError(f"{option} {shown(text)} is not a whole number: give {f.allowed()}") from None
        if name == "seed" and number == RANDOM_SEED:  # AUTOMATIC1111's "random", drawn here so the journal has it
            return random.randrange(SEED_RANGE)
        return number
    if f.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{option} {shown(text)} is not a number: give {f.allowed()}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise UsageError(f"{option} {shown(text)} is not a finite number: give {f.allowed()}")
        return value
    return text


def option_for(name: str) -> str:
    """The option a user types for a fal input (for messages)."""
    if name == "loras":
        return "--lora"
    for option, target in {**INPUT_OPTIONS, **FLAG_INPUTS, **OFF_FLAGS}.items():
        if target == name:
            return option
    return f"--{name}"


def help_text() -> str:
    """%kontext help: every subcommand with an example, then every option (from the specs)."""
    options = make_parser("").format_help().split("options:", 1)[-1].rstrip()
    return HELP.strip() + "\n\nOptions for making images:" + options + "\n"


HELP = """
%kontext — FLUX.1 Kontext on fal, from one line or a cell.

  %kontext a red fox in snow --seed 42 --ar 16:9 -n 2 --guidance 4 --format png
  %%kontext --seed 7                  the cell body is the prompt; a line --- separates prompts
  %kontext edit photo.jpg make it claymation --seed 7     SOURCE: path, URL, @last, @12, @-2, $var
  %kontext edit a.png b.png -- put both cats on one sofa --seed 3    2-4 sources: multi-reference
  %kontext edit photo.jpg make it night --model dev --steps 20 --accel regular --resolution auto
  %kontext edit photo.jpg in the style --model lora --lora https://.../style.safetensors:0.8
  %kontext inpaint photo.jpg --mask $m --ref other.png a red hat     repaint the white of the mask
  %kontext sweep "a {cat|fox} in snow" --seed 1,2,3 --guidance 2,3.5,5     a labelled grid
  %kontext sweep edit @last "make it night" --model max,pro,dev --seed 1,2   one grid across models
  %kontext sweep edit @last "make it {winter|night}" --seed 1-4
  %kontext sweep edit $src "make it night" --model max,seedream4-edit,fal-ai/flux-2-flex/edit --seed 1,2
                                      any model kx.models() lists (alias or endpoint id): one grid, each
                                      cell's cost, settings a model lacks shown '–' and listed
  %kontext compare @3 @5 @7           side by side, differences highlighted (one edit: with its source)
  %kontext history fox --seed 42 --limit 20 --min-rating 4 --model seedream4-edit
  %kontext show @12 · rerun @12 --seed 7 · lineage @12 · cancel @12|all · resume · status · help
  %kontext help flux2-flex-edit       a model's fields, defaults, ranges, price rule and sources
  %kontext panel                      the interactive panel: Create, Gallery, Compare, History, Duel
  %kontext rate @12 4                 1-5 stars (0 clears); kx.history(min_rating=4) finds them
  %kontext duel @3 @5 @7              a blind duel: ← → pick the better one, = a tie (no refs: the last 12)
  %kontext ranking @3 @5 @7           the results ranked from the votes (Bradley–Terry); --by model
  %kontext changes @12                what an edit changed: heat map, changed share, SSIM outside, pHash
  %kontext report @3 @5 @7 -o report.html --size 512 --zip    one self-contained HTML file to share

{name} (or {name.attr}) in a prompt is filled from the notebook's variables; nothing else in
braces is evaluated, and $ stays a dollar sign; only text and numbers fill a prompt. Quote a
prompt that starts with a subcommand's name ("edit the photo", "Show me a cat"). A line (or a
line of a %%kontext cell) whose first word is within two typos of a subcommand, in any case and
whatever follows (canel all, Cancel all, histroy fox, sohw @1), sends nothing: it says what you
meant. English words stay prompts (snow, sheep, make it night) unless the rest looks like a
command's (@12, $var, a file, {a|b}, all). To make an image of such a line, quote it
(%kontext "canel all") or write %kontext -- snow; in a cell, quote the line or start it with --.
In %kontext PROMPT, words after -- are all prompt (for prompts with option-like words); in edit,
-- separates the sources from the prompt.
Settings: %config Kontext.model = 'pro' (also aspect_ratio, output_format, guidance, concurrency,
background, runs_dir, journal_url, thumbnail_size, embed_limit_mb, budget_session, budget_daily, confirm_above), or
[tool.kontext_nb] in a pyproject.toml beside the notebook.
"""
