"""Readable names for downloads and exports: one function, never a path, never empty."""

from __future__ import annotations

import pytest

from kontext_nb.views.names import readable_name, slug


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prompt": "a red fox", "seed": 42, "journal_id": 34}, "0034-seed42-a-red-fox.jpg"),
        ({"prompt": "A Red Fox, in snow!", "seed": 1, "mime": "image/png"}, "seed1-a-red-fox-in-snow.png"),
        ({"prompt": "a fox", "journal_id": 7, "index": 1, "count": 3}, "0007-a-fox-2.jpg"),
        ({"prompt": "{a|b} fox", "kind": "grid", "journal_id": 12, "mime": "image/png"}, "grid-0012-a-b-fox.png"),
        ({"prompt": "../../etc/passwd", "seed": 3}, "seed3-etc-passwd.jpg"),
        ({"prompt": "<img src=x onerror=alert(1)>"}, "img-src-x-onerror-alert-1.jpg"),
        ({"prompt": "Café crème brûlée"}, "cafe-creme-brulee.jpg"),
        ({"prompt": "海の上の猫"}, "image.jpg"),
        ({}, "image.jpg"),
        ({"prompt": "one two three four five six seven eight", "seed": 0}, "seed0-one-two-three-four-five-six.jpg"),
        ({"prompt": "x", "mime": "image/webp"}, "x.webp"),
    ],
)
def test_readable_names(kwargs: dict[str, object], name: str) -> None:
    assert readable_name(**kwargs) == name  # type: ignore[arg-type]


def test_slugs_are_short_and_safe() -> None:
    long = slug("supercalifragilisticexpialidocious " * 3, words=10)
    assert len(long) <= 48 and not long.endswith("-") and set(long) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
