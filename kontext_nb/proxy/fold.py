"""The blocklist's one normaliser: what a prompt looks like, not how it was typed.

'ＣＡＴ', 'c\u200bat', 'сat' (Cyrillic с), 'c̲a̲t̲', 'ćat', 'Ꮯat' (Cherokee), 'ꓚat' (Lisu), 'ᴄᴀᴛ' (small capitals)
and 'c\ufff9at' all read 'cat'. Format characters and other default-ignorable code points are dropped,
combining marks too (after NFD), then NFKC (compatibility forms) and casefold, and every
non-ASCII character that Unicode's confusables table (UTS #39, as the confusable-homoglyphs package
ships it) or its own name ("LATIN LETTER SMALL CAPITAL A") says looks like one ASCII letter or digit
becomes that letter. ASCII itself is left alone: '0' for 'o' and '1' for 'l' are spelling, not disguise.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt) that are not format characters (Cf): invisible fillers
# and variation selectors
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]")
_DROPPED_CATEGORIES = ("Cf", "Mn", "Me", "Mc")  # format characters (U+200B, U+FFF9, tags...) and combining marks
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])$")


@functools.cache
def skeleton_table() -> dict[int, str]:
    """Non-ASCII code point -> the ASCII letter or digit it is confusable with (lowercase)."""
    from confusable_homoglyphs import confusables  # Unicode's confusables.txt, as JSON

    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    table: dict[int, str] = {}

    def target(char: str, seen: frozenset[str] = frozenset()) -> str | None:
        """The ASCII letter/digit ``char`` is confusable with, following chains (ᴀ -> ꭺ -> A)."""
        for entry in data.get(char, ()):
            other = entry.get("c", "")
            if len(other) == 1 and other.isascii() and other.isalnum():
                return other.lower()
        for entry in data.get(char, ()):
            other = entry.get("c", "")
            if len(other) == 1 and other not in seen and not other.isascii():
                found = target(other, seen | {char})
                if found is not None:
                    return found
        return None

    for key, entries in data.items():
        if len(key) != 1:
            continue
        if key.isascii():  # the confusables of an ASCII letter all read as it
            if key.isalnum():
                for entry in entries:
                    other = entry.get("c", "")
                    if len(other) == 1 and not other.isascii():
                        table.setdefault(ord(other), key.lower())
            continue
        found = target(key)
        if found is not None:
            table.setdefault(ord(key), found)
    for code in range(0x1D00, 0x1D2C):  # Phonetic Extensions: small capitals not in the confusables table
        match = _SMALL_CAPITAL.match(unicodedata.name(chr(code), ""))
        if match:
            table.setdefault(code, match.group(1).lower())
    for code in (0x0280, 0x0274, 0x0262, 0x029C, 0x026A, 0x029F, 0x0299, 0x028F, 0xA7AF):
        match = _SMALL_CAPITAL.match(unicodedata.name(chr(code), ""))
        if match:
            table.setdefault(code, match.group(1).lower())
    return table


def _drop_invisible(text: str) -> str:
    text = _IGNORABLE.sub("", text)
    return "".join(c for c in text if unicodedata.category(c) not in _DROPPED_CATEGORIES)


def fold(text: str) -> str:
    """The text as the blocklist compares it (see the module's docstring)."""
    table = skeleton_table()
    text = _drop_invisible(unicodedata.normalize("NFD", text.translate(table)))  # before NFKC turns 𝐈 into I
    text = unicodedata.normalize("NFKC", text).casefold().translate(table)
    return unicodedata.normalize("NFC", _drop_invisible(unicodedata.normalize("NFD", text)).translate(table))


def disguises(letter: str) -> list[str]:
    """Every non-ASCII character the table reads as this ASCII letter or digit (for tests and audits)."""
    return sorted(chr(code) for code, target in skeleton_table().items() if target == letter)
