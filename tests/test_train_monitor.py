"""The collapse monitor inside examples/seq_jepa/train.py, and the seq-jepa-sigreg variant's
training loop: in-process smoke runs (14 steps of timm's test ResNet)."""

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

import jepa_blocks as jb  # noqa: E402


@pytest.fixture()
def make_trainer(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch):
    """Build a smoke-preset Trainer in-process with extra command-line flags."""
    import train
    from _train_helpers import render_cache

    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(render_cache(tmp_path_factory)))

    def make(*flags: str, name: str = "run", resume: bool = False) -> "train.Trainer":
        argv = ["--preset", "smoke", "--no-progress", "--no-evaluate", *flags]
        config = train.resolve_config(train.parse_args(argv))
        return train.Trainer(config, tmp_path / name, resume=resume)

    return make


def test_a_developing_collapse_is_warned_within_50_steps(make_trainer) -> None:
    """The encoder's outputs are pulled towards their batch mean, halving the spread at every
    step: the monitor must name the step where the normalised spread drops below 0.05."""
    trainer = make_trainer()

    def shrink(module, inputs, output):
        mean = output.flatten(0, -2).mean(dim=0)  # over every image of the call
        return mean + (output - mean) * 0.5**trainer.global_step

    # After the Trainer is built: the EMA target (a copy) does not get the hook.
    trainer.model.encoder.register_forward_hook(shrink)
    with pytest.warns(jb.CollapseWarning) as caught:
        assert trainer.train()
    messages = [str(w.message) for w in caught if issubclass(w.category, jb.CollapseWarning)]
    first = messages[0]
    assert first.startswith("collapse at step ") and "std_ratio = " in first
    step = int(first.removeprefix("collapse at step ").split(":")[0])
    assert 2 <= step <= 50
    history = trainer.monitor.history
    assert [row["step"] for row in history] == list(range(14))  # monitor_every 1 (smoke)
    assert history[step]["std_ratio"] < 0.05 <= history[step - 1]["std_ratio"]
    assert history[0]["std_ratio"] > 0.5


def test_a_healthy_run_warns_nothing_and_writes_the_history(make_trainer) -> None:
    trainer = make_trainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", jb.CollapseWarning)
        assert trainer.train()
    history = trainer.monitor.history
    assert len(history) == 14
    assert set(history[0]) == {
        "step", "samples", "rankme", "rankme_fraction", "std_ratio", "sigreg", "teacher_cosine"
    }
    assert all(0.0 < row["teacher_cosine"] <= 1.0 for row in history)
    trainer.report(trainer.train_metrics(), evaluated=False)
    metrics = json.loads((trainer.out / "metrics.json").read_text())
    assert metrics["collapse_monitor"] == history


def test_monitoring_does_not_change_the_run(make_trainer) -> None:
    """The teacher-cosine forward runs the EMA target in train mode; its BatchNorm buffers are
    put back, so a monitored run is the unmonitored run, bit for bit."""
    monitored = make_trainer(name="monitored")
    assert monitored.train()
    plain = make_trainer("--monitor-every", "0", name="plain")
    assert plain.monitor is None
    assert plain.train()
    assert monitored.history == plain.history
    for a, b in zip(
        monitored.state_dict()["target"].values(), plain.state_dict()["target"].values(),
        strict=True,
    ):
        assert a == b if not isinstance(a, torch.Tensor) else torch.equal(a, b)


def test_sigreg_variant_trains_without_target_and_resumes_exactly(make_trainer) -> None:
    whole = make_trainer("--variant", "seq-jepa-sigreg", name="whole")
    assert whole.target is None and whole.sigreg is not None
    assert whole.train()
    assert int(whole.model.sigreg.step) == 14  # one direction draw per optimiser step
    assert all("teacher_cosine" not in row for row in whole.monitor.history)
    assert whole.parameter_checksums()[1] == "none"

    first = make_trainer("--variant", "seq-jepa-sigreg", "--max-steps", "9", name="split")
    assert not first.train()
    resumed = make_trainer("--variant", "seq-jepa-sigreg", name="split", resume=True)
    assert int(resumed.model.sigreg.step) == 9
    assert resumed.train()
    assert resumed.history == whole.history
    assert resumed.monitor.history == whole.monitor.history
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
