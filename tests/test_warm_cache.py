"""The worker's warm-model cache: one key shape, a memory budget, least recently used out."""

from __future__ import annotations

import pytest
from dataset_project import make_dataset_project
from train_project import make_train_project

from engine.jobs.warm_cache import ModelKey, WarmCache, model_bytes

MB = 1 << 20


def key(role: str, device: str = "cpu") -> ModelKey:
    return ModelKey(role, "tiny", device)


def cache_with_budget(budget_mb: int) -> WarmCache:
    """Sizes are what a fake model says it is (an int, in MB); the budget is fixed."""
    return WarmCache(budget=lambda _device, _held: budget_mb * MB, measure=lambda m: m * MB)


def test_loading_past_the_budget_evicts_the_least_recently_used():
    cache = cache_with_budget(100)
    cache.load(key("inpaint"), lambda: 40)
    cache.load(key("clip"), lambda: 30)
    cache.load(key("segmenter"), lambda: 20)
    assert cache.get(key("inpaint")) == 40  # touched: now the most recently used
    cache.load(key("detector"), lambda: 35)  # 125 MB > 100: the oldest unused one goes
    assert cache.loaded_keys() == [key("segmenter"), key("inpaint"), key("detector")]
    assert cache.evicted == [key("clip")]
    assert cache.held() == 95 * MB


def test_a_model_bigger_than_the_budget_is_kept_alone():
    cache = cache_with_budget(50)
    cache.load(key("clip"), lambda: 10)
    cache.load(key("base"), lambda: 80)  # the job needs it now: everything else goes
    assert cache.loaded_keys() == [key("base")]


def test_a_warm_model_is_not_loaded_again():
    cache = cache_with_budget(100)
    loads = []
    for _ in range(3):
        cache.load(key("clip"), lambda: loads.append(1) or 10)
    assert len(loads) == 1


def test_make_room_before_a_big_allocation_and_devices_apart():
    cache = cache_with_budget(100)
    cache.load(key("inpaint"), lambda: 60)
    cache.load(key("clip", "cuda:0"), lambda: 60)  # another device, another budget
    cache.make_room("cpu", 50 * MB)  # a training run is about to load 50 MB on the CPU
    assert cache.loaded_keys() == [key("clip", "cuda:0")]
    cache.make_room("cuda", 30 * MB)  # "cuda" is "cuda:0"
    assert cache.loaded_keys() == [key("clip", "cuda:0")]  # 60 + 30 fit
    cache.make_room("cuda", 50 * MB)
    assert cache.loaded_keys() == []


def test_evict_all_and_by_role():
    cache = cache_with_budget(1000)
    for role in ("inpaint", "clip", "planner"):
        cache.load(key(role), lambda: 1)
    assert cache.evict_where(lambda k: k.role == "planner") == [key("planner")]
    assert cache.evict_all() == [key("inpaint"), key("clip")]
    assert cache.loaded_keys() == [] and cache.held() == 0


def test_no_budget_known_keeps_everything():
    cache = WarmCache(budget=lambda _device, _held: None, measure=lambda m: m * MB)
    for role in ("a", "b", "c"):
        cache.load(key(role), lambda: 10_000)
    assert len(cache.loaded_keys()) == 3


def test_model_bytes_counts_parameters_and_pipeline_components():
    import torch

    linear = torch.nn.Linear(10, 4)  # 44 float32 values
    assert model_bytes(linear) == 44 * 4

    class Pipe:
        def __init__(self):
            self.components = {"unet": linear, "tokenizer": "not a module",
                               "vae": torch.nn.Linear(2, 2)}

    assert model_bytes(Pipe()) == (44 + 6) * 4

    class Wrapper:
        def __init__(self):
            self.pipe = Pipe()
            self.name = "wrapper"

    assert model_bytes(Wrapper()) == (44 + 6) * 4


def test_training_makes_room_by_evicting_the_warm_inpainter(tmp_path, tiny_models):
    """One worker builds a dataset (the inpainter stays warm), then trains: on a device with
    little memory the training run evicts the inpainter before it loads its own pipeline."""
    from engine.dataset.build import build_dataset_job
    from engine.dataset.jobs import BuildDatasetParams
    from engine.jobs import inline_context
    from engine.models.loaders import load_inpaint
    from engine.train.jobs import TrainParams
    from engine.train.training_job import train_job

    # The budget holds the inpainter and the CLIP judge, not a second pipeline beside them.
    pipeline = model_bytes(load_inpaint(tiny_models["inpaint"], "cpu"))
    models = WarmCache(budget=lambda _device, _held: int(pipeline * 2))
    ctx = inline_context(models=models)
    folder = make_dataset_project(tmp_path / "ds")
    build_dataset_job(ctx, BuildDatasetParams(project=str(folder), count=1, steps=2,
                                              resolution=64, profile="tiny", device="cpu"))
    assert sorted(k.role for k in models.loaded_keys()) == ["clip", "inpaint"]
    train_dir = make_train_project(tmp_path / "tr")
    result = train_job(ctx, TrainParams(project=str(train_dir), profile="tiny", device="cpu",
                                        config={"steps": 1, "sample_every": 0,
                                                "resolution": 64}))
    assert result.steps == 1
    assert [k.role for k in models.evicted] == ["inpaint"]  # the least recently used


@pytest.mark.parametrize("held", [0, 5 * MB])
def test_the_default_budget_is_a_share_of_what_the_device_could_give(monkeypatch, held):
    import engine.device as device
    from engine.jobs.warm_cache import BUDGET_SHARE, device_budget

    monkeypatch.setattr(device, "free_memory", lambda _device: 10 * MB)
    assert device_budget("cpu", held) == int(BUDGET_SHARE * (10 * MB + held))
    monkeypatch.setattr(device, "free_memory", lambda _device: None)
    assert device_budget("cpu", held) is None
