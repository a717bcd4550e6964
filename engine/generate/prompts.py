"""Generation prompts in the training's language, and where each concept sits in them.

A prompt is either written by the user with concept tokens ("<mochi> cat and <cup> mug on a
beach") or made from a list of concepts and a scene by the run's own training prompt rules
(engine.train: the global token, repeated concept tokens, the separated background — as the
run's manifest says it trained), so the words the concepts learned with come back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.train import training_prompt

if TYPE_CHECKING:
    from engine.generate.concepts import ConceptInfo, RunConcepts

# What reads as a learned token in a prompt: "<mochi>", "<composition2>".
TOKEN_PATTERN = re.compile(r"<[^<>\s]+>")
MAX_PROMPT_CHARS = 2000


def check_prompt(prompt: str, run: RunConcepts) -> str:
    """The prompt, squashed; every <token> in it must be one the run learned."""
    text = " ".join(prompt.split())
    if not text:
        raise InputError("The prompt is empty: write one, or give concepts and a scene")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is too long ({len(text)} characters; at most "
                         f"{MAX_PROMPT_CHARS})")
    for token in TOKEN_PATTERN.findall(text):
        if token not in run.token_files:
            known = ", ".join(run.tokens) or "none"
            raise InputError(f"The prompt names {token}, which run {run.run_id} did not learn "
                             f"(its tokens: {known})")
    return text


def prompt_for_concepts(run: RunConcepts, concepts: Sequence[ConceptInfo], scene: str) -> str:
    """The prompt the run's training would have used for these concepts in this scene."""
    if not concepts:
        raise InputError("Name at least one concept to show")
    return training_prompt([c.ref for c in concepts], " ".join(scene.split()), run.strategies,
                           run.global_token or "")


def token_positions(tokenizer: Any, prompt: str, concept: ConceptInfo) -> tuple[int, ...]:
    """Where the concept's token, and the class word right after it, sit in the encoded
    prompt (start token included, as the text encoder sees it)."""
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True).input_ids
    token_id = tokenizer.convert_tokens_to_ids(concept.token)
    word_ids = tokenizer(concept.class_word, add_special_tokens=False).input_ids
    positions: list[int] = []
    for i, value in enumerate(ids):
        if value != token_id:
            continue
        positions.append(i)
        if word_ids and ids[i + 1:i + 1 + len(word_ids)] == word_ids:
            positions.extend(range(i + 1, i + 1 + len(word_ids)))
    if not positions:
        raise InputError(f"{concept.token} falls beyond the text encoder's "
                         f"{tokenizer.model_max_length} tokens: shorten the prompt")
    return tuple(positions)
