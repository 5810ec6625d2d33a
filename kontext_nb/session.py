"""The facade the magics, the panel and users call: generate, edit, attach.

A Session turns friendly calls into validated endpoint arguments (before anything is sent),
owns one Engine, and picks the backend: fal when a key is found, the configured base URL
(KONTEXT_FAL_URL) when one is set, otherwise an offline sandbox on a free loopback port.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import endpoints
from .config import Settings, env_base_url, has_fal_credentials
from .engine import Engine, SubmitOptions
from .errors import ValidationError
from .images import ImageInput, prepare_image
from .jobs import Job
from .result import Result

SANDBOX_KEY = "kontext-sandbox"
ANONYMOUS_KEY = "anonymous"
PRIORITIES = ("normal", "low")


def _print_notice(message: str) -> None:
    print(message)


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
            if image.downscaled_from:
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


class Session:
    """One engine, one backend, and the calls users make."""

    def __init__(self, settings: Settings | None = None, *, notice: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        self._sandbox: Any = None
        self._lock = threading.Lock()
        self._retired: list[Engine] = []
        self.notice: Callable[[str], None] = notice or _print_notice
        self.backend: str | None = None
        """'fal', 'sandbox' or 'custom' (a KONTEXT_FAL_URL server), once the engine exists."""

    # -- engine and backend -------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        settings = self._settings or Settings()
        base = settings.base_url or env_base_url()
        have_key = settings.key is not None or has_fal_credentials()
        if base is None and not have_key:
            from . import sandbox

            self._sandbox = sandbox.start()
            settings = settings.with_(base_url=self._sandbox.url, key=SANDBOX_KEY)
            self.backend = "sandbox"
            self.notice(
                f"kontext_nb: no fal key found, so jobs run on the offline sandbox at {self._sandbox.url}: images are "
                "SANDBOX placeholders and nothing is charged. For real FLUX.1 Kontext images set FAL_KEY "
                "(export FAL_KEY=... before starting Jupyter) and restart the kernel."
            )
        else:
            settings = settings.with_(base_url=base, key=settings.key or (None if have_key else ANONYMOUS_KEY))
            self.backend = "fal" if base is None else "custom"
        return Engine(settings)

    def configure(self, settings: Settings) -> None:
        """Use new settings from the next job on (jobs in flight finish on the old engine)."""
        with self._lock:
            self._settings = settings
            if self._engine is not None:
                self._retired.append(self._engine)
            self._engine = None

    def info(self) -> dict[str, Any]:
        """Backend, URL, whether a key is set (never the key), jobs in flight."""
        engine = self.engine
        return {
            "backend": self.backend,
            "url": engine.settings.base_url or "https://queue.fal.run",
            "key_set": self.backend != "sandbox" and engine.settings.key != ANONYMOUS_KEY,
            "jobs_in_flight": len(engine.active_jobs()),
            "concurrency": engine.settings.concurrency,
        }

    def close(self) -> None:
        with self._lock:
            for engine in [*self._retired, self._engine]:
                if engine is not None:
                    engine.close()
            self._engine, self._retired = None, []
            if self._sandbox is not None:
                self._sandbox.stop()
                self._sandbox = None

    # -- calls ----------------------------------------------------------------------------------
    def run(
        self,
        request: Request,
        *,
        wait: bool = True,
        timeout: float | None = None,
        on_update: Callable[..., None] | None = None,
    ) -> Result | Job:
        """Send a checked request; block for the Result, or return the Job at once."""
        for message in request.notices:
            self.notice(f"kontext_nb: {message}")
        job = self.engine.submit(request.endpoint.id, request.arguments, options=request.options, on_update=on_update)
        return job.result(timeout) if wait else job

    def generate(
        self,
        prompt: str,
        *,
        model: str = "max",
        wait: bool = True,
        timeout: float | None = None,
        on_update: Callable[..., None] | None = None,
        **arguments: Any,
    ) -> Result | Job:
        request = build_request("text-to-image", prompt, model=model, **arguments)
        return self.run(request, wait=wait, timeout=timeout, on_update=on_update)

    def edit(
        self,
        source: Any,
        prompt: str,
        *,
        model: str = "max",
        wait: bool = True,
        timeout: float | None = None,
        on_update: Callable[..., None] | None = None,
        **arguments: Any,
    ) -> Result | Job:
        mode, sources = edit_mode(source)
        request = build_request(
            mode,
            prompt,
            model=model,
            sources=sources,
            max_input_side=(self._settings or Settings()).max_input_side,
            **arguments,
        )
        return self.run(request, wait=wait, timeout=timeout, on_update=on_update)

    def attach(self, request_id: str, *, endpoint: str, wait: bool = False) -> Result | Job:
        """Follow a request already submitted to fal, and collect its images."""
        if not isinstance(request_id, str) or not request_id.strip():
            raise ValidationError(f"request_id={request_id!r} must be a non-empty string", field="request_id")
        job = self.engine.attach(endpoint, request_id.strip())
        return job.result() if wait else job
