"""The CLIP tokenizer derived offline from open_clip's BPE file matches open_clip exactly."""

from __future__ import annotations

import hashlib

import pytest
from open_clip.tokenizer import SimpleTokenizer

from engine.errors import ModelMissingError
from engine.models.tokenizer import (
    BOS,
    EOS,
    TOKENIZER_FILES,
    VOCAB_SIZE,
    clip_vocab,
    load_clip_tokenizer,
    write_clip_tokenizer,
)

EOS_ID = 49407
SENTENCES = [
    "a photo of a cat",
    "A photo of <mochi> cat and <fern> plant on a wooden table, 4k!!",
    "Hello, World. naïve café — 12 apples; it's the dog's bowl",
    "   leading and   repeated   spaces\tand tabs  ",
]


@pytest.fixture(scope="module")
def simple() -> SimpleTokenizer:
    return SimpleTokenizer()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


def test_vocab_matches_open_clip_exactly(simple):
    vocab = clip_vocab()
    assert len(vocab) == VOCAB_SIZE == len(simple.encoder)
    # open_clip names its two special tokens differently; the ids are the same.
    renamed = {"<start_of_text>": BOS, "<end_of_text>": EOS}
    expected = {renamed.get(t, t): i for t, i in simple.encoder.items()}
    assert vocab == expected
    assert vocab[BOS] == simple.sot_token_id == 49406
    assert vocab[EOS] == simple.eot_token_id == 49407


@pytest.mark.parametrize("text", SENTENCES)
def test_token_ids_equal_open_clip(tokenizer_dir, simple, text):
    tok = load_clip_tokenizer(tokenizer_dir)
    ours = tok(text).input_ids
    theirs = [simple.sot_token_id, *simple.encode(text), simple.eot_token_id]
    assert ours == theirs


def test_padded_batch_matches_open_clip_tokenize(tokenizer_dir, simple):
    tok = load_clip_tokenizer(tokenizer_dir)
    assert tok.model_max_length == 77
    ours = tok(SENTENCES, padding="max_length", max_length=77, truncation=True).input_ids
    theirs = simple(SENTENCES).tolist()  # open_clip pads with 0; SD pads with <|endoftext|>
    for o, t in zip(ours, theirs, strict=True):
        n = t.index(EOS_ID) + 1
        assert o[:n] == t[:n]
        assert o[n:] == [EOS_ID] * (77 - n)


def test_folder_has_sd_layout_and_is_byte_identical(tmp_path):
    a = write_clip_tokenizer(tmp_path / "a")
    b = write_clip_tokenizer(tmp_path / "b")
    assert sorted(p.name for p in a.iterdir()) == sorted(TOKENIZER_FILES)
    for name in TOKENIZER_FILES:
        ha = hashlib.sha256((a / name).read_bytes()).hexdigest()
        assert ha == hashlib.sha256((b / name).read_bytes()).hexdigest(), name


def test_owlvit_style_pad_token(tmp_path):
    tok = load_clip_tokenizer(
        write_clip_tokenizer(tmp_path / "owl", pad_token="!", model_max_length=16),
        model_max_length=16,
    )
    ids = tok(["a cat"], padding="max_length", max_length=16).input_ids[0]
    assert ids[:3] == [49406, 320, 2368] and ids[3] == EOS_ID and ids[4:] == [0] * 12


def test_missing_tokenizer_folder_is_model_missing(tmp_path):
    with pytest.raises(ModelMissingError, match=r"vocab\.json"):
        load_clip_tokenizer(tmp_path / "nothing-here")
