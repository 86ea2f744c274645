"""Tests for jepa_blocks.eval.ridge: closed-form ridge probes and the rotation R^2 protocol.

The ridge solution is checked against numpy's least squares (the oracle), the rotation
probes on synthetic views whose features hold the orientation linearly (R^2 near 1) or not at
all (R^2 near 0), and the protocol for what it must never do: look at test rows when fitting
or when choosing the penalty.
"""

import inspect
import math

import numpy as np
import pytest
import torch

from jepa_blocks.actions import relative_rotation
from jepa_blocks.eval import ridge
from jepa_blocks.eval.metrics import r2_score
from jepa_blocks.eval.ridge import (
    DEFAULT_PENALTIES,
    BilinearPairFeatures,
    fit_ridge,
    rotation_ridge_r2,
    sample_view_pairs,
)
from jepa_blocks.eval.targets import absolute_rotation_target

OBJECTS, VIEWS, DIM = 40, 12, 10


def views(objects: int = OBJECTS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3DIEBench-like per-view latents (Euler xyz in [-pi/2, pi/2], 4 scene latents) and the
    object id of each view."""
    g = torch.Generator().manual_seed(seed)
    euler = (torch.rand(objects * VIEWS, 3, generator=g) - 0.5) * math.pi
    latents = torch.cat((euler, torch.rand(objects * VIEWS, 4, generator=g)), dim=-1)
    return latents, torch.arange(objects).repeat_interleave(VIEWS)


def linear_features(latents: torch.Tensor, noise: float = 0.02, seed: int = 1) -> torch.Tensor:
    """Features that hold the orientation quaternion linearly (a fixed random map + noise)."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(4, DIM, generator=torch.Generator().manual_seed(7))
    q = absolute_rotation_target(latents)
    return q @ mixing + noise * torch.randn(q.shape[0], DIM, generator=g)


def random_features(rows: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed))


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0)


# ----------------------------------------------------------------------------- fit_ridge


def _regression(rows: int = 60, features: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=g, dtype=torch.float64) * torch.arange(
        1, features + 1, dtype=torch.float64
    ) + 3.0
    y = x @ torch.randn(features, 2, generator=g, dtype=torch.float64) + torch.randn(
        rows, 2, generator=g, dtype=torch.float64
    )
    return x, y


def test_no_penalty_is_least_squares_with_intercept():
    x, y = _regression()
    probe = fit_ridge(x, y, penalties=(0.0,))
    design = np.hstack((standardised(x.numpy()), np.ones((x.shape[0], 1))))
    solution, *_ = np.linalg.lstsq(design, y.numpy(), rcond=None)
    np.testing.assert_allclose(probe.weight.numpy(), solution[:-1], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(probe.bias.numpy(), solution[-1], rtol=1e-9, atol=1e-9)
    new = torch.randn(5, x.shape[1], dtype=torch.float64)
    expected = np.hstack((
        (new.numpy() - x.numpy().mean(0)) / x.numpy().std(0), np.ones((5, 1))
    )) @ solution
    np.testing.assert_allclose(probe.predict(new).numpy(), expected, rtol=1e-9, atol=1e-9)


def test_no_penalty_with_more_features_than_rows_is_minimum_norm_least_squares():
    x, y = _regression(rows=8, features=12)
    probe = fit_ridge(x, y, penalties=(0.0,))
    xs = standardised(x.numpy())
    centred = y.numpy() - y.numpy().mean(0)
    solution, *_ = np.linalg.lstsq(xs, centred, rcond=None)  # minimum norm
    np.testing.assert_allclose(probe.weight.numpy(), solution, atol=1e-8)
    assert torch.isfinite(probe.weight).all()


def test_positive_penalty_matches_the_augmented_least_squares_system():
    x, y = _regression()
    penalty = 0.3
    probe = fit_ridge(x, y, penalties=(penalty,))
    n, f = x.shape
    xs = standardised(x.numpy())
    # min ||xs w + b - y||^2 + penalty n ||w||^2, unpenalised intercept b = mean(y).
    design = np.vstack((xs, math.sqrt(penalty * n) * np.eye(f)))
    target = np.vstack((y.numpy() - y.numpy().mean(0), np.zeros((f, 2))))
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    np.testing.assert_allclose(probe.weight.numpy(), solution, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(probe.bias.numpy(), y.numpy().mean(0), rtol=1e-12)
    assert probe.penalty == penalty and probe.penalties == (penalty,)


def test_constant_feature_gets_no_weight():
    x, y = _regression()
    x[:, 2] = 5.0
    probe = fit_ridge(x, y, penalties=(0.0, 1e-3))
    assert probe.weight[2].abs().max() < 1e-10
    assert torch.isfinite(probe.predict(x)).all()


def test_penalty_is_chosen_on_held_out_groups_not_on_rows_of_a_seen_group():
    # 40 groups of 5 identical rows with random features and targets: nothing generalises
    # to a new group (best: the largest penalty, the mean), but a split that separates a
    # group's rows is fooled by memorisation into the smallest penalty.
    g = torch.Generator().manual_seed(0)
    groups = torch.arange(40).repeat_interleave(5)
    x = torch.randn(40, 60, generator=g)[groups]
    y = torch.randn(40, 1, generator=g)[groups]
    penalties = (1e-6, 1e-3, 1.0, 1e3)
    assert fit_ridge(x, y, groups=groups, penalties=penalties).penalty == 1e3
    assert fit_ridge(x, y, penalties=penalties).penalty == 1e-6  # the test has power


def _with_nearly_dead_features(rows: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear signal in 40 features plus 10 ReLU-like ones, each active on two rows only:
    1e-4 on one, 1 on the other (a random ResNet's features have such units)."""
    x, y = _regression(rows=rows, features=40)
    g = torch.Generator().manual_seed(1)
    sparse = torch.zeros(rows, 10, dtype=torch.float64)
    for j in range(10):
        small, large = torch.randperm(rows, generator=g)[:2].tolist()
        sparse[small, j], sparse[large, j] = 1e-4, 1.0
    return torch.cat((x, sparse), dim=1), y


def test_nearly_dead_features_do_not_choose_the_penalty(monkeypatch):
    x, y = _with_nearly_dead_features()
    probe = fit_ridge(x, y)
    assert max(probe.val_r2) > 0.8 and probe.penalty <= 1e-2
    # Standardised to unit variance without the floor, they swing the held-out predictions.
    monkeypatch.setattr(ridge, "SCALE_FLOOR", 0.0)
    unfloored = fit_ridge(x, y)
    assert min(unfloored.val_r2) < -1.0  # the test has power


def test_held_out_r2_tracks_signal():
    x, y = _regression(rows=200)
    probe = fit_ridge(x, y)
    assert len(probe.val_r2) == len(DEFAULT_PENALTIES)
    assert max(probe.val_r2) > 0.8
    assert probe.val_r2[probe.penalties.index(probe.penalty)] == max(probe.val_r2)


def test_fit_ridge_errors():
    raw = inspect.unwrap(fit_ridge)
    x, y = _regression(rows=10)
    with pytest.raises(ValueError, match=r"x must be \(rows, features\), got shape \(10,\)"):
        raw(x[:, 0], y)
    with pytest.raises(ValueError, match="y has 9 rows but the features have 10"):
        raw(x, y[:9])
    with pytest.raises(ValueError, match="groups has 3 entries for 10 rows"):
        raw(x, y, groups=torch.arange(3))
    nan = x.clone()
    nan[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        fit_ridge(nan, y)
    with pytest.raises(ValueError, match="ridge needs at least 4 training rows, got 3"):
        fit_ridge(x[:3], y[:3])
    with pytest.raises(ValueError, match="penalties must be a non-empty list of values >= 0"):
        fit_ridge(x, y, penalties=())
    with pytest.raises(ValueError, match="penalties must be a non-empty list"):
        fit_ridge(x, y, penalties=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.0"):
        fit_ridge(x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="the rows form a single group"):
        fit_ridge(x, y, groups=torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="choosing the penalty needs at least 2 held-out and 2"):
        fit_ridge(x[:4], y[:4], groups=torch.tensor([0, 0, 0, 1]))
    probe = fit_ridge(x, y)
    with pytest.raises(ValueError, match="x has 5 features but the probe was fitted on 6"):
        probe.predict(x[:, :5])


# ----------------------------------------------------------------------------- pairs


def test_bilinear_pair_features_layout_and_unit_variance():
    z = random_features(200) @ torch.randn(DIM, DIM)
    pairs = BilinearPairFeatures(z, k=3)
    p = pairs.project(z)
    torch.testing.assert_close(p.std(0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(p.mean(0), torch.zeros(3, dtype=torch.float64))
    out = pairs(z[:7], z[7:14])
    assert out.shape == (7, pairs.dim) == (7, 2 * 3 + 9)
    p_i, p_j = pairs.project(z[:7]), pairs.project(z[7:14])
    torch.testing.assert_close(out[:, :3], p_i)
    torch.testing.assert_close(out[:, 3:6], p_j)
    torch.testing.assert_close(out[:, 6 + 1 * 3 + 2], p_i[:, 1] * p_j[:, 2])


def test_bilinear_pair_features_ignore_directions_without_variance():
    z = torch.zeros(50, 6)
    z[:, :2] = torch.randn(50, 2)  # rank 2: components 3 and 4 are rounding noise
    pairs = BilinearPairFeatures(z, k=4)
    p = pairs.project(torch.randn(9, 6))
    assert torch.all(p[:, 2:] == 0)


def test_bilinear_pair_features_errors():
    z = random_features(20)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 10\]"):
        BilinearPairFeatures(z, k=11)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 10\]"):
        BilinearPairFeatures(z, k=0)
    nan = z.clone()
    nan[0, 0] = float("inf")
    with pytest.raises(ValueError, match="z contains NaN or Inf"):
        BilinearPairFeatures(nan)
    pairs = BilinearPairFeatures(z, k=2)
    with pytest.raises(ValueError, match="z has 9 features but the PCA was fitted on 10"):
        pairs.project(z[:, :9])
    with pytest.raises(ValueError, match=r"z_i has shape \(3, 10\) but z_j has \(2, 10\)"):
        pairs(z[:3], z[:2])


def test_sample_view_pairs_are_distinct_views_of_one_object():
    objects = torch.tensor([3, 1, 3, 1, 1, 7, 3])  # object 7 has a single view: never drawn
    i, j = sample_view_pairs(objects, 500, seed=4)
    assert i.shape == j.shape == (500,)
    assert torch.all(i != j) and torch.all(objects[i] == objects[j])
    assert 7 not in objects[i].tolist()
    assert {(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True)} == {
        (a, b) for a in range(7) for b in range(7)
        if a != b and objects[a] == objects[b] and objects[a] != 7
    }
    again = sample_view_pairs(objects, 500, seed=4)
    assert torch.equal(again[0], i) and torch.equal(again[1], j)
    with pytest.raises(ValueError, match="num_pairs must be an int >= 1, got 0"):
        sample_view_pairs(objects, 0)
    with pytest.raises(ValueError, match="no object has two rows among 3 rows"):
        sample_view_pairs(torch.tensor([0, 1, 2]), 5)


# ----------------------------------------------------------------------------- rotation


def _split(features):
    latents, objects = views()
    z = features(latents)
    train = objects < 30
    return (z[train], latents[train], objects[train]), (z[~train], latents[~train],
                                                        objects[~train])


def test_rotation_probes_find_an_orientation_held_linearly():
    train, test = _split(linear_features)
    result = rotation_ridge_r2(*train, *test, num_pairs=3000, k=6)
    assert result.individual > 0.95
    # q_i^-1 q_j is bilinear in the orientations: the bilinear features express it.
    assert result.relative > 0.9
    # ... far better than a linear map of [z_i ; z_j] (why BilinearPairFeatures exists).
    (z, latents, objects), (z_test, latents_test, objects_test) = train, test
    q, q_test = absolute_rotation_target(latents), absolute_rotation_target(latents_test)

    def concat(z_, q_, objects_, seed):
        i, j = sample_view_pairs(objects_, 3000, seed=seed)
        target = torch.stack([q_[i], q_[j]], 1)

        return torch.cat((z_[i], z_[j]), 1), relative_rotation(target)[:, 0], objects_[i]

    x_pair, y_pair, g_pair = concat(z, q, objects, 1)
    linear = fit_ridge(x_pair, y_pair, groups=g_pair)
    x_test, y_test, _ = concat(z_test, q_test, objects_test, 2)
    assert r2_score(linear.predict(x_test), y_test) < result.relative - 0.2


def test_rotation_probes_find_nothing_in_random_features():
    train, test = _split(lambda latents: random_features(latents.shape[0]))
    result = rotation_ridge_r2(*train, *test, num_pairs=3000, k=6)
    assert abs(result.individual) < 0.05 and abs(result.relative) < 0.05


def test_rotation_probes_never_fit_on_test_views():
    # Training views: features unrelated to the orientation. Test views: features that hold
    # it linearly. Fitted on training views only, nothing transfers (R^2 ~ 0); a fit that
    # also saw the test views would score far above it (shown below with fit_ridge).
    latents, objects = views()
    train = objects < 20
    noise = 0.2 * random_features(latents.shape[0])
    z = torch.where(train[:, None], noise, linear_features(latents))
    args = (z[train], latents[train], objects[train], z[~train], latents[~train],
            objects[~train])
    result = rotation_ridge_r2(*args, num_pairs=2000, k=6)
    assert result.individual < 0.1 and result.relative < 0.1
    q = absolute_rotation_target(latents)
    leaky = fit_ridge(z, q, groups=objects)
    assert r2_score(leaky.predict(z[~train]), q[~train]) > 0.5


def test_rotation_penalties_are_chosen_without_the_test_views():
    latents, objects = views()
    train = objects < 30
    z_train = random_features(int(train.sum()))
    spied: list[int] = []
    import jepa_blocks.eval.ridge as ridge_module

    original = ridge_module.fit_ridge

    def spy(x, y, **kwargs):
        spied.append(x.shape[0])
        return original(x, y, **kwargs)

    results = []
    for test_features in (linear_features, lambda lat: random_features(lat.shape[0], seed=5)):
        test_z = test_features(latents[~train])
        ridge_module.fit_ridge = spy
        try:
            results.append(rotation_ridge_r2(
                z_train, latents[train], objects[train], test_z, latents[~train],
                objects[~train], num_pairs=1000, k=4,
            ))
        finally:
            ridge_module.fit_ridge = original
    # Only training rows reach a fit: every training view, then the training pairs.
    assert spied == [int(train.sum()), 1000] * 2
    assert results[0].penalty_individual == results[1].penalty_individual
    assert results[0].penalty_relative == results[1].penalty_relative
    q_train = absolute_rotation_target(latents[train])
    alone = fit_ridge(z_train, q_train, groups=objects[train])
    assert results[0].penalty_individual == alone.penalty


def test_rotation_ridge_r2_errors():
    (z, latents, objects), (z_test, latents_test, objects_test) = _split(linear_features)
    raw = inspect.unwrap(rotation_ridge_r2)
    with pytest.raises(ValueError, match=r"latents_train have 2 entries per view, need >= 3"):
        raw(z, latents[:, :2], objects, z_test, latents_test, objects_test)
    with pytest.raises(ValueError, match="objects_test has shape"):
        raw(z, latents, objects, z_test, latents_test, objects_test[:-1])
    with pytest.raises(ValueError, match="z_train has 10 features but z_test has 9"):
        raw(z, latents, objects, z_test[:, :9], latents_test, objects_test)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 10\]"):
        rotation_ridge_r2(z, latents, objects, z_test, latents_test, objects_test, k=11)
    nan = z_test.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="z_test contains NaN or Inf"):
        rotation_ridge_r2(z, latents, objects, nan, latents_test, objects_test)
    with pytest.raises(ValueError, match="the rows form a single group"):
        rotation_ridge_r2(z, latents, torch.zeros_like(objects), z_test, latents_test,
                          objects_test, num_pairs=100, k=4)


def test_bilinear_pair_features_with_groups_follow_the_view_directions():
    # Objects differ along dimension 0 far more than their views, which differ along 1 only:
    # a plain PCA's first component is the object axis, a within-object PCA's the view axis.
    g = torch.Generator().manual_seed(0)
    objects = torch.arange(30).repeat_interleave(5)
    z = torch.zeros(150, 4)
    z[:, 0] = 100.0 * torch.randn(30, generator=g)[objects]
    z[:, 1] = torch.randn(150, generator=g)
    plain = BilinearPairFeatures(z, k=1).components[:, 0]
    within = BilinearPairFeatures(z, k=1, groups=objects).components[:, 0]
    assert plain[0].abs() > 0.99 * plain.norm()
    assert within[1].abs() > 0.99 * within.norm()
    with pytest.raises(ValueError, match=r"groups has shape \(3,\) for 150 rows"):
        BilinearPairFeatures(z, k=1, groups=torch.arange(3))


def test_ridge_and_view_names_are_exported():
    import jepa_blocks.eval as evaluation

    names = {"fit_ridge", "RidgeProbe", "DEFAULT_PENALTIES", "BilinearPairFeatures",
             "sample_view_pairs", "RotationR2", "rotation_ridge_r2", "ViewFeatures",
             "PooledPixels", "extract_view_features"}
    assert names <= set(evaluation.__all__)
    assert all(hasattr(evaluation, name) for name in evaluation.__all__)
