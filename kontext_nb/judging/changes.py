"""Change scores for an edit: what changed, how much, and whether the rest stayed the same.

Computed from pixels only, with scikit-image (SSIM) and imagehash (pHash); no model weights. The source is
resized to the edit's size (Kontext may return another resolution than it was given), and both are worked on
at most ``WORK_SIDE`` pixels on the longer side.

- ``changed_fraction``: the share of pixels whose colour moved by more than ``THRESHOLD`` (of 255, mean over
  R, G and B, after a small blur so noise and JPEG ringing do not count).
- ``ssim_outside``: the mean structural similarity (SSIM) over the region that should have stayed the same:
  outside the mask for an inpaint, outside the changed area otherwise; NaN when nothing stayed the same.
- ``phash_distance``: the Hamming distance of the two perceptual hashes (0 = same picture, 64 bits).
- ``image``: a heat map, the edit in grey with what changed in red (stronger = more).

Plug-in point for model-based scores (CLIP, DINO, ImageReward...): ``register_score(name, fn)`` where
``fn(source, edit, mask) -> float`` gets two PIL images of the same size (and the inpaint mask as an "L" image or
None). kontext_nb never downloads weights: the function loads the ones you have. Its value appears in
``Changes.scores[name]``, in history and in the report. For example, with open_clip and weights on disk::

    import open_clip, torch
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained="/models/clip.bin")

    def clip_similarity(source, edit, mask):
        with torch.no_grad():
            a, b = (model.encode_image(preprocess(x).unsqueeze(0)) for x in (source, edit))
        return float(torch.nn.functional.cosine_similarity(a, b))

    kx.register_score("clip_similarity", clip_similarity)
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps

from ..errors import JournalError, ValidationError
from ..journal.db import JobRecord
from ..journal.tracking import Tracker, is_ref

WORK_SIDE = 1024
"""Longer side, in pixels, the comparison works at (larger pairs are scaled down first)."""
THRESHOLD = 24
"""A pixel counts as changed when its blurred mean colour difference exceeds this (0-255)."""
HEAT_GAIN = 4
"""Colour difference times this is the heat map's red opacity (a difference of 64 is fully red)."""

Scorer = Callable[[Image.Image, Image.Image, "Image.Image | None"], float]
SCORERS: dict[str, Scorer] = {}
"""Model-based scores added with ``register_score``: name -> fn(source, edit, mask)."""


def register_score(name: str, fn: Scorer | None) -> None:
    """Add a score ``fn(source, edit, mask) -> float`` to every ``kx.changes`` (None removes it)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValidationError(f"register_score: name={name!r} must be a Python identifier, e.g. 'clip_similarity'")
    if name in BUILT_IN:
        raise ValidationError(f"register_score: {name!r} is a built-in score; choose another name")
    if fn is None:
        SCORERS.pop(name, None)
    elif not callable(fn):
        raise ValidationError(f"register_score: {fn!r} is not callable: give fn(source, edit, mask) -> float")
    else:
        SCORERS[name] = fn


BUILT_IN = ("changed_fraction", "ssim_outside", "phash_distance")


@dataclass
class Changes:
    """What an edit changed compared with its source (see the module's documentation for each number)."""

    image: Image.Image
    changed_fraction: float
    ssim_outside: float
    phash_distance: int
    scores: dict[str, float] = field(default_factory=dict)
    """Plug-in scores (``register_score``) by name."""
    label: str = ""

    def as_dict(self) -> dict[str, float]:
        """The numbers, as kept in the journal and shown in history."""
        return {
            "changed_fraction": self.changed_fraction,
            "ssim_outside": self.ssim_outside,
            "phash_distance": float(self.phash_distance),
            **self.scores,
        }

    def __repr__(self) -> str:
        return f"<Changes {self.label} {summary(self.as_dict())}>".replace("  ", " ")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        thumb = self.image.copy()
        thumb.thumbnail((512, 512))
        buffer = io.BytesIO()
        thumb.save(buffer, "PNG")
        import base64

        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        text = html.escape(summary(self.as_dict()))
        return {
            "text/plain": repr(self),
            "text/html": f'<div class="kontext-changes" style="font:12px sans-serif"><img src="{uri}" alt="changes"'
            f' style="max-width:512px;display:block"/><div>{html.escape(self.label)} {text}</div></div>',
        }


def summary(scores: dict[str, float]) -> str:
    parts = []
    for name, value in scores.items():
        if name == "changed_fraction":
            parts.append(f"changed {value:.1%}")
        elif name == "phash_distance":
            parts.append(f"pHash distance {int(value)}")
        elif name == "ssim_outside":
            parts.append("SSIM outside –" if math.isnan(value) else f"SSIM outside {value:.3f}")
        else:
            parts.append(f"{name} {value:.3g}")
    return " · ".join(parts)


def compute(source: Image.Image, edit: Image.Image, mask: Image.Image | None = None, label: str = "") -> Changes:
    """The change scores of ``edit`` against ``source`` (``mask``: white where an inpaint was allowed to change)."""
    import imagehash
    from skimage.metrics import structural_similarity

    edit = ImageOps.exif_transpose(edit).convert("RGB")
    source = ImageOps.exif_transpose(source).convert("RGB")
    if max(edit.size) > WORK_SIDE:
        scale = WORK_SIDE / max(edit.size)
        edit = edit.resize(
            (max(1, round(edit.width * scale)), max(1, round(edit.height * scale))), Image.Resampling.BILINEAR
        )
    if source.size != edit.size:
        source = source.resize(edit.size, Image.Resampling.BILINEAR)
    region = None
    if mask is not None:
        region = np.asarray(mask.convert("L").resize(edit.size, Image.Resampling.NEAREST)) < 128  # outside the mask
    difference = ImageChops.difference(source, edit).convert("L").filter(ImageFilter.BoxBlur(2))
    diff = np.asarray(difference)
    changed = diff > THRESHOLD
    outside = region if region is not None else ~changed
    # SSIM at the scale its authors' reference code (Wang's ssim.m) uses: downsampled so the shorter side is about
    # 256 px, where its 7-px window sees structure rather than noise; float32 halves the filtering time
    factor = max(1, round(min(edit.size) / 256))
    size = (max(1, edit.width // factor), max(1, edit.height // factor))
    grey_a = np.asarray(source.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float32)
    grey_b = np.asarray(edit.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float32)
    outside_small = np.asarray(Image.fromarray(outside).resize(size, Image.Resampling.NEAREST))
    if min(size) < 7:  # too small for SSIM's window: identical pixels or not
        ssim_map = (grey_a == grey_b).astype(np.float32)
    else:
        _, ssim_map = structural_similarity(grey_a, grey_b, data_range=255, full=True)
    ssim_outside = float(ssim_map[outside_small].mean()) if outside_small.any() else math.nan
    phash = int(imagehash.phash(source) - imagehash.phash(edit))
    heat = difference.point(lambda v: min(255, v * HEAT_GAIN))
    base = Image.blend(edit.convert("L").convert("RGB"), Image.new("RGB", edit.size, "white"), 0.35)
    image = Image.composite(Image.new("RGB", edit.size, (230, 20, 20)), base, heat)
    scores = {name: float(fn(source, edit, mask)) for name, fn in SCORERS.items()}
    return Changes(image, float(changed.mean()), ssim_outside, phash, scores, label)


def changes_of(tracker: Tracker, ref: Any, *, source: Any = None, mask: Any = None, keep: bool = True) -> Changes:
    """The change scores of a journal edit against its source (its first input image, else its parent's image).

    ``source`` and ``mask`` (white where an inpaint may change) override what the journal has: a path, PIL image,
    bytes or a job reference. With ``keep`` the numbers are kept in the journal for history and reports.
    """
    record = tracker.resolve(ref)
    result = tracker.load_result(record)
    before = _image(tracker, source) if source is not None else _source_of(tracker, record, result)
    if before is None:
        raise ValidationError(
            f"{record.ref} has no source image to compare with: it is a {record.mode} job with no kept input"
            " and no parent (give source=)"
        )
    where = _image(tracker, mask) if mask is not None else _mask_of(record, result)
    found = compute(before, result.images[0], where, record.ref)
    if keep:
        tracker.journal.add_scores(record.id, found.as_dict())
    return found


def _image(tracker: Tracker, value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (bytes, bytearray)):
        return Image.open(io.BytesIO(bytes(value)))
    if is_ref(value) or isinstance(value, JobRecord):
        return tracker.load_result(tracker.resolve(value)).images[0]
    try:
        return Image.open(value)
    except (OSError, TypeError, AttributeError) as exc:
        raise ValidationError(
            f"{value!r} is not an image: give a path, PIL image, bytes or a job reference ({exc})"
        ) from None


def _source_of(tracker: Tracker, record: JobRecord, result: Any) -> Image.Image | None:
    mask_url = record.arguments.get("mask_url")
    for item in result.inputs:
        if item.data is not None and (mask_url is None or item.label() != mask_url):
            return Image.open(io.BytesIO(item.data))
    if record.parent_id is not None:
        try:
            return tracker.load_result(tracker.journal.get(record.parent_id)).images[0]
        except JournalError:
            return None
    return None


def _mask_of(record: JobRecord, result: Any) -> Image.Image | None:
    mask_url = record.arguments.get("mask_url")
    if mask_url is None:
        return None
    for item in result.inputs:
        if item.data is not None and (item.label() == mask_url or item.url == mask_url):
            return Image.open(io.BytesIO(item.data))
    return None
