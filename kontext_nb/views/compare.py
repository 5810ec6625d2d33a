"""Results side by side at equal size, with the settings and prompt words that differ highlighted.

Works the same for fresh results and for results rebuilt from the journal: values come from what was sent
(``result.arguments``), the seed used and the model; a missing input counts as the endpoint's default.
"""

from __future__ import annotations

import difflib
import html
import io
import string
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageOps

from .. import endpoints
from ..errors import ValidationError
from ..result import Result
from . import render

SETTINGS = (
    "prompt",
    "seed",
    "guidance_scale",
    "model",
    "mode",
    "aspect_ratio",
    "output_format",
    "safety_tolerance",
    "enhance_prompt",
    "num_images",
    # [dev] and LoRA
    "num_inference_steps",
    "strength",
    "acceleration",
    "resolution_mode",
    "image_size",
    "loras",
    "enable_safety_checker",
)
"""What a comparison looks at ("mode" stands for the endpoint: text-to-image, edit, multi)."""
BOX = 320
HIGHLIGHT = "#ffe58a"

Item = Result | Image.Image


class Comparison:
    """Results side by side at equal size, captions, and the settings that differ highlighted."""

    def __init__(self, items: Sequence[Item], labels: Sequence[str] | None = None) -> None:
        if not items:
            raise ValueError("nothing to compare: give at least one result")
        if labels is not None and len(labels) != len(items):
            raise ValueError(f"{len(labels)} labels for {len(items)} items: give one label per item")
        self.items: list[Item] = list(items)
        mixed = len({_model_of(x) for x in items if isinstance(x, Result)}) > 1  # models compared: say which
        given = labels if labels is not None else [_default_label(i, x, mixed) for i, x in enumerate(items)]
        self.labels: list[str] = [str(x) for x in given]
        self._settings = [_settings(x) if isinstance(x, Result) else None for x in self.items]

    @classmethod
    def edit_and_source(cls, edit: Result) -> Comparison:
        """The image an edit started from next to the edit, so the change is easy to judge."""
        name = edit.ref or "this result"
        if not edit.inputs:
            raise ValueError(f"{name} has no input image to compare with: it is a {edit.mode} job")
        source = edit.inputs[0]
        if source.data is None:
            raise ValueError(f"{name} was made from a URL ({source.url}) whose bytes were not kept: nothing to compare")
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(source.data)))
        if edit.mode == "inpaint" and len(edit.inputs) > 1 and edit.inputs[1].data is not None:
            mask = Image.open(io.BytesIO(edit.inputs[1].data)).convert("RGB")  # what was allowed to change
            return cls([image, mask, edit], ["source", "mask", edit.ref or "inpainted"])
        return cls([image, edit], ["source", edit.ref or "edit"])

    # -- what differs ----------------------------------------------------------------------------------------------

    def differences(self) -> dict[str, list[Any]]:
        """Setting -> value per item, for the settings that are not the same on every result (images give None)."""
        known = [s for s in self._settings if s is not None]
        return {
            name: [s[name] if s is not None else None for s in self._settings]
            for name in SETTINGS
            if any(s[name] != known[0][name] for s in known[1:])
        }

    def prompt_diff(self) -> list[list[tuple[str, bool]]]:
        """Each prompt's words, True where they changed: against the first result's prompt, and for that
        prompt the words no other result kept. Items without a prompt (plain images) give []."""
        words = [s["prompt"].split() if s is not None else None for s in self._settings]
        first = next((i for i, w in enumerate(words) if w is not None), None)
        if first is None:
            return [[] for _ in words]
        base = [_norm(w) for w in words[first] or []]
        kept = [False] * len(base)
        out: list[list[tuple[str, bool]]] = []
        for i, item_words in enumerate(words):
            if item_words is None or i == first:
                out.append([])
                continue
            changed = [True] * len(item_words)
            matcher = difflib.SequenceMatcher(None, base, [_norm(w) for w in item_words], autojunk=False)
            for a, b, n in matcher.get_matching_blocks():
                changed[b : b + n] = [False] * n
                kept[a : a + n] = [True] * n
            out.append(list(zip(item_words, changed, strict=True)))
        others = sum(w is not None for w in words) > 1
        out[first] = [(w, others and not k) for w, k in zip(words[first] or [], kept, strict=True)]
        return out

    # -- notebook and terminal -------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        diffs = self.differences()
        lines = [f"Comparison of {len(self.items)}: {', '.join(self.labels)}"]
        lines += [f"  {label}: {self._caption(item)}" for label, item in zip(self.labels, self.items, strict=True)]
        if "prompt" not in diffs and (prompt := self._common_prompt()):
            lines.append(f"  prompt: {prompt}")
        if not diffs:
            return "\n".join(lines + (["No settings differ."] if self._compared() else []))
        lines.append("Differences:")
        table = [["", *self.labels]] + [[k, *map(_show, v)] for k, v in diffs.items() if k != "prompt"]
        widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
        if len(table) > 1:
            lines += ["  " + "  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip() for row in table]
        if "prompt" in diffs:
            lines.append("  prompt (changed words in [brackets]):")
            for label, words in zip(self.labels, self.prompt_diff(), strict=True):
                if words:
                    lines.append(f"    {label}: " + " ".join(f"[{w}]" if c else w for w, c in words))
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._html()}

    def _html(self, box: int = BOX) -> str:
        esc = html.escape
        diffs = self.differences()
        height = self._box_height(box)
        marked = self.prompt_diff() if "prompt" in diffs else [[] for _ in self.items]
        figures = []
        for label, item, words in zip(self.labels, self.items, marked, strict=True):
            image, flagged = _first_image(item)
            data, mime = render.thumbnail(image, max(box, height))
            blur = "filter:blur(14px);" if flagged else ""
            prompt = " ".join(f"<mark>{esc(w)}</mark>" if c else esc(w) for w, c in words)
            figures.append(
                f'<figure style="margin:0;width:{box}px">'
                f'<div style="width:{box}px;height:{height}px;background:#f3f3f3;border-radius:4px;overflow:hidden">'
                f'<img src="{render.data_uri(data, mime)}" alt="{esc(label)}"'
                f' style="width:100%;height:100%;max-width:none;object-fit:contain;{blur}"/></div>'
                f'<figcaption style="margin-top:4px"><b>{esc(label)}</b> · {esc(self._caption(item))}'
                + (f'<div style="margin-top:2px">{prompt}</div>' if prompt else "")
                + "</figcaption></figure>"
            )
        common = self._common_prompt() if "prompt" not in diffs else None
        head = f'<div style="margin-bottom:6px"><b>{esc(common)}</b></div>' if common else ""
        row = f'<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">{"".join(figures)}</div>'
        return f'<div class="kontext-compare" style="font:12px sans-serif">{head}{row}{self._table_html(diffs)}</div>'

    def rows(self) -> list[tuple[str, list[str], list[bool]]]:
        """The differing settings other than the prompt: (name, each item's value as text, whether it differs
        from the first result's value) -- the one rule for what a table highlights."""
        diffs = self.differences()
        if not any(k != "prompt" for k in diffs):
            return []
        first = next(i for i, s in enumerate(self._settings) if s is not None)
        return [
            (
                name,
                [_show(v) for v in values],
                [
                    s is not None and i != first and v != values[first]
                    for i, (s, v) in enumerate(zip(self._settings, values, strict=True))
                ],
            )
            for name, values in diffs.items()
            if name != "prompt"
        ]

    def note(self) -> str:
        """A line for when no table shows: 'only the prompt differs ...', 'no settings differ' or ''."""
        diffs = self.differences()
        if any(k != "prompt" for k in diffs) or (not diffs and not self._compared()):
            return ""
        return "only the prompt differs: changed words are marked" if diffs else "no settings differ"

    def captions(self) -> list[str]:
        """Each item's caption: seed and settings for a result, the size for a plain image."""
        return [self._caption(item) for item in self.items]

    def common_prompt(self) -> str | None:
        """The one prompt shown above the images when every result has the same prompt."""
        return self._common_prompt() if "prompt" not in self.differences() else None

    def _table_html(self, diffs: dict[str, list[Any]]) -> str:
        esc, td = html.escape, "padding:2px 8px;border:1px solid #ddd;text-align:left"
        rows = self.rows()
        if not rows:
            note = self.note()
            return f'<div style="margin-top:6px;opacity:.7">{note}</div>' if note else ""
        out = [f'<table style="border-collapse:collapse;margin-top:8px"><tr><th style="{td}"></th>']
        out += [f'<th style="{td}">{esc(x)}</th>' for x in self.labels]
        out.append("</tr>")
        for name, values, hot in rows:
            out.append(f'<tr><th style="{td}">{esc(name)}</th>')
            for v, h in zip(values, hot, strict=True):
                out.append(f'<td style="{td}{";background:" + HIGHLIGHT if h else ""}">{esc(v)}</td>')
            out.append("</tr>")
        return "".join(out) + "</table>"

    def slider_html(self, left: int = 0, right: int = 1, side: int = 512) -> str:
        """Two images stacked: ``left`` on top, clipped by a box the user drags wider or narrower (its
        bottom-right corner is a CSS resize handle). Pure HTML and CSS, because notebook outputs may strip
        scripts and an ``<input type=range>`` cannot move anything without them."""
        esc = html.escape
        height = self._box_height(side, (left, right))
        img = f"width:{side}px;height:{height}px;max-width:none;object-fit:contain;display:block"
        srcs = []
        for k in (left, right):
            data, mime = render.thumbnail(_first_image(self.items[k])[0], max(side, height))
            srcs.append(render.data_uri(data, mime))
        clip = (
            f"position:absolute;left:0;top:0;width:{side // 2}px;min-width:12px;max-width:{side}px;height:{height}px;"
            "resize:horizontal;overflow:hidden;border-right:2px solid #fff;box-shadow:1px 0 3px rgba(0,0,0,.5)"
        )
        return (
            f'<div class="kontext-slider" style="font:12px sans-serif">'
            f'<div style="position:relative;width:{side}px;height:{height}px;background:#f3f3f3">'
            f'<img src="{srcs[1]}" alt="{esc(self.labels[right])}" style="{img}"/>'
            f'<div style="{clip}"><img src="{srcs[0]}" alt="{esc(self.labels[left])}" style="{img}"/></div></div>'
            f'<div style="width:{side}px;display:flex;justify-content:space-between;margin-top:2px">'
            f"<span>◀ {esc(self.labels[left])}</span><span style='opacity:.6'>drag the corner handle ↔</span>"
            f"<span>{esc(self.labels[right])} ▶</span></div></div>"
        )

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _caption(self, item: Item) -> str:
        if not isinstance(item, Result):
            return f"{item.width}x{item.height}"
        more = len(item.image_bytes) - 1
        return f"seed {item.seed} · {render.settings_line(item)}" + (f" · +{more} more" if more > 0 else "")

    def _compared(self) -> bool:
        """Whether there are two results to compare settings between (a plain image has none)."""
        return sum(s is not None for s in self._settings) > 1

    def _common_prompt(self) -> str | None:
        return next((s["prompt"] for s in self._settings if s is not None), None)

    def _box_height(self, width: int, which: Sequence[int] | None = None) -> int:
        """One height for every box: the tallest item's shape, within 0.4 and 1.6 times the width."""
        images = [_first_image(self.items[i])[0] for i in (which if which is not None else range(len(self.items)))]
        tallest = max(im.height / im.width for im in images)
        return round(width * min(1.6, max(0.4, tallest)))


def _settings(result: Result) -> dict[str, Any]:
    spec = endpoints.get_endpoint(result.endpoint)
    names = {f.name for f in spec.inputs}
    special = {"prompt": result.arguments.get("prompt") or result.prompt, "seed": result.seed}
    special |= {"model": result.model, "mode": result.mode}
    out: dict[str, Any] = {}
    for name in SETTINGS:
        if name in special:
            out[name] = special[name]
        else:
            value = result.arguments.get(name)
            if value is None and name in names and spec.field(name).has_default:
                value = spec.field(name).default
            out[name] = value
    return out


def _default_label(i: int, item: Item, with_model: bool = False) -> str:
    ref = item.ref if isinstance(item, Result) else None
    label = ref or f"#{i + 1}"
    return f"{label} · {_model_of(item)}" if with_model and isinstance(item, Result) else label


def _model_of(result: Result) -> str:
    """A result's model by its short alias (max, seedream4-edit); its endpoint id when this version lacks it."""
    try:
        return str(result.model)
    except ValidationError:
        return result.endpoint


def _first_image(item: Item) -> tuple[Image.Image, bool]:
    if isinstance(item, Result):
        return item.images[0], item.has_nsfw_concepts[:1] == [True]
    return item, False


def _norm(word: str) -> str:
    return word.strip(string.punctuation).lower()


def _show(value: Any) -> str:
    return "—" if value is None else str(value)
