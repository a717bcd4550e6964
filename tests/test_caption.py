"""Captions: token caption, plain caption (LLM's or from the layout), relations, scene."""

from __future__ import annotations

import pytest

from engine.dataset.caption import (
    background_prompt,
    captions_for,
    relation,
    scene_phrase,
    template_caption,
    token_caption,
)
from engine.errors import InputError
from engine.project import Concept, Layout, LayoutObject

CONCEPTS = {
    1: Concept(id=1, name="Mochi", token="<mochi>", class_word="cat"),
    2: Concept(id=2, name="Spike", token="<spike>", class_word="cactus"),
    3: Concept(id=3, name="Orbit", token="<orbit>", class_word="orange"),
}
# Listed right to left on purpose: captions read left to right.
TWO = Layout(id=1, scene="on a wooden table in a sunlit kitchen", objects=(
    LayoutObject(2, 0.55, 0.3, 0.3, 0.5, 1), LayoutObject(1, 0.05, 0.2, 0.4, 0.6, 0)))


def test_token_caption_matches_the_issue_example():
    assert token_caption(TWO, CONCEPTS) == (
        "a photo of <mochi> cat and <spike> cactus on a wooden table in a sunlit kitchen")


def test_three_objects_and_a_scene_without_preposition():
    layout = Layout(id=2, scene="  a sunlit   kitchen. ", objects=(
        LayoutObject(1, 0.0, 0.2, 0.3, 0.3), LayoutObject(2, 0.35, 0.2, 0.3, 0.3),
        LayoutObject(3, 0.7, 0.2, 0.3, 0.3)))
    assert token_caption(layout, CONCEPTS) == (
        "a photo of <mochi> cat, <spike> cactus and <orbit> orange in a sunlit kitchen")
    assert template_caption(layout, CONCEPTS) == (
        "a photo of a cat to the left of a cactus, and an orange to the right of the cactus, "
        "in a sunlit kitchen")


def test_plain_caption_prefers_the_llm_caption():
    plain = captions_for(TWO, CONCEPTS).plain
    assert plain == ("a photo of a cat to the left of a cactus, on a wooden table in a sunlit "
                     "kitchen")
    detailed = Layout(id=3, scene="a garden", caption="  A ginger cat naps\nbeside a cactus. ",
                      objects=TWO.objects)
    captions = captions_for(detailed, CONCEPTS)
    assert captions.plain == "A ginger cat naps beside a cactus."
    assert captions.token == "a photo of <mochi> cat and <spike> cactus in a garden"


def test_relations_from_boxes():
    left, right = LayoutObject(1, 0.0, 0.4, 0.2, 0.2), LayoutObject(2, 0.6, 0.4, 0.2, 0.2)
    top, bottom = LayoutObject(1, 0.4, 0.0, 0.2, 0.2), LayoutObject(2, 0.4, 0.7, 0.2, 0.2)
    assert relation(left, right) == "to the left of" and relation(right, left) == "to the right of"
    assert relation(top, bottom) == "above" and relation(bottom, top) == "below"
    back = LayoutObject(1, 0.1, 0.1, 0.5, 0.5, 0)
    front = LayoutObject(2, 0.3, 0.3, 0.5, 0.5, 1)
    assert relation(front, back) == "in front of" and relation(back, front) == "behind"


def test_scene_phrase_and_background_prompt():
    assert scene_phrase("") == ""
    assert scene_phrase("On the beach") == "on the beach"
    assert scene_phrase("a forest") == "in a forest"
    assert background_prompt(TWO) == (
        "a photo of a wooden table in a sunlit kitchen, natural light, high quality")
    assert "<" not in background_prompt(TWO)  # the scene alone: no concept tokens


def test_unknown_concept_is_an_error_and_one_object_works():
    with pytest.raises(InputError, match=r"concepts \[9\]"):
        token_caption(Layout(id=4, scene="", objects=(LayoutObject(9, 0, 0, 1, 1),)), CONCEPTS)
    single = Layout(id=5, scene="", objects=(LayoutObject(3, 0, 0, 1, 1),))
    assert token_caption(single, CONCEPTS) == "a photo of <orbit> orange"
    assert template_caption(single, CONCEPTS) == "a photo of an orange"
