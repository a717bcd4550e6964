"""The extraction's prompts, tokenised piece by piece so that each concept's place in the
prompt is known (its attention map is read there).

The M-step prompt is the fine-tuning stage's training prompt with every Gen4Gen strategy
off, "a photo of <mochi> cat and <rex> dog", so generation asks for the concepts in the words
they learned in. The initial masks read the class words of "a photo of a cat and a dog".
CLIP's tokenizer splits text into words (punctuation apart) before its BPE, so tokenising the
pieces one by one gives the ids of the whole text (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import InputError
from engine.text import article, join_words, with_article
from engine.train import ConceptRef, PromptStrategies, training_prompt

PLAIN = PromptStrategies(global_token=False, repeat_concept_tokens=False,
                         separate_background=False)


@dataclass(frozen=True)
class TokenisedPrompt:
    text: str
    ids: list[int]  # padded to the tokenizer's model_max_length
    spans: list[list[int]]  # the positions of each marked piece, in order


def _separators(count: int) -> list[str]:
    """What goes before each of `count` listed phrases: '', then ',' ... and 'and'."""
    return [""] + [","] * max(0, count - 2) + (["and"] if count > 1 else [])


def encode_pieces(tokenizer: Any, pieces: Sequence[tuple[str, bool]], text: str
                  ) -> TokenisedPrompt:
    """Token ids of `pieces` (text, marked) in a row between the start and end tokens; the
    spans of the marked pieces. InputError if it does not fit the text encoder."""
    limit = tokenizer.model_max_length
    ids = [tokenizer.bos_token_id]
    spans = []
    for piece, marked in pieces:
        piece_ids = tokenizer(piece, add_special_tokens=False).input_ids
        if marked:
            spans.append(list(range(len(ids), len(ids) + len(piece_ids))))
        ids += piece_ids
    ids.append(tokenizer.eos_token_id)
    if len(ids) > limit:
        raise InputError(f"The prompt {text!r} is longer than the text encoder's {limit} "
                         "tokens; use fewer concepts or shorter class words")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    return TokenisedPrompt(text, ids + [pad] * (limit - len(ids)), spans)


def concept_prompt(tokenizer: Any, refs: Sequence[ConceptRef]) -> TokenisedPrompt:
    """'a photo of <mochi> cat and <rex> dog'; spans: each concept's token."""
    pieces: list[tuple[str, bool]] = [("a photo of", False)]
    for sep, ref in zip(_separators(len(refs)), refs, strict=True):
        if sep:
            pieces.append((sep, False))
        pieces += [(ref.token, True), (ref.class_word, False)]
    return encode_pieces(tokenizer, pieces, training_prompt(refs, "", PLAIN))


def class_word_prompt(tokenizer: Any, words: Sequence[str]) -> TokenisedPrompt:
    """'a photo of a cat and a dog'; spans: each class word's sub-tokens."""
    pieces: list[tuple[str, bool]] = [("a photo of", False)]
    for sep, word in zip(_separators(len(words)), words, strict=True):
        if sep:
            pieces.append((sep, False))
        pieces += [(article(word), False), (word, True)]
    text = "a photo of " + join_words([with_article(w) for w in words])
    return encode_pieces(tokenizer, pieces, text)
