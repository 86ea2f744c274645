"""Tests for jepa_blocks.predictor: the paper's concat MLP against a manual computation from its
weights, FiLM / AdaLN-zero starting as the unconditioned MLP, gradients and errors."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from _contract import assert_every_parameter_gets_a_gradient
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError
from torch import nn

from jepa_blocks.predictor import PREDICTOR_MODES, ConditionedPredictor


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_default_structure_and_size() -> None:
    predictor = ConditionedPredictor(640, 128, 512)
    assert _params(predictor) == 1_313_280
    assert isinstance(predictor.fc1, nn.Linear) and predictor.fc1.bias is None
    assert (predictor.fc1.in_features, predictor.fc1.out_features) == (768, 1024)
    assert isinstance(predictor.norm, nn.BatchNorm1d) and predictor.norm.affine
    assert isinstance(predictor.act, nn.ReLU)
    assert isinstance(predictor.fc2, nn.Linear) and predictor.fc2.bias is not None
    assert (predictor.fc2.in_features, predictor.fc2.out_features) == (1024, 512)
    assert predictor.modulation is None
    assert isinstance(predictor.drop, nn.Identity)  # the one Mlp's dropout slot, unused
    assert [type(m) for m in predictor.children() if not isinstance(m, nn.Identity)] == [
        nn.Linear,
        nn.BatchNorm1d,
        nn.ReLU,
        nn.Linear,
    ]


def _randomise_norm(predictor: ConditionedPredictor) -> ConditionedPredictor:
    with torch.no_grad():
        if getattr(predictor.norm, "weight", None) is not None:
            predictor.norm.weight.normal_(1.0, 0.3)
            predictor.norm.bias.normal_(0.0, 0.3)
    return predictor


def test_concat_matches_manual_computation() -> None:
    predictor = _randomise_norm(ConditionedPredictor(12, 4, 6, hidden=16))
    x, cond = torch.randn(5, 12), torch.randn(5, 4)
    out = predictor(x, cond)
    hidden = torch.cat((x, cond), dim=-1) @ predictor.fc1.weight.T
    mean, var = hidden.mean(0), hidden.var(0, unbiased=False)
    normed = (hidden - mean) / torch.sqrt(var + 1e-5) * predictor.norm.weight + predictor.norm.bias
    expected = F.relu(normed) @ predictor.fc2.weight.T + predictor.fc2.bias
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # Eval mode: running statistics (one update so far, momentum 0.1).
    predictor.eval()
    running_mean = 0.1 * mean.detach()
    running_var = 0.9 + 0.1 * hidden.var(0, unbiased=True).detach()
    torch.testing.assert_close(predictor.norm.running_mean, running_mean)
    torch.testing.assert_close(predictor.norm.running_var, running_var)
    normed = (hidden - running_mean) / torch.sqrt(running_var + 1e-5)
    normed = normed * predictor.norm.weight + predictor.norm.bias
    expected = F.relu(normed) @ predictor.fc2.weight.T + predictor.fc2.bias
    torch.testing.assert_close(predictor(x, cond), expected, atol=1e-5, rtol=1e-5)


def _unconditioned(predictor: ConditionedPredictor, x: torch.Tensor) -> torch.Tensor:
    return predictor.fc2(predictor.act(predictor.norm(predictor.fc1(x))))


@pytest.mark.parametrize(
    ("mode", "norm"), [("film", "batch"), ("film", "layer"), ("adaln", "batch")]
)
def test_modulated_modes_start_unconditioned_then_learn(mode: str, norm: str) -> None:
    predictor = _randomise_norm(ConditionedPredictor(12, 4, 6, hidden=16, mode=mode, norm=norm))
    assert predictor.fc1.in_features == 12  # the condition enters only through modulation
    assert predictor.modulation is not None
    assert (predictor.modulation.weight == 0).all() and (predictor.modulation.bias == 0).all()
    if mode == "adaln":
        assert isinstance(predictor.norm, nn.LayerNorm)
        assert not predictor.norm.elementwise_affine
    x = torch.randn(6, 12)
    cond_a, cond_b = torch.randn(6, 4), torch.randn(6, 4)
    out_a = predictor(x, cond_a)
    torch.testing.assert_close(out_a, predictor(x, cond_b), atol=0, rtol=0)
    torch.testing.assert_close(out_a, _unconditioned(predictor, x), atol=1e-6, rtol=1e-6)
    # One gradient step makes the condition matter.
    optimizer = torch.optim.SGD(predictor.parameters(), lr=0.5)
    F.mse_loss(out_a, torch.randn(6, 6)).backward()
    assert predictor.modulation.weight.grad.abs().sum() > 0
    optimizer.step()
    predictor.eval()
    assert not torch.allclose(predictor(x, cond_a), predictor(x, cond_b), atol=1e-5)


def test_film_modulation_arithmetic() -> None:
    predictor = ConditionedPredictor(8, 3, 5, hidden=10, mode="film", norm="layer")
    with torch.no_grad():
        predictor.modulation.weight.normal_()
        predictor.modulation.bias.normal_()
    x, cond = torch.randn(4, 8), torch.randn(4, 3)
    scale, shift = predictor.modulation(cond).chunk(2, dim=-1)
    hidden = predictor.norm(predictor.fc1(x)) * (1 + scale) + shift
    expected = predictor.fc2(F.relu(hidden))
    torch.testing.assert_close(predictor(x, cond), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mode", PREDICTOR_MODES)
@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("batch", [2, 7])
def test_shapes_and_every_parameter_gets_a_gradient(mode: str, norm: str, batch: int) -> None:
    predictor = ConditionedPredictor(12, 4, 6, hidden=16, mode=mode, norm=norm)
    x = torch.randn(batch, 12, requires_grad=True)
    cond = torch.randn(batch, 4, requires_grad=True)
    out = predictor(x, cond)
    assert out.shape == (batch, 6)
    (out * torch.randn_like(out)).sum().backward()
    assert_every_parameter_gets_a_gradient(predictor)
    assert x.grad.abs().sum() > 0
    # Zero-initialised modulation passes no gradient to the condition at first; concat does.
    assert (cond.grad.abs().sum() > 0) == (mode == "concat")


@pytest.mark.parametrize("mode", PREDICTOR_MODES)
def test_unconditioned_dim_cond_zero(mode: str) -> None:
    predictor = ConditionedPredictor(12, 0, 6, hidden=16, mode=mode)
    assert predictor.modulation is None
    assert predictor.fc1.in_features == 12
    x = torch.randn(3, 12)
    out = predictor(x)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out, _unconditioned(predictor, x), atol=0, rtol=0)
    # The paper's "no action conditioning" predictor: Linear(512 -> 1024) ... -> 512.
    assert _params(ConditionedPredictor(512, 0, 512)) == 512 * 1024 + 2 * 1024 + 1024 * 512 + 512


def test_custom_activation_and_hidden() -> None:
    predictor = ConditionedPredictor(8, 2, 3, hidden=5, activation=nn.GELU)
    assert isinstance(predictor.act, nn.GELU) and predictor.fc1.out_features == 5


def test_batch_of_one() -> None:
    predictor = ConditionedPredictor(8, 2, 3, hidden=5)
    with pytest.raises(ValueError, match="BatchNorm in training mode needs a batch of at least 2"):
        predictor(torch.randn(1, 8), torch.randn(1, 2))
    assert predictor.norm.num_batches_tracked == 0
    predictor.eval()
    assert predictor(torch.randn(1, 8), torch.randn(1, 2)).shape == (1, 3)
    layer = ConditionedPredictor(8, 2, 3, hidden=5, norm="layer")
    assert layer(torch.randn(1, 8), torch.randn(1, 2)).shape == (1, 3)  # LayerNorm: fine


def test_forward_errors() -> None:
    predictor = ConditionedPredictor(8, 2, 3, hidden=5)
    with pytest.raises(ValueError, match="cond is required.*dim_cond=2"):
        predictor(torch.randn(3, 8))
    unconditioned = ConditionedPredictor(8, 0, 3, hidden=5)
    with pytest.raises(ValueError, match="dim_cond=0; pass cond=None"):
        unconditioned(torch.randn(3, 8), torch.randn(3, 0))
    with pytest.raises(TypeCheckError):
        predictor(torch.randn(3, 8), torch.randn(4, 2))  # batch mismatch, caught by the types
    with pytest.raises(TypeCheckError):
        predictor(torch.randn(3, 8), torch.randn(3, 5))  # wrong condition width
    raw_forward = inspect.unwrap(ConditionedPredictor.forward)
    with pytest.raises(ValueError, match="x has batch 3 but cond has batch 4"):
        raw_forward(predictor, torch.randn(3, 8), torch.randn(4, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "cross_attention"}, "mode must be one of"),
        ({"norm": "group"}, "norm must be 'batch' or 'layer'"),
        ({"hidden": 0}, "hidden must be a positive int"),
        ({"dim_in": 0}, "dim_in must be a positive int"),
        ({"dim_out": -2}, "dim_out must be a positive int"),
        ({"dim_cond": -1}, "dim_cond must be a non-negative int"),
    ],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    config = {"dim_in": 8, "dim_cond": 2, "dim_out": 3, **kwargs}
    dims = (config.pop("dim_in"), config.pop("dim_cond"), config.pop("dim_out"))
    with pytest.raises(ValueError, match=match):
        ConditionedPredictor(*dims, **config)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(2, 5),
    dim_in=st.integers(1, 8),
    dim_cond=st.integers(0, 4),
    dim_out=st.integers(1, 6),
    hidden=st.integers(1, 12),
    mode=st.sampled_from(PREDICTOR_MODES),
)
def test_shapes_hypothesis(b, dim_in, dim_cond, dim_out, hidden, mode) -> None:
    predictor = ConditionedPredictor(dim_in, dim_cond, dim_out, hidden=hidden, mode=mode)
    cond = torch.randn(b, dim_cond) if dim_cond else None
    assert predictor(torch.randn(b, dim_in), cond).shape == (b, dim_out)
