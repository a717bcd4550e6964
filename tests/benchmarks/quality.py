"""The quality harness for the day real weights are here: a fixed small protocol, its scores
printed beside CustomConcept101's published figures.

    python tests/benchmarks/quality.py                  # the sd15 profile (the default)
    python tests/benchmarks/quality.py --profile tiny   # the protocol on the test models

Protocol (fixed: the same photos, prompts and seeds every time):

1. A project with two concepts from the photos in tests/data/quality (scikit-image's cat,
   twice, and its coffee mug), made from scratch in a temporary folder.
2. `personalize` with the preset's counts (or the given ones) and seed 0: masks, layouts,
   dataset, Custom Diffusion training.
3. The trained run draws both concepts together in each SCENE, for each seed: once
   layout-guided (each concept steered into its box of BOXES) and once plain (the same
   prompt, no boxes): the anti-bleed comparison.
4. Every picture is scored (engine.score: TI-CLIP, CP-CLIP, Custom Diffusion's text/image
   pair) and the means are printed as a table and written as JSON.

Without the profile's models it says which are missing and exits 0 (nothing measured).
A profile of test models runs (its numbers mean nothing: the table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

PHOTOS = REPO / "tests" / "data" / "quality"  # scikit-image's photos (CC0), as JPEG files
CONCEPTS = (("Mochi", "cat", ("chelsea.jpg", "chelsea-2.jpg")), ("Cup", "mug", ("coffee.jpg",)))
SCENES = ("on a wooden table", "in a sunny garden")
SEEDS = (0, 1)
# [x0, y0, x1, y1] in 0..1 of the canvas: side by side, apart, so bleeding shows.
BOXES = {"<mochi>": [0.05, 0.2, 0.5, 0.85], "<cup>": [0.58, 0.4, 0.92, 0.8]}
# CustomConcept101 (Custom Diffusion's benchmark), multi-concept, as README.md cites them:
# text alignment 0.757-0.763, image alignment 0.658-0.668 (OpenAI's CLIP ViT-B/32; ours is
# LAION's, so close, not exact). The paper gives no TI-CLIP or CP-CLIP.
PUBLISHED = {"cd_text": "0.757-0.763", "cd_image": "0.658-0.668"}
METRICS = (("ti_clip", "TI-CLIP"), ("cp_clip", "CP-CLIP"), ("cd_text", "CD text alignment"),
           ("cd_image", "CD image alignment"))


def missing_models(profile: str) -> list[str]:
    """Roles of `profile` that are not on this computer and cannot be made here, each with
    where it comes from."""
    from engine.models.profiles import get_profile, role_status

    prof = get_profile(profile)
    out = []
    for role in prof.roles:
        status = role_status(prof, role)
        buildable = status.source.startswith(("tiny:", "package ")) and \
            "pip install" not in status.note
        if not status.present and not buildable:
            out.append(f"{role} ({status.source})")
    return out


def _finished(end: Any) -> Any:
    from engine.jobs import JobFinished

    if not isinstance(end, JobFinished):
        raise RuntimeError(f"{getattr(end, 'reason', end)}")
    return end.result


def run_protocol(profile: str, device: str, root: Path, counts: dict[str, int | None],
                 steps: int | None = None, resolution: int | None = None,
                 smoke: bool = False) -> dict[str, Any]:
    """The protocol (module doc) in `root`; returns the per-arm means and the pictures.
    `smoke`: the first scene and seed only (a check that it runs, not a measurement)."""
    from engine.jobs import run_inline
    from engine.project import Project

    project = root / "project"
    Project.create(project, "Quality protocol").close()
    for name, word, files in CONCEPTS:
        _finished(run_inline("import-photos", {
            "project": str(project), "concept": name, "class_word": word,
            "paths": [str(PHOTOS / f) for f in files]}))
    common = {"project": str(project), "profile": profile, "device": device}
    chain = _finished(run_inline("personalize", {
        **common, "seed": 0, "resolution": resolution,
        **{k: v for k, v in counts.items() if v is not None}}))
    arms: dict[str, list[int]] = {"layout-guided": [], "plain": []}
    for scene in SCENES[:1] if smoke else SCENES:
        for arm, boxes in (("layout-guided", BOXES), ("plain", None)):
            made = _finished(run_inline("generate", {
                **common, "run_id": chain.run_id, "concepts": ["Mochi", "Cup"],
                "scene": scene, "seeds": list(SEEDS[:1] if smoke else SEEDS), "steps": steps,
                "boxes": boxes,
                "width": resolution, "height": resolution, "preview_every": 0}))
            arms[arm].extend(made.generation_ids)
    with Project.open(project) as proj:
        pictures = {g.id: g for g in proj.gallery(run_id=chain.run_id)}
    return {"run_id": chain.run_id, "test_models": chain.test_models,
            "arms": {arm: _means([pictures[i] for i in ids if i in pictures])
                     for arm, ids in arms.items()}}


def _means(pictures: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"pictures": len(pictures),
                           "scored": sum(1 for p in pictures if p.scored),
                           "guided": sum(1 for p in pictures if p.guided)}
    for key, _label in METRICS:
        values = [getattr(p, key) for p in pictures if getattr(p, key) is not None]
        out[key] = statistics.fmean(values) if values else None
    found = [c.detected for p in pictures for c in p.concepts]
    out["detected"] = sum(found) / len(found) if found else None
    return out


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, label in METRICS:
        for arm, means in result["arms"].items():
            rows.append({"metric": f"{label} ({arm})", "value": means[key],
                         "published": PUBLISHED.get(key, "")})
    for arm, means in result["arms"].items():
        rows.append({"metric": f"concepts detected ({arm})", "value": means["detected"],
                     "published": ""})
    guided, plain = result["arms"]["layout-guided"], result["arms"]["plain"]
    if guided["cp_clip"] is not None and plain["cp_clip"] is not None:
        rows.append({"metric": "anti-bleed: CP-CLIP layout-guided - plain",
                     "value": guided["cp_clip"] - plain["cp_clip"], "published": ""})
    return rows


def print_table(rows: list[dict[str, Any]], note: str) -> None:
    def cell(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) \
            else str(value)

    width = max(len(r["metric"]) for r in rows)
    print(f"{'metric'.ljust(width)}  {'ours':>7}  CustomConcept101")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 16}")
    for r in rows:
        print(f"{r['metric'].ljust(width)}  {cell(r['value']):>7}  {r['published']}")
    if note:
        print(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", default="sd15")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="folder of quality-latest.json")
    parser.add_argument("--work", type=Path, help="where the protocol's project goes "
                        "(default: a temporary folder, removed after)")
    for name in ("layouts", "items", "train-steps", "pictures"):
        parser.add_argument(f"--{name}", type=int, help="personalize's count (default: the "
                            "preset's)")
    parser.add_argument("--steps", type=int, help="denoising steps per picture")
    parser.add_argument("--resolution", type=int, help="side in pixels (default: the "
                        "profile's)")
    parser.add_argument("--smoke", action="store_true", help="the first scene and seed only: "
                        "a check that the protocol runs, not a measurement")
    args = parser.parse_args(argv)

    from engine.models.profiles import get_profile

    missing = missing_models(args.profile)
    if missing:
        print(f"quality: nothing measured: the {args.profile} models are not on this "
              f"computer: {', '.join(missing)}. Get them with `mycanvas models download "
              f"{args.profile}`, then run this again.")
        return 0
    counts = {"layouts": args.layouts, "items": args.items, "train_steps": args.train_steps,
              "pictures": args.pictures}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mycanvas-quality-") as tmp:
        root = args.work or Path(tmp)
        result = run_protocol(args.profile, args.device, root, counts, args.steps,
                              args.resolution, args.smoke)
    seconds = time.perf_counter() - began
    rows = table_rows(result)
    note = (f"{get_profile(args.profile).label}: test models, these numbers mean nothing."
            if result["test_models"] else "")
    print_table(rows, note)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "profile": args.profile,
               "seconds": round(seconds, 1),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "protocol": {"concepts": [c[:2] for c in CONCEPTS], "scenes": SCENES,
                            "seeds": SEEDS, "boxes": BOXES, "counts": counts,
                            "steps": args.steps, "resolution": args.resolution,
                            "smoke": args.smoke},
               "result": result, "rows": rows, "published": PUBLISHED}
    target = args.out / "quality-latest.json"
    target.write_text(json.dumps(payload, indent=2))
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
