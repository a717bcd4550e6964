"""Training prompts with Gen4Gen's three strategies (see engine.train.config for each
switch's effect). With every switch on, an item showing <mochi> the cat and <cup> the mug
on a kitchen table trains with

    <composition> a photo of <mochi> cat and <cup> mug, <mochi> cat, <cup> mug.
    background: a wooden table in a sunlit kitchen

and with every switch off with its token caption, as the dataset builder wrote it:

    a photo of <mochi> cat and <cup> mug on a wooden table in a sunlit kitchen

Class prompts for prior preservation ("a photo of a cat") never hold a learned token, so
their text-encoder output is computed once and cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.text import bare_scene, join_words, scene_phrase, squash, with_article

GLOBAL_TOKEN = "<composition>"
GLOBAL_TOKEN_INIT_WORD = "photo"  # our choice; the paper does not say how it starts


@dataclass(frozen=True)
class ConceptRef:
    token: str  # "<mochi>"
    class_word: str  # "cat"

    @property
    def phrase(self) -> str:
        return f"{self.token} {self.class_word}"


@dataclass(frozen=True)
class PromptStrategies:
    global_token: bool = True
    repeat_concept_tokens: bool = True
    separate_background: bool = True


def concepts_in_caption(caption: str, concepts: Iterable[ConceptRef]) -> list[ConceptRef]:
    """The concepts whose token appears in `caption`, in the order they first appear."""
    found = [(caption.find(c.token), c) for c in concepts if c.token in caption]
    return [c for _pos, c in sorted(found, key=lambda pair: pair[0])]


def scene_from_caption(caption: str, concepts: Sequence[ConceptRef]) -> str:
    """What follows the last concept phrase of a token caption: the scene, or ''.

    'a photo of <mochi> cat and <cup> mug on a wooden table' -> 'on a wooden table'.
    """
    end = -1
    for concept in concepts:
        # The phrase "<token> class" when the caption has it, else the bare token.
        matches = list(re.finditer(re.escape(concept.phrase), caption)) or list(
            re.finditer(re.escape(concept.token), caption))
        if matches:
            end = max(end, matches[-1].end())
    if end < 0:
        return ""
    return squash(caption[end:]).strip(" ,.;:")


def training_prompt(concepts: Sequence[ConceptRef], scene: str,
                    strategies: PromptStrategies, global_token: str = GLOBAL_TOKEN,
                    token_caption: str | None = None) -> str:
    """The prompt an item trains with. `scene` may be '' (then no background is named)."""
    phrases = [c.phrase for c in concepts]
    repeat = (", " + ", ".join(phrases)) if strategies.repeat_concept_tokens and phrases else ""
    identity = f"a photo of {join_words(phrases)}" if phrases else "a photo"
    if strategies.separate_background:
        body = identity + repeat
        where = bare_scene(scene)
        if where:
            body += f". background: {where}"
    else:
        inline = squash(token_caption) if token_caption else squash(
            f"{identity} {scene_phrase(scene)}")
        body = inline.rstrip(" .") + repeat
    return f"{global_token} {body}" if strategies.global_token else body


def class_prompt(class_word: str) -> str:
    """The prior-preservation prompt of a class: 'a photo of a cat', 'an owl',
    'a photo of sunglasses'."""
    return f"a photo of {with_article(class_word)}"


def choose_global_token(taken: Iterable[str]) -> str:
    """GLOBAL_TOKEN, or a numbered variant when a concept already uses it."""
    used = set(taken)
    token, n = GLOBAL_TOKEN, 2
    while token in used:
        token, n = f"<composition{n}>", n + 1
    return token
