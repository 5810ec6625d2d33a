"""The Create tab: a prompt, a mode, a model, the inputs of the chosen endpoint, and a Generate button."""

from __future__ import annotations

import dataclasses
import functools
import html
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from .. import endpoints, models
from ..endpoints import format_cost, format_price
from ..errors import ImageInputError, JournalError, KontextError, ValidationError
from ..jobs import Job, JobStatus
from ..journal.db import JobRecord
from ..journal.folder import input_source
from ..request import Request, build_request
from ..session import Session
from ..sweep import Sweep, build_sweep
from ..views.grid import Grid
from ..views.status import logs_text, status_text, usual_time
from .cards import close_tree
from .controls import SEED_LIMIT, InputControls, SourcePicker, error_html, model_of
from .drop import ImageDrop
from .model_picker import ModelPicker
from .recall import PromptRecall
from .result_view import ResultView
from .send_button import SendButton

log = logging.getLogger(__name__)
TICK = 1.0
"""Seconds between status refreshes while jobs run (elapsed time moves even when fal says nothing)."""
MODE_LABELS = {"multi": "multi-reference"}
CHOICES = "kx-choices"
STYLE = f"<style>.{CHOICES} .widget-toggle-button{{padding:0 7px}}</style>"
"""Mode buttons a little tighter than ipywidgets': the four modes fit the form's column."""
SOURCE_FIELDS = ("image_url", "image_urls")
MASK_FIELDS = ("mask_url", "mask")


RECALL = 200
"""Journal rows read for the prompt's ↑ / ↓ history when the tab opens."""
ESTIMATE_FROM = 30
"""Earlier runs of an endpoint whose times make the 'usually 6–9 s' estimate."""
KEYS_FROM = "kx-create"
"""The Create tab's class: Ctrl+Enter (Cmd+Enter) in it presses Generate."""


@dataclass
class Plan:
    """What one click would send: checked requests, their cost, and the sweep they come from."""

    sweep: Sweep
    requests: list[Request]
    parent_id: int | None

    @property
    def cost(self) -> float:
        return round(sum(r.cost for r in self.requests), 4)


@dataclass
class Batch:
    """The jobs of one click, followed until every one has finished."""

    jobs: list[Job]
    sweep: Sweep | None
    started: float = field(default_factory=time.time)
    finished: bool = False
    estimate: str = ""
    """'usually 6–9 s', from the journal's timings of earlier runs of this endpoint (shown while it runs)."""


class CreateTab:
    """The form that makes images. Every control comes from the endpoint specs; every job goes through
    ``Session.run`` (journal, cache, budget); a click returns at once and the job runs on the engine thread."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.jobs: list[Job] = []
        """Every job this tab started, oldest first."""
        self._batch: Batch | None = None
        self._pending: Plan | None = None
        self._submitted: list[Callable[[Job], None]] = []
        self._sweeps_done: list[Callable[[Grid], None]] = []
        self._listening: dict[Job, Callable[[], None]] = {}
        self._lock = threading.RLock()
        self._sending = threading.Lock()
        """Held from a click until its submit is accepted or refused (a second click meanwhile does nothing)."""
        self._ticker: threading.Thread | None = None
        self._newest: Job | None = None
        self._drawing = False
        self._stop = threading.Event()
        self.closed = False

        self.prompt = w.Textarea(
            placeholder="Describe the image, or the edit", layout=w.Layout(width="calc(100% - 8px)"), rows=3
        )
        self.prompt_error = w.HTML()
        # buttons as wide as their labels: at ipywidgets' fixed width the fourth choice wraps onto a row of its own
        fit = {"button_width": "auto"}
        self.mode = w.ToggleButtons(options=[(MODE_LABELS.get(m, m), m) for m in endpoints.MODES], style=fit)
        self.mode.add_class(CHOICES)
        self.picker = ModelPicker("text-to-image")
        """The model: searched in the registry (alias, title, endpoint id, category), Kontext first."""
        self.model, self.model_search = self.picker.dropdown, self.picker.search
        self._quiet = False
        self.sources = SourcePicker(max_side=session.settings.max_input_side)
        self.masks = SourcePicker(max_side=session.settings.max_input_side)
        """Inpaint: the mask (white = repaint), from an upload, a path, or the painter."""
        self.paint_button = w.Button(description="Paint a mask", icon="paint-brush", layout=w.Layout(width="auto"))
        self.painter_box = w.VBox()
        self.mask_box = w.VBox(
            [w.HTML("<b>mask</b> (white = repaint)"), w.HBox([self.paint_button]), self.masks.widget, self.painter_box],
            layout=w.Layout(display="none"),
        )
        self.inputs = InputControls(self._endpoint())
        self.generate_button = SendButton(
            description="Generate",
            button_style="primary",
            icon="play",
            tooltip="send the job (Ctrl+Enter or Cmd+Enter in the form)",
            keys_from=KEYS_FROM,
        )
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True)
        self.confirm_text = w.HTML()
        keep = w.Layout(width="auto", flex="0 0 auto")  # never squeezed to "Yes, se…" by a long question
        self.yes = w.Button(description="Yes, send", button_style="warning", layout=keep)
        self.no = w.Button(description="No", layout=w.Layout(width="auto", flex="0 0 auto"))
        self.confirm_text.layout = w.Layout(flex="1 1 12em", min_width="0")
        self.confirm_row = w.HBox(
            [self.confirm_text, self.yes, self.no],
            layout=w.Layout(display="none", flex_flow="row wrap", align_items="center"),
        )
        self.error = w.HTML()
        self.status = w.HTML()
        self.recall = PromptRecall(scope=KEYS_FROM)
        self.drop = ImageDrop(scope=KEYS_FROM, on_image=self._dropped)
        """An image file dropped on the tab, or pasted into it, becomes the source."""
        self.drop.observe(lambda change: self.sources.show_error(change.new) if change.new else None, "note")
        """↑ / ↓ in the prompt: the journal's earlier prompts, newest first."""
        self._recall_from_journal()
        self.form = w.VBox(
            [
                w.HTML(STYLE),
                self.recall,
                self.drop,
                self.prompt,
                self.prompt_error,
                self.mode,
                self.picker.widget,
                self.sources.widget,
                self.mask_box,
                self.inputs.widget,
                w.HBox([self.generate_button, self.cancel_button]),
                self.confirm_row,
                self.error,
                self.status,
            ],
            layout=w.Layout(flex="1 1 480px", min_width="0"),
        )
        self.result_view = ResultView()
        """The newest result of this tab, large, beside the form."""
        self.result_view.callbacks.update(rerun=self.rerun)
        self.widget = w.HBox(
            [self.form, self.result_view.widget], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")
        )
        self.widget.add_class(KEYS_FROM)
        self.sources.widget.layout.display = "none"
        self.prompt.observe(lambda _: self._changed("prompt"), "value")
        self.mode.observe(self._mode_changed, "value")
        self.picker.observe(self._mode_changed)
        self.inputs.on_change(self._changed)
        self.sources.on_change(lambda: self._changed("image_url"))
        self.masks.on_change(lambda: self._changed("mask_url"))
        self.paint_button.on_click(lambda _: self.open_painter())
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.yes.on_click(lambda _: self._confirmed())
        self.no.on_click(lambda _: self._declined())
        self._update_cost()

    # -- callbacks for the panel ---------------------------------------------------------------------------
    def on_submitted(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` for each job this tab sends (the gallery already hears of it via the session)."""
        self._submitted.append(callback)

    def on_sweep_done(self, callback: Callable[[Grid], None]) -> None:
        """Call ``callback(grid)`` when every cell of a sweep has finished (from a worker thread)."""
        self._sweeps_done.append(callback)

    # -- filling the form ----------------------------------------------------------------------------------
    def use_as_input(self, result: Any) -> None:
        """Edit this result next: switch to edit and show it as the source (a model taking several adds it)."""
        if self.mode.value == "multi" or (self.mode.value == "edit" and self.sources.multiple):
            if len(self.sources.entries) >= self._max_sources():
                self.sources.show_error(f"{self._what()} takes at most {self._max_sources()} images: clear some first")
            else:
                self.sources.add(result)
        else:
            self.mode.value = "edit"
            self.sources.set([result])

    def _dropped(self, data: bytes, name: str) -> None:
        """A dropped or pasted image file: the source of an edit (added to a multi-reference's sources)."""
        try:
            self.use_as_input(data)
        except KontextError as exc:
            self.sources.show_error(f"{name}: {exc}")

    def set_seed(self, seed: int | None) -> None:
        """Use this seed for the next runs (locked)."""
        self.inputs.set_seed(seed)

    def load_record(self, record: Any) -> None:
        """Fill prompt, mode, model, every setting and the source(s) from a journal record (or a reference)."""
        rec: JobRecord = self.session.record(record)
        self.model_search.value = ""
        self.mode.value, self.model.value = rec.mode, rec.model
        self.prompt.value = str(rec.arguments.get("prompt", rec.prompt))
        self.inputs.set_values(rec.arguments)
        self.inputs.set_seed(rec.seed)
        if rec.mode == "inpaint":
            found = self._record_inputs(rec)
            self.sources.set(found[:1], parent_id=rec.parent_id)
            self.masks.set(found[1:2])
        elif rec.mode != "text-to-image":
            self.sources.set(self._record_inputs(rec), parent_id=rec.parent_id)

    def _record_inputs(self, rec: JobRecord) -> list[Any]:
        try:
            return list(self.session.result(rec).inputs)
        except JournalError:  # not finished: its inputs are still in the runs folder
            found = []
            for identity in rec.input_hashes:
                path = input_source(rec.folder, identity)
                found.append(path if path is not None else f"(the input of {rec.ref} is gone)")
            return found

    # -- reacting to the form ------------------------------------------------------------------------------
    def _endpoint(self) -> endpoints.Endpoint:
        return endpoints.endpoint_for(self.mode.value, self.model.value)

    def _model(self) -> models.Model:
        return model_of(self._endpoint())

    def _what(self) -> str:
        return "multi-reference" if self.mode.value == "multi" else self._model().title

    def _max_sources(self) -> int:
        field = self._model().source_field
        return (field.max_items or 1) if field is not None and field.kind == "images" else 1

    def _mode_changed(self, change: Any) -> None:
        if self._quiet:
            return
        if getattr(change, "name", None) == "value" and change.owner is self.mode:
            # each mode offers the models that serve it (inpainting: LoRA and the models taking a mask)
            self._quiet = True
            try:
                self.picker.set_mode(self.mode.value)
            finally:
                self._quiet = False
        model = self._model()
        left_out = self.inputs.not_taken(model)  # said, never dropped silently; prompt and sources stay
        self.inputs.set_endpoint(model)
        source = model.source_field
        several = source is not None and source.kind == "images"
        chosen = len(self.sources.entries)
        notes = [f"{model.title} does not take {', '.join(left_out)}: left out"] if left_out else []
        if not several and chosen > 1 and self.mode.value != "text-to-image":
            notes.append(f"{model.title} takes one source image and {chosen} are chosen: clear some")
        if model.pricing is None:
            notes.append(
                f"fal publishes no price for {model.title}: declare one (kx.set_price({model.alias!r}, 0.05)) to send"
            )
        self.picker.say("; ".join(notes))
        self.mask_box.layout.display = "" if self.mode.value == "inpaint" or model.takes_mask else "none"
        self.sources.set_multiple(several)
        self.sources.widget.layout.display = "none" if self.mode.value == "text-to-image" or source is None else ""
        self._changed("mode")

    def _changed(self, name: str) -> None:
        if name == "prompt":
            self.prompt_error.value = ""
        elif name == "mode":
            self.sources.clear_error()
        self._hide_confirmation()
        self.error.value = ""
        self._update_cost()

    def _sweep(self) -> Sweep:
        """The cells a click would run (one unless seed or guidance hold lists, or the prompt has {a|b})."""
        values = self.inputs.values()
        lists = {k: v for k, v in values.items() if isinstance(v, tuple)}
        fixed = {k: v for k, v in values.items() if v is not None and not isinstance(v, tuple)}
        return build_sweep(self.prompt.value, lists, model=self.model.value, base=fixed, mode=self.mode.value)

    def _update_cost(self) -> None:
        try:
            sweep = self._sweep()
        except ValidationError as exc:
            self.generate_button.description = "Generate"
            self._show_error(exc)
            return
        n = sweep.images()
        tail = " (sweep)" if sweep.axes else ""
        try:
            price = self._price(sweep)
        except models.Unpriced:
            self.generate_button.description = f"Generate · {n} image{'s' if n != 1 else ''} · price not published"
            return
        self.generate_button.description = f"Generate · {n} image{'s' if n != 1 else ''} · {price}{tail}"

    def _price(self, sweep: Sweep) -> str:
        """The most the click may cost: each cell priced by the registry (models.bound), sources at their size."""
        sizes = self._input_sizes()
        total, exact = 0.0, True
        for cell in sweep.cells:
            model = model_of(endpoints.endpoint_for(self.mode.value, str(cell.model)))
            total += models.bound(model, {"prompt": cell.prompt, **cell.arguments}, sizes)
            exact = exact and model.pricing is not None and model.pricing.rule.get("per") == "image"
        return format_cost(total) if exact else f"up to {format_cost(total)}"

    def _input_sizes(self) -> list[tuple[int, int] | None]:
        """The chosen sources' sizes, then the mask's (per-megapixel prices follow them); None where not known."""
        if self.mode.value == "text-to-image":
            return []
        chosen = [*self.sources.entries, *(self.masks.entries if self.mask_box.layout.display != "none" else [])]
        return [e.image.size if e.image is not None and e.image.size else None for e in chosen]

    # -- generating ----------------------------------------------------------------------------------------
    def generate(self) -> list[Job]:
        """What the Generate button does: check everything, then send (or ask first above the threshold).

        Returns the jobs sent (none when something is invalid or a confirmation is asked for). The button is
        disabled from the click until the submit is accepted or refused: a double click sends once."""
        if self.closed or not self._sending.acquire(blocking=False):
            return []
        self.generate_button.disabled = True
        try:
            return self._generate()
        finally:
            self.generate_button.disabled = False
            self._sending.release()

    def _generate(self) -> list[Job]:
        self._clear_errors()
        self._hide_confirmation()
        try:
            plan = self._plan()
        except KontextError as exc:
            self._show_error(exc)
            return []
        except Exception as exc:  # shown here, not only in the kernel log
            log.exception("the panel could not prepare the request")
            self.error.value = error_html(f"{type(exc).__name__}: {exc}")
            return []
        threshold = self.session.settings.confirm_above
        if plan.cost > threshold + 1e-9:
            self._pending = plan
            n = sum(r.num_images for r in plan.requests)
            price = format_price(plan.cost, estimate=any(r.estimated for r in plan.requests))
            self.confirm_text.value = html.escape(
                f"This run makes {n} image{'s' if n != 1 else ''} for {price}, "
                f"more than {format_cost(threshold)}. Send it?"
            )
            self.confirm_row.layout.display = ""
            return []
        return self._send(plan)

    def _plan(self) -> Plan:
        sweep = self._sweep()
        if not self.prompt.value.strip():
            raise ValidationError("write a prompt first", field="prompt")
        mode, images, parent_id = self.mode.value, None, None
        model = self._model()
        source = model.source_field
        if mode != "text-to-image" and source is not None:
            images, parent_id = self.sources.images(), self.sources.parent_id
            if source.kind == "image" and len(images) != 1:
                raise ValidationError(
                    "choose the image to edit: upload one, give a path or URL, or use a result from the Gallery"
                    if not images
                    else f"edit takes one image and {len(images)} are chosen: use multi-reference, or clear some",
                    field="image_url",
                )
            low, high = max(source.min_items or 1, 1), source.max_items
            if source.kind == "images" and not (low <= len(images) <= (high or len(images))):
                takes = f"{low} to {high}" if high else f"at least {low}"
                raise ValidationError(
                    f"{self._what()} takes {takes} images; {len(images)} {'is' if len(images) == 1 else 'are'} chosen",
                    field="image_url",
                )
        extra: dict[str, Any] = {}
        if mode == "inpaint" or model.takes_mask:
            masks = self.masks.images()
            required = mode == "inpaint" or (model.mask_field is not None and model.mask_field.required)
            if len(masks) > 1 or (required and len(masks) != 1):
                raise ValidationError("choose a mask: paint one, upload one, or give its path", field="mask_url")
            if masks:
                extra["mask"] = masks[0]
        if images and images[0].size:  # the grid's line prices per-megapixel cells from the source
            sweep = dataclasses.replace(sweep, input_size=images[0].size)
        side = self.session.settings.max_input_side
        requests = [
            build_request(mode, c.prompt, model=c.model, sources=images, max_input_side=side, **extra, **c.arguments)
            for c in sweep.cells
        ]
        return Plan(sweep, requests, parent_id)

    def _confirmed(self) -> None:
        plan, self._pending = self._pending, None
        self._hide_confirmation()
        if plan is None or not self._sending.acquire(blocking=False):
            return
        self.yes.disabled = self.generate_button.disabled = True
        try:
            self._send(plan)
        finally:
            self.yes.disabled = self.generate_button.disabled = False
            self._sending.release()

    def _declined(self) -> None:
        self._pending = None
        self._hide_confirmation()
        self.status.value = "nothing was sent"

    def _hide_confirmation(self) -> None:
        self._pending = None
        self.confirm_row.layout.display = "none"

    def _send(self, plan: Plan) -> list[Job]:
        try:  # the session's one batch rule: every job of the click is sent, or none
            jobs = self.session.submit_all([(r, plan.parent_id) for r in plan.requests], confirm=True)
        except Exception as exc:
            if not isinstance(exc, KontextError):
                log.exception("the panel could not send the request")
            self.error.value = error_html(str(exc) if isinstance(exc, KontextError) else f"{type(exc).__name__}: {exc}")
            return []
        self._follow(Batch(jobs, plan.sweep if plan.sweep.axes else None, estimate=self._estimate(jobs)))
        self.recall.remember([str(job.arguments.get("prompt") or "") for job in jobs[:1]])
        return jobs

    def _estimate(self, jobs: list[Job]) -> str:
        """How long runs of this endpoint usually take (fal's inference time, the journal's last ESTIMATE_FROM)."""
        if len(jobs) != 1:
            return ""
        try:
            records = self.session.tracker.journal.search(endpoint=jobs[0].endpoint, status="done", limit=ESTIMATE_FROM)
        except KontextError:
            return ""
        times = [float((r.timings or {}).get("inference") or -1) for r in records if not r.cached]
        return usual_time(times)

    def _recall_from_journal(self) -> None:
        try:
            records = self.session.tracker.journal.search(limit=RECALL)
        except KontextError:  # an unreadable journal: the prompt simply has no history yet
            return
        self.recall.remember([r.prompt for r in records])

    def rerun(self, result: Any) -> list[Job]:
        """The newest result again with a new seed (its "rerun" button), followed like a click on Generate."""
        job = self.session.rerun(result.journal_id, seed=random.randrange(SEED_LIMIT), wait=False)
        assert isinstance(job, Job)
        self._follow(Batch([job], None))
        return [job]

    def _follow(self, batch: Batch) -> None:
        """Show the batch's progress, then its newest result beside the form."""
        jobs = batch.jobs
        with self._lock:
            self._batch = batch
            self.jobs.extend(jobs)
        for job in jobs:
            self._listening[job] = job.on_update(functools.partial(self._job_changed, batch))
        for callback in list(self._submitted):
            for job in jobs:
                callback(job)
        if len(jobs) == 1:
            self.inputs.after_run(jobs[0].arguments.get("seed"))
        self._refresh()
        self._start_ticker()
        for job in jobs:
            if job.done():  # cached answers are finished before anyone listens
                self._job_changed(batch, job, job.status)
        self._job_changed(batch, None, None)

    def _job_changed(self, batch: Batch, job: Job | None, status: JobStatus | None) -> None:
        if self.closed:
            return
        self._refresh()
        if status is not None and not status.finished:
            return
        if job is not None and job.state == "done" and batch.sweep is None:  # a sweep shows its grid in Compare
            self._show_newest(job)
        with self._lock:
            if job is not None:
                self._listening.pop(job, None)
            if batch.finished or not all(j.done() for j in batch.jobs):
                return
            batch.finished = True
        self._refresh()
        if batch.sweep is not None and self._sweeps_done:
            # a grid renders thumbnails: not on the engine thread, which carries every job's traffic
            threading.Thread(target=self._sweep_finished, args=(batch,), name="kontext-panel-grid", daemon=True).start()

    def follow_elsewhere(self, job: Job) -> None:
        """A job made outside this tab (a magic, a sweep, kx.generate, a card's rerun): once done, its result is the
        newest beside the form too. This tab's own jobs are drawn as they finish already."""

        def done(j: Job, status: Any) -> None:
            if status.finished and j.state == "done" and not self.closed:
                with self._lock:
                    mine = any(j is own for own in self.jobs)
                if not mine:
                    self._show_newest(j)

        job.on_update(done)
        if job.done():
            done(job, job.status)

    def _show_newest(self, job: Job) -> None:
        """Beside the form, in one worker thread (the images are encoded larger than thumbnails); when several
        jobs finish at once only the last is drawn."""
        with self._lock:
            self._newest = job
            if self._drawing:
                return
            self._drawing = True
        threading.Thread(target=self._draw_newest, name="kontext-panel-newest", daemon=True).start()

    def _draw_newest(self) -> None:
        while True:
            with self._lock:
                job, self._newest = self._newest, None
                if job is None or self.closed:
                    self._drawing = False
                    return
            try:
                self.result_view.show(job.result(0))
            except Exception as exc:
                log.exception("showing the newest result failed")
                self.error.value = error_html(f"could not show the result: {exc}")

    def _sweep_finished(self, batch: Batch) -> None:
        assert batch.sweep is not None
        grid = Grid(batch.sweep, [j.result(0) if j.state == "done" else j.exception(0) for j in batch.jobs])
        for callback in list(self._sweeps_done):
            try:
                callback(grid)
            except Exception as exc:
                log.exception("showing a sweep's grid failed")
                self.error.value = error_html(f"could not show the grid: {exc}")

    # -- status, ticker and cancel --------------------------------------------------------------------------
    @property
    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self.jobs if not j.done()]

    def _refresh(self) -> None:
        with self._lock:
            batch = self._batch
            if batch is None:
                return
            lines = [status_text(batch.jobs, batch.started, self.session.tracker.journal), *logs_text(batch.jobs)]
            if batch.estimate and not batch.finished:
                lines[0] += f" · {batch.estimate}"
            if batch.finished and any(j.state == "done" for j in batch.jobs):
                lines[0] += " · in the Gallery tab"
            text = "<br>".join(html.escape(line) for line in lines if line)
            self.status.value = f'<div style="font:12px/1.5 monospace">{text}</div>'
            self.cancel_button.disabled = not any(not j.done() for j in self.jobs)

    def _start_ticker(self) -> None:
        with self._lock:
            if self._ticker is None and not self.closed:
                self._ticker = threading.Thread(target=self._tick, name="kontext-panel-ticker", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        try:
            while not self._stop.wait(TICK):
                self._refresh()
                with self._lock:
                    if not self.running:
                        return
        finally:
            with self._lock:
                self._ticker = None

    @property
    def ticking(self) -> bool:
        """Whether the 1 s status ticker runs (only while jobs run)."""
        with self._lock:
            return self._ticker is not None

    def cancel(self) -> None:
        """Cancel every job of this tab still running, on fal; returns at once (fal answers in the background)."""
        jobs = self.running
        if jobs:
            self.cancel_button.disabled = True
            note = html.escape(f"cancelling {len(jobs)} job{'s' if len(jobs) != 1 else ''} on fal…")
            self.status.value += f'<div style="font:12px monospace">{note}</div>'
            _in_background([j.cancel for j in jobs])

    # -- errors --------------------------------------------------------------------------------------------
    def _show_error(self, exc: KontextError) -> None:
        name = getattr(exc, "field", None)
        if name == "prompt":
            self.prompt_error.value = error_html(str(exc))
        elif name in MASK_FIELDS:
            self.masks.show_error(str(exc))
        elif name in SOURCE_FIELDS or isinstance(exc, ImageInputError):
            self.sources.show_error(str(exc))
        elif name in self.inputs.controls:
            self.inputs.show_error(name, str(exc))
        else:
            self.error.value = error_html(str(exc))

    def _clear_errors(self) -> None:
        self.prompt_error.value = self.error.value = ""
        self.inputs.clear_errors()
        self.sources.clear_error()
        self.masks.clear_error()

    # -- inpainting: the mask painter ----------------------------------------------------------------------
    def open_painter(self) -> Any:
        """Paint the mask over the chosen source (full resolution, in the browser); 'Use mask' puts it here."""
        from .mask import MaskPainter

        try:
            images = self.sources.images()
        except ValidationError as exc:
            self._show_error(exc)
            return None
        if len(images) != 1:
            self.masks.show_error("choose the image to inpaint first: the mask is painted over it")
            return None
        painter = MaskPainter(images[0], on_mask=lambda png: self.masks.set([png]))
        old = self.painter_box.children
        self.painter_box.children = [painter]
        close_tree(*old)
        return painter

    def close(self) -> None:
        """Stop the ticker and stop listening to jobs (they go on running in the session)."""
        self.closed = True
        self._stop.set()
        with self._lock:
            listening, self._listening = list(self._listening.values()), {}
        for unsubscribe in listening:
            unsubscribe()
        self._submitted.clear()
        self._sweeps_done.clear()
        self.result_view.close()
        close_tree(self.widget)


def _in_background(calls: list[Callable[[], Any]]) -> None:
    """Cancels wait for fal's answer: never in the kernel's thread."""

    def run() -> None:
        for call in calls:
            try:
                call()
            except Exception:
                log.exception("cancelling a job failed")

    if calls:
        threading.Thread(target=run, name="kontext-panel-cancel", daemon=True).start()
