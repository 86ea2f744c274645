"""Tests for jepa_blocks.losses.vicreg: the variance and covariance terms and VICRegLoss against
float64 references written from the formulas (jepa-family.md §2, lightly's defaults), their
behaviour on spread and collapsed embeddings, gradcheck, bf16 autocast and errors."""

import inspect

import pytest
import torch
from jaxtyping import TypeCheckError

import jepa_blocks as jb
from jepa_blocks.losses.vicreg import VICRegLoss, covariance, variance

CLEAR = (ValueError, TypeCheckError)


def _variance_reference(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    z = z.double()
    n, d = z.shape
    total = torch.zeros((), dtype=torch.float64)
    for j in range(d):
        column = z[:, j]
        var = ((column - column.mean()) ** 2).sum() / (n - 1)
        total = total + torch.clamp(gamma - torch.sqrt(var + eps), min=0)
    return total / d


def _covariance_reference(z: torch.Tensor) -> torch.Tensor:
    z = z.double()
    n, d = z.shape
    centred = z - z.mean(0)
    total = torch.zeros((), dtype=torch.float64)
    for i in range(d):
        for j in range(d):
            if i != j:
                c_ij = (centred[:, i] * centred[:, j]).sum() / (n - 1)
                total = total + c_ij**2
    return total / d


@pytest.mark.parametrize(("n", "d"), [(2, 1), (7, 5), (64, 16)])
def test_terms_match_float64_reference(n: int, d: int) -> None:
    z = torch.randn(n, d, dtype=torch.float64) * torch.linspace(0.1, 2.0, d, dtype=torch.float64)
    torch.testing.assert_close(variance(z), _variance_reference(z), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        variance(z, gamma=0.5, eps=1e-2), _variance_reference(z, 0.5, 1e-2), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(covariance(z), _covariance_reference(z), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        variance(z.float()).double(), _variance_reference(z), rtol=1e-5, atol=1e-6
    )


def test_vicreg_loss_matches_formula_with_lightly_defaults() -> None:
    z_a = torch.randn(32, 8, dtype=torch.float64)
    z_b = z_a + 0.3 * torch.randn(32, 8, dtype=torch.float64)
    mse = ((z_a - z_b) ** 2).mean()
    expected = (
        25 * mse
        + 25 * (_variance_reference(z_a) + _variance_reference(z_b)) / 2
        + 1 * (_covariance_reference(z_a) + _covariance_reference(z_b))
    )
    loss_fn = jb.VICRegLoss()
    assert (loss_fn.lambda_param, loss_fn.mu_param, loss_fn.nu_param) == (25.0, 25.0, 1.0)
    torch.testing.assert_close(loss_fn(z_a, z_b), expected, rtol=1e-10, atol=0)
    custom = VICRegLoss(1.0, 2.0, 3.0, gamma=0.7, eps=1e-3)(z_a, z_b)
    expected_custom = (
        mse
        + 2 * (_variance_reference(z_a, 0.7, 1e-3) + _variance_reference(z_b, 0.7, 1e-3)) / 2
        + 3 * (_covariance_reference(z_a) + _covariance_reference(z_b))
    )
    torch.testing.assert_close(custom, expected_custom, rtol=1e-10, atol=0)


def test_spread_versus_collapsed() -> None:
    spread = torch.randn(4096, 8) * 1.5
    assert variance(spread) == 0  # every std above gamma
    assert covariance(spread) < 0.05
    collapsed = torch.full((64, 8), 2.0)
    assert variance(collapsed).item() == pytest.approx(1 - 1e-2, abs=1e-6)  # 1 - sqrt(eps)
    rank_one = torch.randn(256, 1) * torch.ones(1, 8)
    assert covariance(rank_one) > 5  # every pair fully correlated: (d - 1) * var^2 ~ 7


def test_gradcheck_float64() -> None:
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True) * 0.5
    z = z.detach().requires_grad_()
    assert torch.autograd.gradcheck(variance, (z,))
    assert torch.autograd.gradcheck(covariance, (z,))
    other = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(VICRegLoss(), (z, other))


def test_bf16_autocast_runs() -> None:
    model = torch.nn.Linear(8, 16)
    x_a, x_b = torch.randn(32, 8), torch.randn(32, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = VICRegLoss()(model(x_a), model(x_b))
    loss.float().backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    reference = VICRegLoss()(model(x_a), model(x_b))
    assert abs(loss.float().item() - reference.item()) < 0.05 * reference.item()


def test_errors() -> None:
    raw_variance, raw_covariance = inspect.unwrap(variance), inspect.unwrap(covariance)
    with pytest.raises(ValueError, match="at least 2 samples for a variance, got n=1"):
        variance(torch.randn(1, 4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        covariance(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"z must have shape \(n, d\), got \(4,\)"):
        raw_variance(torch.randn(4))
    with pytest.raises(ValueError, match=r"must have shape \(n, d\)"):
        raw_covariance(torch.randn(2, 3, 4))
    with pytest.raises(CLEAR):
        variance(torch.randn(4))
    with pytest.raises(CLEAR):
        VICRegLoss()(torch.randn(4, 3), torch.randn(4, 5))
    raw_forward = inspect.unwrap(VICRegLoss.forward)
    with pytest.raises(ValueError, match=r"z_a \(4, 3\) and z_b \(4, 5\) must have the same"):
        raw_forward(VICRegLoss(), torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="mu_param must be >= 0, got -1"):
        VICRegLoss(mu_param=-1)
    with pytest.raises(ValueError, match="gamma must be positive"):
        VICRegLoss(gamma=0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        VICRegLoss(eps=-1e-3)
