"""Checked requests: friendly call arguments turned into an endpoint and validated inputs.

Everything a call could get wrong is found here, before anything is sent or paid for.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass
from typing import Any, cast

from . import endpoints, models
from .errors import ValidationError
from .fal.engine import SubmitOptions
from .images import ImageInput, prepare_image, read_lora_file

PRIORITIES = ("normal", "low")


@dataclass(frozen=True)
class Request:
    """A checked request, ready for the engine: nothing invalid gets this far."""

    endpoint: endpoints.Endpoint
    arguments: dict[str, Any]
    options: SubmitOptions
    notices: tuple[str, ...] = ()

    @property
    def model(self) -> models.Model | None:
        """The registry's model of this endpoint (its alias, title, schema and price rule)."""
        return self.endpoint.spec

    @property
    def reproducible(self) -> bool:
        """False when the model takes no seed (or enhance_prompt rewrites the prompt): the same request may not make
        the same image again (journaled so; a seed sweep over it says so)."""
        spec = self.endpoint.spec
        return (spec is None or spec.takes_seed) and not self.arguments.get("enhance_prompt")

    @property
    def num_images(self) -> int:
        spec = self.endpoint.spec
        if spec is not None and not self.endpoint.kontext:
            return models.images_asked(spec, self.arguments)
        return int(self.arguments.get("num_images", 1))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The source image's size, when kontext_nb read it (a URL it did not read: None)."""
        field = self.endpoint.image_field
        value = self.arguments.get(field.name) if field is not None else None
        value = value[0] if isinstance(value, list) and value else value
        return value.size if isinstance(value, ImageInput) else None

    @property
    def cost(self) -> float:
        """What this request is expected to cost: exact per image, estimated (high) per megapixel."""
        return self.endpoint.estimate(self.arguments, self.input_size)

    @property
    def estimated(self) -> bool:
        """True when the cost is an estimate (per-megapixel endpoints)."""
        return self.endpoint.unit == "megapixel"


def build_request(
    mode: str,
    prompt: Any,
    *,
    model: str = "max",
    sources: Any = None,
    mask: Any = None,
    reference: Any = None,
    loras: Any = None,
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
    if not endpoint.kontext and endpoint.spec is not None:  # any other model: shaped by the one adapter
        inputs = [_prepare(s, max_input_side) for s in sources or []]
        masked = _prepare(mask, max_input_side) if mask is not None else None
        if reference is not None:
            arguments["reference_image_url"] = _prepare(reference, max_input_side)
        args, notes = _adapted(endpoint, endpoint.spec, prompt, inputs, masked, arguments)
        notices += notes + [
            f"{i.description} is {i.downscaled_from[0]}x{i.downscaled_from[1]}; downscaled to {i.size[0]}x{i.size[1]}"
            " before sending"
            for i in dict.fromkeys(inputs)
            if i.downscaled_from and i.size
        ]
        if private:
            args["sync_mode"] = True
        if loras is not None:
            args["loras"] = lora_list(loras)
    elif mask is not None and endpoint.mode != "inpaint":
        raise ValidationError(
            f"mask= is for inpainting ({endpoints.endpoint_for('inpaint', 'lora').id})", field="mask_url"
        )
    elif endpoint.mode != "text-to-image":
        inputs = [_prepare(s, max_input_side) for s in sources]
        if endpoint.mode == "inpaint":
            if mask is None:
                raise ValidationError(
                    "mask_url is required for inpainting: give mask= (a PNG, white = repaint)", field="mask_url"
                )
            inputs += [
                _prepare(mask, max_input_side),
                _prepare(reference, max_input_side) if reference is not None else inputs[0],
            ]
            _check_mask(inputs[0], inputs[1], notices)
        for image in dict.fromkeys(inputs):
            if image.downscaled_from and image.size:
                w, h = image.downscaled_from
                notices.append(
                    f"{image.description} is {w}x{h}; downscaled to {image.size[0]}x{image.size[1]} before sending"
                )
        field = endpoint.image_field
        assert field is not None
        if endpoint.mode == "inpaint":
            args.update(image_url=inputs[0], mask_url=inputs[1], reference_image_url=inputs[2])
        else:
            args[field.name] = inputs[0] if field.kind == "image" else inputs
    if loras is not None and endpoint.kontext:
        args["loras"] = lora_list(loras)
    validated = _with_source_size(endpoint, endpoints.validate(endpoint, args))
    options = SubmitOptions(
        webhook_url=_check_webhook(webhook_url),
        priority=_check_priority(priority),
        start_timeout=_check_start_timeout(start_timeout),
        store_io=not private,
    )
    return Request(endpoint, validated, options, tuple(notices))


def _adapted(
    endpoint: endpoints.Endpoint,
    spec: models.Model,
    prompt: Any,
    sources: list[ImageInput],
    mask: ImageInput | None,
    arguments: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """A call's inputs in another model's request shape (models.adapt: image_url or image_urls, mask_url or
    mask_image_url, aspect_ratio or image_size, num_images or max_images). A setting it lacks is refused in one line
    by endpoints.validate (did-you-mean and what it takes); a seed it lacks says the model is not reproducible."""
    settings = dict(arguments)
    size: Any = None
    for name in ("aspect_ratio", "image_size"):
        if name in settings and not spec.takes(name) and settings[name] is not None:
            value = settings.pop(name)
            size = (int(value["width"]), int(value["height"])) if isinstance(value, dict) else value
    n = settings.pop("num_images", None) if not spec.takes("num_images") else None
    seed = settings.pop("seed", None)
    intention = models.Intention(
        prompt if isinstance(prompt, str) else "", cast(Any, sources), cast(Any, mask), size, n, seed, settings
    )
    adapted = models.adapt(spec, intention)
    args = dict(adapted.arguments)
    if not isinstance(prompt, str) and spec.takes("prompt"):
        args["prompt"] = prompt  # endpoints.validate names what is wrong with it
    for name in adapted.not_taken:
        if name == "seed":
            raise ValidationError(
                f"{spec.title} ({spec.endpoint_id}) takes no seed, so its images are not reproducible: leave seed "
                "out (the journal marks its jobs 'not reproducible')",
                field="seed",
            )
        if name in settings:
            endpoints.validate(endpoint, {**args, name: settings[name]})  # its one line, with a did-you-mean
        asked = {"n": "num_images", "size": "a size (aspect_ratio, image_size)", "mask": "a mask"}.get(name, name)
        raise ValidationError(f"{asked} is not taken by {spec.title} ({spec.endpoint_id})", field=name)
    return args, list(adapted.notes)


def _with_source_size(endpoint: endpoints.Endpoint, arguments: dict[str, Any]) -> dict[str, Any]:
    """Where the price follows a URL source's size, read it from its header (fal/source_size.py); a URL that cannot
    be read stays without a size, and is priced as the largest fal takes."""
    field = endpoint.image_field
    if field is None or field.kind != "image":
        return arguments
    source = arguments.get(field.name)
    if not (isinstance(source, ImageInput) and source.url and source.size is None):
        return arguments
    if not endpoint.needs_input_size(arguments):
        return arguments
    from .fal.source_size import url_image_size

    size = url_image_size(source.url)
    return arguments if size is None else {**arguments, field.name: dataclasses.replace(source, size=size)}


def edit_mode(sources: Any, model: str = "max") -> tuple[str, list[Any]]:
    """One source edits; a list of 2-4 sources combines them (the multi endpoint). Another model than Kontext
    takes as many as its schema allows (the adapter says so in one line when they are too many)."""
    if isinstance(sources, (list, tuple)):
        items = list(sources)
        if len(items) == 1:
            return "edit", items
        if model not in endpoints.MODELS and model not in endpoints.ENDPOINTS:
            return "multi", items
        field = endpoints.endpoint_for("multi", "max").field("image_urls")
        if not (field.min_items or 0) <= len(items) <= (field.max_items or 0):
            raise ValidationError(
                f"{len(items)} source images given: edit takes 1, or {field.min_items} to {field.max_items} "
                "for a multi-reference edit",
                field="image_urls",
            )
        return "multi", items
    return "edit", [sources]


def lora_list(loras: Any) -> Any:
    """LoRAs as fal's list of {'path', 'scale'}: from 'URL', 'URL:SCALE', (path, scale), dicts or a mix.

    A local ``.safetensors`` path becomes a LoraFile (uploaded before the job); values endpoints.validate
    cannot make sense of are passed on for it to refuse in one line.
    """
    if isinstance(loras, (str, dict, tuple)):
        loras = [loras]
    if not isinstance(loras, list):
        return loras
    out: list[Any] = []
    for item in loras:
        if isinstance(item, str):
            path, scale = split_lora(item)
            item = {"path": path} if scale is None else {"path": path, "scale": scale}
        elif isinstance(item, tuple) and len(item) == 2:
            item = {"path": item[0], "scale": item[1]}
        if isinstance(item, dict) and isinstance(item.get("path"), (str, os.PathLike)):
            path = os.fspath(item["path"])
            if not path.startswith(("http://", "https://")) and path.lower().endswith(".safetensors"):
                item = {**item, "path": read_lora_file(path)}
        out.append(item)
    return out


def split_lora(text: str) -> tuple[str, Any]:
    """'URL:0.8' -> ('URL', 0.8); 'URL' -> ('URL', None); a scale that is not a number stays text to refuse."""
    head, sep, tail = text.rpartition(":")
    if not sep or "/" in tail or not head or head.endswith(("http", "https")):
        return text, None
    try:
        return head, float(tail)
    except ValueError:
        return head, tail


def _check_mask(source: ImageInput, mask: ImageInput, notices: list[str]) -> None:
    if source.size and mask.size and source.size != mask.size:
        notices.append(
            f"the mask is {mask.size[0]}x{mask.size[1]} but the image is {source.size[0]}x{source.size[1]}; "
            "fal does not publish how it fits a mask of another size (kx.mask(source) paints one of the exact size)"
        )


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
