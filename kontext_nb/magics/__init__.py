"""The %kontext / %%kontext magics: ``%load_ext kontext_nb``. The presentation layer for IPython.

parse.py (argparse that raises UsageErrors), lines.py (a line's prompts and options to checked requests),
running.py (send, wait, --bg), live.py (the updating output), commands.py (one function a subcommand),
sweeping.py (%kontext sweep), greeting.py (what %load_ext says), collecting.py (jobs a stopped kernel left,
collected in the background on load). May import every layer below (the module-level
api, session, views, journal); nothing below imports this.

Settings are traitlets, so ``%config Kontext.model = 'pro'`` works, and defaults can come
from ``[tool.kontext_nb]`` in a pyproject.toml beside the notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from .. import endpoints
from .parse import HELP, SUBCOMMANDS, help_text, split
from .typos import check_line, with_prompt_hint

_T2I = endpoints.T2I_DEFAULTS  # constants: the registry is read on first use, not by %load_ext


@magics_class
class Kontext(Magics):
    """FLUX.1 Kontext on fal: make, edit, sweep and compare images from one line or a cell."""

    model = Unicode(
        "max", help="max ($0.08/image), pro ($0.04/image), dev, lora, or any model kx.models() lists (alias or id)"
    ).tag(config=True)
    aspect_ratio = Enum(endpoints.ASPECT_RATIOS, default_value=_T2I["aspect_ratio"], help="text to image").tag(
        config=True
    )
    output_format = Enum(endpoints.OUTPUT_FORMATS, default_value=_T2I["output_format"], help="jpeg or png").tag(
        config=True
    )
    guidance = Float(_T2I["guidance_scale"], help="guidance_scale when not given").tag(config=True)
    concurrency = Int(8, help="jobs in flight on fal at once").tag(config=True)
    background = Bool(False, help="run every job as with --bg").tag(config=True)
    runs_dir = Unicode("", help="the runs folder (journal and images); empty: KONTEXT_HOME or ./kontext-runs").tag(
        config=True
    )
    journal_url = Unicode(
        "",
        help="postgresql://user:password@host/db: one journal and ledger for every host (empty: KONTEXT_JOURNAL_URL, "
        "else SQLite in the runs folder); shown without its password",
    ).tag(config=True)
    thumbnail_size = Int(512, help="the longer side of thumbnails embedded in outputs, in pixels").tag(config=True)
    embed_limit_mb = Float(
        1.0, help="image files up to this size are embedded for full size and download when outside the notebook folder"
    ).tag(config=True)
    budget_session = Float(None, allow_none=True, help="dollars this session may spend").tag(config=True)
    budget_daily = Float(None, allow_none=True, help="dollars all sessions may spend per day").tag(config=True)
    budget_timezone = Unicode(
        "", help="the time zone of budget_daily's days, kept in the runs folder (empty: the folder's, else UTC)"
    ).tag(config=True)
    confirm_above = Float(1.0, help="ask before a run that would cost more than this").tag(config=True)

    @validate("model")
    def _known_model(self, proposal: Any) -> str:
        """Kontext.model names a model of the registry (any case of an alias, or an endpoint id)."""
        from ..models import registry

        name = str(proposal["value"]).strip()
        if name not in endpoints.MODELS and registry().find(name) is None:
            raise TraitError(registry().unknown(name))
        return name

    def __init__(self, shell: Any, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.terminal = not hasattr(shell, "kernel")

    # -- settings -----------------------------------------------------------------------------
    @observe(
        "concurrency",
        "runs_dir",
        "journal_url",
        "budget_session",
        "budget_daily",
        "budget_timezone",
        "confirm_above",
        "thumbnail_size",
        "embed_limit_mb",
    )
    def _settings_changed(self, change: Any) -> None:
        """Pass on only the setting that changed: the session's other settings stay as they are."""
        from ..api import configure
        from ..views import links, render

        if change.name == "journal_url":
            from ..journal.database import safe_url

            if change.new and change.new == safe_url(change.new) and "***" in change.new:
                return  # the shown form of the URL set just before: the session keeps the real one
            configure(journal_url=change.new or None)
            if change.new != safe_url(change.new):
                self.journal_url = safe_url(change.new)  # %config Kontext shows it without the password
        elif change.name == "thumbnail_size":
            render.set_thumbnail_side(change.new)
        elif change.name == "embed_limit_mb":
            links.set_embed_limit(change.new)
        else:
            configure(**{change.name: change.new if change.new != "" else None})

    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's variables ({name} in prompts, $var sources, -o NAME)."""
        if self.shell is None:
            raise UsageError("the %kontext magics need an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def apply_pyproject(self, folder: Path) -> list[str]:
        """Defaults from [tool.kontext_nb] in folder/pyproject.toml; returns the names set."""
        path = folder / "pyproject.toml"
        if not path.is_file():
            return []
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            table = tomllib.loads(path.read_text()).get("tool", {}).get("kontext_nb", {})
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read [tool.kontext_nb] from {path}: {exc}") from None
        names = self.trait_names(config=True)
        for key, value in table.items():
            if key not in names:
                hint = endpoints.suggest(key, names)
                raise UsageError(f"{path}: unknown setting {key!r} in [tool.kontext_nb]{hint}")
            try:
                setattr(self, key, value)
            except Exception as exc:
                raise UsageError(f"{path}: [tool.kontext_nb] {key} = {value!r}: {exc}") from None
        return list(table)

    # -- the magic ------------------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def kontext(self, line: str, cell: str | None = None) -> Any:
        from . import commands

        tokens = split(line)
        quoted = line.lstrip().startswith(("'", '"'))  # %kontext "history": a prompt, never a subcommand
        command = tokens[0] if tokens and tokens[0] in SUBCOMMANDS and not quoted else ""
        rest = tokens[1:] if command else tokens
        if not command:  # a misspelt subcommand (any case, any arguments) is not a paid prompt
            check_line(line)
        if command == "help" and rest:  # %kontext help MODEL: its fields, defaults, ranges, price and sources
            return model_help(" ".join(rest))
        if command == "help":
            print(help_text())
            return None
        handler = getattr(commands, f"cmd_{command or 'generate'}")
        try:
            return handler(self, rest, cell)
        except UsageError as exc:  # "show me a cat": the subcommand says what it takes, and how to make a prompt
            raise UsageError(with_prompt_hint(str(exc), command, line)) from None


def model_help(name: str) -> Any:
    """The registry's help for one model (an alias or endpoint id): HTML in a notebook, a text table in a terminal."""
    from .. import models
    from ..errors import ValidationError

    try:
        return models.get(name)  # shown by its _repr_mimebundle_: models/help.py
    except ValidationError as exc:
        raise UsageError(str(exc)) from None


Kontext.kontext.__doc__ = HELP.strip() + "\n\nOptions for making images: %kontext help (or %kontext?)\n"
# the options' help is built from the model registry: on first ``%kontext?`` (IPython asks ``getdoc()`` first), not
# when the magics load, so %load_ext reads no snapshot
Kontext.kontext.getdoc = help_text  # type: ignore[union-attr]


def load_ipython_extension(ip: Any) -> None:
    """%load_ext kontext_nb: register the magics and say only what needs saying."""
    magics = Kontext(ip)
    ip.register_magics(magics)
    ip.configurables.append(magics)
    magics.apply_pyproject(Path.cwd())
    from .greeting import greet

    greet(magics)


def unload_ipython_extension(ip: Any) -> None:
    """%unload_ext kontext_nb: remove %kontext and %%kontext again."""
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("kontext", None)
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, Kontext)]
    ip.magics_manager.registry.pop("Kontext", None)


__all__ = ["Kontext", "load_ipython_extension", "unload_ipython_extension"]
