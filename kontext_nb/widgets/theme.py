"""Every colour the views use, from JupyterLab's theme variables (``--jp-*``), so light, dark and high-contrast
themes all read: a colour is either a theme variable or a mix of two (CSS ``color-mix``), and the fallback after
each variable is the light theme's value, for front ends without JupyterLab's variables.

Accent colours (error, warning, success) are mixed toward the theme's strongest text colour (``--jp-ui-font-color0``:
black in a light theme, white in a dark one), which keeps their text at 4.5:1 or more on the theme's background
(WCAG AA; tests/browser/test_theme_fit.py measures it in Chromium).
"""

from __future__ import annotations


def jp(name: str, fallback: str) -> str:
    """A JupyterLab theme variable, with the light theme's value where there is none."""
    return f"var(--jp-{name}, {fallback})"


def mix(colour: str, percent: int, other: str) -> str:
    return f"color-mix(in srgb, {colour} {percent}%, {other})"


INK = jp("ui-font-color0", "#000")
"""The strongest text colour: black in a light theme, white in a dark one."""
TEXT = jp("ui-font-color1", "rgba(0, 0, 0, 0.87)")
MUTED = jp("ui-font-color2", "rgba(0, 0, 0, 0.54)")
"""Secondary text (times, counts, hints): still 4.5:1 on the theme's background."""
PAGE = jp("layout-color1", "#fff")
SURFACE = jp("layout-color2", "#eee")
"""Behind images and on plain buttons."""
BORDER = jp("border-color1", "#bdbdbd")
LINE = jp("border-color2", "#e0e0e0")
ACCENT = jp("brand-color1", "#1976d2")
"""Outlines, focus rings, the chosen button's background."""
ON_ACCENT = jp("ui-inverse-font-color0", "#fff")
"""Text on ACCENT."""
LINK = jp("content-link-color", "#0d47a1")
ERROR = mix(jp("error-color1", "#d32f2f"), 75, INK)
WARN = mix(jp("warn-color1", "#f57c00"), 60, INK)
SUCCESS = mix(jp("success-color1", "#388e3c"), 70, INK)
STAR = mix(jp("warn-color1", "#f57c00"), 65, INK)
PILL = mix(ACCENT, 20, PAGE)
"""A seed badge's background (text: TEXT)."""
PILL_OK = mix(jp("success-color1", "#388e3c"), 22, PAGE)
HIGHLIGHT = mix(jp("warn-color2", "#ffb74d"), 35, PAGE)
"""Behind changed words and settings (text: TEXT)."""
PICKED = mix(ACCENT, 16, PAGE)
HOVER = mix(TEXT, 6, "transparent")

STYLE = f"""<style>
/* ipywidgets' warning and info buttons: their own colours fall under 4.5:1 (white on orange, on cyan) */
.kx-themed .jupyter-button.mod-warning {{ background-color: {WARN}; color: {jp("ui-inverse-font-color0", "#fff")}; }}
.kx-themed .jupyter-button.mod-info {{ background-color: {ACCENT}; color: {ON_ACCENT}; }}
.kx-themed .jupyter-button.mod-primary {{ background-color: {ACCENT}; color: {ON_ACCENT}; }}
/* tab titles and the "advanced" fold: ipywidgets draws the ones not chosen in secondary text on a grey (4.2-4.4:1) */
.kx-themed .jupyter-widgets.widget-tab > .lm-TabBar .lm-TabBar-tab,
.kx-themed .jupyter-widgets.jupyter-widget-tab > .lm-TabBar .lm-TabBar-tab,
.kx-themed .jupyter-widget-Collapse-header {{ color: {TEXT}; }}
/* a narrow panel's tabs shrink, but never below their titles ('Gallery · 2 new' was cut to 'Gallery · 2 n') */
.kx-themed .jupyter-widgets.widget-tab > .lm-TabBar .lm-TabBar-tab,
.kx-themed .jupyter-widgets.jupyter-widget-tab > .lm-TabBar .lm-TabBar-tab {{ min-width: max-content; }}
</style>"""
"""Rules for the ipywidgets controls inside a view whose root has the class ``kx-themed``."""

__all__ = [
    "ACCENT",
    "BORDER",
    "ERROR",
    "HIGHLIGHT",
    "HOVER",
    "INK",
    "LINE",
    "LINK",
    "MUTED",
    "ON_ACCENT",
    "PAGE",
    "PICKED",
    "PILL",
    "PILL_OK",
    "STAR",
    "STYLE",
    "SUCCESS",
    "SURFACE",
    "TEXT",
    "WARN",
    "jp",
    "mix",
]
