"""Words shared by captions and training prompts (engine/text.py): the article a word takes,
and the repair of the articles in a caption someone else wrote."""

from __future__ import annotations

import pytest

from engine.dataset.caption import template_caption
from engine.project import Concept, Layout, LayoutObject
from engine.text import article, article_problems, fix_articles, with_article
from engine.train.prompts import class_prompt


@pytest.mark.parametrize(("phrase", "expected"), [
    ("cat", "a cat"), ("owl", "an owl"), ("apple", "an apple"), ("teddy bear", "a teddy bear"),
    # vowel sounds, not vowel letters
    ("unicorn", "a unicorn"), ("ukulele", "a ukulele"), ("one-eyed cat", "a one-eyed cat"),
    ("european vase", "a european vase"), ("umbrella", "an umbrella"), ("urn", "an urn"),
    ("hourglass", "an hourglass"), ("heirloom vase", "an heirloom vase"), ("hamster", "a hamster"),
    ("X-ray", "an X-ray"), ("T-shirt", "a T-shirt"),
    # plurals take none; singulars that end in s do
    ("sunglasses", "sunglasses"), ("headphones", "headphones"), ("running shoes", "running shoes"),
    ("rain boots", "rain boots"), ("mice", "mice"), ("cactus", "a cactus"), ("glass", "a glass"),
    ("lens", "a lens"), ("iris", "an iris"), ("canvas", "a canvas"),
    # possessives take none
    ("my grandmother's clock", "my grandmother's clock"), ("dad's teddy bear", "dad's teddy bear"),
    ("grandma’s teapot", "grandma’s teapot"), ("the moon", "the moon"),
])
def test_the_article_comes_from_the_word(phrase, expected):
    assert with_article(phrase) == expected
    assert article(phrase) == expected[: len(expected) - len(phrase)].strip()


@pytest.mark.parametrize(("text", "labels", "fixed"), [
    ("A my grandmother's clock and a dog sit on a rug.", ["my grandmother's clock", "dog"],
     "My grandmother's clock and a dog sit on a rug."),
    ("An ukulele, a sunglasses and a umbrella lie on a beach.",
     ["ukulele", "sunglasses", "umbrella"],
     "A ukulele, sunglasses and an umbrella lie on a beach."),
    ("A black headphones sit next to a owl.", ["headphones", "owl"],
     "Black headphones sit next to an owl."),
    ("A cat wears a pair of sunglasses.", ["cat", "sunglasses"],
     "A cat wears a pair of sunglasses."),
    ("A cat and an old teapot.", ["cat", "teapot"], "A cat and an old teapot."),
])
def test_wrong_articles_in_a_caption_are_found_and_fixed(text, labels, fixed):
    assert fix_articles(text, labels) == fixed
    assert article_problems(fixed, labels) == []
    assert (article_problems(text, labels) == []) == (text == fixed)


def test_prompts_and_template_captions_use_the_same_rule():
    assert class_prompt("sunglasses") == "a photo of sunglasses"
    assert class_prompt("owl") == "a photo of an owl"
    assert class_prompt("unicorn") == "a photo of a unicorn"
    concepts = {1: Concept(id=1, name="Shades", token="<shades>", class_word="sunglasses"),
                2: Concept(id=2, name="Uni", token="<uni>", class_word="unicorn")}
    layout = Layout(scene="a sandy beach", objects=(LayoutObject(1, 0.1, 0.3, 0.3, 0.3, 0),
                                                    LayoutObject(2, 0.6, 0.3, 0.3, 0.3, 1)))
    assert template_caption(layout, concepts) == (
        "a photo of sunglasses to the left of a unicorn, in a sandy beach")
