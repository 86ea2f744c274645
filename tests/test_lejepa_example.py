"""End-to-end tests of ``examples/lejepa/train.py`` (LeJEPA on the built-in rendered objects).

The script runs as users run it, in fresh processes (``--preset smoke``: timm's test ResNet,
the ``small`` objects, 2 epochs of 7 steps), in two waves:

- wave 1: the whole smoke run (training, evaluation points, final probes with floors, table,
  ``metrics.json``, ``curves.png``) and the same run stopped by ``--max-steps`` mid-epoch;
- wave 2: the stopped run continued with ``--resume``, and a 2-rank DDP run (the two ranks
  started with the environment variables torchrun sets).

The resumed run must log the uninterrupted run's losses bit for bit (CPU, one thread) and end
with the same weights, SIGReg step, optimiser moments, scheduler and evaluation points. Bad
options are checked in-process (``resolve_config``), before any work.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _example_runs import (
    REPO,
    TORCHRUN_ENV,
    ExampleRun,
    assert_equal,
    checkpoint_state,
    free_port,
    load_script,
    strict_metrics,
)

EXAMPLE = REPO / "examples" / "lejepa"
TRAIN = EXAMPLE / "train.py"
SMOKE = ("--preset", "smoke", "--no-progress")
STEPS_PER_EPOCH = 7  # 60 training objects of the 'small' size, batch 8
TOTAL_STEPS = 2 * STEPS_PER_EPOCH
STOP_AT = 11  # mid-epoch 2, between evaluation points (every 5 steps)
pytestmark = pytest.mark.slow

train = load_script("lejepa_train", TRAIN)


class _Run(ExampleRun):
    def __init__(self, args: tuple[str, ...], out: Path, cache: Path, **kwargs: Any) -> None:
        super().__init__(TRAIN, args, out, cache, **kwargs)


def _final_state(out: Path) -> dict[str, Any]:
    return checkpoint_state(out, TOTAL_STEPS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from jepa_blocks.data.objects import RenderedObjects

    root = tmp_path_factory.mktemp("lejepa")
    cache = root / "cache"
    smoke = train.PRESETS["smoke"]
    # Rendered once here, so that no pair of runs renders the same objects at once.
    RenderedObjects(cache / "objects", size=smoke["objects_size"],
                    image_size=smoke["image_size"])
    started: list[_Run] = []
    try:
        full = _Run(SMOKE, root / "full", cache)
        stopped = _Run((*SMOKE, "--max-steps", str(STOP_AT)), root / "stopped", cache)
        started += [full, stopped]
        full.wait(), stopped.wait()
        assert stopped.returncode == 0, stopped.output
        stopped_files = sorted(p.name for p in stopped.out.iterdir())
        stopped_files += sorted(p.name for p in (stopped.out / "checkpoints").iterdir())
        shutil.copytree(stopped.out, root / "resumed")
        resumed = _Run((*SMOKE, "--resume", "--no-evaluate"), root / "resumed", cache)
        started.append(resumed)
        world = {**TORCHRUN_ENV, "MASTER_PORT": free_port()}
        ranks = []
        for rank in range(2):
            ranks.append(_Run(
                (*SMOKE, "--no-evaluate", "--device", "cpu"), root / "ddp", cache,
                name=f"ddp-rank{rank}", env={**world, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            ))
            started.append(ranks[-1])
        resumed.wait(), ranks[0].wait(), ranks[1].wait()
        yield {"full": full, "stopped": stopped, "resumed": resumed, "ranks": ranks,
               "stopped_files": stopped_files}
    finally:
        for run in started:  # a failed wave must leave no trainer behind
            run.kill()


def test_smoke_run_writes_its_files_and_prints_the_table(runs: dict[str, Any]) -> None:
    run = runs["full"]
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    for name in ("metrics.json", "curves.png", "config.json"):
        assert (run.out / name).is_file(), name
    table = run.stdout
    for row in ("LeJEPA results", "linear probe top-1 (%)", "kNN top-1", "RankMe, backbone",
                "Spearman(loss, top-1)", "loss / lam^0.4", "reference: step", "random init"):
        assert row in table, table
    metrics = strict_metrics(run.out)
    for key in ("linear_top1", "knn_top1", "rankme"):
        assert 0.0 <= metrics[key] and 0.0 <= metrics[f"{key}_floor"], key
    assert 0.0 <= metrics["linear_top1"] <= 1.0 and 0.0 <= metrics["knn_top1"] <= 1.0
    assert [row["step"] for row in metrics["evals"]] == [0, 5, 10, TOTAL_STEPS]
    assert metrics["evals"][0]["train_loss"] is None  # step 0: the untrained network
    correlation = metrics["loss_accuracy"]
    assert correlation["points"] == 3
    # One lam per run: dividing the loss by lam^0.4 keeps its ranks.
    assert correlation["spearman_scaled_loss_top1"] == correlation["spearman_loss_top1"]
    history = metrics["loss_history"]
    assert [row["step"] for row in history] == list(range(TOTAL_STEPS))
    lam = train.TrainConfig().lam
    for row in history:  # the logged loss is the paper's mix of its two logged terms
        assert row["loss"] == pytest.approx((1 - lam) * row["invariance"] + lam * row["sigreg"],
                                            rel=1e-5)
    # The collapse monitor every 2nd step (smoke), on the global views' embeddings, quietly.
    monitor = metrics["collapse_monitor"]
    assert [row["step"] for row in monitor] == list(range(0, TOTAL_STEPS, 2))
    assert all(row["rankme"] > 1.0 and row["std_ratio"] > 0.05 for row in monitor)
    assert "CollapseWarning" not in run.output


def test_max_steps_stops_with_a_checkpoint_and_no_report(runs: dict[str, Any]) -> None:
    run = runs["stopped"]
    assert f"stopped by --max-steps at step {STOP_AT}" in run.stderr
    files = runs["stopped_files"]
    assert "metrics.json" not in files  # an interrupted run reports nothing yet
    assert [name for name in files if name.startswith("ckpt-")] == [
        f"ckpt-{STEPS_PER_EPOCH:09d}.pt", f"ckpt-{STOP_AT:09d}.pt"
    ]


def test_resume_is_exact(runs: dict[str, Any]) -> None:
    resumed, full = runs["resumed"], runs["full"]
    assert resumed.returncode == 0, resumed.output
    assert f"resumed at epoch 1, step {STOP_AT}" in resumed.stderr, resumed.output
    # The same floats, not approximately the same.
    assert strict_metrics(resumed.out)["loss_history"] == strict_metrics(full.out)["loss_history"]
    a, b = _final_state(resumed.out), _final_state(full.out)
    for key in ("model", "loss", "optimizer", "scheduler", "position", "history", "evals",
                "monitor"):
        assert_equal(a[key], b[key], key)
    assert int(a["loss"]["sigreg.step"]) == TOTAL_STEPS  # SIGReg's directions moved on


def test_torchrun_ranks_end_with_identical_weights(runs: dict[str, Any]) -> None:
    ranks = runs["ranks"]
    for run in ranks:
        assert run.returncode == 0, run.output
    sums = [re.findall(r"rank (\d) param checksum (\w+)", run.stderr) for run in ranks]
    assert [found[0][0] for found in sums] == ["0", "1"], sums
    assert sums[0][0][1] == sums[1][0][1], sums
    history = strict_metrics(ranks[0].out)["loss_history"]
    assert len(history) == TOTAL_STEPS  # the global batch is split, the steps are the same
    assert all(row["loss"] == row["loss"] for row in history)  # finite (no NaN)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "tiny"], "unknown preset 'tiny'; choose one of cpu-hour, demo, smoke"),
        (["--lam", "1.5"], r"--lam must be in \[0, 1\] \(paper: 0.05\), got 1.5"),
        (["--views-from", "video"], "--views-from must be 'image' or 'object', got 'video'"),
        (["--local-size", "64"], r"--local-size must be in \[8, --image-size=32\], got 64"),
        (["--batch-size", "1"], r"--batch-size must be >= 2 \(SIGReg, BatchNorm\), got 1"),
        (["--backbone", "resnet181"], "unknown timm model --backbone 'resnet181'. Did you mean"),
        (["--backbone", "convnext_atto", "--cifar-stem"],
         "--cifar-stem and --no-zero-init-residual apply to ResNets only; --backbone "
         "'convnext_atto' is not one"),
        (["--nuisances", "none"], "--nuisances must be one of view, object, fixed"),
        (["--precision", "fp8"], "--precision must be auto, fp32 or bf16, got 'fp8'"),
        (["--monitor-every", "-1"], r"--monitor-every must be >= 0 \(0 turns the collapse"),
    ],
)
def test_bad_options_are_refused_before_any_work(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        train.resolve_config(train.parse_args(argv))


def test_reusing_a_run_directory_without_resume_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-000000005.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="holds checkpoints of an earlier run; pass --resume"):
        train.main(["--preset", "smoke", "--out", str(tmp_path)])
