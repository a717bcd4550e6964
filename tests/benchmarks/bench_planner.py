"""Planner benchmark: the embedded GGUF and the layout solver over 30 concept sets.

Each set (tests/benchmarks/data/concept_sets.json, 2-4 concepts) gets its own planner and
LAYOUTS_PER_SET layouts, timed one by one (the first includes the group's scene question and
any height question for a class word missing from the size table).
"""

from __future__ import annotations

import json
import os
import statistics
import time

from run import HERE, benchmark

LAYOUTS_PER_SET = 4
SEED = 1000


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@benchmark("planner")
def planner() -> list[dict]:
    from engine.models.gguf import ensure_planner_gguf
    from engine.plan.answers import mentions, names_every_object, scene_head, vocabulary
    from engine.plan.layout_solver import Box, layout_problems
    from engine.plan.llm import LlamaTextModel, Semantics
    from engine.plan.planner import LayoutPlanner, PlanConcept

    sets = json.loads((HERE / "data" / "concept_sets.json").read_text())["sets"]
    path = ensure_planner_gguf()
    t0 = time.perf_counter()
    model = LlamaTextModel.load(path)
    load_seconds = time.perf_counter() - t0
    threads = model.llama.n_threads
    vocab = vocabulary()

    seconds, first_named, scene_llm, caption_first, caption_retry = [], [], 0, 0, 0
    full_llm, valid, distinct_counts, solver_grid, relations = 0, 0, [], 0, 0
    for k, concepts_json in enumerate(sets):
        concepts = [PlanConcept(100 * k + i, c["name"], c["class_word"])
                    for i, c in enumerate(concepts_json)]
        ids = [c.id for c in concepts]
        planner = LayoutPlanner(Semantics(model, vocab))
        boxes_seen = set()
        for p in planner.plan(concepts, LAYOUTS_PER_SET, SEED + 10 * k):
            seconds.append(p.seconds)
            layout = p.layout
            boxes = [Box(o.concept_id, o.x, o.y, o.w, o.h, o.z) for o in layout.objects]
            ok = (not layout_problems(boxes, 0.1, ids) and names_every_object(layout.caption,
                                                                             p.labels)
                  and bool(mentions(layout.caption, scene_head(layout.scene))))
            valid += ok
            boxes_seen.add(tuple((round(b.x, 3), round(b.y, 3), round(b.w, 3)) for b in boxes))
            if p.caption.attempts:
                first_named.append(names_every_object(p.caption.attempts[0][0], p.labels))
            scene_llm += p.scene_source == "llm"
            caption_first += p.caption_source == "llm"
            caption_retry += p.caption_source == "llm-retry"
            full_llm += p.llm_used_without_fallback
            solver_grid += p.solution.method == "grid"
            relations += bool(p.caption.value and p.caption.value.relations)
        distinct_counts.append(len(boxes_seen))

    n = len(seconds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    pct = 100.0 / n
    return [
        {"metric": "load the embedded GGUF", "value": load_seconds, "unit": "s",
         "note": f"{threads} llama.cpp thread(s) for the free cores; load average now {load:.1f}"},
        {"metric": "seconds per plan, median", "value": statistics.median(seconds), "unit": "s",
         "target": "<= 3 s", "note": f"{n} plans: {len(sets)} sets x {LAYOUTS_PER_SET}"},
        {"metric": "seconds per plan, p95", "value": _p95(seconds), "unit": "s"},
        {"metric": "plans with the LLM's scene and caption, no fallback",
         "value": full_llm * pct, "unit": "%"},
        {"metric": "scenes from the LLM", "value": scene_llm * pct, "unit": "%"},
        {"metric": "captions from the LLM, first answer", "value": caption_first * pct,
         "unit": "%"},
        {"metric": "captions from the LLM, after the guided re-ask", "value": caption_retry * pct,
         "unit": "%"},
        {"metric": "raw first LLM captions naming every concept",
         "value": 100.0 * sum(first_named) / max(1, len(first_named)), "unit": "%",
         "note": "before any check; the stored captions all do"},
        {"metric": "accepted captions carrying a spatial relation", "value": relations * pct,
         "unit": "%"},
        {"metric": "stored layouts valid (boxes, caption names objects and scene)",
         "value": valid * pct, "unit": "%", "target": "100 %"},
        {"metric": "distinct layouts per group", "value": statistics.mean(distinct_counts),
         "unit": f"of {LAYOUTS_PER_SET}"},
        {"metric": "layouts from the solver's grid fallback", "value": solver_grid * pct,
         "unit": "%"},
    ]


@benchmark("layout-solver")
def layout_solver() -> list[dict]:
    from engine.plan.layout_solver import LayoutSolver, Relation, SolverObject

    objects = [SolverObject(1, 30, 1.2), SolverObject(2, 25, 0.5), SolverObject(3, 85, 2.3),
               SolverObject(4, 10, 1.1)]
    solver = LayoutSolver()
    rows = []
    for n in (2, 3, 4):
        t0 = time.perf_counter()
        methods = [solver.solve(objects[:n], [Relation(0, "left_of", 1)], s).method
                   for s in range(200)]
        per = (time.perf_counter() - t0) / 200
        rows.append({"metric": f"solve {n} objects with a relation", "value": per * 1000,
                     "unit": "ms", "note": f"{methods.count('sampled')}/200 honour every relation"})
    return rows
