"""Making any text safe to store in the audit trail.

Logged text (a typed username, a URL, an e-mail address) comes from users. It must not be able to
forge a second entry in a log viewer or a file export (newline injection), move the cursor or
recolour a terminal (ESC sequences), truncate a C reader (NUL) or reorder what a reader sees
(Unicode bidi overrides, "Trojan source"). Every such character becomes a visible escape, and a
literal backslash is doubled, so that an escape in the output always means an escaped character
in the input (a typed "\\n" reads "\\\\n", a real newline reads "\\n").
"""

import unicodedata

# Control (Cc: C0, DEL, C1), format (Cf: bidi overrides, zero-width characters), line and
# paragraph separators (Zl, Zp: U+2028, U+2029), surrogates and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
ELLIPSIS = "…"


def _escaped(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(value: object, *, limit: int) -> str:
    """`value` as text with every unsafe character escaped, at most `limit` characters long.

    Text that does not fit is cut at a whole escape and ends with "…".
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    text = str(value)
    # Each character gives at least one: nothing past `limit` characters can be kept.
    pieces = [_escaped(char) for char in text[:limit]]
    if len(text) <= limit and sum(len(piece) for piece in pieces) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    length, budget = 0, limit - len(ELLIPSIS)
    for piece in pieces:
        if length + len(piece) > budget:
            break
        kept.append(piece)
        length += len(piece)
    return "".join(kept) + ELLIPSIS
