"""A canary fal key, and the forms it could leak in: for the tests that prove the key is shown nowhere.

Imported by test_security.py, the browser tests and tests/proxy (``from canary import leaks``; tests/ is on sys.path).
"""

from __future__ import annotations

import base64
import secrets


def new_canary() -> str:
    """A key no one has: ``kxcanary-`` and 24 random hex digits."""
    return "kxcanary-" + secrets.token_hex(12)


def leaks(data: str | bytes, canary: str) -> list[str]:
    """The forms of ``canary`` found in data: as written, a long piece of its secret part, hex, UTF-16, and base64
    at each alignment inside a longer string. Names of forms only, so a report never repeats the key."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    secret = canary.split("-", 1)[1]
    forms = {
        "plain": canary.encode(),
        "secret head": secret[:12].encode(),
        "secret tail": secret[-12:].encode(),
        "hex": canary.encode().hex().encode(),
        "HEX": canary.encode().hex().upper().encode(),
        "utf-16": canary.encode("utf-16-le"),
    }
    for shift in range(3):  # base64 of the canary at each alignment inside a longer string
        encoded = base64.b64encode(b"\0" * shift + canary.encode())
        forms[f"base64/{shift}"] = encoded[4 * (shift > 0) : -4]
    return [name for name, needle in forms.items() if needle in raw]
