"""Header text as it may be shown to a person: control characters made visible, never obeyed.

A SeriesDescription, patient name or kernel is whatever the sender wrote. Written raw to a terminal, an
ESC sequence in it can erase a red RESCAN ALERT line and print a green pass in its place; a bidirectional
override can reverse what a reader sees. Every human-facing output (console, table, `results`, HTML, SR
text) passes header-derived text through `visible`; JSON keeps the value as sent (its encoder escapes
control characters itself), so nothing a user gave is lost.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape


def visible(text: object, keep: str = "") -> str:
    """``text`` with every control and format character (C0, DEL, C1, bidi overrides, zero-width marks, and the
    lone surrogates that stand for undecodable bytes of a file name)
    written as a visible escape such as ``\\x1b`` or ``\\u202e``; the characters in ``keep`` (for HTML, line
    breaks and tabs, which a browser shows as spaces) stay."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in keep:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def markup_safe(text: object) -> str:
    """`visible`, then escaped for rich console markup (a description in [brackets] stays as written)."""
    return escape(visible(text))
