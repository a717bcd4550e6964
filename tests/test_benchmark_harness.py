"""The benchmark harness itself: every bench module imports and registers its entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parent / "benchmarks" / "run.py"


def test_harness_lists_foundation_benchmarks():
    out = subprocess.run([sys.executable, str(HARNESS), "--list"], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert {"startup", "worker", "tiny-profile"} <= set(out)


def test_harness_prints_table_and_writes_json(tmp_path):
    proc = subprocess.run([sys.executable, str(HARNESS), "startup", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=True)
    assert "mycanvas --help" in proc.stdout and "benchmark" in proc.stdout.splitlines()[0]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["failed"] == []
    rows = {r["metric"]: r for r in data["rows"]}
    import_row = next(r for m, r in rows.items() if "import engine" in m)
    assert "torch imported: False" in import_row["note"]
