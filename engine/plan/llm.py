"""The planner's questions to a local LLM, each answered in a short output and checked.

Any GGUF works through llama-cpp-python. A base model (the embedded Gemma 3 270M) is asked
with few-shot *completion* prompts from resources/prompts; an instruction-tuned model gets the
same prompts inside a chat message, with the chat format named in the settings. We always
pass the chat format explicitly (so llama-cpp never guesses one from the file), never pass a
chat handler, and accept the GGUF's own template ("chat_template.default") only after checking
that llama-cpp renders templates in jinja2's sandbox.

Every answer goes through the parsers of engine.plan.answers; one that fails is asked once
more (another seed, or a more guided prompt), and then replaced by a deterministic fallback.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Generic, Protocol, TypeVar

from engine.errors import InputError
from engine.plan.answers import (
    FallbackScene,
    Vocabulary,
    answer_line,
    caption_problems,
    example_values,
    object_list,
    parse_groups,
    parse_height,
    parse_scenes,
    prompt_template,
    read_caption,
)
from engine.text import fix_articles

T = TypeVar("T")

N_CTX = 1024
# llama-cpp-python keeps an n_batch x vocabulary float buffer of logits (512 x 262k floats =
# 512 MB for Gemma 3); our prompts are short, so a small batch costs little speed. (Its
# LlamaRAMCache copies that buffer with every saved state, so we do without it: consecutive
# caption prompts share their worked examples and llama-cpp reuses that prefix anyway.)
N_BATCH = 128
ANSWER_SECONDS = 20.0  # a bigger GGUF on a busy machine may be slow; a hostile one may not stop
GROUP_PROMPT_MAX_LABELS = 24
# Passed when we only ever call create_completion: a built-in Python formatter, so llama-cpp
# neither guesses a format nor compiles the GGUF's template into its default handler.
COMPLETION_ONLY_CHAT_FORMAT = "gemma"
GGUF_TEMPLATE_FORMAT = "chat_template.default"


class TextModel(Protocol):
    """Anything that continues a prompt: the llama-cpp model, or a scripted fake in tests."""

    name: str

    def complete(self, prompt: str, *, max_tokens: int, seed: int, temperature: float,
                 should_stop: Callable[[], bool]) -> str: ...


# --------------------------------------------------------------------------- llama-cpp


def template_renderer_is_sandboxed() -> bool:
    """True when llama-cpp renders GGUF chat templates in jinja2's sandbox: a template that
    reaches for Python internals must be refused, not run."""
    import jinja2.exceptions
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    probe = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    try:
        formatter = Jinja2ChatFormatter(template=probe, eos_token="", bos_token="")
        formatter(messages=[{"role": "user", "content": "x"}])
    except jinja2.exceptions.SecurityError:
        return True
    except Exception:
        return False
    return False


def check_chat_format(chat_format: str) -> str:
    """The chat format from the settings, or an InputError naming the valid ones."""
    from llama_cpp import llama_chat_format

    if chat_format == GGUF_TEMPLATE_FORMAT:
        if not template_renderer_is_sandboxed():
            raise InputError(
                "This llama-cpp-python renders GGUF chat templates outside jinja2's sandbox; "
                "update it (pip install -U llama-cpp-python) or pick a named chat format."
            )
        return chat_format
    try:
        llama_chat_format.get_chat_completion_handler(chat_format)
    except llama_chat_format.LlamaChatCompletionHandlerNotFoundException:
        registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()
        known = sorted(getattr(registry, "_chat_handlers", {}))
        raise InputError(
            f"Unknown planner chat format {chat_format!r}; use one of: "
            f"{', '.join(known[:30])}, or {GGUF_TEMPLATE_FORMAT} for the file's own template."
        ) from None
    return chat_format


def check_gguf_file(path: Path) -> Path:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"The planner model file {path} cannot be read: "
                         f"{exc.strerror or exc}") from exc
    if magic != b"GGUF":
        raise InputError(f"The planner model file {path} is not a GGUF file")
    return path


def free_cores(max_threads: int = 4) -> int:
    """Threads for llama.cpp: the cores other programs leave free. Its threads wait for each
    other at every layer, so one more thread than there are free cores runs 2-3x slower
    (measured on 2 shared cores), while one thread too few costs much less."""
    import psutil

    cores = os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=0.1) / 100 * cores
    return max(1, min(max_threads, cores, round(cores - busy)))


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """llama.cpp prints load chatter straight to fd 2; keep it for the error message instead."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)

        def text() -> str:
            sink.seek(0)
            return sink.read().decode("utf-8", "replace")

        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _cpu_has_amx() -> bool:
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


@contextlib.contextmanager
def _without_amx_weights() -> Iterator[None]:
    """Load the model without llama.cpp's AMX weight buffers on CPUs that have AMX.

    On Sapphire-Rapids-class CPUs (AMX_INT8) llama.cpp's AMX matmul segfaults on the first
    decode of the Q4_K planner model (measured here with llama-cpp-python 0.3.36; the same
    crash is reported upstream as ggml-org/llama.cpp#20824). llama-cpp-python builds its model
    parameters from `llama_model_default_params()` inside `Llama.__init__` and offers no
    switch, so the defaults are wrapped for the duration of the load. Elsewhere nothing
    changes (the repacked weights stay, they are faster on AVX2 CPUs).
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    if not _cpu_has_amx():
        yield
        return
    default = llama_cpp.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    llama_module.llama_cpp.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = default


class LlamaTextModel:
    """A loaded GGUF; `complete` streams so a cancel or the time limit stops it mid-answer."""

    def __init__(self, llama: Any, name: str, chat_format: str | None) -> None:
        self.llama = llama
        self.name = name
        self.chat_format = chat_format  # None: plain completion

    @classmethod
    def load(cls, path: Path, chat_format: str = "", seed: int = 0) -> LlamaTextModel:
        from llama_cpp import Llama

        check_gguf_file(path)
        chat = check_chat_format(chat_format) if chat_format else None
        threads = free_cores()
        with _captured_stderr() as output, _without_amx_weights():
            try:
                llama = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_BATCH,
                              n_threads=threads, n_threads_batch=threads, seed=seed,
                              verbose=False, chat_format=chat or COMPLETION_ONLY_CHAT_FORMAT)
            except Exception as exc:
                detail = (output().strip().splitlines() or [str(exc)])[-1]
                raise InputError(f"The planner model {path.name} could not be loaded: "
                                 f"{detail[:200]}") from exc
        return cls(llama, path.name, chat)

    def use_free_cores(self) -> int:
        """Match the thread count to the cores free right now (call between jobs)."""
        import llama_cpp

        threads = free_cores()
        llama_cpp.llama_set_n_threads(self.llama.ctx, threads, threads)
        return threads

    def complete(self, prompt: str, *, max_tokens: int, seed: int, temperature: float,
                 should_stop: Callable[[], bool]) -> str:
        deadline = time.monotonic() + ANSWER_SECONDS
        pieces: list[str] = []
        if self.chat_format is None:
            stream = self.llama.create_completion(
                prompt, max_tokens=max_tokens, temperature=temperature, top_p=0.95,
                repeat_penalty=1.1, seed=seed, stop=["\n"], stream=True)
        else:
            content = prompt_template("chat_instruction") + "\n\n" + prompt
            stream = self.llama.create_chat_completion(
                messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
                temperature=temperature, top_p=0.95, repeat_penalty=1.1, seed=seed,
                stream=True)
        try:
            for chunk in stream:
                choice = (chunk.get("choices") or [{}])[0]
                piece = choice.get("text") if self.chat_format is None else (
                    (choice.get("delta") or {}).get("content"))
                pieces.append(piece if isinstance(piece, str) else "")
                if should_stop() or time.monotonic() > deadline:
                    break
                # Every answer is one line: stop a chat model once its first line is done.
                if self.chat_format is not None and "\n" in "".join(pieces).lstrip():
                    break
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        return "".join(pieces)


# --------------------------------------------------------------------------- asking


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A checked value and where it came from: "llm", "llm-retry" or "fallback".
    `attempts` holds each raw answer with the reasons it was refused (empty if accepted)."""

    value: T
    source: str
    attempts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    seconds: float = 0.0

    @property
    def from_llm(self) -> bool:
        return self.source != "fallback"


@dataclass(frozen=True)
class CaptionPlan:
    text: str
    relations: tuple = ()  # layout_solver.Relation by label index
    size_hints: tuple[float, ...] = ()


def stable_seed(*parts: object) -> int:
    """A seed from text and numbers that is the same in every process (unlike hash())."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8")) & 0x7FFFFFFF


@dataclass
class Semantics:
    """Asks the model the planner's questions; `model=None` answers everything by fallback."""

    model: TextModel | None
    vocab: Vocabulary
    should_stop: Callable[[], bool] = lambda: False
    log: Callable[[str], None] = lambda _text: None

    def _complete(self, prompt: str, max_tokens: int, seed: int, temperature: float) -> str:
        assert self.model is not None
        try:
            text = self.model.complete(prompt, max_tokens=max_tokens, seed=seed,
                                       temperature=temperature, should_stop=self.should_stop)
        except Exception as exc:  # a broken or hostile GGUF is one more bad answer
            self.log(f"planner model failed: {type(exc).__name__}: {str(exc)[:120]}")
            return ""
        return text if isinstance(text, str) else ""

    def _ask(self, asks: Sequence[tuple[str, int, float, str]], seed: int,
             read: Callable[[str], tuple[T | None, list[str]]],
             fallback: Callable[[], T]) -> Answer[T]:
        """Try each (prompt, max_tokens, temperature, prefix) in turn; `read` parses prefix +
        completion into (value or None, problems). Falls back when all fail."""
        start = time.monotonic()
        attempts: list[tuple[str, tuple[str, ...]]] = []
        if self.model is not None:
            for n, (prompt, max_tokens, temperature, prefix) in enumerate(asks):
                raw = self._complete(prompt, max_tokens, seed + 7919 * n, temperature)
                if self.should_stop():
                    break
                text = _join_prefix(prefix, raw)
                value, problems = read(text)
                attempts.append((text, tuple(problems)))
                if value is not None and not problems:
                    return Answer(value, "llm" if n == 0 else "llm-retry", tuple(attempts),
                                  time.monotonic() - start)
                self.log(f"planner answer refused ({'; '.join(problems)[:160]}): {text[:80]!r}")
        return Answer(fallback(), "fallback", tuple(attempts), time.monotonic() - start)

    # ------------------------------------------------------------------ questions

    def scenes(self, labels: Sequence[str], wheres: Sequence[str], seed: int
               ) -> Answer[list[FallbackScene]]:
        template = prompt_template("scenes")
        prompt = Template(template).substitute(objects=", ".join(labels))
        examples = [*example_values(template), prompt_template("chat_instruction")]

        def read(text: str) -> tuple[list[FallbackScene] | None, list[str]]:
            scenes, problems = parse_scenes(text, labels, self.vocab, examples)
            # A partly usable answer keeps its good scenes.
            if scenes:
                return [FallbackScene(s, self.vocab.scene_prep(s)) for s in scenes], []
            return None, problems

        asks = [(prompt, 40, 0.7, ""), (prompt, 40, 0.4, "")]
        return self._ask(asks, seed, read, lambda: fallback_scenes(self.vocab, labels, wheres,
                                                                   seed))

    def caption(self, labels: Sequence[str], scene: str, heights_cm: Sequence[float],
                seed: int) -> Answer[CaptionPlan | None]:
        """A caption naming every object and the scene; None on fallback (the planner then
        describes the solved layout itself)."""
        first = prompt_template("caption")
        retry = prompt_template("caption_retry")
        examples = [*example_values(first), prompt_template("chat_instruction")]
        objects = ", ".join(labels)
        prefill = object_list(labels)
        prefill = prefill[0].upper() + prefill[1:]

        def read(text: str) -> tuple[CaptionPlan | None, list[str]]:
            # Articles are ours to choose ("an owl", "sunglasses"), not the model's.
            caption = _tidy_caption(fix_articles(answer_line(text), labels))
            problems = caption_problems(caption, labels, scene, self.vocab, heights_cm, examples)
            if problems:
                return None, problems
            reading = read_caption(caption, labels)
            return CaptionPlan(caption, reading.relations, reading.size_hints), []

        asks = [
            # A low temperature: the 270M model names every object more often (11 vs 8 of 30
            # benchmark sets at 0.5).
            (Template(first).substitute(objects=objects, scene=scene), 60, 0.3, ""),
            # The re-ask names the objects itself; the model only has to place them.
            (Template(retry).substitute(objects=objects, scene=scene, prefill=prefill), 40, 0.5,
             prefill),
        ]
        return self._ask(asks, seed, read, lambda: None)

    def groups(self, labels: Sequence[str], seed: int) -> Answer[list[list[int]]]:
        shown = list(labels[:GROUP_PROMPT_MAX_LABELS])
        prompt = Template(prompt_template("groups")).substitute(objects=", ".join(shown))

        def read(text: str) -> tuple[list[list[int]] | None, list[str]]:
            groups, problems = parse_groups(text, shown)
            return (groups, []) if groups else (None, problems)

        asks = [(prompt, 60, 0.7, ""), (prompt, 60, 0.4, "")]
        answer = self._ask(asks, seed, read, lambda: [])
        groups = complete_groups(answer.value, len(labels), seed)
        return Answer(groups, answer.source, answer.attempts, answer.seconds)

    def height_cm(self, label: str, seed: int) -> Answer[float]:
        prompt = Template(prompt_template("height")).substitute(object=label)
        asks = [(prompt, 8, 0.3, ""), (prompt, 8, 0.1, "")]
        default = self.vocab.default.height_cm
        return self._ask(asks, seed, parse_height, lambda: default)


def _join_prefix(prefix: str, raw: str) -> str:
    """The answer line: a chat model may repeat the field name or the prefilled words."""
    text = raw.strip()
    for field_name in ("caption:", "scene:", "scenes:", "groups:", "height:"):
        if text.lower().startswith(field_name):
            text = text[len(field_name):].strip()
    if prefix and not text.lower().startswith(prefix.lower()):
        text = f"{prefix} {text}" if text[:1].isalnum() else prefix + text
    return text


def _tidy_caption(text: str) -> str:
    caption = " ".join(text.split())
    if caption and caption[0].islower():
        caption = caption[0].upper() + caption[1:]
    if caption and caption[-1] not in ".!":
        caption += "."
    return caption


# --------------------------------------------------------------------------- fallbacks


def fallback_scenes(vocab: Vocabulary, labels: Sequence[str], wheres: Sequence[str],
                    seed: int) -> list[FallbackScene]:
    """Scenes from the table that suit where the objects belong, shuffled by the concept set
    and seed."""
    import random

    indoor, outdoor = "indoor" in wheres, "outdoor" in wheres
    if outdoor and not indoor:
        pool = list(vocab.scenes["outdoor"])
    elif indoor and not outdoor:
        pool = list(vocab.scenes["indoor"])
    else:
        pool = [s for pair in zip(vocab.scenes["indoor"], vocab.scenes["outdoor"], strict=False)
                for s in pair]
    rng = random.Random(stable_seed("scenes", *sorted(labels), seed))
    rng.shuffle(pool)
    return pool


def complete_groups(groups: Sequence[Sequence[int]], count: int, seed: int) -> list[list[int]]:
    """The LLM's valid groups, plus groups of 2-4 for every concept it left out (seeded)."""
    import random

    rng = random.Random(stable_seed("groups", count, seed))
    out = [list(g) for g in groups]
    if count <= 4 and not out:
        return [list(range(count))]
    covered = {i for g in out for i in g}
    left = [i for i in range(count) if i not in covered]
    rng.shuffle(left)
    while left:
        size = min(len(left), 3)
        if len(left) - size == 1:
            size = 2
        chunk, left = left[:size], left[size:]
        if len(chunk) == 1:
            chunk.append(rng.choice([i for i in range(count) if i != chunk[0]]))
        out.append(chunk)
    return out
