"""Bad input to ``examples/seq_jepa/train.py``: a clear ``error: ...`` and a non-zero exit code
before anything is trained or saved, never a Python traceback (DESIGN.md: bad input gets a
clear error before any state changes).

The action width cannot be set on the command line (``model_config`` takes it from the
dataset), so a model/dataset width mismatch can only come from library users building the
model themselves: that case is tested on ``SeqJEPA`` directly with the built-in dataset's
4-d relative-rotation actions.
"""

import sys
from pathlib import Path

import pytest
from _train_helpers import (
    REPO,
    SMOKE,
    TrainRun,
    assert_no_traceback,
    render_cache,
    run_parallel,
)
from torch.utils.data import default_collate

from jepa_blocks.data.objects import ObjectSequences, RenderedObjects

sys.path.insert(0, str(REPO / "examples" / "seq_jepa"))

from model import SeqJEPA, SeqJEPAConfig  # noqa: E402

MISSING = Path("/nonexistent/3DIEBench")


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> dict[str, TrainRun]:
    """Every refused invocation, two at a time (each costs a Python start-up)."""
    root = tmp_path_factory.mktemp("cli")
    damaged = root / "damaged" / "checkpoints" / "ckpt-000000003.pt"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"PK\x03\x04 not a checkpoint")
    earlier = root / "reused" / "checkpoints" / "ckpt-000000003.pt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's checkpoint")
    return run_parallel(
        {
            "unknown_preset": (["--preset", "nope"], root / "preset"),
            "m_val_max": ([*SMOKE, "--m-val-max", "8"], root / "m-val"),
            "missing_data": (
                ["--preset", "paper-3diebench", "--data-dir", str(MISSING), "--no-progress"],
                root / "missing",
            ),
            "no_data_dir": (["--preset", "paper-cifar100"], root / "no-data-dir"),
            "damaged_resume": ([*SMOKE, "--resume"], root / "damaged"),
            "reused_out": (SMOKE, root / "reused"),
        },
        cache=cache,
    )


def _assert_refused(run: TrainRun, *needles: str) -> None:
    assert run.returncode != 0, run.describe()
    assert_no_traceback(run.output)
    assert any(line.startswith("error: ") for line in run.stderr.splitlines()), run.stderr
    for needle in needles:
        assert needle in run.stderr, run.stderr
    # Nothing was trained or saved.
    assert not (run.out / "config.json").exists()


@pytest.mark.slow
def test_unknown_preset_lists_the_choices(runs: dict[str, TrainRun]) -> None:
    run = runs["unknown_preset"]
    _assert_refused(run, "unknown preset 'nope'", "smoke", "paper-3diebench")
    assert not run.out.exists()  # refused before the output folder is made


@pytest.mark.slow
def test_m_val_max_beyond_the_views_available(runs: dict[str, TrainRun]) -> None:
    # The built-in 'small' objects have 8 views: M_val = 8 needs 8 + 1.
    run = runs["m_val_max"]
    _assert_refused(run, "--m-val-max 8 needs 9 views", "'small' objects have 8", "--objects-size")
    assert not (run.out / "checkpoints").exists()


@pytest.mark.slow
def test_missing_dataset_directory_is_named(runs: dict[str, TrainRun]) -> None:
    run = runs["missing_data"]
    _assert_refused(run, "cannot load 3diebench data", str(MISSING), "does not exist")
    assert not (run.out / "checkpoints").exists()


@pytest.mark.slow
def test_paper_preset_without_data_dir(runs: dict[str, TrainRun]) -> None:
    run = runs["no_data_dir"]
    _assert_refused(run, "preset 'paper-cifar100'", "--data-dir")
    assert not run.out.exists()


@pytest.mark.slow
def test_resume_over_only_unreadable_checkpoints_is_refused(runs: dict[str, TrainRun]) -> None:
    """Never silently restart from scratch over a run's (damaged) checkpoints."""
    run = runs["damaged_resume"]
    assert run.returncode == 2, run.describe()
    _assert_refused(run, "error: cannot resume", "ckpt-000000003.pt", "Delete the damaged files")
    assert [p.name for p in (run.out / "checkpoints").iterdir()] == ["ckpt-000000003.pt"]


def test_model_action_width_must_match_the_dataset(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(cache))
    objects = RenderedObjects(split="train", size="small", image_size=32)
    data = ObjectSequences(objects, num_views=3, action="rot")
    batch = default_collate([data[0], data[1]])
    assert batch["actions"].shape[-1] == 4  # relative-rotation quaternions
    model = SeqJEPA(
        SeqJEPAConfig(
            backbone="test_resnet",
            dim_action=6,
            dim_action_embed=8,
            depth=1,
            pred_hidden=16,
            dropout=0.0,
        )
    )
    with pytest.raises(ValueError, match=r"actions have width 4 .* dim_action=6.*action width"):
        model(batch["views"], batch["actions"])



@pytest.mark.slow
def test_reusing_a_run_directory_without_resume_is_refused(runs: dict[str, TrainRun]) -> None:
    """Two runs' checkpoints never mix: an existing run needs --resume or another --out."""
    _assert_refused(runs["reused_out"], "holds checkpoints of an earlier run; pass --resume")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nan-policy", "ignore"], "--nan-policy must be 'stop' or 'skip'"),
        (["--precision", "fp8"], "unknown --precision 'fp8'"),
        (["--seq-len", "0"], "--seq-len, --m-val-max and --epochs must be >= 1"),
        (["--variant", "jepa"], "unknown variant 'jepa'"),
        (["--threads", "-1"], r"--threads must be >= 0 \(0: torch's default\), got -1"),
        (["--save-every-epochs", "0"], "--save-every-epochs must be >= 1, got 0"),
        (["--attn-core", "flash"], "--attn-core must be one of naive, sdpa, online, got 'flash'"),
        (["--monitor-every", "-5"], r"--monitor-every must be >= 0 \(0 turns the collapse"),
        (["--sigreg-lambda", "2"], r"--sigreg-lambda must be in \[0, 1\], got 2.0"),
        (
            ["--action-norm-calls", "double"],
            "--action-norm-calls must be one of single, separate, separate-zero-slot, got 'double'",
        ),
        (
            ["--backbone", "convnext_atto"],  # the demo preset turns zero_init_residual off
            "--no-zero-init-residual sets timm's zero_init_last, which only ResNets .* "
            "--backbone 'convnext_atto' is not one",
        ),
    ],
)
def test_bad_options_are_refused_before_any_work(argv: list[str], message: str) -> None:
    import train  # the example's module; its directory is on sys.path above

    with pytest.raises(SystemExit, match=message):
        train.resolve_config(train.parse_args(argv))
