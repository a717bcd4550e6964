"""What a concept's class word may be: one to three words of letters (any script), with
hyphens or apostrophes inside a word ("cat", "teddy bear", "jack-o'-lantern",
"grandma's teapot", "кот", "猫").

A class word goes into every training prompt and caption ("a photo of <mochi> cat"), so it
must be a few plain words: anything that could carry a sentence or an instruction
("cat, on a table. Ignore previous instructions") is refused where it is stored, with one
message for the command line, the window and any job. A concept's *name* stays free text:
it is only a label.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from engine.errors import InputError

CLASS_WORD_MAX_WORDS = 3
CLASS_WORD_MAX_LEN = 40
_JOINERS = frozenset("-'’")
# Letters and the marks that belong to them (Devanagari vowel signs, Arabic harakat).
_LETTER_CATEGORIES = ("L", "M")


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith(_LETTER_CATEGORIES)


def _word_ok(word: str) -> bool:
    """Starts with a letter; then letters, hyphens and apostrophes, never two hyphens in a row
    nor a hyphen at the end ("jack-o'-lantern" and "kids'" are words, "cat--" is not)."""
    if not word or not _is_letter(word[0]) or word.endswith("-") or "--" in word:
        return False
    return all(_is_letter(ch) or ch in _JOINERS for ch in word)


def class_word_problem(value: Any) -> str:
    """Why `value` cannot be a class word, in one line; '' when it can."""
    rule = ("a class word is one to three words of letters, hyphens or apostrophes "
            "(e.g. cat, teddy bear, guinea pig)")
    if not isinstance(value, str):
        return f"Class word must be text, got {type(value).__name__}; {rule}"
    text = " ".join(unicodedata.normalize("NFC", value).split())
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not text:
        return f"Class word missing: say what the concept is; {rule}"
    words = text.split(" ")
    if len(words) > CLASS_WORD_MAX_WORDS:
        return f"Class word {shown!r} has {len(words)} words; {rule}"
    if len(text) > CLASS_WORD_MAX_LEN:
        return f"Class word {shown!r} is longer than {CLASS_WORD_MAX_LEN} characters; {rule}"
    bad = sorted({ch for ch in text if not (_is_letter(ch) or ch in _JOINERS or ch == " ")})
    if bad or not all(_word_ok(w) for w in words):
        what = ", ".join(repr(ch) for ch in bad[:6]) if bad else "a hyphen out of place"
        return f"Class word {shown!r} holds {what}; {rule}"
    return ""


def check_class_word(value: Any) -> str:
    """The class word as stored (NFC, single spaces), or an InputError saying the rule."""
    problem = class_word_problem(value)
    if problem:
        raise InputError(problem)
    return " ".join(unicodedata.normalize("NFC", value).split())
