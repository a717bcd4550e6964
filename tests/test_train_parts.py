"""The reusable training parts (engine.train: tokens, diffusion_step, optimiser, loop, runs),
each on its own, on the tiny profile or on plain tensors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.errors import Cancelled, InputError

# --------------------------------------------------------------------------- helpers


def _pipe(tiny_models):
    from engine.models.loaders import load_text_to_image

    return load_text_to_image(tiny_models["base"])


class FakeContext:
    """The job context the loop uses: progress (cancels at `cancel_at`), log, preview."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.cancel_at = cancel_at
        self.progress_steps: list[int] = []
        self.logs: list[tuple[str, str]] = []
        self.previews: list[str] = []

    def progress(self, step: int, total: int, message: str = "") -> None:
        if step == self.cancel_at:
            raise Cancelled()
        self.progress_steps.append(step)

    def log(self, text: str, level: str = "info") -> None:
        self.logs.append((level, text))

    def preview(self, image, caption: str = "") -> None:
        self.previews.append(caption)


# --------------------------------------------------------------------------- tokens


def test_token_rows_start_from_init_words_and_only_they_move(tiny_models):
    import torch

    from engine.train.optimiser import OptimiserStep
    from engine.train.tokens import ConceptTokenEmbedding, add_concept_tokens

    pipe = _pipe(tiny_models)
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    encoder.requires_grad_(False)
    matrix = encoder.get_input_embeddings().weight.detach().clone()
    vocab = len(tokenizer)
    added = add_concept_tokens(tokenizer, encoder, ["<mochi>", "<cup>"], ["cat", "coffee mug"])
    assert added.ids == (vocab, vocab + 1) and added.tokens == ("<mochi>", "<cup>")
    assert encoder.get_input_embeddings() is added.embedding
    assert isinstance(added.embedding, ConceptTokenEmbedding)
    for row, word in zip(added.rows, ["cat", "coffee mug"], strict=True):
        ids = tokenizer(word, add_special_tokens=False).input_ids
        assert torch.equal(row.detach(), matrix[ids].mean(0))
    assert len(tokenizer("coffee mug", add_special_tokens=False).input_ids) == 2  # a real mean
    assert not added.embedding.base.weight.requires_grad
    # The merged matrix a reader sees: the old rows, then the new ones.
    assert torch.equal(added.embedding.weight, torch.cat([matrix, added.rows.detach()]))

    text_before = {k: v.clone() for k, v in encoder.state_dict().items()}
    rows_before = added.rows.detach().clone()
    ids = tokenizer(["a photo of <mochi>"], padding="max_length", max_length=77,
                    return_tensors="pt").input_ids
    target = torch.zeros(1, 77, encoder.config.hidden_size)
    step = OptimiserStep([{"params": [added.rows], "weight_decay": 0.5}], 1e-2)
    for i in range(3):
        step.step(i, lambda _m: (((encoder(ids)[0] - target) ** 2).mean(), {}))
    changed = sorted(k for k, v in encoder.state_dict().items()
                     if k in text_before and not torch.equal(v, text_before[k]))
    assert [k.split(".")[-2:] for k in changed] == [["token_embedding", "new_rows"]]
    assert torch.equal(added.embedding.base.weight, matrix)
    assert not torch.equal(added.rows[0].detach(), rows_before[0])
    assert set(added.rows_by_token()) == {"<mochi>", "<cup>"}


def test_the_embedding_matrix_cannot_reach_an_optimiser(tiny_models):
    from engine.train.optimiser import OptimiserStep
    from engine.train.tokens import add_concept_tokens

    pipe = _pipe(tiny_models)
    added = add_concept_tokens(pipe.tokenizer, pipe.text_encoder, ["<mochi>"], ["cat"])
    with pytest.raises(ValueError, match="frozen"):
        OptimiserStep([added.rows, added.embedding.base.weight], 1e-3)


def test_adding_tokens_refuses_clashes_and_mismatches(tiny_models):
    from engine.train.tokens import add_concept_tokens

    pipe = _pipe(tiny_models)
    with pytest.raises(InputError, match="already a word"):
        add_concept_tokens(pipe.tokenizer, pipe.text_encoder, ["cat</w>"], ["cat"])
    with pytest.raises(InputError, match="one init word per new token"):
        add_concept_tokens(pipe.tokenizer, pipe.text_encoder, ["<a>", "<b>"], ["cat"])
    add_concept_tokens(pipe.tokenizer, pipe.text_encoder, ["<a>"], ["cat"])
    with pytest.raises(InputError, match="already has learned tokens"):
        add_concept_tokens(pipe.tokenizer, pipe.text_encoder, ["<b>"], ["cat"])


# --------------------------------------------------------------------------- diffusion step


def test_noised_prediction_matches_a_hand_made_unet_call(tiny_models):
    import torch
    from diffusers import DDPMScheduler

    from engine.train.diffusion_step import draw_latents, noised_prediction

    pipe = _pipe(tiny_models)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    mean, std = torch.randn(2, 4, 8, 8), torch.rand(2, 4, 8, 8)
    states = torch.randn(2, 77, pipe.text_encoder.config.hidden_size)
    gen = torch.Generator().manual_seed(5)
    latents = draw_latents(mean, std, gen, 0.5)
    with torch.no_grad():
        out = noised_prediction(pipe.unet, scheduler, latents, states, gen)

    # By hand, the draws in the documented order: latent sample, noise, timesteps.
    gen = torch.Generator().manual_seed(5)
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    noise = torch.randn(2, 4, 8, 8, generator=gen)
    timesteps = torch.randint(0, 1000, (2,), generator=gen)
    noisy = scheduler.add_noise((mean + std * sample) * 0.5, noise, timesteps)
    with torch.no_grad():
        pred = pipe.unet(noisy, timesteps, states).sample
    assert torch.equal(out.timesteps, timesteps) and torch.equal(out.noise, noise)
    assert torch.equal(out.noisy_latents, noisy) and torch.equal(out.target, noise)
    assert torch.equal(out.prediction, pred)

    v_scheduler = DDPMScheduler.from_config(scheduler.config, prediction_type="v_prediction")
    with torch.no_grad():
        v = noised_prediction(pipe.unet, v_scheduler, latents, states,
                              torch.Generator().manual_seed(9))
    assert torch.equal(v.target, v_scheduler.get_velocity(latents, v.noise, v.timesteps))


def test_cross_attention_maps_are_captured_in_the_same_forward_pass(tiny_models):
    """What EM extraction does: record each cross-attention map while predicting, then
    add a loss on the maps to the diffusion loss."""
    import torch
    from diffusers import DDPMScheduler
    from diffusers.models.attention_processor import AttnProcessor

    from engine.train.diffusion_step import noised_prediction

    class Recorder(AttnProcessor):
        def __init__(self, maps: list) -> None:
            super().__init__()
            self.maps = maps

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
            if encoder_hidden_states is None:
                return super().__call__(attn, hidden_states, None, *args, **kwargs)
            scores = attn.get_attention_scores

            def recorded(query, key, mask=None):
                probs = scores(query, key, mask)
                self.maps.append(probs)
                return probs

            attn.get_attention_scores = recorded
            try:
                return super().__call__(attn, hidden_states, encoder_hidden_states, *args,
                                        **kwargs)
            finally:
                del attn.get_attention_scores

    pipe = _pipe(tiny_models)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    latents = torch.randn(1, 4, 8, 8)
    states = torch.randn(1, 77, pipe.text_encoder.config.hidden_size)
    with torch.no_grad():
        plain = noised_prediction(pipe.unet, scheduler, latents, states,
                                  torch.Generator().manual_seed(1))
    maps: list = []
    pipe.unet.set_attn_processor(Recorder(maps))
    pipe.unet.requires_grad_(False)
    k = next(m.to_k for n, m in pipe.unet.named_modules() if n.endswith("attn2"))
    k.weight.requires_grad_(True)
    out = noised_prediction(pipe.unet, scheduler, latents, states,
                            torch.Generator().manual_seed(1))
    cross_layers = sum(n.endswith("attn2") for n, _ in pipe.unet.named_modules())
    assert len(maps) == cross_layers and all(m.shape[-1] == 77 for m in maps)
    torch.testing.assert_close(out.prediction, plain.prediction, rtol=1e-4, atol=1e-5)
    loss = ((out.prediction - out.target) ** 2).mean() + 1e-2 * maps[0][..., 1].mean()
    loss.backward()
    assert k.weight.grad is not None and bool(k.weight.grad.abs().sum() > 0)


# --------------------------------------------------------------------------- optimiser


def _linear(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def test_two_accumulated_micro_steps_equal_one_step_of_the_whole_batch():
    import torch

    from engine.train.optimiser import OptimiserStep

    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    halves, whole = _linear(), _linear()
    accumulated = OptimiserStep(halves.parameters(), 1e-2, accumulation=2, max_grad_norm=0)
    single = OptimiserStep(whole.parameters(), 1e-2, max_grad_norm=0)

    def half_loss(micro):
        rows = slice(2 * micro, 2 * micro + 2)
        loss = ((halves(x[rows]) - y[rows]) ** 2).mean()
        return loss, {"part": float(micro)}

    for step in range(3):
        a = accumulated.step(step, half_loss)
        b = single.step(step, lambda _m: (((whole(x) - y) ** 2).mean(), {}))
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
        assert a["part"] == 0.5  # each part is the mean over the micro-batches
    for p, q in zip(halves.parameters(), whole.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
        assert p.grad is None  # zeroed after the step


def test_warm_up_then_constant_learning_rate():
    from engine.train.optimiser import OptimiserStep

    step = OptimiserStep(_linear().parameters(), 0.4, warmup_steps=4)
    assert [step.learning_rate(i) for i in range(6)] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    record = step.step(1, lambda _m: (sum(p.sum() for p in step.parameters), {}))
    assert record["lr"] == pytest.approx(0.2)
    assert all(g["lr"] == pytest.approx(0.2) for g in step.optimizer.param_groups)
    assert OptimiserStep(_linear().parameters(), 0.4).learning_rate(0) == 0.4


def test_gradients_are_clipped_before_the_update():
    import torch

    from engine.train.optimiser import OptimiserStep

    model = _linear()
    step = OptimiserStep(model.parameters(), 1e-3, max_grad_norm=0.5)
    seen = []
    update = step.optimizer.step

    def spy(*args, **kwargs):
        seen.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in step.parameters]))))
        return update(*args, **kwargs)

    step.optimizer.step = spy
    # d/dw of sum(10 * w) is 10 everywhere: 8 entries (6 weights, 2 biases), norm 10 * sqrt(8).
    record = step.step(0, lambda _m: (sum((10 * p).sum() for p in step.parameters), {}))
    assert record["grad_norm"] == pytest.approx(10 * 8 ** 0.5, rel=1e-6)  # before clipping
    assert seen == [pytest.approx(0.5, rel=1e-5)]


def test_a_failed_or_non_finite_step_leaves_no_gradients():
    from engine.train.optimiser import OptimiserStep

    model = _linear()
    step = OptimiserStep(model.parameters(), 1e-3, accumulation=2)

    def fails_on_second(micro):
        if micro == 1:
            raise RuntimeError("out of memory")
        return model.weight.sum(), {}

    with pytest.raises(RuntimeError):
        step.step(0, fails_on_second)
    assert all(p.grad is None for p in model.parameters())  # a retry starts clean
    with pytest.raises(InputError, match="The loss became nan at step 3"):
        step.step(2, lambda _m: (model.weight.sum() * float("nan"), {}))


def test_optimiser_state_round_trips():
    import copy

    import torch

    from engine.train.optimiser import OptimiserStep

    def loss_of(model):
        return lambda _micro: (((model(torch.ones(1, 3)) - 1) ** 2).mean(), {})

    a, b = _linear(), _linear()
    step_a, step_b = OptimiserStep(a.parameters(), 1e-2), OptimiserStep(b.parameters(), 1e-2)
    step_a.step(0, loss_of(a))
    with torch.no_grad():
        for p, q in zip(b.parameters(), a.parameters(), strict=True):
            p.copy_(q)
    # Deep copies, as a checkpoint file gives: state_dict() shares the moment tensors.
    step_b.load_state(copy.deepcopy(step_a.state_dict()), step_a.scaler_state())
    step_a.step(1, loss_of(a))
    step_b.step(1, loss_of(b))  # the moments came along: the same update
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


# --------------------------------------------------------------------------- the loop


class CountingTrainer:
    """A trainer whose "weights" are one number: the sum of the steps it took."""

    def __init__(self, oom_at: set[int] | None = None, lean: bool = True) -> None:
        self.total = 0.0
        self.steps: list[int] = []
        self.oom_at = set(oom_at or ())
        self.lean = lean
        self.loaded_from: Path | None = None

    def train_step(self, step: int) -> dict[str, float]:
        if step in self.oom_at:
            self.oom_at.discard(step)
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        self.steps.append(step)
        self.total += step
        return {"loss": 1.0 / (step + 1)}

    def save_state(self, step: int):
        import torch

        from engine.train.loop import TrainerState

        return TrainerState({"total": torch.tensor([self.total])}, {"state": {}},
                            {"kind": "counting"})

    def load_state(self, saved, where: Path) -> None:
        if saved.state.get("kind") != "counting":
            raise InputError(f"{where} is not a counting checkpoint")
        self.total = float(saved.trainable["total"][0])
        self.loaded_from = where

    def preview(self, step: int):
        from PIL import Image

        return Image.new("RGB", (8, 8), (step, 0, 0)), f"prompt at {step}"

    def go_leaner(self) -> str | None:
        if not self.lean:
            return None
        self.lean = False
        return "a leaner mode"


def _schedule(steps, checkpoint_every=4, keep=2, sample_every=0):
    from engine.train.loop import LoopSchedule

    return LoopSchedule(steps, checkpoint_every, keep, sample_every)


def _records(paths):
    return [json.loads(line) for line in paths.metrics.read_text().splitlines()]


def test_loop_checkpoints_and_previews_at_their_cadence(tmp_path):
    from engine.train import checkpoints as ckpt
    from engine.train.loop import run_loop
    from engine.train.runs import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    trainer, ctx = CountingTrainer(), FakeContext()
    assert run_loop(ctx, trainer, _schedule(10, sample_every=3), paths) == 0
    assert trainer.steps == list(range(10)) and ctx.progress_steps == list(range(10))
    # Every 4 steps and at the end; only the newest 2 kept.
    assert [c.step for c in ckpt.list_checkpoints(paths.checkpoints)] == [8, 10]
    trainable, _, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(paths.checkpoints))
    assert float(trainable["total"][0]) == 45.0 and state["step"] == 10
    assert sorted(p.name for p in paths.samples.iterdir()) == [
        "step-0000003.png", "step-0000006.png", "step-0000009.png"]
    records = _records(paths)
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 11))
    assert [r["prompt"] for r in records if "sample" in r] == [
        "prompt at 3", "prompt at 6", "prompt at 9"]
    assert ctx.previews == ["step 3: prompt at 3", "step 6: prompt at 6", "step 9: prompt at 9"]


def test_loop_resumes_at_the_last_checkpoint(tmp_path):
    from engine.train.loop import run_loop
    from engine.train.runs import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    run_loop(FakeContext(), CountingTrainer(), _schedule(6), paths)  # checkpoints 4 and 6
    # A kill after step 6 left metrics of steps the checkpoint does not hold.
    with open(paths.metrics, "a") as f:
        f.write(json.dumps({"step": 7, "loss": 0.5}) + "\n" + '{"step": 8, "lo')
    trainer, ctx = CountingTrainer(), FakeContext()
    assert run_loop(ctx, trainer, _schedule(9), paths) == 6
    assert trainer.loaded_from == paths.checkpoints / "step-0000006"
    assert trainer.steps == [6, 7, 8] and trainer.total == 15 + 21
    assert [r["step"] for r in _records(paths)] == list(range(1, 10))
    assert ("info", "Resuming from the checkpoint at step 6") in ctx.logs

    class Refuses(CountingTrainer):
        def load_state(self, saved, where):
            raise InputError(f"{where} was made with other settings")

    refuses = Refuses()
    with pytest.raises(InputError, match="step-0000009 was made with other settings"):
        run_loop(FakeContext(), refuses, _schedule(12), paths)
    assert refuses.steps == []


def test_loop_saves_on_cancel_and_resumes_from_there(tmp_path):
    from engine.train import checkpoints as ckpt
    from engine.train.loop import run_loop
    from engine.train.runs import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    trainer = CountingTrainer()
    with pytest.raises(Cancelled):
        run_loop(FakeContext(cancel_at=6), trainer, _schedule(10), paths)
    assert trainer.steps == list(range(6))
    assert [c.step for c in ckpt.list_checkpoints(paths.checkpoints)] == [4, 6]
    with pytest.raises(Cancelled):  # cancelled right at a checkpoint: nothing more to save
        run_loop(FakeContext(cancel_at=8), CountingTrainer(), _schedule(10), paths)
    assert [c.step for c in ckpt.list_checkpoints(paths.checkpoints)] == [6, 8]
    again = CountingTrainer()
    assert run_loop(FakeContext(), again, _schedule(10), paths) == 8
    assert again.steps == [8, 9] and again.total == 45


def test_loop_retries_an_out_of_memory_once_in_a_leaner_mode(tmp_path):
    from engine.train.loop import run_loop
    from engine.train.runs import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    trainer, ctx = CountingTrainer(oom_at={2}), FakeContext()
    run_loop(ctx, trainer, _schedule(4), paths)
    assert trainer.steps == [0, 1, 2, 3] and not trainer.lean
    assert ("warning", "Out of memory; continuing with a leaner mode") in ctx.logs
    # Nothing leaner left: the out-of-memory goes up.
    trainer = CountingTrainer(oom_at={1}, lean=False)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_loop(FakeContext(), trainer, _schedule(4), RunPaths(tmp_path / "other"))


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class FakeSnapshot:
    snapshot_id: str
    items: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"id": self.snapshot_id, "items": list(self.items)})

    @classmethod
    def from_json(cls, text: str, where: str) -> FakeSnapshot:
        data = json.loads(text)
        return cls(data["id"], tuple(data["items"]))


@pytest.fixture
def project(tmp_path):
    from engine.project import Project

    with Project.create(tmp_path / "p", "P") as proj:
        yield proj


def _kinds():
    from engine.train.runs import RunKind

    return RunKind("custom-diffusion", "training"), RunKind("em-extract", "extraction")


def test_new_run_records_the_run_and_stores_its_snapshot(project):
    from engine.train.runs import RunPaths, new_run

    train, _extract = _kinds()
    run = new_run(project, train, {"train": {"steps": 3}}, FakeSnapshot("abc", ("x",)))
    assert (run.kind, run.status, run.dataset_snapshot) == ("custom-diffusion", "queued", "abc")
    assert run.config == {"train": {"steps": 3}}
    assert run.output_dir == f"runs/{run.id}" and run.metrics_file == f"runs/{run.id}/metrics.jsonl"
    paths = RunPaths.of(project, run.id)
    assert FakeSnapshot.from_json(paths.dataset.read_text(), "") == FakeSnapshot("abc", ("x",))


def test_a_run_has_one_owner_and_a_dead_owners_run_is_interrupted(project):
    """The claim marks the run running; a second claim (any thread or process) is refused
    naming the holder; once the holder lets go, a run left running is marked interrupted."""
    from engine.errors import ProjectError
    from engine.train.runs import claim_run, delete_run, new_run, run_owner, settle_dead_runs

    train, extract = _kinds()
    run = new_run(project, train, {}, FakeSnapshot("a"))
    other = new_run(project, extract, {}, FakeSnapshot("b"))
    with claim_run(project, run.id, train):
        assert project.run(run.id).status == "running"
        owner = run_owner(project, run.id)
        assert owner is not None and f"process {os.getpid()} (" in owner
        assert f"working on training run {run.id} since " in owner
        refused = rf"^Run {run.id} already has an owner: process {os.getpid()} \("
        with pytest.raises(ProjectError, match=refused), claim_run(project, run.id, train):
            pass
        assert settle_dead_runs(project, train) == []  # its owner lives
        with pytest.raises(ProjectError, match=rf"^Run {run.id} cannot be deleted now: "):
            delete_run(project, run.id)
    assert run_owner(project, run.id) is None
    assert project.run(other.id).status == "queued"
    assert settle_dead_runs(project, train) == [run.id]
    assert project.run(run.id).status == "interrupted"
    assert project.run(other.id).status == "queued"  # another kind, never claimed


def test_a_failed_block_takes_back_what_it_added_unless_kept(project):
    from engine.errors import Cancelled
    from engine.train.runs import RunPaths, new_run

    train, _ = _kinds()
    before = project.summary()
    with pytest.raises(ValueError), project.provisional():
        concept = project.add_concept("Mochi", "cat")
        rel = project.put_bytes(b"new bytes", "txt")
        project.add_photo(concept.id, rel, "a" * 64, "x.png", 4, 4)
        run = new_run(project, train, {}, FakeSnapshot("a"))
        raise ValueError("boom")
    assert project.summary() == before
    assert not RunPaths.of(project, run.id).root.exists()
    assert not project.abspath(rel).exists()
    with pytest.raises(Cancelled), project.provisional():  # a cancel keeps it: resumable
        project.add_concept("Kept", "cat")
        raise Cancelled()
    with pytest.raises(ValueError), project.provisional(keep_if=lambda: True):
        project.add_concept("Also kept", "cat")
        raise ValueError("boom")
    assert [c.name for c in project.concepts()] == ["Kept", "Also kept"]


def test_a_run_of_another_kind_is_refused_by_id(project):
    from engine.train.runs import new_run, open_run, resume_run

    train, extract = _kinds()
    run = new_run(project, train, {}, FakeSnapshot("abc"))
    with pytest.raises(InputError, match=r"Run \d+ is a 'custom-diffusion' run, not an "
                                         "extraction run"):
        open_run(project, run.id, extract)
    project.update_run(run.id, status="cancelled")
    opened = open_run(project, run.id, train)
    snapshot = resume_run(project, opened, {"train": {"steps": 9}}, FakeSnapshot.from_json)
    assert snapshot == FakeSnapshot("abc")
    again = project.run(run.id)
    assert again.status == "running" and again.config == {"train": {"steps": 9}}


def test_resuming_a_run_without_its_snapshot_is_a_clear_error(project):
    from engine.train.runs import RunPaths, new_run, open_run, resume_run

    train, _ = _kinds()
    run = new_run(project, train, {}, FakeSnapshot("abc"))
    RunPaths.of(project, run.id).dataset.unlink()
    with pytest.raises(InputError, match="has no dataset snapshot"):
        resume_run(project, open_run(project, run.id, train), {}, FakeSnapshot.from_json)


def test_latest_resumable_run_skips_finished_runs_and_other_kinds(project):
    from engine.train.runs import latest_resumable_run, new_run

    train, extract = _kinds()
    with pytest.raises(InputError, match="no unfinished training run"):
        latest_resumable_run(project, train)
    first = new_run(project, train, {}, FakeSnapshot("a"))
    second = new_run(project, train, {}, FakeSnapshot("b"))
    project.update_run(second.id, status="finished")
    new_run(project, extract, {}, FakeSnapshot("c"))  # newer, but of another kind
    assert latest_resumable_run(project, train) == first.id
    project.update_run(first.id, status="finished")
    with pytest.raises(InputError, match="no unfinished training run"):
        latest_resumable_run(project, train)


def test_status_follows_the_block(project):
    from engine.train.runs import new_run, status_follows

    train, _ = _kinds()
    ids = [new_run(project, train, {}, FakeSnapshot(str(i))).id for i in range(3)]
    with status_follows(project, ids[0]):
        pass
    with pytest.raises(Cancelled), status_follows(project, ids[1]):
        raise Cancelled()
    with pytest.raises(ValueError), status_follows(project, ids[2]):
        raise ValueError("boom")
    assert [project.run(i).status for i in ids] == ["finished", "cancelled", "failed"]
    assert all(project.run(i).finished_at for i in ids)
