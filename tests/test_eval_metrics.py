"""Tests for jepa_blocks.eval.metrics against numpy oracles (sklearn's and the papers' formulas)."""

import inspect
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError

from jepa_blocks.eval.metrics import knn_top1, r2_score, rankme, top1_accuracy

SETTINGS = settings(max_examples=20, deadline=None)


def raw(fn):
    """The function without the jaxtyping layer, to reach its own ValueError checks."""
    return inspect.unwrap(fn)


# ----------------------------------------------------------------------------- oracles


def r2_oracle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn.metrics.r2_score(multioutput="uniform_average", force_finite=True)."""
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    numerator = ((y_true - y_pred) ** 2).sum(axis=0)
    denominator = ((y_true - np.average(y_true, axis=0)) ** 2).sum(axis=0)
    nonzero_denominator = denominator != 0
    nonzero_numerator = numerator != 0
    valid = nonzero_denominator & nonzero_numerator
    scores = np.ones(y_true.shape[1])
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[nonzero_numerator & ~nonzero_denominator] = 0.0
    return float(np.average(scores))


def rankme_oracle(z: np.ndarray, eps: float = 1e-7) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / np.abs(s).sum() + eps
    p = p[p > 0]  # 0 log 0 = 0
    return float(np.exp(-(p * np.log(p)).sum()))


def knn_oracle(train, train_y, test, test_y, k, t, weighted, num_classes) -> float:
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    correct = 0
    for query, truth in zip(test, test_y, strict=True):
        sim = train @ query
        order = np.argsort(-sim, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for j in order:
            votes[train_y[j]] += np.exp(sim[j] / t) if weighted else 1.0
        correct += int(np.argmax(votes) == truth)
    return correct / len(test)


# ----------------------------------------------------------------------------- r2


@SETTINGS
@given(
    n=st.integers(2, 30),
    p=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    constant=st.lists(st.sampled_from(["no", "perfect", "missed"]), min_size=5, max_size=5),
)
def test_r2_matches_sklearn_formula(n, p, seed, constant):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=(n, p))
    y_pred = y_true + rng.normal(scale=rng.uniform(0.01, 2.0), size=(n, p))
    for dim in range(p):
        if constant[dim] != "no":
            y_true[:, dim] = float(rng.integers(-3, 4))  # integers: the mean is exact
            y_pred[:, dim] = y_true[:, dim] + (0.5 if constant[dim] == "missed" else 0.0)
    got = r2_score(torch.from_numpy(y_pred).float(), torch.from_numpy(y_true).float())
    want = r2_oracle(y_true.astype(np.float32), y_pred.astype(np.float32))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_r2_closed_forms():
    target = torch.randn(50, 3)
    assert r2_score(target.clone(), target) == 1.0
    mean_pred = target.mean(0, keepdim=True).expand_as(target)
    assert r2_score(mean_pred, target) == pytest.approx(0.0, abs=1e-6)
    # One perfect dimension, one mean-predicted one: the uniform average.
    pred = torch.stack((target[:, 0], mean_pred[:, 1]), 1)
    assert r2_score(pred, target[:, :2]) == pytest.approx(0.5, abs=1e-6)
    # 1-D input is a single output.
    assert r2_score(pred[:, 1], target[:, 1]) == pytest.approx(0.0, abs=1e-6)


def test_r2_constant_target_robust_to_rounded_mean():
    # 0.1 repeated: the float mean is not exactly 0.1, so SS_tot is tiny but not 0.
    target = torch.full((3, 1), 0.1, dtype=torch.float64).float()
    assert r2_score(target.clone(), target) == 1.0
    assert r2_score(target + 1e-3, target) == 0.0


def test_r2_errors():
    with pytest.raises(ValueError, match=r"pred has shape \(4, 2\) but target has shape \(4, 3\)"):
        raw(r2_score)(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises((ValueError, TypeCheckError)):
        r2_score(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        r2_score(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="pred contains NaN"):
        r2_score(torch.tensor([[0.0], [float("nan")]]), torch.zeros(2, 1))


# ----------------------------------------------------------------------------- top-1


def test_top1_matches_numpy():
    logits = torch.randn(40, 5)
    labels = torch.randint(0, 5, (40,))
    want = float(np.mean(logits.numpy().argmax(1) == labels.numpy()))
    assert top1_accuracy(logits, labels) == pytest.approx(want)
    assert top1_accuracy(torch.eye(3), torch.arange(3)) == 1.0


def test_top1_errors():
    with pytest.raises(ValueError, match="logits has 3 rows but labels has 2"):
        raw(top1_accuracy)(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels go up to 4 but logits have only 3 classes"):
        top1_accuracy(torch.zeros(2, 3), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="negative labels"):
        top1_accuracy(torch.zeros(2, 3), torch.tensor([0, -1]))


# ----------------------------------------------------------------------------- RankMe


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_rankme_of_rank_k_identity_is_k(rank):
    z = torch.zeros(16, 8)
    z[:rank, :rank] = torch.eye(rank)
    assert rankme(z) == pytest.approx(rank, rel=1e-4)


@SETTINGS
@given(n=st.integers(1, 20), d=st.integers(1, 10), seed=st.integers(0, 10_000))
def test_rankme_matches_numpy(n, d, seed):
    z = np.random.default_rng(seed).normal(size=(n, d))
    assert rankme(torch.from_numpy(z).float()) == pytest.approx(rankme_oracle(z), rel=1e-4)


@pytest.mark.parametrize("eps", [0.0, 1e-3, 0.05, 0.5])
def test_rankme_eps_is_used(eps):
    """A non-default eps changes the value as the formula says (dropping eps from the
    implementation passed every test before this one)."""
    z = np.random.default_rng(3).normal(size=(40, 8)) * np.linspace(0.1, 3.0, 8)
    value = rankme(torch.from_numpy(z), eps=eps)
    assert value == pytest.approx(rankme_oracle(z, eps=eps), rel=1e-9)
    if eps >= 0.05:  # large enough to move RankMe well beyond float noise
        assert abs(value - rankme(torch.from_numpy(z), eps=0.0)) > 0.05


def test_rankme_scale_invariant_bounded_and_zero():
    z = torch.randn(64, 6)
    assert rankme(3.0 * z) == pytest.approx(rankme(z), rel=1e-6)
    assert 1.0 <= rankme(z) <= 6.0 + 1e-3
    assert rankme(torch.zeros(5, 4)) == 0.0
    assert rankme(torch.diag(torch.tensor([2.0, 2.0, 0.0])), eps=0.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="eps must be in"):
        rankme(z, eps=-1.0)


# ----------------------------------------------------------------------------- kNN


def clusters(n_per_class: int, num_classes: int, dim: int, seed: int, spread: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:num_classes] * 5
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    return feats, labels


@pytest.mark.parametrize("weighted", [True, False])
def test_knn_separable_clusters_is_perfect(weighted):
    train, train_y = clusters(10, 4, 6, seed=0)
    test, test_y = clusters(5, 4, 6, seed=1)
    assert knn_top1(train, train_y, test, test_y, k=5, weighted=weighted) == 1.0


@SETTINGS
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12), weighted=st.booleans())
def test_knn_matches_brute_force_oracle(seed, k, weighted):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(12, 5)).astype(np.float32)
    test = rng.normal(size=(9, 5)).astype(np.float32)
    train_y = rng.integers(0, 3, 12)
    test_y = rng.integers(0, 3, 9)
    want = knn_oracle(train, train_y, test, test_y, k, 0.5, weighted, 3)
    got = knn_top1(
        torch.from_numpy(train), torch.from_numpy(train_y), torch.from_numpy(test),
        torch.from_numpy(test_y), k=k, temperature=0.5, weighted=weighted, num_classes=3,
        chunk=4,
    )
    assert got == pytest.approx(want)


def test_knn_chunking_does_not_change_result():
    train, train_y = clusters(10, 3, 4, seed=0, spread=2.0)
    test, test_y = clusters(7, 3, 4, seed=1, spread=2.0)
    results = {knn_top1(train, train_y, test, test_y, k=7, chunk=c) for c in (1, 5, 1024)}
    assert len(results) == 1


def test_knn_errors():
    train, train_y = clusters(3, 2, 4, seed=0)
    with pytest.raises(ValueError, match="train_feats has 6 rows but train_labels has 5"):
        raw(knn_top1)(train, train_y[:5], train, train_y)
    with pytest.raises(ValueError, match=r"k 7 must be in \[1, 6\]"):
        knn_top1(train, train_y, train, train_y, k=7)
    with pytest.raises(ValueError, match="num_classes 1 is smaller than the largest"):
        knn_top1(train, train_y, train, train_y, k=2, num_classes=1)
    with pytest.raises(ValueError, match="temperature must be positive"):
        knn_top1(train, train_y, train, train_y, k=2, temperature=0.0)


def test_math_sanity_of_oracle():
    # The oracle itself: a rank-2 spectrum of equal values gives exp(log 2) = 2.
    assert rankme_oracle(np.diag([1.0, 1.0, 0.0]), eps=0.0) == pytest.approx(2.0)
    assert math.isclose(r2_oracle(np.arange(4.0), np.arange(4.0)), 1.0)
