"""CollapseMonitor: each gauge against its formula, the warnings, and bad input."""

import math
import warnings

import numpy as np
import pytest
import torch

import jepa_blocks as jb
from jepa_blocks.monitors import _standardise


def gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def rankme_oracle(z: np.ndarray, eps: float) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def test_gauges_equal_their_formulas():
    z = gaussian(300, 24) * torch.linspace(0.2, 2.0, 24) + 0.5
    t = z + 0.3 * gaussian(300, 24, seed=1)
    monitor = jb.CollapseMonitor(every=1, rankme_eps=0.05, num_slices=64, seed=3)
    got = monitor(z, step=7, teacher=(z, t))
    zn = z.double().numpy()
    assert got["step"] == 7 and got["samples"] == 300
    # A non-default eps, so that a monitor dropping it would fail.
    assert got["rankme"] == pytest.approx(rankme_oracle(zn, eps=0.05), rel=1e-6)
    assert got["rankme"] != pytest.approx(rankme_oracle(zn, eps=0.0), rel=1e-3)
    assert got["rankme_fraction"] == pytest.approx(got["rankme"] / 24)
    unit = zn / np.linalg.norm(zn, axis=1, keepdims=True)
    assert got["std_ratio"] == pytest.approx(
        unit.std(axis=0, ddof=1).mean() * math.sqrt(24), rel=1e-5
    )
    tn = t.double().numpy()
    cosine = (zn * tn).sum(1) / np.linalg.norm(zn, axis=1) / np.linalg.norm(tn, axis=1)
    assert got["teacher_cosine"] == pytest.approx(cosine.mean(), rel=1e-5)
    # SIGReg of the centred cloud at unit mean variance, with the seed's step-0 directions.
    centred = zn - zn.mean(0)
    standard = torch.from_numpy(centred / np.sqrt((centred**2).mean())).float()
    expected = jb.SIGReg(64, seed=3, distributed=False)(standard)
    assert got["sigreg"] == pytest.approx(float(expected), rel=1e-4)
    assert monitor.history == [got]


def test_healthy_low_rank_and_point_clouds_read_as_such():
    monitor = jb.CollapseMonitor(every=1, warn=False)
    healthy = monitor(gaussian(512, 64), step=0)
    assert healthy["rankme_fraction"] > 0.9
    assert healthy["std_ratio"] == pytest.approx(1.0, abs=0.05)
    assert healthy["sigreg"] < 2.0
    low_rank = monitor(gaussian(512, 2) @ gaussian(2, 64, seed=1), step=1)
    assert low_rank["rankme"] < 2.5
    assert low_rank["sigreg"] > 20 * healthy["sigreg"]  # the variance sits in 2 directions
    point = monitor(torch.ones(512, 64) + 1e-4 * gaussian(512, 64, seed=2), step=2)
    assert point["rankme"] < 1.1 and point["std_ratio"] < 1e-3


def test_warns_once_per_crossing_naming_metric_value_and_step():
    monitor = jb.CollapseMonitor(every=10)
    healthy, point = gaussian(128, 32), torch.ones(128, 32) + 1e-5 * gaussian(128, 32, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jb.CollapseWarning)
        monitor(healthy, step=0)
    with pytest.warns(jb.CollapseWarning) as caught:
        monitor(point, step=10)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2  # rankme and std_ratio
    assert messages[0].startswith("collapse at step 10: rankme = 1.0")
    assert "below 1.62 (0.02 of the way from 1 to min(n, d) = 32)" in messages[0]
    assert messages[1].startswith("collapse at step 10: std_ratio = ")
    assert caught[0].filename == __file__  # points at the caller's line
    assert monitor.collapsed == {"rankme", "std_ratio"}
    with warnings.catch_warnings():  # still collapsed: no repeat
        warnings.simplefilter("error", jb.CollapseWarning)
        monitor(point, step=20)
        monitor(healthy, step=30)  # recovered
    assert monitor.collapsed == set()
    with pytest.warns(jb.CollapseWarning, match="step 40"):
        monitor(point, step=40)  # a new crossing warns again


def test_sigreg_threshold_and_disabled_thresholds():
    low_rank = gaussian(256, 2) @ gaussian(2, 32, seed=1)
    with pytest.warns(jb.CollapseWarning, match=r"sigreg = [\d.]+ is above 5"):
        jb.CollapseMonitor(max_sigreg=5.0, min_rankme_fraction=None)(low_rank, step=0)
    monitor = jb.CollapseMonitor(min_rankme_fraction=None, min_std_ratio=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", jb.CollapseWarning)
        monitor(torch.ones(64, 8), step=0)
    assert monitor.collapsed == set()


def test_views_are_samples_and_subsampling_is_deterministic_without_rng():
    z = gaussian(4 * 300, 16).reshape(4, 300, 16)
    monitor = jb.CollapseMonitor(max_samples=100, warn=False)
    state = torch.get_rng_state()
    got = monitor(z, step=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert got["samples"] == 100
    rows = z.reshape(-1, 16)[torch.linspace(0, 1199, 100).long()]
    assert got["rankme"] == pytest.approx(jb.CollapseMonitor()(rows, step=0)["rankme"])
    assert monitor(z, step=1)["rankme"] == got["rankme"]


def test_due_and_state_dict_round_trip():
    monitor = jb.CollapseMonitor(every=25, warn=False)
    assert [s for s in range(80) if monitor.due(s)] == [0, 25, 50, 75]
    monitor(torch.ones(16, 4), step=0)
    fresh = jb.CollapseMonitor(every=25)
    fresh.load_state_dict(monitor.state_dict())
    assert fresh.history == monitor.history and fresh.collapsed == monitor.collapsed
    with warnings.catch_warnings():  # the crossing was already reported before the resume
        warnings.simplefilter("error", jb.CollapseWarning)
        fresh(torch.ones(16, 4), step=25)


def test_standardise_keeps_shape_and_handles_a_point():
    z = gaussian(100, 3) * torch.tensor([1.0, 2.0, 3.0]) + 4.0
    s = _standardise(z)
    assert s.mean(0).abs().max() < 1e-5
    assert s.pow(2).mean() == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(_standardise(torch.full((5, 2), 3.0)), torch.zeros(5, 2))


@pytest.mark.parametrize(
    ("embeddings", "teacher", "match"),
    [
        (torch.randn(8), None, r"shape \(n, d\) or \(\.\.\., n, d\), got \(8,\)"),
        (torch.randn(1, 8), None, "1 samples of width 8; the gauges need at least 2"),
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), None, "embeddings contains NaN"),
        (
            torch.randn(4, 8),
            (torch.randn(4, 8), torch.randn(4, 7)),
            r"teacher pair has shapes \(4, 8\) \(online\) and \(4, 7\) \(target\)",
        ),
        (
            torch.randn(4, 8),
            (torch.randn(4, 8), torch.full((4, 8), float("inf"))),
            "teacher target contains NaN or Inf",
        ),
    ],
)
def test_bad_input_is_rejected_and_nothing_recorded(embeddings, teacher, match):
    monitor = jb.CollapseMonitor(warn=False)
    monitor(torch.randn(8, 4), step=0)
    with pytest.raises(ValueError, match=match):
        monitor(embeddings, step=1, teacher=teacher)
    assert len(monitor.history) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every": 0}, "every must be >= 1"),
        ({"max_samples": 1}, "max_samples must be >= 2"),
        ({"rankme_eps": 1.0}, r"rankme_eps must be in \[0, 1\)"),
        ({"min_std_ratio": -0.1}, "min_std_ratio must be >= 0"),
        ({"max_sigreg": float("nan")}, "max_sigreg must be >= 0"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jb.CollapseMonitor(**kwargs)
