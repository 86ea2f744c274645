"""Tests for jepa_blocks.eval.heads, .linear and .regression: heads on frozen features reach
the analytic optimum."""

import inspect

import pytest
import torch
from torch import nn

from jepa_blocks.eval import (
    ProbeResult,
    RegressionResult,
    fit_linear_probe,
    fit_regressor,
    make_mlp_head,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAST = {"batch_size": 64, "lr": 1e-2, "progress": False}


def separable(n: int, seed: int, num_classes: int = 4, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    feats = 3.0 * torch.eye(dim)[labels] + 0.3 * torch.randn(n, dim, generator=g)
    return feats, labels


@pytest.mark.parametrize("device", DEVICES)
def test_linear_probe_separable_is_perfect(device):
    train_x, train_y = separable(256, seed=0)
    test_x, test_y = separable(128, seed=1)
    result = fit_linear_probe(
        train_x, train_y, test_x, test_y, num_classes=4, epochs=20, device=device, **FAST
    )
    assert isinstance(result, ProbeResult)
    assert result.top1 >= 0.99
    assert len(result.history) == 20 and result.history[-1] < result.history[0]
    assert isinstance(result.head, nn.Linear) and not result.head.training
    assert result.head.weight.device.type == device


def test_linear_probe_random_labels_is_chance():
    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.randn(256, 16, generator=g), torch.randn(800, 16, generator=g)
    train_y = torch.randint(0, 4, (256,), generator=g)
    test_y = torch.randint(0, 4, (800,), generator=g)
    result = fit_linear_probe(train_x, train_y, test_x, test_y, num_classes=4, epochs=20, **FAST)
    assert 0.15 <= result.top1 <= 0.35  # chance is 0.25; 800 test rows: std ~0.015


def test_linear_probe_never_trains_on_test_rows():
    # Training labels are random; test labels are the argmax of the test features' first 4
    # dimensions, which nothing in the training rows teaches. A probe fitted on the training
    # rows is at chance; one that also saw the test rows (the control below) is far above it.
    g = torch.Generator().manual_seed(3)
    train_x, test_x = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    train_y = torch.randint(0, 4, (400,), generator=g)
    test_y = test_x[:, :4].argmax(dim=1)
    honest = fit_linear_probe(train_x, train_y, test_x, test_y, num_classes=4, epochs=20, **FAST)
    assert honest.top1 <= 0.35  # chance 0.25, 400 test rows: std ~0.02
    leaky = fit_linear_probe(
        torch.cat((train_x, test_x)), torch.cat((train_y, test_y)), test_x, test_y,
        num_classes=4, epochs=20, **FAST,
    )
    assert leaky.top1 >= 0.6


def test_regressor_never_trains_on_test_rows():
    # Random training targets; test targets a linear function of the test features.
    g = torch.Generator().manual_seed(4)
    train_x, test_x = torch.randn(300, 6, generator=g), torch.randn(300, 6, generator=g)
    train_y = torch.randn(300, 2, generator=g)
    test_y = test_x @ torch.randn(6, 2, generator=g)
    for hidden in ((), (32,)):
        honest = fit_regressor(train_x, train_y, test_x, test_y, hidden=hidden, epochs=20, **FAST)
        assert honest.r2 < 0.1
        leaky = fit_regressor(
            torch.cat((train_x, test_x)), torch.cat((train_y, test_y)), test_x, test_y,
            hidden=hidden, epochs=20, **FAST,
        )
        assert leaky.r2 > 0.3


def test_probe_is_deterministic_and_leaves_global_rng_alone():
    train_x, train_y = separable(100, seed=0)
    state = torch.get_rng_state()
    runs = [
        fit_linear_probe(train_x, train_y, train_x, train_y, num_classes=4, epochs=3, seed=s,
                         **FAST)
        for s in (7, 7, 8)
    ]
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0].history == runs[1].history
    assert torch.equal(runs[0].head.weight, runs[1].head.weight)
    assert runs[0].history != runs[2].history


def test_seeded_init_follows_pytorch_default_bounds():
    result = fit_linear_probe(*separable(10, 0), *separable(10, 1), num_classes=4, epochs=1,
                              lr=1e-12, progress=False)
    # kaiming_uniform(a=sqrt(5)) and the bias both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1 / 8**0.5
    assert result.head.weight.abs().max() <= bound and result.head.bias.abs().max() <= bound
    assert result.head.weight.std() > bound / 4


@pytest.mark.parametrize("device", DEVICES)
def test_linear_regressor_fits_linear_target(device):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 3, generator=g)
    train_x, test_x = torch.randn(256, 6, generator=g), torch.randn(128, 6, generator=g)
    result = fit_regressor(
        train_x, train_x @ weight, test_x, test_x @ weight, hidden=(), epochs=60,
        device=device, **FAST,
    )
    assert isinstance(result, RegressionResult)
    assert result.r2 > 0.99
    assert isinstance(result.head, nn.Sequential) and len(result.head) == 1


def test_mlp_regressor_fits_linear_target_and_not_noise():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 2, generator=g)
    train_x, test_x = torch.randn(256, 6, generator=g), torch.randn(256, 6, generator=g)
    fit = fit_regressor(train_x, train_x @ weight, test_x, test_x @ weight, hidden=(32, 32),
                        epochs=40, **FAST)
    assert fit.r2 > 0.95
    noise = fit_regressor(
        train_x, torch.randn(256, 2, generator=g), test_x, torch.randn(256, 2, generator=g),
        hidden=(), epochs=10, **FAST,
    )
    assert -0.15 < noise.r2 < 0.05


def test_regressor_accepts_1d_targets():
    x = torch.randn(64, 3)
    result = fit_regressor(
        x, x[:, 0] * 2, x, x[:, 0] * 2, hidden=(), epochs=60, **{**FAST, "batch_size": 8}
    )
    assert result.head[0].out_features == 1
    assert result.r2 > 0.99


def test_make_mlp_head_is_the_official_regressor():
    head = make_mlp_head(1024, 4)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)] == [
        (1024, 1024), (1024, 1024), (1024, 4)
    ]
    with pytest.raises(ValueError, match="must be positive ints"):
        make_mlp_head(8, 2, (0,))


def test_probe_errors():
    raw_probe = inspect.unwrap(fit_linear_probe)
    x, y = separable(20, 0)
    with pytest.raises(ValueError, match="train_x has 20 rows but train_y has 19"):
        raw_probe(x, y[:19], x, y, num_classes=4)
    with pytest.raises(ValueError, match="test_x has 20 rows but test_y has 18"):
        raw_probe(x, y, x, y[:18], num_classes=4)
    with pytest.raises(ValueError, match=r"num_classes 3 is smaller than max label 3 \+ 1"):
        fit_linear_probe(x, y, x, y, num_classes=3, progress=False)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        fit_linear_probe(x, y - 1, x, y, num_classes=4, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit_linear_probe(x, y, x, y, num_classes=4, epochs=0)
    with pytest.raises(ValueError, match="train_x contains NaN"):
        fit_linear_probe(x * float("nan"), y, x, y, num_classes=4)
    with pytest.raises(ValueError, match="train_x has width 8 but test_x has 7"):
        inspect.unwrap(fit_linear_probe)(x, y, x[:, :7], y, num_classes=4)


def test_regressor_errors():
    raw_fit = inspect.unwrap(fit_regressor)
    x, y = torch.randn(10, 3), torch.randn(10, 2)
    with pytest.raises(ValueError, match="train_x has 10 rows but train_y has 9"):
        raw_fit(x, y[:9], x, y)
    with pytest.raises(ValueError, match=r"train_y has target shape \(2,\) but test_y has \(1,\)"):
        raw_fit(x, y, x, y[:, :1])
    with pytest.raises(ValueError, match="R\\^2 needs at least 2 test rows"):
        fit_regressor(x, y, x[:1], y[:1])
    with pytest.raises(ValueError, match="lr must be positive"):
        fit_regressor(x, y, x, y, lr=0.0)
