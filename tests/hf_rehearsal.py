"""A dress rehearsal of the sd15 download: a Hugging Face cache laid out exactly as
huggingface_hub writes it, for every downloaded role of the sd15 profile, under the real
repository names, with the published configs, tokenizers, schedulers and preprocessors and
full-size random weights.

    <hub>/models--org--name/refs/main                 the snapshot's commit
    <hub>/models--org--name/blobs/<sha256 or git sha1>  each file's bytes (sha256 for weights,
                                                       the git blob id for small files)
    <hub>/models--org--name/snapshots/<commit>/<path>  a relative symlink to its blob

Which files a role gets is the profile's own download manifest (`RoleSpec.wants`, its
`required` list): every file the real repository holds that this module can write is offered,
and only the ones the profile would download are written (a half-precision variant only when
the profile asks for it). The config files are written from the published repositories; where
a value is not known for certain it says so next to it.

Writing ~9 GB of weights takes minutes, so the cache is built once and kept on disk across
test runs (MYCANVAS_TEST_CACHE, else ~/.cache/mycanvas-tests), keyed by a hash of everything
that decides its bytes: this file, the profile table's sd15 entry, the BPE vocabulary and the
library versions. A build is written beside the cache and renamed into place when complete;
older rehearsals are removed (they are big).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import file_sha256

PROFILE = "sd15"
FIXTURES_MARK = "# " + "-" * 75 + " fixtures"
STAMP = "rehearsal.json"  # written last: a folder without it is a build cut short
_LIBRARIES = ("torch", "diffusers", "transformers", "open_clip_torch", "segment-anything",
              "huggingface_hub", "safetensors")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# --------------------------------------------------------------------------- published configs
# stable-diffusion-v1-5/stable-diffusion-v1-5 (a mirror of runwayml's, same files).

SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0",
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
    "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
}
SD15_VAE = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# SD 1.5's text encoder config keeps the ids of CLIP's original tokenizer (bos 0, eos 2, pad 1),
# not the tokenizer's 49406/49407: transformers pools at the argmax id for eos_token_id == 2.
SD15_TEXT_ENCODER = {
    "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2,
    "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "torch_dtype": "float32",
    "transformers_version": "4.22.0.dev0", "vocab_size": 49408,
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "clip_sample": False,
}
# Uncertain: the inpainting repository's scheduler is DDIM, its other fields as SD 1.5's.
SD15_INPAINT_SCHEDULER = {**SD15_SCHEDULER, "_class_name": "DDIMScheduler",
                          "_diffusers_version": "0.6.0.dev0"}
SD15_FEATURE_EXTRACTOR = {
    "crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_resize": True, "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "resample": 3, "size": 224,
}


def _added_token(content: str) -> dict[str, Any]:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": False}


def _sd15_tokenizer_files() -> dict[str, bytes]:
    special = {k: {key: v for key, v in _added_token(t).items() if key != "__type"}
               for k, t in (("bos_token", "<|startoftext|>"), ("eos_token", "<|endoftext|>"),
                            ("unk_token", "<|endoftext|>"))}
    config = {"add_prefix_space": False, "bos_token": _added_token("<|startoftext|>"),
              "do_lower_case": True, "eos_token": _added_token("<|endoftext|>"),
              "errors": "replace", "model_max_length": 77,
              "name_or_path": "openai/clip-vit-large-patch14", "pad_token": "<|endoftext|>",
              "special_tokens_map_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer", "unk_token": _added_token("<|endoftext|>")}
    return {**_vocab_and_merges(),
            "special_tokens_map.json": _json({**special, "pad_token": "<|endoftext|>"}),
            "tokenizer_config.json": _json(config)}


def _model_index(pipeline: str, scheduler: str, version: str) -> dict[str, Any]:
    return {
        "_class_name": pipeline, "_diffusers_version": version,
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "scheduler": ["diffusers", scheduler],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }


# laion/CLIP-ViT-B-32-laion2B-s34B-b79K: open_clip_config.json
OPEN_CLIP_CONFIG = {
    "model_cfg": {"embed_dim": 512,
                  "vision_cfg": {"image_size": 224, "layers": 12, "width": 768,
                                 "patch_size": 32},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
                               "heads": 8, "layers": 12}},
    "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD},
}
# google/owlvit-base-patch32. Uncertain: the published config.json also spells out every
# default of its text and vision configs; only the fields that differ from transformers'
# defaults are written here (the loaded config is the same).
OWLVIT_CONFIG = {
    "architectures": ["OwlViTForObjectDetection"], "initializer_factor": 1.0,
    "logit_scale_init_value": 2.6592, "model_type": "owlvit", "projection_dim": 512,
    "text_config": {"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
                    "max_position_embeddings": 16, "model_type": "owlvit_text_model"},
    "vision_config": {"image_size": 768, "patch_size": 32,
                      "model_type": "owlvit_vision_model"},
    "torch_dtype": "float32",
}
OWLVIT_PREPROCESSOR = {
    "crop_size": 768, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "OwlViTFeatureExtractor", "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD, "processor_class": "OwlViTProcessor", "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": 768,
}


def _owlvit_tokenizer_files() -> dict[str, bytes]:
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!",
               "unk_token": "<|endoftext|>"}
    config = {**special, "add_prefix_space": False, "do_lower_case": True, "errors": "replace",
              "model_max_length": 16, "name_or_path": "openai/clip-vit-base-patch32",
              "processor_class": "OwlViTProcessor", "tokenizer_class": "CLIPTokenizer"}
    files = {**_vocab_and_merges(), "special_tokens_map.json": _json(special),
             "tokenizer_config.json": _json(config)}
    files["tokenizer.json"] = _fast_tokenizer_json(files)
    return files


# --------------------------------------------------------------------------- file writers


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def _vocab_and_merges() -> dict[str, bytes]:
    """vocab.json and merges.txt derived from open_clip's BPE file (the published CLIP
    tokenizer files are that vocabulary)."""
    import tempfile

    from engine.models.tokenizer import write_clip_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(tmp)
        return {name: (Path(tmp) / name).read_bytes() for name in ("vocab.json", "merges.txt")}


def _fast_tokenizer_json(files: dict[str, bytes]) -> bytes:
    """tokenizer.json as transformers converts the slow CLIP tokenizer (the Hub's own file is
    such a conversion)."""
    import tempfile

    from transformers import CLIPTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        CLIPTokenizerFast.from_pretrained(tmp).save_pretrained(tmp)
        return (Path(tmp) / "tokenizer.json").read_bytes()


Writer = Callable[[Path], None]  # writes one file at the given path


def _bytes(data: bytes) -> Writer:
    return lambda path: path.write_bytes(data)


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _safetensors_of(build: Callable[[], Any], half: bool = False, seed: int = 0) -> Writer:
    def write(path: Path) -> None:
        from safetensors.torch import save_file

        _seeded(seed)
        model = build()
        if half:
            model = model.half()
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        # Tied or shared tensors are stored once, as save_pretrained does.
        seen: set[int] = set()
        for key in list(state):
            ptr = state[key].data_ptr()
            if ptr in seen:
                state[key] = state[key].clone()
            seen.add(ptr)
        save_file(state, str(path), metadata={"format": "pt"})
        del model, state

    return write


def _diffusers_model(cls: str, config: dict[str, Any]) -> Callable[[], Any]:
    def build() -> Any:
        import diffusers

        return getattr(diffusers, cls).from_config(config)

    return build


def _text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))


def _stable_diffusion_files(inpaint: bool) -> dict[str, Writer]:
    """Every file of the SD 1.5 (inpainting) repository that this module can write."""
    unet = {**SD15_UNET, "in_channels": 9} if inpaint else SD15_UNET
    scheduler = SD15_INPAINT_SCHEDULER if inpaint else SD15_SCHEDULER
    index = (_model_index("StableDiffusionInpaintPipeline", "DDIMScheduler", "0.6.0.dev0")
             if inpaint else _model_index("StableDiffusionPipeline", "PNDMScheduler", "0.6.0"))
    files: dict[str, Writer] = {
        "model_index.json": _bytes(_json(index)),
        "scheduler/scheduler_config.json": _bytes(_json(scheduler)),
        "feature_extractor/preprocessor_config.json": _bytes(_json(SD15_FEATURE_EXTRACTOR)),
        "unet/config.json": _bytes(_json(unet)),
        "vae/config.json": _bytes(_json(SD15_VAE)),
        "text_encoder/config.json": _bytes(_json(SD15_TEXT_ENCODER)),
    }
    files.update({f"tokenizer/{name}": _bytes(data)
                  for name, data in _sd15_tokenizer_files().items()})
    # Same seeds in both repositories: the VAE and text encoder are the same there too, so
    # their blobs are shared (hard links) like the published ones' bytes are equal.
    weights = {
        "unet/diffusion_pytorch_model": (_diffusers_model("UNet2DConditionModel", unet),
                                         1 if inpaint else 0),
        "vae/diffusion_pytorch_model": (_diffusers_model("AutoencoderKL", SD15_VAE), 2),
        "text_encoder/model": (_text_encoder, 3),
    }
    for stem, (build, seed) in weights.items():
        files[f"{stem}.safetensors"] = _safetensors_of(build, seed=seed)
        files[f"{stem}.fp16.safetensors"] = _safetensors_of(build, half=True, seed=seed)
    return files


def _sam_files(arch: str) -> dict[str, Writer]:
    names = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth",
             "vit_h": "sam_vit_h_4b8939.pth"}

    def write(path: Path, arch: str) -> None:
        import torch

        from engine.models.loaders import build_sam

        _seeded(4)
        state = build_sam({"arch": arch}).state_dict()
        torch.save(state, str(path))  # as the official checkpoints: a plain state dict

    return {f"checkpoints/{name}": (lambda path, a=a: write(path, a))
            for a, name in names.items() if a == arch}


def _open_clip_files() -> dict[str, Writer]:
    def build() -> Any:
        import tempfile

        import open_clip

        from engine.models.loaders import quiet_open_clip

        with tempfile.TemporaryDirectory() as tmp, quiet_open_clip():
            (Path(tmp) / "open_clip_config.json").write_bytes(_json(OPEN_CLIP_CONFIG))
            return open_clip.create_model(f"local-dir:{tmp}", load_weights=False,
                                          pretrained_text=False)

    return {"open_clip_config.json": _bytes(_json(OPEN_CLIP_CONFIG)),
            "open_clip_model.safetensors": _safetensors_of(build, seed=5)}


def _owlvit_files() -> dict[str, Writer]:
    def build() -> Any:
        from transformers import OwlViTConfig, OwlViTForObjectDetection

        return OwlViTForObjectDetection(OwlViTConfig(**{
            k: v for k, v in OWLVIT_CONFIG.items() if k in ("text_config", "vision_config",
                                                             "projection_dim",
                                                             "logit_scale_init_value")}))

    return {"config.json": _bytes(_json(OWLVIT_CONFIG)),
            "preprocessor_config.json": _bytes(_json(OWLVIT_PREPROCESSOR)),
            "model.safetensors": _safetensors_of(build, seed=6),
            **{name: _bytes(data) for name, data in _owlvit_tokenizer_files().items()}}


def repository_files(role: str) -> dict[str, Writer]:
    """What the role's real repository holds that we can write (path -> writer); the profile
    decides which of them a download takes."""
    from engine.models.profiles import get_profile

    spec = get_profile(PROFILE).role(role)
    if spec.format == "diffusers-sd":
        return _stable_diffusion_files(inpaint=False)
    if spec.format == "diffusers-sd-inpaint":
        return _stable_diffusion_files(inpaint=True)
    if spec.format == "sam":
        return _sam_files(spec.arch or "vit_b")
    if spec.format == "open-clip":
        return _open_clip_files()
    if spec.format == "owlvit":
        return _owlvit_files()
    raise ValueError(f"the rehearsal cannot write a {spec.format!r} repository ({role})")


def downloaded_roles() -> list[str]:
    """The sd15 roles that come from the Hub (the planner comes from a package)."""
    from engine.models.profiles import get_profile

    return [role for role, spec in get_profile(PROFILE).roles.items() if spec.repo]


def download_manifest(role: str) -> list[str]:
    """The files a download of `role` takes, by the profile's own allow/required lists."""
    from engine.models.profiles import get_profile

    spec = get_profile(PROFILE).role(role)
    offered = repository_files(role)
    missing = [f for f in spec.required if f not in offered]
    if missing:
        raise ValueError(f"the rehearsal cannot write {missing} of {spec.repo}")
    return sorted(name for name in offered if spec.wants(name) or name in spec.required)


# --------------------------------------------------------------------------- the cache layout


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _write_repo(hub: Path, role: str, staging: Path, shared: dict[str, Path]) -> None:
    from engine.models.profiles import get_profile

    spec = get_profile(PROFILE).role(role)
    assert spec.repo
    repo_dir = hub / ("models--" + spec.repo.replace("/", "--"))
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    writers = repository_files(role)
    entries: dict[str, str] = {}
    for name in download_manifest(role):
        tmp = staging / "file"
        writers[name](tmp)
        large = name.endswith((".safetensors", ".pth", ".bin"))
        blob_id = file_sha256(tmp) if large else _git_blob_id(tmp.read_bytes())
        blob = blobs / blob_id
        if blob_id in shared and not blob.exists():
            os.link(shared[blob_id], blob)  # the same bytes in another repository
            tmp.unlink()
        elif not blob.exists():
            tmp.replace(blob)
        else:
            tmp.unlink()
        shared.setdefault(blob_id, blob)
        entries[name] = blob_id
    commit = spec.revision if len(spec.revision) == 40 else hashlib.sha1(
        json.dumps(entries, sort_keys=True).encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    for name, blob_id in entries.items():
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blobs / blob_id, link.parent))
    if len(spec.revision) != 40:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / spec.revision).write_text(commit)


def build_rehearsal(hub: Path) -> Path:
    """Write the rehearsal cache's `hub` folder (the HF_HUB_CACHE layout). Minutes; ~9 GB."""
    from engine.models.loaders import quiet_open_clip

    hub.mkdir(parents=True, exist_ok=True)
    staging = hub.parent / "staging"
    staging.mkdir(exist_ok=True)
    shared: dict[str, Path] = {}
    with quiet_open_clip():
        for role in downloaded_roles():
            _write_repo(hub, role, staging, shared)
    shutil.rmtree(staging)
    return hub


def rehearsal_key() -> str:
    """A hash of everything that decides the rehearsal's bytes."""
    from importlib import metadata

    from engine.models.profiles import PROFILES_FILE
    from engine.models.tokenizer import bundled_bpe_path

    source = Path(__file__).read_text(encoding="utf-8")
    digest = hashlib.sha256(source.split(FIXTURES_MARK, 1)[0].encode())  # the builder
    table = json.loads(PROFILES_FILE.read_text(encoding="utf-8"))["profiles"][PROFILE]
    digest.update(json.dumps(table, sort_keys=True).encode())
    digest.update(bundled_bpe_path().read_bytes())
    for dist in _LIBRARIES:
        try:
            digest.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist}=missing".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("MYCANVAS_TEST_CACHE")
                or Path.home() / ".cache" / "mycanvas-tests")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another test process may be building it
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_rehearsal(root: Path | None = None) -> Path:
    """The rehearsal's hub folder, built once per key (a complete one has its stamp)."""
    root = root or cache_root()
    key = rehearsal_key()
    target = root / f"hf-rehearsal-{key}"
    with _locked(root / "hf-rehearsal.lock"):
        if not (target / STAMP).is_file():
            for old in root.glob("hf-rehearsal-*"):
                if old.is_dir():
                    shutil.rmtree(old)  # a build cut short, or another key: ~9 GB each
            building = root / f"hf-rehearsal-{key}.building"
            build_rehearsal(building / "hub")
            (building / STAMP).write_text(json.dumps({"key": key, "profile": PROFILE}))
            building.rename(target)
    return target / "hub"


@contextmanager
def using_rehearsal(hub: Path, monkeypatch: Any) -> Iterator[Path]:
    """huggingface_hub in this process and in subprocesses reads the rehearsal cache."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    yield hub


# --------------------------------------------------------------------------- fixtures
# (What follows does not decide the rehearsal's bytes: the key hashes the text above.)


def rehearsal_env(hub: Path, data_dir: Path, config_dir: Path) -> dict[str, str]:
    """The environment of a `mycanvas` subprocess on the rehearsal: its cache, offline, and
    the test session's own app folders (never the user's)."""
    repo = Path(__file__).resolve().parent.parent
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "PYTHONPATH": path,
            "MYCANVAS_DATA_DIR": str(data_dir), "MYCANVAS_CONFIG_DIR": str(config_dir)}


PERSONALIZE_ARGS = ("--profile", PROFILE, "--device", "cpu", "--layouts", "1", "--items", "1",
                    "--train-steps", "2", "--pictures", "1", "--resolution", "256", "--json")


@dataclass(frozen=True)
class Personalized:
    project: Path
    result: dict[str, Any]
    seconds: float
    peak_rss: int  # bytes, of the command


def _paint_mask(project: Path, imported: Any, mask_file: Path) -> None:
    import numpy as np
    from PIL import Image

    from engine.jobs import JobFinished, run_inline

    stroke = np.asarray(Image.open(mask_file).convert("L"))
    height, width = stroke.shape
    end = run_inline("paint-mask", {
        "project": str(project), "photo_id": imported.imported[0]["id"],
        "concept_id": imported.concept_id, "mode": "add", "stroke": stroke.tobytes(),
        "width": width, "height": height, "stride": width})
    assert isinstance(end, JobFinished), end


def personalize_on_rehearsal(hub: Path, root: Path) -> Personalized:
    """`mycanvas personalize --profile sd15` from a project with only photos (a cat, a mug),
    as a user runs it, at 256 px with the smallest counts. Raises with the command's stderr
    if it fails."""
    import subprocess
    import sys
    import time

    from engine.jobs import JobFinished, run_inline
    from engine.project import Project

    # Two concepts, one photo each. SAM's random weights find 0.1 % slivers, which the
    # dataset's filter rightly rejects (nothing left to train on), so each photo gets the
    # mask a user paints with the brush after SAM failed: its hand-checked reference mask.
    project = root / "project"
    Project.create(project, "sd15 rehearsal").close()
    data = Path(__file__).resolve().parent / "data"
    for name, word, photo, mask in (("Mochi", "cat", "chelsea.jpg", "cat.png"),
                                    ("Cup", "mug", "coffee.jpg", "coffee.png")):
        end = run_inline("import-photos", {"project": str(project), "concept": name,
                                           "class_word": word,
                                           "paths": [str(data / "quality" / photo)]})
        assert isinstance(end, JobFinished), end
        _paint_mask(project, end.result, data / "reference_masks" / mask)
    env = rehearsal_env(hub, root.parent / "app-data", root / "config")
    # The command, and its peak memory said on stderr when it ends.
    code = ("import resource, sys\nfrom desktop_app.launcher import main\n"
            "code = main(sys.argv[1:])\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(f'PEAK-KB {peak}', file=sys.stderr)\nsys.exit(code)\n")
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, "personalize", str(project),
                          *PERSONALIZE_ARGS], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent, timeout=1800)
    seconds = time.monotonic() - began
    if out.returncode != 0:
        raise AssertionError(f"personalize failed ({out.returncode}): {out.stderr[-4000:]}")
    peaks = [int(line.split()[1]) for line in out.stderr.splitlines()
             if line.startswith("PEAK-KB ")]
    return Personalized(project, json.loads(out.stdout), seconds, peaks[-1] * 1024)
