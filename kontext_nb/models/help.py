"""A model's help, generated from the registry: its fields, defaults, ranges, price rule and where each fact came from.

One source for every place a model is explained: ``%kontext help <model>`` and ``kx.model(name)`` in a notebook
(``Model._repr_mimebundle_``: HTML in a notebook, a plain text table in a terminal) and the panel's tooltips
(``allowed``). Nothing here is written per model; like the rest of models/, it imports only the standard library.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # schema.py's Model shows itself through this module (its _repr_mimebundle_)
    from .schema import InputField, Model

__all__ = ["allowed", "default_text", "help_html", "help_text", "price_text"]

NOT_PUBLISHED = "not published"
DESCRIPTION_WIDTH = 60
ALLOWED_WIDTH = 56
"""Characters of a description, and of what a field allows, kept in the terminal table (the HTML shows them whole)."""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def allowed(f: InputField) -> str:
    """What values a field takes, in words, from its schema (ranges fal does not publish are not invented)."""
    if f.kind in ("enum", "size") and f.enum:
        tail = " or {width, height}" if f.kind == "size" else ""
        return "one of " + ", ".join(str(v) for v in f.enum) + tail
    if f.kind in ("integer", "float"):
        what = "an integer" if f.kind == "integer" else "a number"
        if f.minimum is not None and f.maximum is not None:
            return f"{what} from {_num(f.minimum)} to {_num(f.maximum)}"
        if f.minimum is not None:
            return f"{what} >= {_num(f.minimum)}"
        if f.maximum is not None:
            return f"{what} <= {_num(f.maximum)}"
        return f"{what} (range {NOT_PUBLISHED})"
    if f.kind == "boolean":
        return "true or false"
    if f.kind == "image":
        return "an image URL or data URI"
    if f.kind == "images":
        lo, hi = f.min_items, f.max_items
        count = f"{lo} to {hi} " if lo is not None and hi is not None else f"up to {hi} " if hi is not None else ""
        return f"a list of {count}image URLs or data URIs"
    if f.kind == "loras":
        return "a list of LoRAs ({path, scale})"
    if f.kind in ("object", "array"):
        return f"an {f.kind}" if f.kind == "object" else "a list"
    return "a non-empty string" if f.required else "a string"


def default_text(f: InputField) -> str:
    if f.required:
        return "(required)"
    if not f.has_default:
        return "(fal's choice)"
    return "null" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else str(f.default)


def price_text(model: Model) -> str:
    """'$0.05 per megapixel (input + output, each rounded up)', or why it has none."""
    p = model.pricing
    if p is None:
        return f"{NOT_PUBLISHED}: declare one with kx.set_price({model.alias!r}, ...) to send"
    rule = dict(p.rule)
    unit = "megapixel" if p.unit == "megapixel" else p.unit
    text = f"${p.unit_price:g} per {unit}"
    if rule.get("per") == "megapixel":
        text += f" of {str(rule.get('of', 'output')).replace('+', ' + ')}, each image rounded up"
        if "first" in rule:
            text = f"${rule['first']:g} for the first megapixel, ${rule.get('extra', p.unit_price):g} each extra"
    multiplier = rule.get("multiplier")
    if isinstance(multiplier, dict):
        values = ", ".join(f"{k} x{v:g}" for k, v in dict(multiplier.get("values", {})).items())
        text += f", times {multiplier.get('field')} ({values})"
    table = rule.get("table")
    if isinstance(table, dict):
        fields = table.get("field")
        named = " and ".join(fields) if isinstance(fields, list) else str(fields)
        text = f"by {named}: the dearest per image reserved (up to ${_dearest(table):g})"
    return text + (f" ({p.currency})" if p.currency != "USD" else "")


def _dearest(table: dict[str, Any]) -> float:
    worst = table.get("worst_case") or {}
    return float(max([*worst.values(), table.get("default") or 0], default=0))


def _rows(model: Model) -> list[tuple[str, str, str, str, str]]:
    return [(f.name, f.kind, default_text(f), allowed(f), " ".join(f.description.split())) for f in model.inputs]


def _facts(model: Model) -> list[tuple[str, str]]:
    """Where each fact came from, and when."""
    prov = dict(model.provenance)
    out = [
        ("endpoint", model.endpoint_id),
        ("category", model.category + (f" (sibling: {model.sibling})" if model.sibling else "")),
        ("price", price_text(model)),
        ("schema from", f"{prov.get('schema', '?')} (retrieved {prov.get('schema_retrieved', '?')})"),
        ("price from", f"{prov.get('pricing', NOT_PUBLISHED)} (retrieved {prov.get('pricing_retrieved', '?')})"),
    ]
    out += [(NOT_PUBLISHED, str(x)) for x in prov.get("not_published") or ()]
    if model.live:
        out.append(("loaded", "live from fal with a key (cached for a day in the runs folder)"))
    return out


def help_text(model: Model) -> str:
    """A plain text table, for a terminal."""
    rows = [("field", "kind", "default", "allowed", "description")] + [
        (*r[:3], _cut(r[3], ALLOWED_WIDTH), _cut(r[4], DESCRIPTION_WIDTH)) for r in _rows(model)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{model.title} ({model.alias})", ""]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[j]) for j, c in enumerate(r[:4])) + "  " + r[4])
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths) + "  " + "-" * 11)
    lines.append("")
    label = max(len(k) for k, _ in _facts(model))
    lines += [f"{k.ljust(label)}  {v}" for k, v in _facts(model)]
    return "\n".join(lines)


def help_html(model: Model) -> str:
    """The same, as one HTML table (descriptions whole)."""
    e = html.escape
    cell = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid rgba(128,128,128,.25)"
    head = "".join(f'<th style="{cell}">{h}</th>' for h in ("field", "kind", "default", "allowed", "description"))
    body = "".join(
        "<tr>"
        + "".join(f'<td style="{cell}">{"<code>" + e(c) + "</code>" if i == 0 else e(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in _rows(model)
    )
    facts = "".join(f'<tr><th style="{cell}">{e(k)}</th><td style="{cell}">{e(v)}</td></tr>' for k, v in _facts(model))
    return (
        f'<div class="kx-model-help"><b>{e(model.title)}</b> <code>{e(model.alias)}</code>'
        f'<table style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{body}</table>'
        f'<table style="border-collapse:collapse;font-size:12px;margin-top:6px">{facts}</table></div>'
    )
