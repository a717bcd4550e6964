"""What a run learned, read from its export: one reader for every run kind.

Training runs (kind "custom-diffusion") and EM extraction runs ("em-extract") export the same
folder (engine.train's export format: `pytorch_custom_diffusion_weights.safetensors`, one
`<token>.safetensors` per token, `mycanvas_concepts.json`), so a `RunConcepts` is read from
the manifest alone, whatever made it. The catalogue adds the run's kind and status.

Nothing here imports torch: the k/v weights and token rows are read when a pipeline takes
them (engine.generate.loading).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.train import (
    MANIFEST_NAME,
    ConceptRef,
    PromptStrategies,
    RunPaths,
    export_fingerprint,
    read_manifest,
)

if TYPE_CHECKING:
    from engine.project import Project, Run

RUN_KINDS = ("custom-diffusion", "em-extract")  # the kinds that export concepts


@dataclass(frozen=True)
class ConceptInfo:
    name: str  # the user's name: "Mochi"
    token: str  # "<mochi>"
    class_word: str  # "cat"

    @property
    def ref(self) -> ConceptRef:
        return ConceptRef(self.token, self.class_word)

    def matches(self, text: str) -> bool:
        """`text` names this concept: its name (any case), its token, or the token's word."""
        wanted = text.strip()
        return wanted.lower() == self.name.lower() or wanted in (self.token,
                                                                 self.token.strip("<>"))


@dataclass(frozen=True)
class RunConcepts:
    """A run's exported concepts and how it wrote its prompts."""

    run_id: int | None
    kind: str
    profile: str
    export_dir: Path
    weights_file: Path
    token_files: dict[str, Path]  # every learned token (concepts and the global token) -> file
    concepts: tuple[ConceptInfo, ...]
    global_token: str | None
    strategies: PromptStrategies
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def fingerprint(self) -> str:
        """Of the weight and token files' bytes: tells two exports apart. The export stored
        it in the manifest; an export written before that is hashed once, on first use (by
        the job that generates, never by a page reading the concepts), and the value stored
        in its manifest for the next read."""
        stored = self.manifest.get("fingerprint")
        if isinstance(stored, str) and stored:
            return stored
        value = export_fingerprint([self.weights_file, *self.token_files.values()])
        _store_fingerprint(self.export_dir, value)
        return value

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.token_files)

    def describe(self) -> str:
        names = ", ".join(f"{c.name} {c.token}" for c in self.concepts) or "no concepts"
        return f"run {self.run_id} ({self.kind}, profile {self.profile}): {names}"

    def concept(self, text: str) -> ConceptInfo:
        """The concept `text` names (name, token or bare token word); InputError if none."""
        for concept in self.concepts:
            if concept.matches(text):
                return concept
        known = ", ".join(f"{c.name} ({c.token})" for c in self.concepts)
        raise InputError(f"Run {self.run_id} learned no concept {text!r} (it knows: {known})")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where} must be non-empty text, got {value!r}")
    return value


def _strategies(manifest: dict[str, Any], global_token: str | None) -> PromptStrategies:
    """The prompt strategies the run trained with; a manifest without them trained on plain
    token captions ("a photo of <mochi> cat on a beach")."""
    raw = manifest.get("prompt_strategies")
    if not isinstance(raw, dict):
        return PromptStrategies(global_token=global_token is not None,
                                repeat_concept_tokens=False, separate_background=False)
    values = {k: raw.get(k, False) for k in ("global_token", "repeat_concept_tokens",
                                             "separate_background")}
    if not all(isinstance(v, bool) for v in values.values()):
        raise InputError(f"prompt_strategies must hold true/false values, got {raw!r}")
    values["global_token"] = values["global_token"] and global_token is not None
    return PromptStrategies(**values)


def _store_fingerprint(export_dir: Path, value: str) -> None:
    """Keep a computed fingerprint in an older export's manifest (atomically); a folder that
    cannot be written keeps working, it is hashed again next time."""
    from engine.atomic import atomic_write_text

    try:
        manifest = read_manifest(export_dir)
        manifest["fingerprint"] = value
        atomic_write_text(export_dir / MANIFEST_NAME,
                          json.dumps(manifest, indent=1, ensure_ascii=False))
    except (OSError, InputError):
        pass


def read_run_export(export_dir: Path, run_id: int | None = None, kind: str | None = None,
                    profile: str | None = None) -> RunConcepts:
    """The concepts of an export folder. `kind` and `profile` (from the catalogue) fill in
    what an older manifest does not say."""
    export_dir = Path(export_dir)
    where = export_dir / MANIFEST_NAME
    manifest = read_manifest(export_dir)
    weights = export_dir / _text(manifest.get("weights"), f"{where}: weights")
    token_files = {_text(t, f"{where}: token"): export_dir / _text(f, f"{where}: token file")
                   for t, f in manifest["token_files"].items()}
    for path in [weights, *token_files.values()]:
        if path.parent != export_dir or not path.is_file():
            raise InputError(f"{where} names {path.name}, which is not in the export folder")
    concepts = []
    for i, raw in enumerate(manifest.get("concepts") or []):
        if not isinstance(raw, dict):
            raise InputError(f"{where}: concepts[{i}] must be an object")
        info = ConceptInfo(_text(raw.get("name", raw.get("token")), f"{where}: concepts[{i}]"),
                           _text(raw.get("token"), f"{where}: concepts[{i}].token"),
                           _text(raw.get("class_word"), f"{where}: concepts[{i}].class_word"))
        if info.token not in token_files:
            raise InputError(f"{where}: concept {info.token} has no token file")
        concepts.append(info)
    global_token = manifest.get("global_token") or None
    if global_token is not None and global_token not in token_files:
        raise InputError(f"{where}: the global token {global_token} has no token file")
    base = manifest.get("base_model")
    run_profile = (base.get("profile") if isinstance(base, dict) else None) or profile
    if not run_profile:
        raise InputError(f"{where} does not say which model profile the run used")
    return RunConcepts(
        run_id=run_id if run_id is not None else manifest.get("run_id"),
        kind=str(kind or manifest.get("kind") or "custom-diffusion"),
        profile=str(run_profile), export_dir=export_dir, weights_file=weights,
        token_files=token_files, concepts=tuple(concepts), global_token=global_token,
        strategies=_strategies(manifest, global_token), manifest=manifest)


def _export_of(project: Project, run: Run) -> Path:
    assert run.id is not None
    if run.output_dir:  # "runs/<id>": where the run says its files are
        return project.root / run.output_dir / "export"
    return RunPaths.of(project, run.id).export


def load_run_concepts(project: Project, run_id: int) -> RunConcepts:
    """The concepts of run `run_id`: a finished run of a kind that exports concepts, whose
    export folder is still there. Each refusal is one line naming the run."""
    run = project.run(run_id)  # "No run with id N" for a run that does not exist
    if run.kind not in RUN_KINDS:
        raise InputError(f"Run {run_id} is a {run.kind!r} run, which has no concepts to "
                         "generate with")
    if run.status != "finished":
        raise InputError(f"Run {run_id} has not finished (it is {run.status}); finish or "
                         "resume it first, or pick another run")
    export = _export_of(project, run)
    if not (export / MANIFEST_NAME).is_file():
        raise InputError(f"Run {run_id} has no exported concepts in {export}: its files were "
                         "deleted or moved")
    return read_run_export(export, run_id, run.kind, run.config.get("profile"))


def newest_finished_run(project: Project) -> int:
    """The run that finished last, of any kind that exports concepts."""
    finished = [r for r in project.runs() if r.kind in RUN_KINDS and r.status == "finished"
                and r.id is not None]
    if not finished:
        raise InputError("This project has no finished training or extraction run yet; "
                         "train first (mycanvas train)")
    newest = max(finished, key=lambda r: (r.finished_at or r.created_at, r.id or 0))
    assert newest.id is not None
    return newest.id
