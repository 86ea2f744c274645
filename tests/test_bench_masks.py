"""benchmarks/masks.py runs (--quick) and reports mask sampling and the context encoder's step
time against kept tokens."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_exact_keep_masks_keep_exactly_k() -> None:
    import masks

    g = torch.Generator().manual_seed(0)
    m = masks.exact_keep_masks(5, 64, 16, g)
    assert m.dtype == torch.bool and m.shape == (5, 64)
    assert (m.sum(dim=1) == 16).all()
    assert len({tuple(row.nonzero().flatten().tolist()) for row in m}) > 1  # per-sample draws


def test_quick_run_writes_both_sections(tmp_path) -> None:
    import masks

    out = tmp_path / "masks-cpu"
    payload = masks.main(["--quick", "--out", str(out)])

    assert [r["batch"] for r in payload["results"]] == [256]
    assert all(r["speedup"] > 0 for r in payload["results"])

    enc = payload["encoder"]
    n = enc["grid"][0] * enc["grid"][1]
    assert n == 64 and enc["prefix_tokens"] == 1
    rows = enc["rows"]
    assert [r["kept_fraction"] for r in rows] == [None, *masks.FRACTIONS]
    assert [r["kept_patches"] for r in rows] == [64, 16, 32, 48, 64]
    base = rows[0]["step_ms"]["median_ms"]
    assert rows[0]["time_ratio"] == 1.0 and rows[0]["peak_ratio"] == 1.0
    for r in rows:
        assert r["step_ms"]["median_ms"] > 0 and r["peak_mib"] > 0
        assert r["step_ms"]["reps"] == enc["reps"]
        assert r["token_ratio"] == pytest.approx((r["kept_patches"] + 1) / (n + 1))
        assert r["time_ratio"] == pytest.approx(r["step_ms"]["median_ms"] / base)
        assert r["time_over_token_ratio"] == pytest.approx(r["time_ratio"] / r["token_ratio"])
    low, high = enc["time_over_token_ratio_range"]
    assert enc["proportional"] == (max(abs(low - 1), abs(high - 1)) <= enc["tolerance"])

    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["encoder"] == enc and "cpu" in saved["machine"]
    assert "load_avg_1m_start" in saved
    text = out.with_suffix(".md").read_text()
    assert "## Context encoder step time against kept tokens" in text
    assert "| " + " | ".join(masks.ENCODER_HEADER) + " |" in text
    assert "| all patches (no mask) | 64 (+1) | 1.000 |" in text
    assert "Verdict: step time is" in text and "Load average" in text
