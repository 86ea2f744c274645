"""Tests for jepa_blocks.losses.seq_jepa: 1 - cos against a manual computation, its range, stop-
gradient on the target, safe zero vectors, reductions and errors."""

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError

from jepa_blocks.losses.seq_jepa import SeqJEPALoss, seq_jepa_loss


def _manual(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = prediction / prediction.norm(dim=-1, keepdim=True)
    t = target / target.norm(dim=-1, keepdim=True)
    return 1 - (p * t).sum(-1)


@pytest.mark.parametrize("shape", [(1, 3), (8, 512), (4, 5, 16)])
def test_equals_one_minus_cosine(shape: tuple) -> None:
    prediction, target = torch.randn(*shape), torch.randn(*shape)
    per_sample = _manual(prediction, target)
    torch.testing.assert_close(seq_jepa_loss(prediction, target), per_sample.mean())
    torch.testing.assert_close(seq_jepa_loss(prediction, target, reduction="sum"), per_sample.sum())
    none = seq_jepa_loss(prediction, target, reduction="none")
    assert none.shape == shape[:-1]
    torch.testing.assert_close(none, per_sample)
    torch.testing.assert_close(SeqJEPALoss()(prediction, target), per_sample.mean())
    torch.testing.assert_close(SeqJEPALoss(reduction="none")(prediction, target), per_sample)


def test_equals_half_of_byol_normalised_mse() -> None:
    # BYOL's ||p/|p| - t/|t|||^2 = 2 - 2 cos; seq-JEPA's loss is half of it.
    prediction, target = torch.randn(6, 9), torch.randn(6, 9)
    p = prediction / prediction.norm(dim=-1, keepdim=True)
    t = target / target.norm(dim=-1, keepdim=True)
    byol = (p - t).square().sum(-1)
    torch.testing.assert_close(seq_jepa_loss(prediction, target, reduction="none"), byol / 2)


def test_golden_values() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0]])
    expected = torch.tensor([0.0, 1.0, 2.0, 1 - 24 / 25])
    torch.testing.assert_close(seq_jepa_loss(x, y, reduction="none"), expected)


def test_scale_invariant() -> None:
    prediction, target = torch.randn(5, 7), torch.randn(5, 7)
    base = seq_jepa_loss(prediction, target, reduction="none")
    torch.testing.assert_close(
        seq_jepa_loss(prediction * 3.7, target * 0.01, reduction="none"), base
    )


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 6),
    d=st.integers(1, 32),
    scale=st.floats(1e-2, 1e3),
    seed=st.integers(0, 2**16),
)
def test_range_hypothesis(b: int, d: int, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    # Norms bounded away from zero, so eps never enters (zero vectors are tested below).
    direction = torch.randn(b, d, generator=g, dtype=torch.float64)
    prediction = direction / direction.norm(dim=-1, keepdim=True) * scale
    target = torch.randn(b, d, generator=g, dtype=torch.float64) + 1e-3
    loss = seq_jepa_loss(prediction, target, reduction="none")
    assert ((loss >= -1e-12) & (loss <= 2 + 1e-12)).all()
    torch.testing.assert_close(
        seq_jepa_loss(prediction, prediction, reduction="none"),
        torch.zeros(b, dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )
    torch.testing.assert_close(
        seq_jepa_loss(prediction, -prediction * 2, reduction="none"),
        torch.full((b,), 2.0, dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )


def test_float32_range_up_to_rounding() -> None:
    x = torch.randn(2000, 7)
    same = seq_jepa_loss(x, x, reduction="none")
    opposite = seq_jepa_loss(x, -x, reduction="none")
    assert (same.abs() < 1e-6).all() and ((opposite - 2).abs() < 1e-6).all()


@pytest.mark.parametrize("which", ["prediction", "target", "both"])
def test_zero_vectors_give_no_nan(which: str) -> None:
    prediction, target = torch.randn(3, 5), torch.randn(3, 5)
    if which in ("prediction", "both"):
        prediction[1] = 0
    if which in ("target", "both"):
        target[1] = 0
    prediction.requires_grad_(True)
    loss = seq_jepa_loss(prediction, target, reduction="none")
    assert torch.isfinite(loss).all()
    assert loss[1].item() == pytest.approx(1.0)  # cosine with a zero vector is 0
    loss.sum().backward()
    assert torch.isfinite(prediction.grad).all()


def test_target_gets_no_gradient() -> None:
    prediction = torch.randn(4, 6, requires_grad=True)
    target = torch.randn(4, 6, requires_grad=True)
    loss = seq_jepa_loss(prediction, target)
    loss.backward()
    assert target.grad is None
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    # The gradient is the one of 1 - cos with the target held constant.
    reference = prediction.detach().clone().requires_grad_(True)
    _manual(reference, target.detach()).mean().backward()
    torch.testing.assert_close(prediction.grad, reference.grad)


def test_target_cast_to_prediction_dtype() -> None:
    prediction = torch.randn(3, 4, dtype=torch.float64)
    target = torch.randn(3, 4)
    loss = seq_jepa_loss(prediction, target)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, _manual(prediction, target.double()).mean())


def test_errors() -> None:
    with pytest.raises(ValueError, match="reduction must be one of.*'max'"):
        seq_jepa_loss(torch.randn(2, 3), torch.randn(2, 3), reduction="max")
    with pytest.raises(ValueError, match="reduction must be one of"):
        SeqJEPALoss(reduction="avg")
    with pytest.raises(ValueError, match="eps must be positive"):
        SeqJEPALoss(eps=0.0)
    with pytest.raises(ValueError, match="batch is empty"):
        seq_jepa_loss(torch.randn(0, 3), torch.randn(0, 3))
    with pytest.raises(TypeCheckError):
        seq_jepa_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(TypeCheckError):
        SeqJEPALoss()(torch.randn(2, 3), torch.randn(3, 3))
    raw = inspect.unwrap(seq_jepa_loss)  # the function's own check, behind the type checker
    with pytest.raises(ValueError, match=r"prediction \(2, 3\) and target \(2, 4\) must have"):
        raw(torch.randn(2, 3), torch.randn(2, 4))
