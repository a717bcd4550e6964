"""Words as the captions and the training prompts join them, one definition each: a scene
phrase ("in a garden"), the bare scene ("a garden"), a list joined with "and", an article
chosen from the word ("an owl", "a unicorn", "an hourglass", "sunglasses", "my
grandmother's clock"), and the repair of the articles in a text someone else wrote.

Training prompts must speak the captions' language (Gen4Gen's separate-background strategy
reads the scene back out of a caption), so both use these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A scene that starts with one of these already says where it is; others get "in".
PREPOSITIONS = ("on ", "in ", "at ", "by ", "under ", "inside ", "near ", "beside ",
                "outside ", "against ", "among ", "over ", "underneath ", "along ", "across ")


# Characters a terminal acts on instead of showing (ANSI escapes, bell, backspace, the C1
# controls) and the bidirectional overrides that reorder what is shown: a prompt or a name
# printed raw could rewrite the screen. Each is shown as its escape (\x1b) instead.
_ACTING = [c for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
_REORDERING = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" for c in _ACTING} | {c: f"\\u{c:04x}" for c in _REORDERING}
_ESCAPES_KEEP_LINES = {c: e for c, e in _ESCAPES.items() if c not in (0x09, 0x0A, 0x0D)}


def printable(text: str, keep_lines: bool = False) -> str:
    """`text` with every character a terminal would act on shown as its escape; with
    `keep_lines`, tabs, newlines and carriage returns are left as they are (whole output)."""
    return text.translate(_ESCAPES_KEEP_LINES if keep_lines else _ESCAPES)


def squash(text: str) -> str:
    """Runs of white space as one space, ends trimmed."""
    return " ".join(text.split())


def scene_phrase(scene: str) -> str:
    """The scene as it runs on from the objects: 'a sunlit kitchen' -> 'in a sunlit kitchen';
    'On a table' -> 'on a table'; '' -> ''."""
    text = squash(scene).strip(" ,.;:")
    if not text:
        return ""
    if text.lower().startswith(PREPOSITIONS):
        return text[0].lower() + text[1:]
    return f"in {text}"


def bare_scene(scene: str) -> str:
    """'on a wooden table in a kitchen.' -> 'a wooden table in a kitchen'."""
    text = squash(scene).strip(" ,.;:")
    lowered = text.lower()
    for prep in PREPOSITIONS:
        if lowered.startswith(prep):
            return text[len(prep):].strip()
    return text


def join_words(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + f" and {parts[-1]}"


# ----------------------------------------------------------------------------- articles
# An indefinite article is chosen by how the next word sounds, and left out before a plural
# ("sunglasses", "running shoes") or a possessive ("my grandmother's clock", "dad's mug").

_DETERMINERS = frozenset({
    "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "that",
    "these", "those", "some", "any", "every", "each", "no", "one", "two", "three", "four",
    "another", "several", "many", "few",
})
# Plural nouns without a singular in everyday use.
_PLURAL_ONLY = frozenset({
    "glasses", "sunglasses", "spectacles", "goggles", "binoculars", "headphones", "earphones",
    "earbuds", "scissors", "pliers", "tongs", "tweezers", "trousers", "pants", "jeans",
    "shorts", "tights", "leggings", "pyjamas", "pajamas", "overalls", "clothes", "mittens",
})
_IRREGULAR_PLURALS = frozenset({
    "mice", "geese", "teeth", "feet", "children", "people", "men", "women", "oxen", "cacti",
    "fungi", "lice",
})
# Singular nouns that end in a plain "s" ("-ss", "-us" and "-is" are singular by rule).
_SINGULAR_S = frozenset({
    "lens", "canvas", "atlas", "gas", "bias", "alias", "chaos", "cosmos", "kudos",
    "rhinoceros", "pancreas", "series", "species", "news", "chess", "dais", "christmas",
    "bus", "yes", "thermos", "octopus", "walrus", "platypus", "hippopotamus",
})
# Words whose first letter is a vowel but whose first sound is not ("a unicorn", "a one-eyed
# cat", "a euro"), and words whose first letter is not but whose first sound is ("an hour").
_CONSONANT_SOUND = re.compile(
    r"^(?:uni(?!n[^aeiou])|use|usu|uten|uti|uto|uku|ura|ure|uri(?!n)|uvu|euc|eul|eur|eu|ewe|"
    r"one\b|once\b|ouija)")
_SILENT_H = re.compile(r"^(?:hour|honest|honou?r|heir)")
# Letters read out as a name in "X-ray", "T-shirt": these names start with a vowel sound.
_VOWEL_LETTER_NAMES = frozenset("aefhilmnorsx")


def _words(phrase: str) -> list[str]:
    return squash(phrase).lower().replace("\u2019", "'").split()


def is_possessive(phrase: str) -> bool:
    """'my grandmother's clock', "dad's mug", "the kids' table"."""
    words = _words(phrase)
    if not words:
        return False
    return words[0] in ("my", "your", "his", "her", "its", "our", "their") or any(
        w.endswith(("'s", "s'")) for w in words)


def is_plural(phrase: str) -> bool:
    """Whether the phrase's last word is plural: 'running shoes', 'sunglasses', 'mice';
    not 'cactus', 'glass', 'lens', 'iris'."""
    words = _words(phrase)
    if not words:
        return False
    last = words[-1].split("-")[-1]
    if last in _PLURAL_ONLY or last in _IRREGULAR_PLURALS:
        return True
    if last in _SINGULAR_S or len(last) < 3 or not last.endswith("s"):
        return False
    return not last.endswith(("ss", "us", "is", "'s"))


def starts_with_vowel_sound(word: str) -> bool:
    text = squash(word).lower().lstrip("'\u2019\"(")
    if len(text) > 1 and text[1] == "-" and text[0].isalpha():  # "X-ray", "T-shirt"
        return text[0] in _VOWEL_LETTER_NAMES
    if _SILENT_H.match(text):
        return True
    if _CONSONANT_SOUND.match(text):
        return False
    return text[:1] in ("a", "e", "i", "o", "u")


def article(phrase: str) -> str:
    """The indefinite article `phrase` takes: 'a', 'an', or '' for a plural, a possessive or
    a phrase that already starts with a determiner ('the moon')."""
    words = _words(phrase)
    if not words or words[0] in _DETERMINERS or is_possessive(phrase) or is_plural(phrase):
        return ""
    return "an" if starts_with_vowel_sound(words[0]) else "a"


def with_article(phrase: str) -> str:
    """'an owl', 'a unicorn', 'sunglasses', "my grandmother's clock"."""
    text = squash(phrase)
    chosen = article(text)
    return f"{chosen} {text}" if chosen else text


_ARTICLE_RE = re.compile(r"\b(?P<art>an?)(?P<gap>\s+)(?P<next>[^\W\d_][\w'\u2019-]*)",
                         re.IGNORECASE)


# Words that end a noun phrase: an article before them belongs to another noun ("a pair of
# sunglasses" takes its "a" from "pair").
_PHRASE_BREAKS = frozenset({
    "of", "and", "or", "with", "to", "in", "on", "at", "by", "for", "from", "next", "near",
    "under", "behind", "beside", "between", "is", "are", "sits", "sit", "stands", "lies",
})


def _phrase_after(text: str, start: int, phrases: Sequence[str]) -> str | None:
    """The known phrase (a label) that `text[start:]` leads to over at most two adjectives
    ('a small red <label>'), else None."""
    words = re.findall(r"[\w'\u2019-]+|[^\w\s]", text[start:start + 160].lower())
    for skip in range(min(3, len(words))):
        if skip and (words[skip - 1] in _PHRASE_BREAKS or not words[skip - 1][0].isalnum()):
            return None
        for phrase in sorted(phrases, key=len, reverse=True):
            parts = phrase.lower().split()
            if words[skip:skip + len(parts)] == parts:
                return phrase
    return None


def article_problems(text: str, phrases: Iterable[str] = ()) -> list[str]:
    """Every 'a'/'an' in `text` that does not fit what follows ('a owl', 'an unicorn',
    'a sunglasses', "a my grandmother's clock"); `phrases` are the text's known nouns, so an
    article a few adjectives before a plural one counts too ('a black sunglasses')."""
    return [m.group(0) for m in _ARTICLE_RE.finditer(text)
            if _fixed_article(text, m, list(phrases)) != m.group("art").lower()]


def _fixed_article(text: str, m: re.Match[str], phrases: Sequence[str]) -> str:
    known = _phrase_after(text, m.start("next"), phrases)
    if known is not None and not article(known):
        return ""
    next_word = m.group("next")
    if is_possessive(next_word):
        return ""
    if is_plural(next_word) and _ends_phrase(text, m.end("next")):
        return ""  # "a shoes." but not "a glasses case"
    return "an" if starts_with_vowel_sound(next_word) else "a"


def _ends_phrase(text: str, end: int) -> bool:
    """Whether the word ending at `end` is the last of its noun phrase."""
    following = re.match(r"\s*([\w'\u2019-]+|[^\w\s]|$)", text[end:])
    word = following.group(1).lower() if following else ""
    return not word or not word[0].isalnum() or word in _PHRASE_BREAKS


def fix_articles(text: str, phrases: Iterable[str] = ()) -> str:
    """`text` with each wrong 'a'/'an' replaced by the right one, or dropped before a plural
    or a possessive (see article_problems); the first letter keeps its case."""
    known = list(phrases)

    def replace(m: re.Match[str]) -> str:
        chosen = _fixed_article(text, m, known)
        art = m.group("art")
        if chosen == art.lower():
            return m.group(0)
        if not chosen:
            following = m.group("next")
            return following[0].upper() + following[1:] if art[0].isupper() else following
        chosen = chosen[0].upper() + chosen[1:] if art[0].isupper() else chosen
        return chosen + m.group("gap") + m.group("next")

    return _ARTICLE_RE.sub(replace, text)
