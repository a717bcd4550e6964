"""Captions of dataset items, from the layout (and the planner LLM's caption when it has one).

Two captions per item:

* the *token caption* names each concept by its token and class word, then the scene:
  "a photo of <mochi> cat and <spike> cactus on a wooden table in a sunlit kitchen".
  Objects are listed left to right, as a person reads the picture.
* the *plain caption* is for people and for prompts without tokens: the layout's detailed
  caption from the LLM when there is one, else a sentence with class words, the spatial
  relations read off the boxes, and the scene:
  "a photo of a cat to the left of a cactus, on a wooden table in a sunlit kitchen".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import InputError
from engine.project import Concept, Layout, LayoutObject
from engine.text import bare_scene, join_words, scene_phrase, with_article


@dataclass(frozen=True)
class Captions:
    token: str
    plain: str


def reading_order(layout: Layout) -> list[LayoutObject]:
    """Objects left to right by box centre (top to bottom on a tie)."""
    return sorted(layout.objects, key=lambda o: (o.x + o.w / 2, o.y + o.h / 2))


def relation(a: LayoutObject, b: LayoutObject) -> str:
    """Where `a` is relative to `b`, read off the boxes: the axis with the larger gap wins;
    an object in front of an overlapping one is 'in front of' it."""
    overlap_x = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    overlap_y = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if overlap_x > 0 and overlap_y > 0 and a.z != b.z:
        return "in front of" if a.z > b.z else "behind"
    dx = (a.x + a.w / 2) - (b.x + b.w / 2)
    dy = (a.y + a.h / 2) - (b.y + b.h / 2)
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def _concepts_of(layout: Layout, concepts: Mapping[int, Concept]) -> list[Concept]:
    ordered = reading_order(layout)
    missing = sorted({o.concept_id for o in ordered} - set(concepts))
    if missing:
        raise InputError(f"Layout {layout.id} refers to concepts {missing}, which do not exist")
    return [concepts[o.concept_id] for o in ordered]


def token_caption(layout: Layout, concepts: Mapping[int, Concept]) -> str:
    names = [f"{c.token} {c.class_word}" for c in _concepts_of(layout, concepts)]
    where = scene_phrase(layout.scene)
    return f"a photo of {join_words(names)}" + (f" {where}" if where else "")


def template_caption(layout: Layout, concepts: Mapping[int, Concept]) -> str:
    """Class words with relations, each object placed against the one left of it:
    'a photo of a cat to the left of a mug, and a rocket to the right of the mug, in ...'."""
    ordered = reading_order(layout)
    words = [c.class_word for c in _concepts_of(layout, concepts)]
    body = with_article(words[0]) if words else "a scene"
    for k in range(1, len(ordered)):
        this = with_article(words[k])
        if k == 1:
            body = f"{body} {relation(ordered[0], ordered[1])} {this}"
        else:
            body += f", and {this} {relation(ordered[k], ordered[k - 1])} the {words[k - 1]}"
    where = scene_phrase(layout.scene)
    return f"a photo of {body}" + (f", {where}" if where else "")


def captions_for(layout: Layout, concepts: Mapping[int, Concept]) -> Captions:
    """The token caption and the plain caption of an item made from `layout`."""
    plain = " ".join(layout.caption.split()) or template_caption(layout, concepts)
    return Captions(token=token_caption(layout, concepts), plain=plain)


def background_prompt(layout: Layout) -> str:
    """What the inpainting pipeline paints around the objects: the scene alone, so it does
    not paint extra copies of the objects (Gen4Gen separates background and identity)."""
    scene = bare_scene(layout.scene)
    return f"a photo of {scene}, natural light, high quality" if scene else \
        "a photo, natural light, high quality"
