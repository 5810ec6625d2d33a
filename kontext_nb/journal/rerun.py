"""Re-running a journal job: same seed and settings, same inputs (kept in the runs folder)."""

from __future__ import annotations

from typing import Any

from ..endpoints import endpoint_for, get_endpoint
from ..errors import JournalError
from ..request import Request, build_request
from .db import JobRecord
from .folder import input_source


def rerun_request(record: JobRecord, changes: dict[str, Any], max_input_side: int) -> tuple[Request, int | None]:
    """The request that repeats ``record`` with ``changes`` (``seed=`` to change the seed).

    Returns it with the parent the new job should record (a re-run edit has its original's parent).
    """
    ep = get_endpoint(record.endpoint)
    model = changes.pop("model", ep.model)
    target = endpoint_for(ep.mode, model)
    image_field = ep.image_field
    arguments = {k: v for k, v in record.arguments.items() if image_field is None or k != image_field.name}
    arguments["seed"] = record.seed
    arguments.update(changes)
    prompt = arguments.pop("prompt", record.prompt)
    sources = [_input_source(record, h) for h in record.input_hashes] if image_field is not None else None
    return build_request(
        target.mode, prompt, model=model, sources=sources, max_input_side=max_input_side, **arguments
    ), (record.parent_id)


def _input_source(record: JobRecord, identity: str) -> Any:
    path = input_source(record.folder, identity)
    if path is None:
        raise JournalError(f"the input image of {record.ref} is no longer in the runs folder {record.folder}")
    return path
