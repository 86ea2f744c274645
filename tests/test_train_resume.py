"""Exact resume of ``examples/seq_jepa/train.py`` (DESIGN.md, Reliability principles).

An uninterrupted 14-step run (2 epochs of 7 steps) is the oracle. A run stopped with
``--max-steps k`` (which saves a checkpoint and exits, as an interruption would) and then
continued with ``--resume`` must log the SAME losses, bit for bit (CPU, one thread,
``num_workers=0``, dropout 0), and end with the same online weights, EMA target (BN buffers
and schedule step included), optimizer moments and LR-scheduler position. Also covered: a
resume whose run-defining flags differ is refused with a readable error, and a truncated
newest checkpoint is skipped (with a warning naming it) in favour of the previous good one.
"""

import math
from pathlib import Path
from typing import Any

import pytest
from _train_helpers import (
    SMOKE,
    TrainRun,
    assert_no_traceback,
    assert_states_equal,
    baseline_run,
    copy_run,
    load_checkpoint,
    load_metrics,
    render_cache,
    run_parallel,
    step_checkpoints,
)

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 7  # 60 training sequences of the 'small' objects, global batch 8
TOTAL_STEPS = 2 * STEPS_PER_EPOCH
MID_EPOCH = 10  # 3 steps into the second epoch


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> dict[str, Any]:
    """Every run of this module, independent ones two at a time; the tests only look.

    Wave 1: stop at step 10 (mid-epoch: ckpt-7 from the end of epoch 0, ckpt-10 from the stop)
    and at step 7 (the epoch's last batch); a whole run saving at every 3rd epoch end. Wave 2,
    each on its own copy: resume both; resume with changed flags; resume after truncating
    ckpt-10.
    """
    baseline = baseline_run(tmp_path_factory, cache)  # runs in the background meanwhile
    root = tmp_path_factory.mktemp("resume")
    first = run_parallel(
        {
            "stopped_mid": ([*SMOKE, "--max-steps", str(MID_EPOCH)], root / "mid"),
            "stopped_boundary": ([*SMOKE, "--max-steps", str(STEPS_PER_EPOCH)], root / "edge"),
            "limit_at_end": (
                [*SMOKE, "--max-steps", str(TOTAL_STEPS),
                 "--save-every-steps", str(STEPS_PER_EPOCH)],
                root / "limit-at-end",
            ),
            "sparse_saves": ([*SMOKE, "--save-every-epochs", "3"], root / "sparse"),
        },
        cache=cache,
    )
    for run in first.values():
        assert run.returncode == 0, run.describe()
    mid, edge = first["stopped_mid"].out, first["stopped_boundary"].out
    copies = {name: copy_run(mid, root / name) for name in ("mid-resume", "mismatch", "corrupt")}
    copies["edge-resume"] = copy_run(edge, root / "edge-resume")
    folder = copies["mismatch"] / "checkpoints"
    untouched = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    newest = copies["corrupt"] / "checkpoints" / f"ckpt-{MID_EPOCH:09d}.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a crash mid-write, had saves not been atomic
    changed = ["--lr", "0.002", "--seq-len", "3"]
    second = run_parallel(
        {
            "resumed_mid": ([*SMOKE, "--resume"], copies["mid-resume"]),
            "resumed_boundary": ([*SMOKE, "--resume"], copies["edge-resume"]),
            "mismatch": ([*SMOKE, "--resume", *changed], copies["mismatch"]),
            "corrupt": ([*SMOKE, "--resume"], copies["corrupt"]),
        },
        cache=cache,
    )
    base = baseline.result()
    assert base.returncode == 0, base.describe()
    return {"baseline": base, **first, **second, "untouched": untouched}


def _final(out: Path) -> dict:
    paths = step_checkpoints(out)
    assert paths and paths[-1].name == f"ckpt-{TOTAL_STEPS:09d}.pt", paths
    return load_checkpoint(paths[-1])


def _assert_same_run(resumed: TrainRun, baseline: TrainRun) -> None:
    assert resumed.returncode == 0, resumed.describe()
    history = load_metrics(resumed.out)["loss_history"]
    expected = load_metrics(baseline.out)["loss_history"]
    assert [row["step"] for row in expected] == list(range(TOTAL_STEPS))
    # Exact: the same floats, not approximately the same.
    assert history == expected
    assert_states_equal(_final(resumed.out), _final(baseline.out))


def test_baseline_logs_every_step_with_finite_losses(runs: dict[str, Any]) -> None:
    history = load_metrics(runs["baseline"].out)["loss_history"]
    assert len(history) == TOTAL_STEPS
    assert all(0.0 <= row["loss"] <= 2.0 for row in history)  # 1 - cos
    payload = _final(runs["baseline"].out)
    assert payload["step"] == TOTAL_STEPS and payload["epoch"] == 2


def test_max_steps_at_the_last_step_completes_the_run(runs: dict[str, Any]) -> None:
    run = runs["limit_at_end"]
    assert run.returncode == 0, run.describe()
    assert "stopped by" not in run.stderr
    # A completed run reports (an interrupted one does not), with the uninterrupted losses.
    assert load_metrics(run.out)["loss_history"] == load_metrics(runs["baseline"].out)[
        "loss_history"
    ]


def test_a_periodic_save_at_an_epoch_end_is_written_once(runs: dict[str, Any]) -> None:
    run = runs["limit_at_end"]  # --save-every-steps = steps per epoch: both saves are due
    saved = [line.rsplit("/", 1)[-1] for line in run.stderr.splitlines() if " saved " in line]
    expected = [f"ckpt-{step:09d}.pt" for step in range(STEPS_PER_EPOCH, TOTAL_STEPS + 1,
                                                          STEPS_PER_EPOCH)]
    assert saved == expected, run.stderr


def test_save_every_epochs_skips_epoch_ends_but_not_the_last(runs: dict[str, Any]) -> None:
    run = runs["sparse_saves"]  # 2 epochs, a save every 3rd epoch end: only the last one
    assert [p.name for p in step_checkpoints(run.out)] == [f"ckpt-{TOTAL_STEPS:09d}.pt"]
    # The cadence of saves changes nothing in the run itself.
    assert load_metrics(run.out)["loss_history"] == load_metrics(runs["baseline"].out)[
        "loss_history"
    ]


def test_max_steps_stops_with_a_checkpoint_and_says_how_to_resume(runs: dict[str, Any]) -> None:
    run = runs["stopped_mid"]
    assert f"stopped by --max-steps at step {MID_EPOCH}" in run.stderr
    assert f"resume with --out {run.out} --resume" in run.stderr
    assert not (run.out / "metrics.json").exists()  # an interrupted run reports nothing yet
    names = [p.name for p in step_checkpoints(run.out)]
    assert names == [f"ckpt-{STEPS_PER_EPOCH:09d}.pt", f"ckpt-{MID_EPOCH:09d}.pt"]
    state = load_checkpoint(run.out / "checkpoints" / names[-1])["state"]
    assert state["position"] == {
        "epoch": 1,
        "step_in_epoch": MID_EPOCH - STEPS_PER_EPOCH,
        "global_step": MID_EPOCH,
    }
    # The EMA schedule and the LR scheduler have advanced once per optimizer step.
    assert state["target"]["_extra_state"] == {"step": MID_EPOCH}
    assert state["scheduler"]["last_epoch"] == MID_EPOCH
    assert len(state["history"]) == MID_EPOCH


def test_resume_mid_epoch_is_exact(runs: dict[str, Any]) -> None:
    resumed = runs["resumed_mid"]
    assert f"resumed at epoch 1, step {MID_EPOCH}" in resumed.stderr, resumed.describe()
    _assert_same_run(resumed, runs["baseline"])
    state = _final(resumed.out)["state"]
    # ... and the EMA step and LR-scheduler position continued from 10 to 14.
    assert state["target"]["_extra_state"] == {"step": TOTAL_STEPS}
    assert state["scheduler"]["last_epoch"] == TOTAL_STEPS


def test_resume_at_an_epoch_boundary_is_exact(runs: dict[str, Any]) -> None:
    stopped = runs["stopped_boundary"]
    position = load_checkpoint(step_checkpoints(stopped.out)[-1])["state"]["position"]
    # Stopped after the epoch's last batch but before the epoch-end bookkeeping.
    assert position == {
        "epoch": 0,
        "step_in_epoch": STEPS_PER_EPOCH,
        "global_step": STEPS_PER_EPOCH,
    }
    resumed = runs["resumed_boundary"]
    _assert_same_run(resumed, runs["baseline"])
    # The epoch finished on resume still gets its epoch-mean loss recorded in best.pt.
    best = load_checkpoint(resumed.out / "checkpoints" / "best.pt")
    assert best["metric"] is not None and math.isfinite(best["metric"])


def test_resume_with_changed_run_flags_is_refused_naming_each_field(
    runs: dict[str, Any],
) -> None:
    run = runs["mismatch"]
    assert run.returncode == 2, run.describe()
    assert_no_traceback(run.output)
    assert run.stderr.lstrip().startswith("error: cannot resume"), run.stderr
    assert "train.lr: checkpoint 0.001, now 0.002" in run.stderr
    assert "train.seq_len: checkpoint 2, now 3" in run.stderr
    assert f"ckpt-{MID_EPOCH:09d}.pt" in run.stderr
    # Nothing was written: the checkpoints are untouched.
    folder = run.out / "checkpoints"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == runs["untouched"]


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    runs: dict[str, Any],
) -> None:
    resumed = runs["corrupt"]
    assert resumed.returncode == 0, resumed.describe()
    warning = next(line for line in resumed.stderr.splitlines() if "skipping" in line)
    assert f"ckpt-{MID_EPOCH:09d}.pt" in warning, warning
    assert f"ckpt-{STEPS_PER_EPOCH:09d}.pt" in warning, warning  # "Falling back to ..."
    assert f"resumed at epoch 1, step {STEPS_PER_EPOCH}" in resumed.stderr
    # Steps 7..13 are recomputed from the good checkpoint: still the uninterrupted run.
    _assert_same_run(resumed, runs["baseline"])
