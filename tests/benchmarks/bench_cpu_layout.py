"""Where channels-last weights and each form of attention pay on this CPU (engine.device's
CHANNELS_LAST_BF16 and ATTENTION_FP32_KINDS rest on these rows, per kind of CPU).

* cpu-layout: SD 1.5's UNet call with guidance (batch 2) and VAE decode, random weights,
  contiguous against channels-last weights, in each precision this CPU's plans use (float32;
  bf16 autocast only where the CPU has bf16 units). Each case in a fresh process (its peak
  RSS its own), processes interleaved over rounds; min and median of the timed calls.
* cpu-attention: the attention of the UNet's first level (batch 2, 8 heads, 64² tokens, head
  size 40) in each form torch and diffusers offer on a CPU: SDPA in float32, SDPA under bf16
  autocast, float32 SDPA inside a bf16 step (engine.device.FloatAttention's form), and the
  explicit baddbmm + softmax product (diffusers' AttnProcessor, what attention slicing runs),
  interleaved in one process.

Resolution: MYCANVAS_BENCH_SIDE (default 256 px: a 512 px UNet call takes over a minute in
float32 on one thread of an AVX2 CPU). Heavy: run under `flock /tmp/mycanvas-heavy.lock`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from machine import spread, where
from run import REPO, benchmark

TESTS = REPO / "tests"


def _in_child(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def layout_case(model: str, layout: str, precision: str, side: int, calls: int) -> dict:
    """Child: one model in one layout and precision; a warm-up call, then `calls` timed."""
    sys.path.insert(0, str(TESTS))
    import contextlib

    import diffusers
    import torch
    from sd15_random import SD15_VAE
    from sd15_text2image import SD15_UNET

    torch.manual_seed(0)
    latent = side // 8
    if model == "unet":
        net = diffusers.UNet2DConditionModel(**SD15_UNET).eval()
        x, t, text = torch.randn(2, 4, latent, latent), torch.tensor([500, 500]), \
            torch.randn(2, 77, 768)

        def call() -> Any:
            return net(x, t, text)
    else:
        net = diffusers.AutoencoderKL(**SD15_VAE).eval()
        z = torch.randn(1, 4, latent, latent)

        def call() -> Any:
            return net.decode(z)
    if layout == "channels-last":
        net.to(memory_format=torch.channels_last)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bfloat16"
                else contextlib.nullcontext())
    times = []
    with torch.no_grad(), autocast:
        call()
        for _ in range(calls):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return {"times": times, "rss": _peak_rss_mib()}


@benchmark("cpu-layout")
def cpu_layout() -> list[dict]:
    from engine.device import cpu_facts

    side = int(os.environ.get("MYCANVAS_BENCH_SIDE", "256"))
    facts = cpu_facts()
    precisions = ["float32"] + (["bfloat16"] if facts.bf16_units else [])
    rows = []
    for model in ("unet", "vae"):
        for precision in precisions:
            got: dict[str, dict[str, Any]] = {}
            for r in range(2):  # rounds, the order flipped: both see the same load
                order = ("contiguous", "channels-last")
                for layout in order if r == 0 else reversed(order):
                    case = _in_child(layout_case, model, layout, precision, side, 1)
                    seen = got.setdefault(layout, {"times": [], "rss": 0.0})
                    seen["times"] += case["times"]
                    seen["rss"] = max(seen["rss"], case["rss"])
            base, last = (statistics.median(got[k]["times"]) for k in got)
            what = "UNet call with guidance" if model == "unet" else "VAE decode"
            for layout, seen in got.items():
                rows.append({"metric": f"SD 1.5 {side} px {what}, {precision}, {layout}",
                             "value": statistics.median(seen["times"]), "unit": "s",
                             "note": f"{spread(seen['times'])}; peak RSS {seen['rss']:.0f} MiB"})
            more = got["channels-last"]["rss"] - got["contiguous"]["rss"]
            rows.append({"metric": f"SD 1.5 {side} px {what}, {precision}: channels-last gain",
                         "value": 100 * (base / last - 1), "unit": "%",
                         "note": f"peak RSS {more:+.0f} MiB; {facts.kind} CPU: {where()}"})
    if not facts.bf16_units:
        rows.append({"metric": "bf16 rows", "value": "n/a", "unit": "",
                     "note": f"this {facts.kind} CPU has no bf16 units: its plans never use bf16"})
    return rows


def _attention_forms(tokens: int) -> dict[str, Any]:
    import torch
    from torch.nn import functional

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 8, tokens, 40, generator=gen) for _ in range(3))
    scale = 40 ** -0.5

    def sdpa() -> Any:
        return functional.scaled_dot_product_attention(q, k, v)

    def sdpa_bf16() -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return functional.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(),
                                                          v.bfloat16())

    def fp32_in_bf16() -> Any:  # FloatAttention's form: bf16 inputs, float32 product
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with torch.autocast("cpu", enabled=False):
                out = functional.scaled_dot_product_attention(qb.float(), kb.float(),
                                                              vb.float())
            return out.bfloat16()

    def baddbmm() -> Any:  # diffusers' AttnProcessor (and attention slicing)
        q3, k3, v3 = (t.reshape(16, tokens, 40) for t in (q, k, v))
        scores = torch.baddbmm(torch.empty(16, tokens, tokens), q3, k3.transpose(1, 2),
                               beta=0, alpha=scale)
        return torch.bmm(scores.softmax(-1), v3)

    return {"SDPA float32": sdpa, "SDPA bf16 autocast": sdpa_bf16,
            "SDPA float32 inside a bf16 step": fp32_in_bf16, "baddbmm + softmax float32": baddbmm}


@benchmark("cpu-attention")
def cpu_attention() -> list[dict]:
    import torch

    from engine.device import cpu_facts

    side = int(os.environ.get("MYCANVAS_BENCH_SIDE", "256"))
    tokens = (side // 8) ** 2
    forms = _attention_forms(tokens)
    times: dict[str, list[float]] = {name: [] for name in forms}
    with torch.no_grad():
        for r in range(4):  # round 0 warms up
            for name in forms if r % 2 else reversed(list(forms)):
                start = time.perf_counter()
                forms[name]()
                if r:
                    times[name].append(time.perf_counter() - start)
    fastest = min(forms, key=lambda n: statistics.median(times[n]))
    facts = cpu_facts()
    return [{"metric": f"attention, 2x8 heads x {tokens} tokens x 40: {name}",
             "value": statistics.median(t), "unit": "s",
             "note": f"{spread(t)}; {facts.kind} CPU" + ("; fastest" if name == fastest else "")
                     + (f"; {where()}" if name == fastest else "")}
            for name, t in times.items()]


# --------------------------------------------------------------------------- CLI generation


def _prepare_project(root: str, folder: str) -> int:
    """Child: a project with one finished run (a synthetic export of the SD 1.5 base)."""
    sys.path.insert(0, str(TESTS))
    import diffusers
    from generate_project import write_synthetic_export

    from engine.project import Project, Run

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(folder, safety_checker=None,
                                                            requires_safety_checker=False)
    with Project.create(Path(root) / "project", "bench") as project:
        run = project.add_run(Run(kind="custom-diffusion", status="running",
                                  config={"profile": "sd15"}))
        project.update_run(run.id, status="finished", output_dir=f"runs/{run.id}")
    write_synthetic_export(Path(root) / "project" / "runs" / str(run.id) / "export", pipe,
                           {"<mochi>": "cat", "<cup>": "mug"}, "sd15")
    return int(run.id or 0)


def cli_generation(root: str, folder: str, run_id: int, units: tuple[str, ...], side: int,
                   steps: int) -> dict:
    """Child: `mycanvas generate` through the real command line, on a CPU with the bf16
    `units` given (injected: bf16 autocast runs on any x86 CPU, only slowly without them)."""
    os.environ["MYCANVAS_CONFIG_DIR"] = str(Path(root) / "config")
    import engine.device as device
    from engine.cli import main
    from engine.settings import Settings, save_settings

    facts = device.CpuFacts("x86_64", units)
    device.cpu_facts = lambda: facts  # type: ignore[assignment]
    save_settings(Settings(role_overrides={"base": folder}))
    start = time.perf_counter()
    code = main(["generate", str(Path(root) / "project"), "--run", str(run_id), "--prompt",
                 "<mochi> cat and <cup> mug on a beach", "--steps", str(steps), "--size",
                 str(side), "--seed", "0", "--profile", "sd15", "--device", "cpu"])
    plan = device.plan_device("cpu")
    return {"code": code, "seconds": time.perf_counter() - start, "rss": _peak_rss_mib(),
            "plan": f"{getattr(plan, 'cpu_kind', 'before kinds')}: channels-last "
                    f"{list(getattr(plan, 'channels_last', ()))},"
                    f" float32 attention {getattr(plan, 'attention_fp32', False)}"}


@benchmark("cli-generate-memory")
def cli_generate_memory() -> list[dict]:
    """Peak memory of one CLI generation (SD 1.5, random weights) on each kind of CPU the
    device policy treats differently; the code measured is the checkout this harness is in."""
    import shutil
    import tempfile

    from fullsize import sd15_folders

    from engine.paths import data_dir

    side = int(os.environ.get("MYCANVAS_BENCH_SIDE", "256"))
    _inpaint, folder = sd15_folders(data_dir() / "bench-sd15-random")
    root = Path(tempfile.mkdtemp(prefix="bench-cli-memory-"))
    rows = []
    try:
        run_id = _in_child(_prepare_project, str(root), str(folder))
        kinds = {"avx512-bf16": ("avx512_bf16",), "avx2": ()}
        wanted = os.environ.get("MYCANVAS_BENCH_KINDS")
        for kind, units in kinds.items():
            if wanted and kind not in wanted.split(","):
                continue
            got = _in_child(cli_generation, str(root), str(folder), run_id, units, side, 2)
            assert got["code"] == 0, got
            rows.append({"metric": f"CLI generation, SD 1.5 {side} px, 2 steps, as a {kind} "
                                   "CPU: peak RSS", "value": got["rss"], "unit": "MiB",
                         "note": f"{got['seconds']:.0f} s; {got['plan']}; {where()}"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
