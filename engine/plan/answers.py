"""What the planner's LLM may say, and how we read it: labels, size priors, parsers, checks.

Nothing here trusts the model. Each parser takes whatever text came back (garbage, another
prompt, invented objects, NaN, a megabyte of one token) and returns either a clean value or
the reasons it was refused; the caller re-asks once and then falls back. Pure Python.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from engine.paths import RESOURCES
from engine.plan.layout_solver import Relation
from engine.plan.noun_phrases import head_modifiers, introduced_objects, is_place, mentions
from engine.text import article_problems, with_article

PROMPTS_DIR = RESOURCES / "prompts"
SIZE_PRIORS_FILE = RESOURCES / "size_priors.json"
FALLBACKS_FILE = RESOURCES / "planner_fallbacks.json"

LABEL_MAX_LEN = 32
SCENE_MAX_CHARS, SCENE_MAX_WORDS = 70, 10
CAPTION_MAX_CHARS, CAPTION_MIN_WORDS, CAPTION_MAX_WORDS = 320, 4, 60
HEIGHT_CM_RANGE = (1.0, 1000.0)
GROUP_SIZES = (2, 4)
# Words no caption or scene of ours needs; they mark a model talking about its instructions.
_INJECTION_WORDS = frozenset({
    "ignore", "instruction", "instructions", "prompt", "prompts", "assistant", "system",
    "jailbreak", "password", "http", "https", "www", "user", "model", "json", "objects",
    "caption", "scenes", "groups",
})
# Words in the size table that are also colours, materials or verbs ("an orange cat",
# "a glass vase"): not counted as an invented object.
_AMBIGUOUS_WORDS = frozenset({
    "orange", "lemon", "glass", "watch", "cap", "pen", "box", "stone", "rock", "log", "pot",
    "figure", "toy", "bear", "frame", "plant", "trainer", "trainers", "auto", "jug", "puppet",
    "glasses",
})
_CAPTION_PUNCTUATION = frozenset(" .,'’-!?;()")
_SCENE_PUNCTUATION = frozenset(" '’-")
_PREPOSITIONS = frozenset({"in", "on", "at", "by", "near", "with", "under", "of", "beside",
                           "during", "next", "behind", "inside", "outside", "from", "for", "and",
                           "over", "above", "below", "between", "among", "along"})
_ARTICLES = ("a ", "an ", "the ", "some ")
_SENTENCE_WORDS = frozenset({"is", "are", "was", "were", "be", "been", "reply", "answer",
                             "example", "examples", "line", "text", "following", "below"})
_COMMON_WORDS = _PREPOSITIONS | frozenset({
    "a", "an", "the", "some", "is", "are", "sits", "sit", "stands", "stand", "lies", "lie",
    "front", "left", "right", "top", "side", "to", "its", "it", "their", "there", "next",
})
_SMALLER = frozenset({"small", "little", "tiny", "mini", "miniature", "short"})
_BIGGER = frozenset({"big", "large", "huge", "giant", "tall", "enormous"})


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class SizePrior:
    height_cm: float
    width_cm: float
    where: str = "any"  # indoor | outdoor | any
    scene_ok: bool = False  # furniture or surface: a scene may mention it


@dataclass(frozen=True)
class FallbackScene:
    text: str
    prep: str  # "in" or "on": what a caption puts before the scene


class Vocabulary:
    """The size table (class word -> prior) with synonyms, plus the fallback scenes."""

    def __init__(self, priors: dict, fallbacks: dict) -> None:
        default = priors["default"]
        self.default = SizePrior(float(default["h"]), float(default["w"]), default["where"])
        self.classes = {
            word: SizePrior(float(e["h"]), float(e["w"]), e.get("where", "any"),
                            bool(e.get("scene", False)))
            for word, e in priors["classes"].items()
        }
        self.synonyms: dict[str, str] = dict(priors["synonyms"])
        words = {w for w, p in self.classes.items() if not p.scene_ok}
        words |= {s for s, t in self.synonyms.items() if not self.classes[t].scene_ok}
        self.object_words = frozenset(words - _AMBIGUOUS_WORDS)
        self.scenes = {where: tuple(FallbackScene(s["text"], s["prep"]) for s in entries)
                       for where, entries in fallbacks["scenes"].items()}
        self.on_words = frozenset(fallbacks["on_words"])
        self.caption_patterns: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in fallbacks["captions"].items()}

    def lookup(self, class_word: str) -> SizePrior | None:
        """The prior for a class word ("Ginger cats" -> cat), or None when unknown."""
        text = clean_label(class_word)
        candidates = [text]
        for suffix in ("es", "s"):
            if text.endswith(suffix) and len(text) > len(suffix) + 2:
                candidates.append(text[: -len(suffix)])
        words = text.split()
        candidates += [" ".join(words[i:]) for i in range(1, len(words))]
        candidates += list(reversed(words))
        for word in candidates:
            if word in self.classes:
                return self.classes[word]
            if word in self.synonyms:
                return self.classes[self.synonyms[word]]
        return None

    def scene_prep(self, scene: str) -> str:
        return "on" if scene_head(scene) in self.on_words else "in"


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    priors = json.loads(SIZE_PRIORS_FILE.read_text(encoding="utf-8"))
    fallbacks = json.loads(FALLBACKS_FILE.read_text(encoding="utf-8"))
    return Vocabulary(priors, fallbacks)


@lru_cache(maxsize=16)
def prompt_template(name: str) -> str:
    """A prompt from resources/prompts, without the trailing newline (the model goes on from
    the last line's end)."""
    return (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8").rstrip("\n")


def example_values(template: str) -> list[str]:
    """The worked examples' answers in a template (its lines without placeholders)."""
    out = []
    for line in template.splitlines():
        if "$" in line or ":" not in line:
            continue
        out.append(line.split(":", 1)[1].strip())
    return out


# --------------------------------------------------------------------------- labels


def clean_label(text: str) -> str:
    """A class word as it goes into a prompt: lowercase letters, digits, spaces, hyphens.

    Commas, semicolons and colons are the prompt's own separators, and newlines would start a
    new field, so none of them survives.
    """
    if not isinstance(text, str):
        return "object"
    # The curly apostrophe is the straight one ("mom’s bag" is "mom's bag", not "mom s bag").
    norm = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    kept = "".join(ch if ch.isalnum() or ch in "-'" else " " for ch in norm)
    words = kept.split()
    label = " ".join(words)[:LABEL_MAX_LEN].strip(" -'")
    return label or "object"


def object_labels(concepts: Sequence[tuple[str, str]]) -> list[str]:
    """One distinct label per (name, class word): the class word, or "name class word" when
    two concepts of the group share a class word, numbered if even that collides."""
    base = [clean_label(cw) for _n, cw in concepts]
    labels = []
    for (name, _cw), word in zip(concepts, base, strict=True):
        labels.append(word if base.count(word) == 1 else
                      clean_label(f"{name} {word}")[:LABEL_MAX_LEN].strip())
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if labels.count(label) > 1 or label in seen:
            seen[label] = seen.get(label, 0) + 1
            labels[i] = f"{label} {seen[label]}"
    return labels


def names_every_object(caption: str, labels: Sequence[str]) -> bool:
    return all(mentions(caption, label) for label in labels)


def scene_head(scene: str) -> str:
    """The scene's main noun, by a rule a person can check: the last word before the first
    preposition ("a sunny windowsill" -> windowsill, "an old house with a garden" -> house)."""
    words = re.findall(r"[\w'-]+", scene.lower())
    head: list[str] = []
    for word in words:
        if word in _PREPOSITIONS and head:
            break
        head.append(word)
    return head[-1] if head else ""


# --------------------------------------------------------------------------- common checks


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text.lower())


def _ngrams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _text_problems(text: str, allowed: frozenset[str], max_chars: int,
                   labels: Sequence[str]) -> list[str]:
    problems = []
    if len(text) > max_chars:
        problems.append(f"longer than {max_chars} characters")
    odd = sorted({ch for ch in text if not (ch.isalpha() or ch.isdigit() or ch in allowed)})
    if odd:
        problems.append(f"contains characters {''.join(odd[:8])!r}")
    own = {w for label in labels for w in label.split()}
    injected = sorted((_INJECTION_WORDS - own) & set(_words(text)))
    if injected:
        problems.append(f"talks about {', '.join(injected)}")
    return problems


def _echo_problems(text: str, examples: Sequence[str], own_text: str) -> list[str]:
    """Four words in a row copied from a worked example (and not from this request), two of
    them content words: "a green backpack and" is an echo, "in front of a" is English."""
    copied = set()
    for example in examples:
        copied |= _ngrams(example)
    copied -= _ngrams(own_text)
    hits = {g for g in _ngrams(text) & copied if len(set(g) - _COMMON_WORDS) >= 2}
    return [f"copies the example ({' '.join(sorted(hits)[0])!r})"] if hits else []


def _invented(text: str, labels: Sequence[str], vocab: Vocabulary, scene: str = "") -> list[str]:
    """Object words from the size table that are none of the labels nor part of the scene.
    A word right after a label names that object ("a bonsai tree"), and a label's own words
    are not inventions ("cat" for the labels "tama cat" and "mochi cat")."""
    taken = [m.span() for label in labels for m in mentions(text, label)]
    own = {w for label in labels for w in label.split()}
    invented = set()
    for word in vocab.object_words:
        if word in labels or word in own or (scene and mentions(scene, word)):
            continue
        for m in mentions(text, word):
            if not any(a <= m.start() <= b + 1 for a, b in taken):
                invented.add(word)
    return sorted(invented)


def answer_line(answer: object) -> str:
    if not isinstance(answer, str):
        return ""
    for line in answer.splitlines():
        if line.strip():
            return line.strip()
    return ""


# --------------------------------------------------------------------------- scenes


def parse_scenes(answer: object, labels: Sequence[str], vocab: Vocabulary,
                 examples: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Scenes from "a green lawn; a sandy beach". Returns (valid scenes, problems)."""
    line = answer_line(answer)
    parts = line.split(";") if ";" in line else line.split(",")
    example_scenes = {s.strip().lower() for e in examples for s in e.split(";")}
    scenes: list[str] = []
    problems: list[str] = []
    for part in parts:
        scene = re.sub(r"\([^)]*\)", " ", part)
        scene = " ".join(scene.split()).strip(" .!-")
        if not scene:
            continue
        issues = scene_problems(scene, labels, vocab, examples)
        if scene.lower() in example_scenes:
            issues.append("copies the example")
        if issues:
            problems.append(f"scene {scene[:40]!r}: {'; '.join(issues)}")
        elif scene.lower() not in {s.lower() for s in scenes}:
            scenes.append(scene)
    if not scenes:
        problems.insert(0, "no usable scene")
    return scenes[:4], problems


def scene_problems(scene: str, labels: Sequence[str], vocab: Vocabulary,
                   examples: Sequence[str] = ()) -> list[str]:
    """Reasons `scene` is not a background place, like the worked examples' "a sandy beach"."""
    problems = _text_problems(scene, _SCENE_PUNCTUATION, SCENE_MAX_CHARS, labels)
    words = _words(scene)
    if not scene.lower().startswith(_ARTICLES):
        problems.append("does not start with a, an or the")
    if _SENTENCE_WORDS & set(words):
        problems.append("is a sentence, not a place")
    if not 1 <= len(words) <= SCENE_MAX_WORDS:
        problems.append(f"has {len(words)} words (1 to {SCENE_MAX_WORDS})")
    if not any(ch.isalpha() for ch in scene) or len(scene_head(scene)) < 3:
        problems.append("names no place")
    elif not is_place(scene):
        problems.append("is not a place (a room, a surface or a landscape)")
    named = [label for label in labels if mentions(scene, label)]
    if named:
        problems.append(f"puts {', '.join(named)} in the background")
    modifiers = set(head_modifiers(scene))
    invented = [w for w in _invented(scene, labels, vocab) if w not in modifiers]
    if invented:
        problems.append(f"adds objects ({', '.join(invented)})")
    return problems + _echo_problems(scene, examples, " ".join(labels))


# --------------------------------------------------------------------------- captions


@dataclass(frozen=True)
class CaptionReading:
    """What a caption says about the layout: relations by label index, size hints."""

    relations: tuple[Relation, ...] = ()
    size_hints: tuple[float, ...] = ()


_REL = (r"^\s*(?:[\w'-]+\s+){0,3}?(?P<rel>to\s+the\s+left\s+of|left\s+of|to\s+the\s+right\s+of|"
        r"right\s+of|on\s+top\s+of|in\s+front\s+of|behind|next\s+to|beside|between|underneath|"
        r"under|below|onto|atop|on)\s+(?:(?:a|an|the|its|his|her|their)\s+)?(?:[\w'-]+\s+){0,2}$")
_REL_RE = re.compile(_REL, re.IGNORECASE)
_AND_RE = re.compile(r"^\s*and\s+(?:(?:a|an|the)\s+)?(?:[\w'-]+\s+){0,2}$", re.IGNORECASE)
_REL_KIND = {"left": "left_of", "right": "right_of", "front": "in_front_of", "behind": "behind",
             "next": "next_to", "beside": "next_to"}


def read_caption(caption: str, labels: Sequence[str]) -> CaptionReading:
    """Relations between consecutive objects ("a cat sits to the left of a cactus", "a cup on
    a table", "a teapot between a cup and a vase") and sizes ("a small cup")."""
    found = sorted((m.start(), m.end(), i) for i, label in enumerate(labels)
                   for m in mentions(caption, label))
    relations: list[Relation] = []
    for k in range(len(found) - 1):
        (_s1, e1, a), (s2, e2, b) = found[k], found[k + 1]
        m = _REL_RE.match(caption[e1:s2])
        if a == b or not m:
            continue
        rel = " ".join(m.group("rel").lower().split())
        if rel == "between":
            if k + 2 < len(found) and _AND_RE.match(caption[e2:found[k + 2][0]]):
                c = found[k + 2][2]
                if len({a, b, c}) == 3:
                    relations += [Relation(b, "left_of", a), Relation(a, "left_of", c)]
            continue
        if rel in ("under", "underneath", "below"):
            relations.append(Relation(b, "on", a))
            continue
        kind = next((v for key, v in _REL_KIND.items() if key in rel), "on")
        relations.append(Relation(a, kind, b))
    hints = []
    for label in labels:
        hint = 1.0
        for m in mentions(caption, label)[:1]:
            before = _words(caption[max(0, m.start() - 30):m.start()])[-2:]
            if _SMALLER & set(before):
                hint = 0.85
            elif _BIGGER & set(before):
                hint = 1.15
        hints.append(hint)
    return CaptionReading(tuple(relations), tuple(hints))


def caption_problems(caption: str, labels: Sequence[str], scene: str, vocab: Vocabulary,
                     heights_cm: Sequence[float] = (), examples: Sequence[str] = ()) -> list[str]:
    """Every reason `caption` cannot describe this layout; empty when it can."""
    problems = _text_problems(caption, _CAPTION_PUNCTUATION, CAPTION_MAX_CHARS, labels)
    words = _words(caption)
    if not CAPTION_MIN_WORDS <= len(words) <= CAPTION_MAX_WORDS:
        problems.append(f"has {len(words)} words ({CAPTION_MIN_WORDS} to {CAPTION_MAX_WORDS})")
    for label in labels:
        found = mentions(caption, label)
        if not found:
            problems.append(f"does not name the {label}")
        elif len(found) > 2 or (not label.endswith("s") and any(m["plural"] for m in found)):
            problems.append(f"names the {label} as several")
        elif sum(1 for m in found if re.search(r"\b(a|an)\s+(?:[\w'-]+\s+){0,2}$",
                                               caption[max(0, m.start() - 40):m.start()],
                                               re.IGNORECASE)) > 1:
            problems.append(f"introduces two of the {label}")
    head = scene_head(scene)
    if head and not mentions(caption, head):
        problems.append(f"does not name the scene ({head})")
    invented = _invented(caption, labels, vocab, scene)
    if invented:
        problems.append(f"adds objects ({', '.join(invented)})")
    others = [p for p in introduced_objects(caption, labels, scene)
              if not any(mentions(p, word) for word in invented)]
    if others:
        problems.append(f"names things not asked for ({', '.join(others)[:80]})")
    wrong = article_problems(caption, labels)
    if wrong:
        problems.append(f"wrong article ({', '.join(wrong)[:60]})")
    if max((words.count(w) for w in set(words) if len(w) > 2), default=0) > 4:
        problems.append("repeats itself")
    problems += _echo_problems(caption, examples, " ".join([*labels, scene]))
    problems += _relation_problems(read_caption(caption, labels), labels, heights_cm)
    return problems


def _relation_problems(reading: CaptionReading, labels: Sequence[str],
                       heights_cm: Sequence[float]) -> list[str]:
    problems = []
    pairs = set()
    for rel in reading.relations:
        a, b = (rel.subject, rel.other) if rel.kind != "right_of" else (rel.other, rel.subject)
        if rel.kind in ("left_of", "right_of"):
            if (b, a) in pairs:
                problems.append(f"puts the {labels[a]} both left and right of the {labels[b]}")
            pairs.add((a, b))
        if (rel.kind == "on" and len(heights_cm) == len(labels)
                and heights_cm[rel.subject] > heights_cm[rel.other]):
            problems.append(f"puts the {labels[rel.subject]} on the smaller {labels[rel.other]}")
    return problems


def object_list(labels: Sequence[str]) -> str:
    """ "a cat, an apple, sunglasses and a teddy bear" """
    items = [with_article(label) for label in labels]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- groups, heights


def parse_groups(answer: object, labels: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """Groups from "dog, ball; teapot, cup, cactus": each group 2-4 of the given labels, each
    at most once; a group naming anything else is refused whole. Returns (groups, problems)."""
    index = {label: i for i, label in enumerate(labels)}
    groups: list[list[int]] = []
    problems: list[str] = []
    for part in answer_line(answer).split(";"):
        items = [p.strip(" .") for p in re.split(r",|\band\b", part) if p.strip(" .")]
        if not items:
            continue
        members: list[int] = []
        for item in items:
            word = clean_label(item)
            for article in _ARTICLES:
                if word.startswith(article):
                    word = word[len(article):]
            if word not in index and word.endswith("s") and word[:-1] in index:
                word = word[:-1]
            if word not in index:
                problems.append(f"invents {item[:30]!r}")
                members = []
                break
            members.append(index[word])
        if not members:
            continue
        low, high = GROUP_SIZES
        if len(set(members)) != len(members):
            problems.append(f"repeats an object in {part.strip()[:60]!r}")
        elif not low <= len(members) <= high:
            problems.append(f"group of {len(members)} (wants {low} to {high})")
        elif sorted(members) not in [sorted(g) for g in groups]:
            groups.append(members)
    if not groups:
        problems.insert(0, "no usable group")
    return groups, problems


_HEIGHT_RE = re.compile(
    r"^(?P<num>\d{1,6}(?:[.,]\d{1,3})?)\s*(?P<unit>mm|cm|m|metres?|meters?|centimet(?:re|er)s?|"
    r"millimet(?:re|er)s?)?(?![\w])", re.IGNORECASE)


def parse_height(answer: object) -> tuple[float | None, list[str]]:
    """A height in cm from "25 cm", "1.5 m"; None and the reason for anything else."""
    line = answer_line(answer)
    m = _HEIGHT_RE.match(line)
    if not m:
        return None, [f"not a height: {line[:40]!r}"]
    value = float(m["num"].replace(",", "."))
    unit = (m["unit"] or "cm").lower()
    if unit.startswith("mm") or unit.startswith("milli"):
        value /= 10
    elif unit == "m" or unit.startswith("met"):
        value *= 100
    low, high = HEIGHT_CM_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        return None, [f"height {value:g} cm is outside {low:g}..{high:g} cm"]
    return value, []
