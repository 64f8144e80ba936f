"""Escaping logged text: no control character gets into the trail, nothing is ambiguous, and the
length is capped."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.text import ELLIPSIS, escape_text


def unescape(text: str) -> str:
    """The inverse of escape_text (Python's own decoder reads the same escapes)."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("eve\n2026-01-01 admin login", "eve\\n2026-01-01 admin login"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00byte", "nul\\x00byte"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("bidi \u202eevil\u202c", "bidi \\u202eevil\\u202c"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("typed \\n is not a newline", "typed \\\\n is not a newline"),
        ("Zoë Müller, 東京 ✓", "Zoë Müller, 東京 ✓"),
    ],
)
def test_control_characters_become_visible_escapes(raw: str, escaped: str) -> None:
    assert escape_text(raw, limit=300) == escaped
    assert unescape(escaped) == raw


def test_long_text_is_cut_at_a_whole_escape_and_marked() -> None:
    assert escape_text("abcdef", limit=6) == "abcdef"
    assert escape_text("abcdefg", limit=6) == "abcde" + ELLIPSIS
    # "ab\x1b..." would be cut inside "\x1b": the escape goes whole or not at all.
    assert escape_text("ab\x1bcdef", limit=6) == "ab" + ELLIPSIS
    assert escape_text("x" * 10_000, limit=300) == "x" * 299 + ELLIPSIS


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        escape_text("x", limit=0)


UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


@given(st.text())
def test_any_text_escapes_without_loss(raw: str) -> None:
    out = escape_text(raw, limit=10 * len(raw) + 1)
    assert not any(unicodedata.category(char) in UNSAFE for char in out)
    assert unescape(out) == raw


@given(st.text(), st.integers(min_value=1, max_value=60))
def test_any_text_is_cut_to_the_limit_as_a_prefix_of_its_escape(raw: str, limit: int) -> None:
    whole = escape_text(raw, limit=10 * len(raw) + 1)
    out = escape_text(raw, limit=limit)
    assert len(out) <= limit
    if len(whole) <= limit:
        assert out == whole
    else:
        assert out.endswith(ELLIPSIS) and whole.startswith(out.removesuffix(ELLIPSIS))
