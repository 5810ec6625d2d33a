"""kontext_nb: FLUX.1 Kontext on fal, in Jupyter.

    import kontext_nb as kx
    r = kx.generate("a red fox", seed=42, aspect_ratio="16:9")
    e = kx.edit(r, "make it claymation", seed=7)
    job = kx.generate("a lighthouse at dusk", wait=False)

Keyword names are fal's own (seed, guidance_scale, num_images, output_format,
safety_tolerance, enhance_prompt, aspect_ratio, sync_mode). With no FAL_KEY set, jobs run
on an offline sandbox that draws placeholder images. Heavy modules load on first use, so
importing this package (and %load_ext) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import endpoints
from . import sweep as _sweep_module  # noqa: F401  # loaded first, so the name `sweep` below is the call kx.sweep
from ._version import __version__
from .api import (
    attach,
    budget,
    changes,
    children,
    configure,
    current_session,
    delete,
    edit,
    generate,
    get_session,
    help,
    history,
    inpaint,
    lineage,
    load,
    model,
    prune,
    ranking,
    rate,
    read_metadata,
    register_score,
    report,
    rerun,
    resume,
    set_price,
    set_session,
    sweep,
    vote,
)
from .errors import (
    BudgetError,
    ConfirmationRequired,
    FalError,
    ImageInputError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    JournalError,
    KontextError,
    ValidationError,
)

if TYPE_CHECKING:
    from . import models
    from .config import Settings
    from .fal.engine import Engine, SubmitOptions
    from .jobs import Job, JobStatus
    from .result import Result
    from .session import Session
    from .widgets.compared import compare
    from .widgets.duel import duel
    from .widgets.panel import Panel

_LAZY = {
    "Settings": "config",
    "Engine": "fal.engine",
    "SubmitOptions": "fal.engine",
    "Job": "jobs",
    "JobStatus": "jobs",
    "Result": "result",
    "Session": "session",
    "ImageInput": "images",
    "prepare_image": "images",
    "sandbox": None,
    "models": None,  # the model registry, callable: kx.models(search, category) is its table
    "Panel": "widgets.panel",
    "compare": "widgets.compared",
    "duel": "widgets.duel",
    "mask": "widgets.mask",
    "MaskPainter": "widgets.mask",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        if module is None:
            return importlib.import_module(f".{name}", __name__)
        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module 'kontext_nb' has no attribute {name!r}")


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext kontext_nb``: the %kontext and %%kontext magics."""
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ip)


__all__ = [
    "BudgetError",
    "ConfirmationRequired",
    "Engine",
    "FalError",
    "ImageInput",
    "ImageInputError",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobStatus",
    "JobTimeout",
    "JournalError",
    "KontextError",
    "MaskPainter",
    "Panel",
    "Result",
    "Session",
    "Settings",
    "SubmitOptions",
    "ValidationError",
    "__version__",
    "attach",
    "budget",
    "changes",
    "children",
    "compare",
    "configure",
    "current_session",
    "delete",
    "duel",
    "edit",
    "endpoints",
    "generate",
    "get_session",
    "help",
    "history",
    "inpaint",
    "lineage",
    "load",
    "mask",
    "model",
    "models",
    "prepare_image",
    "prune",
    "ranking",
    "rate",
    "read_metadata",
    "register_score",
    "report",
    "rerun",
    "resume",
    "set_price",
    "set_session",
    "sweep",
    "vote",
]
