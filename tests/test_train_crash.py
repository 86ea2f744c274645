"""Crash safety of ``examples/seq_jepa/train.py``: SIGKILL, SIGTERM and a diverging loss.

DESIGN.md: "A crash never corrupts the last good checkpoint (write to a temporary file,
fsync, rename)" and "Resume is exact". The SIGKILL test kills the trainer (saving after every
step) several times, at least once while a checkpoint is being written (a temporary file is
on disk), and after every kill checks that each ``ckpt-*.pt`` reads back with
``torch.load(weights_only=True)``; the final ``--resume`` must still reproduce the
uninterrupted run's losses and weights exactly. SIGTERM must save and exit 0. A loss driven
to NaN by a huge learning rate must stop the run (exit 3) without saving the diverged state,
or be skipped with ``--nan-policy skip``.
"""

import math
import random
import re
import signal
import subprocess
from pathlib import Path

import pytest
from _train_helpers import (
    SMOKE,
    TIMEOUT_S,
    Background,
    all_finite,
    assert_no_traceback,
    assert_states_equal,
    baseline_run,
    load_checkpoint,
    load_metrics,
    render_cache,
    run_train,
    start_train,
    step_checkpoints,
    wait_for,
)

pytestmark = pytest.mark.slow

TOTAL_STEPS = 14  # the smoke preset: 2 epochs of 7 steps
#: lr 1e30: AdamW's first step moves every weight by ~1e30 (finite), and the next forward
#: overflows in BatchNorm's variance, so the loss is NaN from step 1 on.
DIVERGE = ("--lr", "1e30", "--initial-lr", "1e30")


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_cache(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def background(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> dict[str, Background]:
    """Runs that need no babysitting start when the module does and overlap with the kill
    test (one per core): the uninterrupted baseline, and the diverging run (stopped by NaN)."""
    out = tmp_path_factory.mktemp("nan") / "run"
    return {
        "baseline": baseline_run(tmp_path_factory, cache),
        "nan_stop": Background([*SMOKE, *DIVERGE, "--save-every-steps", "1"], cache=cache, out=out),
    }


def _temporaries(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    return sorted(folder.glob(".*.tmp")) if folder.is_dir() else []


def _assert_every_checkpoint_loads(out: Path) -> int:
    """Each ckpt-*.pt is a complete payload; returns the newest step on disk (0 if none)."""
    newest = 0
    for path in step_checkpoints(out):
        payload = load_checkpoint(path)  # raises on a torn file
        step = payload["step"]
        assert path.name == f"ckpt-{step:09d}.pt"
        assert payload["state"]["position"]["global_step"] == step
        assert len(payload["state"]["history"]) == step
        assert all_finite(payload["state"]["model"])
        newest = max(newest, step)
    return newest


def _final_history_and_state(out: Path) -> tuple[list, dict]:
    return load_metrics(out)["loss_history"], load_checkpoint(step_checkpoints(out)[-1])


def _newest_step(out: Path) -> int:
    """From the file names only: cheap enough to poll every millisecond."""
    return max((int(p.name[5:14]) for p in step_checkpoints(out)), default=0)


def _kill_during_a_save(job: Background, out: Path, stale: set[Path]) -> bool:
    """SIGKILL as soon as a new temporary checkpoint file appears while a good checkpoint is
    on disk. True if the kill provably landed mid-save (that file is left behind)."""

    def saving() -> set[Path]:
        return set(_temporaries(out)) - stale if step_checkpoints(out) else set()

    hit = wait_for(saving, job.proc)
    job.proc.send_signal(signal.SIGKILL)
    job.proc.wait()
    return bool(hit and hit & set(_temporaries(out)))


def _kill_at_a_random_moment(job: Background, out: Path, before: int, delay: float) -> None:
    """SIGKILL ``delay`` seconds after the run wrote a checkpoint newer than ``before``."""
    wait_for(lambda: _newest_step(out) > before, job.proc)
    try:
        job.proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:  # still running: the kill lands mid-step or mid-save
        job.proc.send_signal(signal.SIGKILL)
        job.proc.wait()


def test_killed_and_terminated_runs_resume_exactly_from_intact_checkpoints(
    background: dict[str, Background], tmp_path: Path, cache: Path
) -> None:
    """SIGKILL at least 3 times (at least once mid-save, the others at random moments after
    a checkpoint), then SIGTERM, then resume to the end: after every kill each checkpoint
    loads, SIGTERM saves and exits 0, and the end result is the uninterrupted run's."""
    out = tmp_path / "run"
    rng = random.Random(0)
    args = [*SMOKE, "--save-every-steps", "1", "--keep-last", "2"]
    kills, mid_save = [], 0
    # Alternate the two kinds; retry a mid-save kill that landed just after the rename.
    for attempt in range(6):
        if len(kills) >= 3 and mid_save:
            break
        before = _assert_every_checkpoint_loads(out)
        stale = set(_temporaries(out))  # left by an earlier kill; the next save removes them
        resume = ["--resume"] if attempt else []
        with start_train([*args, *resume], cache=cache, out=out) as job:
            if attempt % 2 == 0:
                mid_save += _kill_during_a_save(job, out, stale)
            else:
                _kill_at_a_random_moment(job, out, before, rng.uniform(0.0, 0.4))
            assert job.proc.returncode == -signal.SIGKILL, job.log()  # killed, not finished
        kills.append(_assert_every_checkpoint_loads(out))
    assert mid_save >= 1 and len(kills) >= 3, (kills, mid_save)

    # SIGTERM (what schedulers send before killing a job): save, say how to resume, exit 0.
    before = _assert_every_checkpoint_loads(out)
    with start_train([*args, "--resume"], cache=cache, out=out) as job:
        wait_for(lambda: _newest_step(out) > before, job.proc)  # in the training loop
        job.proc.send_signal(signal.SIGTERM)
        job.proc.wait(timeout=TIMEOUT_S)  # a hang detector only
        log = job.log()
        assert job.proc.returncode == 0, log
    match = re.search(
        r"stopped by a stop signal at step (\d+); resume with --out (\S+) "
        r"--resume",
        log,
    )
    assert match and match.group(2) == str(out), log
    assert _assert_every_checkpoint_loads(out) == int(match.group(1)) < TOTAL_STEPS
    assert not (out / "metrics.json").exists()

    final = run_train([*args, "--resume"], cache=cache, out=out)
    assert final.returncode == 0, final.describe()
    assert not _temporaries(out)  # stale temporaries are cleaned by the next save
    expected = background["baseline"].result()
    assert expected.returncode == 0, expected.describe()
    history, state = _final_history_and_state(out)
    expected_history, expected_state = _final_history_and_state(expected.out)
    assert history == expected_history  # exact, despite four interruptions
    assert_states_equal(state, expected_state)


def test_nan_loss_stops_keeping_finite_weights_then_skip_policy_finishes(
    background: dict[str, Background], cache: Path
) -> None:
    stopped = background["nan_stop"].result()  # SMOKE + DIVERGE + --save-every-steps 1
    out = stopped.out
    assert stopped.returncode == 3, stopped.describe()
    assert_no_traceback(stopped.output)
    match = re.search(r"loss is nan at step (\d+)", stopped.stderr)
    assert match, stopped.stderr
    nan_step = int(match.group(1))
    assert 1 <= nan_step < TOTAL_STEPS
    assert "--nan-policy skip" in stopped.stderr
    # Nothing computed from the NaN step on was saved: the newest file is the last finite one.
    newest = _assert_every_checkpoint_loads(out)
    assert newest == nan_step
    state = load_checkpoint(step_checkpoints(out)[-1])["state"]
    assert all_finite(state["model"]) and all_finite(state["target"])
    assert all(math.isfinite(row["loss"]) for row in state["history"])
    assert not (out / "metrics.json").exists()

    # As the message suggests: continue with --nan-policy skip (an operational flag).
    skipped = run_train(
        [*SMOKE, *DIVERGE, "--resume", "--nan-policy", "skip"], cache=cache, out=out
    )
    assert skipped.returncode == 0, skipped.describe()
    metrics = load_metrics(out)
    assert metrics["skipped_steps"] and metrics["skipped_steps"][0] == nan_step
    assert set(metrics["skipped_steps"]) <= set(range(nan_step, TOTAL_STEPS))
    assert len(metrics["loss_history"]) == TOTAL_STEPS
    # A skipped step's NaN loss is reported as null (load_metrics parses strictly).
    losses = {row["step"]: row["loss"] for row in metrics["loss_history"]}
    assert all(losses[step] is None for step in metrics["skipped_steps"])
    assert f"non-finite loss at step {nan_step}: step skipped" in skipped.stderr
    final = load_checkpoint(step_checkpoints(out)[-1])
    assert final["step"] == TOTAL_STEPS
    assert all_finite(final["state"]["model"]) and all_finite(final["state"]["target"])
    # Skipped steps advance neither the LR schedule nor the EMA schedule.
    done = TOTAL_STEPS - len(metrics["skipped_steps"])
    assert final["state"]["scheduler"]["last_epoch"] == done
    assert final["state"]["target"]["_extra_state"] == {"step": done}
