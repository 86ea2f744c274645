"""``examples/seq_jepa/rotation_curve.py``: ridge rotation R² at each checkpoint of a run."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke run (2 epochs of 7 steps) with a checkpoint at each epoch end."""
    import train
    from _train_helpers import render_cache

    cache = render_cache(tmp_path_factory)
    out = tmp_path_factory.mktemp("curve") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JEPA_BLOCKS_CACHE", str(cache))
        code = train.main(["--preset", "smoke", "--no-progress", "--no-evaluate", "--out",
                           str(out)])
    assert code == 0
    return out


def test_curve_starts_at_the_untrained_floor_and_reuses_what_it_computed(
    smoke_run: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch, capsys
) -> None:
    import rotation_curve
    from _train_helpers import render_cache

    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(render_cache(tmp_path_factory)))
    calls = []
    original = rotation_curve.rotation_ridge_r2

    def spy(*args, **kwargs):
        calls.append(args[0].clone())  # the training views' embeddings
        return original(*args, **kwargs)

    monkeypatch.setattr(rotation_curve, "rotation_ridge_r2", spy)
    assert rotation_curve.main([str(smoke_run), "--num-pairs", "300", "--no-progress"]) == 0
    rows = json.loads((smoke_run / "rotation_curve.json").read_text())
    assert [row["step"] for row in rows] == [0, 7, 14]
    for row in rows:
        assert -1.0 < row["individual"] <= 1.0 and -1.0 < row["relative"] <= 1.0
        assert isinstance(row["action_use"], float)  # seq-JEPA conditions on actions
    # Step 0 embeds with the run's initial weights, the last row with the trained ones.
    assert not torch.equal(calls[0], calls[-1])
    table = capsys.readouterr().out
    assert "| run | R² | step 0 | step 7 | step 14 |" in table
    assert f"| `{smoke_run.name}` | individual | {rows[0]['individual']:.3f} |" in table
    # A second call with the same probe computes nothing again; --every keeps the multiples
    # of its step, and the steps it leaves out stay in the file.
    calls.clear()
    assert rotation_curve.main([str(smoke_run), "--every", "14", "--num-pairs", "300",
                                "--no-progress"]) == 0
    assert calls == []
    assert "| run | R² | step 0 | step 14 |" in capsys.readouterr().out
    saved = json.loads((smoke_run / "rotation_curve.json").read_text())
    assert [row["step"] for row in saved] == [0, 7, 14]
    # Another probe setting is computed anew.
    assert rotation_curve.main([str(smoke_run), "--every", "14", "--num-pairs", "200",
                                "--no-progress"]) == 0
    assert len(calls) == 2


def test_curve_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    import rotation_curve

    with pytest.raises(SystemExit, match="is not a train.py output directory"):
        rotation_curve.main([str(tmp_path)])
    with pytest.raises(SystemExit, match="--every must be >= 1, got 0"):
        rotation_curve.main([str(tmp_path), "--every", "0"])
