"""``examples/seq_jepa/compare.py``: the tables RESULTS.md is made from."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from compare import compare, summary  # noqa: E402


def _run(
    root: Path, name: str, variant: str, top1: dict, path: dict, no_vision: dict,
    floors: dict | None = None,
) -> Path:
    run = root / name
    run.mkdir()
    metrics = {
        "top1_agg": top1,
        "top1_encoder": 0.5,
        "r2_rel_rotation": 0.25,
        "r2_indiv_rotation": None,
        "path_integration_r2": path,
        "path_integration_r2_zero_actions": {"1": 0.0},
        "path_integration_r2_zero_vision": no_vision,
        "train_seconds": 12.4,
        **(floors or {}),
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text(json.dumps({"model": {"variant": variant}}))
    return run


def test_compare_lists_each_run_with_its_numbers(tmp_path: Path) -> None:
    floors = {
        "r2_rel_rotation_floor": 0.05,
        "ridge_r2_indiv_rotation": 0.7,
        "ridge_r2_indiv_rotation_floor": 0.3,
        "ridge_r2_indiv_rotation_pixels": 0.2,
        "ridge_r2_rel_rotation": None,
        "path_integration_r2_floor": {"1": 0.85, "2": 0.1},
    }
    runs = [
        _run(tmp_path, "a", "seq-jepa", {"1": 0.3, "2": 0.4}, {"1": 0.9, "2": 0.5}, {"2": 0.66},
             floors),
        _run(tmp_path, "b", "no-action", {"1": 0.2}, {"1": 0.8}, {}),
    ]
    table = compare(runs).splitlines()
    assert "| `a` | seq-jepa | 40.0 | 50.0 | 12 s |" in table
    assert "| `b` | no-action | 20.0 | 50.0 | 12 s |" in table
    assert "| `a` | 30.0 | 40.0 |" in table and "| `b` | 20.0 | n/a |" in table
    # Each R² beside its floors; rows only for the R²s a run has.
    assert "| run | R² (test) | trained | random init | pixels |" in table
    assert "| `a` | relative rotation, paper head | 0.250 | 0.050 |  |" in table
    assert "| `a` | individual rotation, ridge | 0.700 | 0.300 | 0.200 |" in table
    assert "| `b` | relative rotation, paper head | 0.250 | n/a |  |" in table
    assert not [line for line in table if "rotation, ridge" in line and "`b`" in line]
    assert not [line for line in table if "relative rotation, ridge" in line]
    assert "| `a` | vision zeroed | n/a | 0.660 |" in table
    assert "| `a` | random init | 0.850 | 0.100 |" in table
    assert "| `b` | vision + actions | 0.800 | n/a |" in table
    assert "| `b` | actions zeroed | 0.000 | n/a |" in table
    assert not [line for line in table if "`b` | random init" in line]  # an older run


def test_summary_gives_mean_and_std_per_variant(tmp_path: Path) -> None:
    def run(name: str, variant: str, top1: float, ridge: float) -> Path:
        return _run(tmp_path, name, variant, {"1": 0.1, "8": top1}, {"1": 0.9}, {},
                    {"ridge_r2_rel_rotation": ridge, "ridge_r2_rel_rotation_floor": 0.1})

    runs = [run("s0", "seq-jepa", 0.70, 0.30), run("s1", "seq-jepa", 0.80, 0.50),
            run("n0", "no-action", 0.60, 0.20)]
    table = summary(runs).splitlines()
    assert table[0].startswith("| variant | n | top-1 z_agg M_val=1 | top-1 z_agg M_val=max |")
    seq = next(line for line in table if line.startswith("| seq-jepa |"))
    # mean 75.0, sample std of (70, 80) = 7.07; the max M_val is 8, not "8" < "1" as text
    assert "| seq-jepa | 2 | 10.0 ± 0.0 | 75.0 ± 7.1 | 50.0 ± 0.0 | 0.400 ± 0.141 | " in seq
    assert "| no-action | 1 | 10.0 | 60.0 | 50.0 | 0.200 | 0.100 |" in "\n".join(table)
    assert seq.endswith("| n/a | n/a | 12 ± 0 |")


def test_a_folder_without_metrics_is_refused_by_name(tmp_path: Path, capsys) -> None:
    from compare import main

    with pytest.raises(SystemExit) as info:
        main(["--summary", str(tmp_path / "not-a-run")])
    assert info.value.code == 2
    assert "no metrics.json in" in capsys.readouterr().err
