"""Benchmark harness: runs the bench_*.py entries, prints a table, writes JSON.

    python tests/benchmarks/run.py                 # every benchmark
    python tests/benchmarks/run.py import worker   # names containing these words
    python tests/benchmarks/run.py cpu-precision   # a whole name: that benchmark only
    python tests/benchmarks/run.py --list

Each entry is a function decorated with @benchmark in a tests/benchmarks/bench_*.py module;
it returns a list of rows (dicts with at least "metric", "value", "unit"; "target" and "note"
optional). Results go to tests/benchmarks/results/<timestamp>.json and latest.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

BENCHMARKS: dict[str, Callable[[], list[dict]]] = {}


def benchmark(name: str):
    def deco(fn):
        BENCHMARKS[name] = fn
        return fn

    return deco


def _load_modules() -> None:
    # bench modules do `from run import benchmark`: make that this very module, not a copy.
    sys.modules.setdefault("run", sys.modules[__name__])
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    cols = ["benchmark", "metric", "value", "unit", "target", "note"]
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("filters", nargs="*")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    # The harness uses its own data folder so it measures cold builds, not the user's cache.
    os.environ.setdefault("MYCANVAS_DATA_DIR", str(args.out / "app-data"))
    _load_modules()
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    # A filter that is a benchmark's whole name picks that one only ("cpu-precision", not
    # also "cpu-precision-train"); other filters pick every name containing them.
    chosen = [n for n in BENCHMARKS if not args.filters or n in args.filters
              or any(f in n and f not in BENCHMARKS for f in args.filters)]
    rows: list[dict] = []
    failed = []
    for name in chosen:
        print(f"running {name} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            for row in BENCHMARKS[name]():
                rows.append({"benchmark": name, **row})
        except Exception:
            failed.append(name)
            traceback.print_exc()
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "rows": rows, "failed": failed,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for target in (args.out / f"{stamp}.json", args.out / "latest.json"):
        target.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.out / 'latest.json'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
