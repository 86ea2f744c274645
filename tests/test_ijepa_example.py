"""End-to-end tests of ``examples/ijepa/train.py`` (I-JEPA on the built-in rendered objects).

The script runs as users run it, in fresh processes (``--preset smoke``: a 2-block ViT-Tiny on
an 8 x 8 patch grid, the ``small`` objects, 2 epochs of 7 steps), in two waves:

- wave 1: the whole smoke run with the EMA target (training, evaluation points, final probes
  with floors, table, ``metrics.json``, ``curves.png``), the same run stopped by
  ``--max-steps`` mid-epoch, and the whole smoke run with ``--regularizer sigreg``;
- wave 2: the stopped run continued with ``--resume``, and a 2-rank DDP run of the SIGReg
  variant (the two ranks started with the environment variables torchrun sets).

The resumed run must log the uninterrupted run's losses bit for bit (CPU, one thread) and end
with the same weights, EMA target, SIGReg step, optimiser moments, scheduler and evaluation
points. Bad options are checked in-process (``resolve_config``), before any work.
"""

import math
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

EXAMPLE = REPO / "examples" / "ijepa"
TRAIN = EXAMPLE / "train.py"
SMOKE = ("--preset", "smoke", "--no-progress")
STEPS_PER_EPOCH = 7  # 60 training objects of the 'small' size, batch 8
TOTAL_STEPS = 2 * STEPS_PER_EPOCH
STOP_AT = 11  # mid-epoch 2, between evaluation points (every 5 steps)
pytestmark = pytest.mark.slow

train = load_script("ijepa_train", TRAIN)


class _Run(ExampleRun):
    def __init__(self, args: tuple[str, ...], out: Path, cache: Path, **kwargs: Any) -> None:
        super().__init__(TRAIN, args, out, cache, **kwargs)


def _final_state(out: Path) -> dict[str, Any]:
    return checkpoint_state(out, TOTAL_STEPS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from jepa_blocks.data.objects import RenderedObjects

    root = tmp_path_factory.mktemp("ijepa")
    cache = root / "cache"
    smoke = train.PRESETS["smoke"]
    # Rendered once here, so that no pair of runs renders the same objects at once.
    RenderedObjects(cache / "objects", size=smoke["objects_size"],
                    image_size=smoke["image_size"])
    started: list[_Run] = []
    try:
        full = _Run(SMOKE, root / "full", cache)
        stopped = _Run((*SMOKE, "--max-steps", str(STOP_AT)), root / "stopped", cache)
        sigreg = _Run((*SMOKE, "--regularizer", "sigreg"), root / "sigreg", cache)
        started += [full, stopped, sigreg]
        full.wait(), stopped.wait(), sigreg.wait()
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
                (*SMOKE, "--no-evaluate", "--eval-every", "0", "--device", "cpu",
                 "--regularizer", "sigreg"),
                root / "ddp", cache,
                name=f"ddp-rank{rank}", env={**world, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            ))
            started.append(ranks[-1])
        resumed.wait(), ranks[0].wait(), ranks[1].wait()
        yield {"full": full, "stopped": stopped, "sigreg": sigreg, "resumed": resumed,
               "ranks": ranks, "stopped_files": stopped_files}
    finally:
        for run in started:  # a failed wave must leave no trainer behind
            run.kill()


def _check_report(run: _Run, probed: str) -> dict[str, Any]:
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    for name in ("metrics.json", "curves.png", "config.json"):
        assert (run.out / name).is_file(), name
    table = run.stdout
    for row in ("I-JEPA results", f"linear probe top-1 (%), {probed}", "kNN top-1",
                f"RankMe, {probed}", "random init"):
        assert row in table, table
    metrics = strict_metrics(run.out)
    for key in ("linear_top1", "knn_top1", "rankme"):
        assert 0.0 <= metrics[key] and 0.0 <= metrics[f"{key}_floor"], key
    assert 0.0 <= metrics["linear_top1"] <= 1.0 and 0.0 <= metrics["knn_top1"] <= 1.0
    assert [row["step"] for row in metrics["evals"]] == [0, 5, 10, TOTAL_STEPS]
    assert metrics["evals"][0]["train_loss"] is None  # step 0: the untrained network
    assert [row["step"] for row in metrics["loss_history"]] == list(range(TOTAL_STEPS))
    # The collapse monitor every 2nd step (smoke) on the probed encoder's tokens.
    monitor = metrics["collapse_monitor"]
    assert [row["step"] for row in monitor] == list(range(0, TOTAL_STEPS, 2))
    assert all(row["rankme"] >= 1.0 and row["std_ratio"] >= 0.0 for row in monitor)
    return metrics


def test_smoke_run_writes_its_files_and_prints_the_table(runs: dict[str, Any]) -> None:
    metrics = _check_report(runs["full"], "EMA target")
    assert "linear probe top-1 (%), online" in runs["full"].stdout  # ema adds the online one
    assert metrics["probed_encoder"] == "EMA target"
    history = metrics["loss_history"]
    for row in history:  # with ema the loss is the prediction loss; SIGReg is only a gauge
        assert row["loss"] == row["prediction"]
        assert row["sigreg"] > 0
    # I-JEPA's momentum, linear from 0.996 to 1 over the run.
    assert history[0]["momentum"] == pytest.approx(0.996)
    assert history[-1]["momentum"] == pytest.approx(0.996 + 0.004 * (TOTAL_STEPS - 1) / TOTAL_STEPS)


def test_sigreg_variant_mixes_prediction_and_sigreg(runs: dict[str, Any]) -> None:
    run = runs["sigreg"]
    metrics = _check_report(run, "online")
    assert "SIGReg on tokens, lam 0.05, no EMA, no stop-gradient" in run.stdout
    assert "EMA target" not in run.stdout
    lam = train.TrainConfig().lam
    for row in metrics["loss_history"]:  # LeJEPA's mix of the two logged terms
        assert row["momentum"] is None
        assert row["loss"] == pytest.approx(
            (1 - lam) * row["prediction"] + lam * row["sigreg"], rel=1e-5
        )
    state = _final_state(run.out)
    assert state["target"] is None
    assert int(state["sigreg"]["step"]) == TOTAL_STEPS


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
    for key in ("model", "target", "sigreg", "optimizer", "scheduler", "position", "history",
                "evals", "monitor"):
        assert_equal(a[key], b[key], key)
    assert int(a["sigreg"]["step"]) == TOTAL_STEPS  # SIGReg's directions moved on


def test_torchrun_ranks_end_with_identical_weights(runs: dict[str, Any]) -> None:
    ranks = runs["ranks"]
    for run in ranks:
        assert run.returncode == 0, run.output
    sums = [re.findall(r"rank (\d) param checksum (\w+)", run.stderr) for run in ranks]
    assert [found[0][0] for found in sums] == ["0", "1"], sums
    assert sums[0][0][1] == sums[1][0][1], sums
    history = strict_metrics(ranks[0].out)["loss_history"]
    assert len(history) == TOTAL_STEPS  # the global batch is split, the steps are the same
    assert all(math.isfinite(row["loss"]) for row in history)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "tiny"], "unknown preset 'tiny'; choose one of demo, smoke"),
        (["--regularizer", "vicreg"], "--regularizer must be one of ema, sigreg, got 'vicreg'"),
        (["--sigreg-on", "cls"], "--sigreg-on must be one of tokens, pooled, got 'cls'"),
        (["--lam", "1.5"], r"--lam must be in \[0, 1\] \(LeJEPA: 0.05\), got 1.5"),
        (["--ema-start", "0.999", "--ema-end", "0.99"],
         r"need 0 <= --ema-start <= --ema-end <= 1 \(paper: 0.996 -> 1\), got 0.999 and 0.99"),
        (["--patch-size", "5"], "--patch-size must divide --image-size=32, got 5"),
        (["--pred-dim", "30", "--pred-heads", "4"],
         "--pred-dim 30 must be a multiple of --pred-heads 4"),
        (["--batch-size", "1"], r"--batch-size must be >= 2 \(SIGReg\), got 1"),
        (["--vit", "vit_tiny_patch16_22"], "unknown timm model --vit 'vit_tiny_patch16_22'. "
         "Did you mean"),
        (["--vit", "resnet18"], "--vit must be a timm VisionTransformer"),
        (["--patch-size", "16"], "bad mask options for the 2 x 2 patch grid"),
        (["--target-scale-min", "0.3", "--target-scale-max", "0.2"],
         "bad mask options for the 8 x 8 patch grid"),
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
