"""benchmarks/monitor.py runs (smoke preset) and reports what it measured."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_quick_run_writes_the_overhead(tmp_path, tmp_path_factory, monkeypatch) -> None:
    from _train_helpers import render_cache

    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(render_cache(tmp_path_factory)))
    import monitor

    result = monitor.main(["--quick", "--out", str(tmp_path)])
    assert result["step_ms"] > 0 and result["measurement_ms"] > 0
    expected = 100 * result["measurement_ms"] / result["monitor_every"] / result["step_ms"]
    assert result["overhead_pct"] == pytest.approx(expected, rel=0.01, abs=1e-3)
    saved = json.loads((tmp_path / "monitor-cpu.json").read_text())
    assert saved["result"] == result and "cpu" in saved["machine"]
    assert "overhead at monitor_every = 1" in (tmp_path / "monitor-cpu.md").read_text()
