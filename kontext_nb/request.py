"""Checked requests: friendly call arguments turned into an endpoint and validated inputs.

Everything a call could get wrong is found here, before anything is sent or paid for.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from . import endpoints
from .errors import ValidationError
from .fal.engine import SubmitOptions
from .images import ImageInput, prepare_image

PRIORITIES = ("normal", "low")


@dataclass(frozen=True)
class Request:
    """A checked request, ready for the engine: nothing invalid gets this far."""

    endpoint: endpoints.Endpoint
    arguments: dict[str, Any]
    options: SubmitOptions
    notices: tuple[str, ...] = ()

    @property
    def num_images(self) -> int:
        return int(self.arguments.get("num_images", 1))

    @property
    def cost(self) -> float:
        return self.endpoint.cost(self.num_images)


def build_request(
    mode: str,
    prompt: Any,
    *,
    model: str = "max",
    sources: Any = None,
    webhook_url: str | None = None,
    priority: str | None = None,
    start_timeout: float | None = None,
    private: bool = False,
    max_input_side: int | None = None,
    **arguments: Any,
) -> Request:
    """Validate everything a call could get wrong, read and check the images, send nothing."""
    endpoint = endpoints.endpoint_for(mode, model)
    notices: list[str] = []
    args = dict(arguments, prompt=prompt)
    if private:
        if arguments.get("sync_mode") is False:
            raise ValidationError("private=True needs sync_mode=True (it keeps outputs out of fal's history)")
        args["sync_mode"] = True
    if endpoint.mode != "text-to-image":
        inputs = [_prepare(s, max_input_side) for s in sources]
        for image in inputs:
            if image.downscaled_from and image.size:
                w, h = image.downscaled_from
                notices.append(
                    f"{image.description} is {w}x{h}; downscaled to {image.size[0]}x{image.size[1]} before sending"
                )
        field = endpoint.image_field
        assert field is not None
        args[field.name] = inputs[0] if field.kind == "image" else inputs
    validated = endpoints.validate(endpoint, args)
    options = SubmitOptions(
        webhook_url=_check_webhook(webhook_url),
        priority=_check_priority(priority),
        start_timeout=_check_start_timeout(start_timeout),
        store_io=not private,
    )
    return Request(endpoint, validated, options, tuple(notices))


def edit_mode(sources: Any) -> tuple[str, list[Any]]:
    """One source edits; a list of 2-4 sources combines them (the multi endpoint)."""
    if isinstance(sources, (list, tuple)):
        items = list(sources)
        if len(items) == 1:
            return "edit", items
        field = endpoints.endpoint_for("multi", "max").field("image_urls")
        if not (field.min_items or 0) <= len(items) <= (field.max_items or 0):
            raise ValidationError(
                f"{len(items)} source images given: edit takes 1, or {field.min_items} to {field.max_items} "
                "for a multi-reference edit",
                field="image_urls",
            )
        return "multi", items
    return "edit", [sources]


def _prepare(source: Any, max_side: int | None) -> ImageInput:
    return prepare_image(source) if max_side is None else prepare_image(source, max_side=max_side)


def _check_webhook(url: str | None) -> str | None:
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ValidationError(f"webhook_url={url!r} must be an http(s) URL", field="webhook_url")
    return url


def _check_priority(priority: str | None) -> str | None:
    if priority is not None and priority not in PRIORITIES:
        raise ValidationError(
            f"priority={priority!r} is not allowed: choose one of {', '.join(PRIORITIES)}"
            + endpoints.suggest(str(priority), PRIORITIES),
            field="priority",
        )
    return priority


def _check_start_timeout(seconds: Any) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not 1 < float(seconds) < float("inf"):
        raise ValidationError(f"start_timeout={seconds!r} must be a number of seconds above 1", field="start_timeout")
    return float(seconds)
