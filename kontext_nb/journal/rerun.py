"""Re-running a journal job: same seed and settings, same inputs (kept in the runs folder)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..endpoints import endpoint_for, get_endpoint
from ..errors import JournalError
from ..request import Request, build_request
from ..sweep import cell_not_taken
from .db import JobRecord
from .folder import input_source


def rerun_request(record: JobRecord, changes: dict[str, Any], max_input_side: int) -> tuple[Request, int | None]:
    """The request that repeats ``record`` with ``changes`` (``seed=`` to change the seed).

    Returns it with the parent the new job should record (a re-run edit has its original's parent).
    """
    ep = get_endpoint(record.endpoint)
    model = changes.pop("model", ep.model)
    target = endpoint_for(ep.mode, model)
    image_fields = {f.name for f in ep.inputs if f.kind in ("image", "images")}
    arguments = {k: v for k, v in record.arguments.items() if k not in image_fields}
    if record.seed is not None:
        arguments["seed"] = record.seed
    left: list[str] = []
    if target.id != ep.id:  # another model: what it has no input for stays behind, and is said
        left = [k for k in cell_not_taken(target, arguments) if k != "prompt"]
        arguments = {k: v for k, v in arguments.items() if k not in left}
        if "seed" in left:
            left.remove("seed")
            left.append("seed (it takes none: not reproducible)")
    arguments.update(changes)
    for lora in arguments.get("loras") or []:
        if isinstance(lora, dict) and str(lora.get("path", "")).startswith("file:"):
            raise JournalError(
                f"{record.ref} used a local LoRA file ({lora['path'].split(';')[0][5:]}), which the runs folder does "
                "not keep: give loras= again to rerun it"
            )
    prompt = arguments.pop("prompt", record.prompt)
    inputs = [_input_source(record, h) for h in record.input_hashes] if image_fields else []
    extra: dict[str, Any] = {}
    if ep.mode == "inpaint":
        inputs, extra = inputs[:1], {"mask": inputs[1], "reference": inputs[2] if len(inputs) > 2 else None}
    request = build_request(
        target.mode, prompt, model=model, sources=inputs or None, max_input_side=max_input_side, **extra, **arguments
    )
    if left:
        said = f"{record.ref} on {target.title}: not taken by it, so left out: {', '.join(left)}"
        request = dataclasses.replace(request, notices=(*request.notices, said))
    return request, record.parent_id


def _input_source(record: JobRecord, identity: str) -> Any:
    path = input_source(record.folder, identity)
    if path is None:
        raise JournalError(f"the input image of {record.ref} is no longer in the runs folder {record.folder}")
    return path
