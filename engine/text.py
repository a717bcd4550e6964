"""Words as the captions and the training prompts join them, one definition each: a scene
phrase ("in a garden"), the bare scene ("a garden"), a list joined with "and", an article.

Training prompts must speak the captions' language (Gen4Gen's separate-background strategy
reads the scene back out of a caption), so both use these.
"""

from __future__ import annotations

from collections.abc import Sequence

# A scene that starts with one of these already says where it is; others get "in".
PREPOSITIONS = ("on ", "in ", "at ", "by ", "under ", "inside ", "near ", "beside ",
                "outside ", "against ", "among ", "over ", "underneath ", "along ", "across ")


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


def article(word: str) -> str:
    """The indefinite article before `word`."""
    return "an" if word[:1].lower() in "aeiou" else "a"
