"""Text taken from annotation files, made safe for captions, answers and metadata: one cleaning rule for every
reader's text fields (Ego-Exo4D narrations, EgoIT answers and questions, EgoBench questions and options, EgoClip
captions).

Hostile or broken characters are REMOVED, not rejected: a narration with a stray ESC sequence, a bidi override
(U+202E), a NUL or a zero-width space keeps its row and loses the characters. A field that is empty once cleaned
is the reader's "empty text". Identifiers are not cleaned: they must be valid as they stand (values.py).

    clean_text(s)                 printable Unicode: ANSI escape sequences removed whole, every whitespace
                                  character one space, other control / format (bidi, zero-width, BOM) /
                                  surrogate / private-use / unassigned characters removed; NFC
    clean_text(s, newlines=True)  the same, but line breaks (\\n, \\r\\n, \\r, U+0085, U+2028, U+2029) are kept,
                                  as "\\n" (multi-line EgoExoLearn narrations, VLN-QA prompts)
    clean_field(value)            metadata text: None -> "", numbers as text, cleaned and stripped
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# ECMA-48 sequences: CSI (ESC [ params intermediates final), OSC (ESC ] ... BEL or ESC \), and two-character
# escapes (ESC + 0x40-0x5F); a lone ESC is removed as a control character.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\^_])")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def clean_text(value: str, *, newlines: bool = False) -> str:
    """Printable Unicode (str.isprintable() holds, except for the kept "\\n" with newlines=True); see the module
    docstring."""
    if value.isascii() and value.isprintable():
        return value
    if "\x1b" in value:
        value = _ANSI.sub("", value)
    if newlines:
        value = _LINE_BREAK.sub("\n", value)
    chars = []
    for ch in value:
        if ch == "\n" and newlines:
            chars.append(ch)
        elif ch.isspace():
            chars.append(" ")
        elif unicodedata.category(ch)[0] not in "CZ":
            chars.append(ch)
        elif unicodedata.category(ch) == "Zs":
            chars.append(" ")
    return unicodedata.normalize("NFC", "".join(chars))


def clean_field(value: Any) -> str:
    """A metadata string for the shards: None -> "", numbers as text, cleaned and stripped."""
    if value is None:
        return ""
    return clean_text(str(value)).strip()
