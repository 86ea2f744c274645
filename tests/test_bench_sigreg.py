"""benchmarks/sigreg.py: the baseline agrees with ours, and the report has its columns.

Tiny sizes only (a few seconds); outputs go to tmp_path, never to benchmarks/results.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sigreg", ROOT / "benchmarks" / "sigreg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(bench, tmp_path, *extra):
    md, js = tmp_path / "sigreg.md", tmp_path / "sigreg.json"
    argv = ["--quick", "--sizes", "32x16,16x48", "--headline", "64x32", "--dim", "16"]
    argv += ["--reps", "2", "--max-seconds", "0.5", "--json", str(js), "--md", str(md), *extra]
    payload = bench.main(argv)
    return payload, md.read_text(), json.loads(js.read_text())


def test_quick_run_agrees_and_writes_the_table(bench, tmp_path):
    payload, md, data = _run(bench, tmp_path)

    check = data["check"]
    assert check["passed"] and check["max_rel_err"] <= 1e-5
    for name in ("sigreg", "SIGReg"):
        for dtype in ("float32", "float64"):
            errs = check[f"{name}_vs_baseline_{dtype}"]
            assert errs["value"] <= 1e-5 and errs["grad"] <= 1e-5

    assert [(r["n"], r["m"]) for r in data["rows"]] == [(32, 16), (16, 48), (64, 32)]
    for row in data["rows"]:
        assert row["sigreg_ms"] > 0 and row["baseline_ms"] > 0
        assert row["time_ratio_sigreg"] == pytest.approx(row["baseline_ms"] / row["sigreg_ms"])
        assert row["sigreg_peak_bytes"] > 0
        # The baseline keeps (n, m, knots) tensors; ours (n, m) ones.
        assert row["mem_ratio_sigreg"] > 2
        assert ("SIGReg_ms" in row) == row["headline"]
    assert data["machine"]["lscpu"].get("model") or data["machine"]["cpu"]
    assert data["machine"]["torch"] == torch.__version__
    assert "load_start" in data["machine"] and "torch_threads" in data["machine"]

    header = "| " + " | ".join(bench.TABLE_HEADER) + " |"
    assert header in md
    for column in ("time baseline/sigreg", "mem baseline/sigreg", "baseline peak MiB"):
        assert column in md
    assert "**passed**" in md
    assert "8.69 ms" in md and "< 2 ms" in md  # the reference lines
    assert md.count("\n| 32 | 16 |") == 1
    assert payload["rows"] == data["rows"]

    # --render rewrites the same report from the saved JSON, without timing anything.
    again = tmp_path / "again.md"
    bench.main(["--render", str(tmp_path / "sigreg.json"), "--md", str(again)])
    assert again.read_text() == md


def test_guard_skips_the_baseline_instead_of_running_it(bench, tmp_path):
    _, md, data = _run(bench, tmp_path, "--max-baseline-gb", "0")
    for row in data["rows"]:
        assert "baseline_ms" not in row and "time_ratio_sigreg" not in row
        assert row["skipped"]["baseline"].startswith("skipped (would need ")
        assert row["sigreg_ms"] > 0
    assert "skipped (would need" in md


def test_baseline_matches_sigreg_with_other_knots(bench):
    check = bench.check_agreement(8, 9, torch.device("cpu"), size=(64, 16))
    assert check["passed"], check
