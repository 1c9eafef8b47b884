"""go_split / go_fields against Go's strings.Split and strings.Fields.

Expected results are what Go 1.26 returns for the same input (strings.Split splits an empty
separator per rune; strings.Fields splits on unicode.IsSpace).
"""

from __future__ import annotations

import sys

import pytest

from gostore._types import go_fields, go_split

# Go's unicode.IsSpace: '\t', '\n', '\v', '\f', '\r', ' ', U+0085, U+00A0 in Latin-1, and the
# White_Space property above it.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


@pytest.mark.parametrize(
    ("text", "separator", "expected"),
    [
        ("a,b,c", ",", ["a", "b", "c"]),
        ("a,,b", ",", ["a", "", "b"]),
        (",a,", ",", ["", "a", ""]),
        (",", ",", ["", ""]),
        ("", ",", [""]),
        ("abc", "", ["a", "b", "c"]),
        ("", "", []),
        ("a", "", ["a"]),
        ("🎉日\U0010ffff", "", ["🎉", "日", "\U0010ffff"]),
        ("e\u0301", "", ["e", "\u0301"]),  # per rune, not per grapheme, as Go does
        ("abc", "abc", ["", ""]),
        ("abc", "abcd", ["abc"]),
        ("aaa", "aa", ["", "a"]),
        ("a\x00b\x00", "\x00", ["a", "b", ""]),
        ("x--y----z", "--", ["x", "y", "", "z"]),
        ("a b", " ", ["a", "b"]),
        ("a  b", " ", ["a", "", "b"]),
    ],
)
def test_go_split_matches_go_strings_split(text: str, separator: str, expected: list[str]) -> None:
    assert go_split(text, separator) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   ", []),
        ("a", ["a"]),
        ("  foo bar  baz   ", ["foo", "bar", "baz"]),
        ("a\tb\nc\vd\fe\rf", ["a", "b", "c", "d", "e", "f"]),
        ("a\x85b\xa0c", ["a", "b", "c"]),
        ("a\u3000b\u2028c\u2029d\u202fe\u205ff\u1680g", ["a", "b", "c", "d", "e", "f", "g"]),
        ("a\x1cb\x1dc\x1ed\x1ff", ["a\x1cb\x1dc\x1ed\x1ff"]),
        ("a\x1c b", ["a\x1c", "b"]),
        ("\x1c", ["\x1c"]),
        ("a\u200bb\ufeffc\u180ed", ["a\u200bb\ufeffc\u180ed"]),  # not White_Space in Go
        ("a\x00b", ["a\x00b"]),
        ("日本 語", ["日本", "語"]),
    ],
)
def test_go_fields_matches_go_strings_fields(text: str, expected: list[str]) -> None:
    assert go_fields(text) == expected


def test_go_fields_splits_on_exactly_gos_space_characters() -> None:
    # Every code point Python or Go treats as whitespace, plus some that neither does.
    candidates = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()} | GO_SPACE
    candidates |= {"\x00", "\x1b", "\u200b", "\u180e", "\ufeff", "\u2060", "_"}
    for char in sorted(candidates):
        expected = ["a", "b"] if char in GO_SPACE else [f"a{char}b"]
        assert go_fields(f"a{char}b") == expected, f"U+{ord(char):04X}"
        assert go_fields(f" a{char}b ") == expected, f"U+{ord(char):04X}"


def test_python_whitespace_that_go_keeps_is_exactly_the_separators() -> None:
    # The reason go_fields cannot simply be str.split().
    assert {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()} - GO_SPACE == set(
        "\x1c\x1d\x1e\x1f"
    )


def test_go_fields_runs_of_mixed_space_give_no_empty_fields() -> None:
    assert go_fields("\x85\xa0 a \u3000\t\n b\u2028") == ["a", "b"]
    assert go_fields("\x1c\x85\x1d") == ["\x1c", "\x1d"]
