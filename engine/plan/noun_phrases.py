"""What a caption introduces and whether a scene is a place: the checks that keep the planner
LLM from adding objects to a picture ("...and a ski mask") or storing an object as the
background ("a goldfish").

Both read plain words against resources/scene_words.json, by rules a person can check:

* An *introduced object* is a noun phrase opened by an indefinite or counting determiner
  ("a", "an", "another", "two", "several", ...) or "the": up to five words, ended by a
  preposition, a conjunction, a caption verb or punctuation, adjectives skipped. It is fine
  when it is one of the requested objects (a label within it), part of the scene, or a word
  that adds nothing to the picture (time, light, position, the ground); anything else is an
  object the request did not ask for.
* A *place* is a scene whose head noun (its last word before the first preposition) is a
  place ("a sunny windowsill", "a dog-friendly garden", "a tree house", "the house of a
  family"), not an object ("a goldfish", "a street lamp") nor an event ("a party").

Pure Python; the word lists are read once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from engine.paths import RESOURCES

SCENE_WORDS_FILE = RESOURCES / "scene_words.json"
PHRASE_MAX_WORDS = 5
_OPENERS = frozenset({"a", "an", "another", "the", "two", "three", "four", "five", "six",
                      "several", "many", "few", "some", "more"})
_TOKEN = re.compile(r"[^\W\d_][\w'’-]*|\d+|[^\w\s]")


@dataclass(frozen=True)
class SceneWords:
    places: frozenset[str]
    place_suffixes: tuple[str, ...]
    not_objects: frozenset[str]
    adjectives: frozenset[str]
    breaks: frozenset[str]


@lru_cache(maxsize=1)
def scene_words() -> SceneWords:
    data = json.loads(SCENE_WORDS_FILE.read_text(encoding="utf-8"))
    return SceneWords(frozenset(data["places"]), tuple(data["place_suffixes"]),
                      frozenset(data["not_objects"]), frozenset(data["adjectives"]),
                      frozenset(data["breaks"]))


def _tokens(text: str) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text.replace("’", "'")))


def _word(match: re.Match[str]) -> str:
    return match.group(0).lower()


def _is_word(match: re.Match[str]) -> bool:
    return match.group(0)[0].isalnum()


@lru_cache(maxsize=1024)
def label_pattern(label: str) -> re.Pattern[str]:
    """Where a text mentions `label` (an object's label, a scene's word): its words with any
    white space between them, alone or with a plural ending, in any case. The straight and
    the curly apostrophe are one letter here ("mom's bag" is found in "mom’s bag" and the
    other way round), however the label or the text writes it."""
    words = label.replace("’", "'").split()
    body = r"\s+".join(re.escape(w).replace("'", "['’]") for w in words)
    return re.compile(rf"(?<![\w-]){body}(?P<plural>s|es)?(?![\w-])", re.IGNORECASE)


def mentions(text: str, label: str) -> list[re.Match[str]]:
    return list(label_pattern(label).finditer(text))


def _label_spans(text: str, labels: Sequence[str]) -> list[tuple[int, int]]:
    return [m.span() for label in labels for m in mentions(text, label)]


def _phrase(tokens: list[re.Match[str]], start: int, words: SceneWords) -> list[re.Match[str]]:
    """The words after the opener at `start`, up to the end of its noun phrase. A comma or
    "and" between adjectives does not end it ("a black, white and red headset")."""
    out: list[re.Match[str]] = []
    for tok in tokens[start + 1:]:
        word = _word(tok)
        only_adjectives = bool(out) and all(_word(t) in words.adjectives for t in out)
        if not _is_word(tok) or word in words.breaks or word in _OPENERS:
            if word in (",", "and") and only_adjectives:
                continue
            break
        out.append(tok)
        if len(out) >= PHRASE_MAX_WORDS:
            break
    return out


def introduced_objects(text: str, labels: Sequence[str], scene: str = "") -> list[str]:
    """The noun phrases `text` introduces that are neither a label, nor part of the scene,
    nor a word that adds nothing to the picture: objects the request did not ask for."""
    words = scene_words()
    tokens = _tokens(text)
    taken = _label_spans(text, labels)
    scene_vocab = {w.lower() for w in re.findall(r"[\w'-]+", scene.replace("’", "'"))}
    scene_vocab |= {w[:-1] for w in scene_vocab if w.endswith("s")}
    label_words = {w for label in labels for w in label.lower().split()}
    found: list[str] = []
    for i, tok in enumerate(tokens):
        if _word(tok) not in _OPENERS:
            continue
        phrase = _phrase(tokens, i, words)
        nouns = [_word(t) for t in phrase if _word(t) not in words.adjectives]
        if not nouns:
            continue
        begin, end = phrase[0].start(), phrase[-1].end()
        if any(a < end and begin < b for a, b in taken):
            continue  # one of the requested objects ("a fluffy brown dog")
        if any(n in scene_vocab or n.rstrip("s") in scene_vocab or n in label_words
               or n in words.not_objects for n in nouns):
            continue
        text_of = " ".join(t.group(0) for t in phrase)
        if text_of.lower() not in (f.lower() for f in found):
            found.append(text_of)
    return found


def _head_words(scene: str) -> list[str]:
    """The scene's words before its first preposition, without its opening article."""
    words = scene_words()
    out: list[str] = []
    for tok in _tokens(scene):
        word = _word(tok)
        if not _is_word(tok):
            continue
        only_adjectives = all(w in words.adjectives for w in out)
        if word in words.breaks and out and not (word == "and" and only_adjectives):
            break
        if word not in _OPENERS and word != "and":
            out.append(word)
    return out


def head_modifiers(scene: str) -> list[str]:
    """The scene's head words before its last one: "flower" in "a flower garden", "tree" in
    "a tree house"; an object word there says what kind of place it is."""
    return _head_words(scene)[:-1]


def is_place(scene: str) -> bool:
    """Whether `scene` names a place to put things in or on: its head noun is a place noun,
    or a compound of one ("garden-side", "riverside", "rooftop")."""
    words = scene_words()
    head = _head_words(scene)[-1:]
    for word in head:
        for part in {word, word.split("-")[-1]}:
            if part in words.places or part.rstrip("s") in words.places:
                return True
            if any(part.endswith(sfx) and len(part) > len(sfx) + 2 for sfx in words.place_suffixes):
                return True
    return False
