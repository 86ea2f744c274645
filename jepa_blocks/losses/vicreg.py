"""VICReg's variance and covariance terms and the VICReg loss (Bardes, Ponce & LeCun, VICReg,
ICLR 2022, arXiv 2105.04906), with lightly's defaults (``lightly/loss/vicreg_loss.py``).

For embeddings ``z (n, d)``::

    variance(z)   = mean_j relu(gamma - sqrt(Var_j(z) + eps))     (unbiased Var over n)
    covariance(z) = sum_{i != j} C_ij^2 / d,   C = z_c^T z_c / (n - 1),  z_c = z - mean_n z
    VICReg(a, b)  = 25 * MSE(a, b) + 25 * (variance(a) + variance(b)) / 2
                    + 1 * (covariance(a) + covariance(b))

The variance and covariance terms alone (VCReg) are an anti-collapse regulariser for JEPAs.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_blocks._typing import Float, typecheck

__all__ = ["VICRegLoss", "covariance", "variance"]


def _check_batch(name: str, z: Tensor) -> None:
    if z.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(z.shape)}.")
    if z.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 samples for a variance, got n={z.shape[0]}; use a larger "
            "batch."
        )


@typecheck
def variance(z: Float[Tensor, "n d"], gamma: float = 1.0, eps: float = 1e-4) -> Float[Tensor, ""]:
    """VICReg's variance term: ``mean_j relu(gamma - sqrt(Var_j(z) + eps))``.

    Args:
        z: embeddings, ``n`` samples of width ``d``.
        gamma: the target standard deviation of each dimension.
        eps: keeps the square root's gradient finite when a dimension collapses.

    Raises:
        ValueError: not 2-D, or fewer than 2 samples.
    """
    _check_batch("z", z)
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


@typecheck
def covariance(z: Float[Tensor, "n d"]) -> Float[Tensor, ""]:
    """VICReg's covariance term: the squared off-diagonal covariances summed, divided by ``d``.

    Args:
        z: embeddings, ``n`` samples of width ``d``.

    Raises:
        ValueError: not 2-D, or fewer than 2 samples.
    """
    _check_batch("z", z)
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)  # (d, d)
    off_diagonal = cov.square().sum() - cov.diagonal().square().sum()
    return off_diagonal / d


class VICRegLoss(nn.Module):
    """VICReg: invariance (MSE) + variance + covariance between two views' embeddings.

    Args:
        lambda_param: weight of the invariance term (25).
        mu_param: weight of the variance term, averaged over the two views (25).
        nu_param: weight of the covariance term, summed over the two views (1).
        gamma: target standard deviation (1).
        eps: variance epsilon (1e-4).

    Raises:
        ValueError: negative weights, ``gamma <= 0`` or ``eps < 0``.
    """

    def __init__(
        self,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        *,
        gamma: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        for name, value in (
            ("lambda_param", lambda_param),
            ("mu_param", mu_param),
            ("nu_param", nu_param),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}.")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}.")
        self.lambda_param, self.mu_param, self.nu_param = lambda_param, mu_param, nu_param
        self.gamma, self.eps = gamma, eps

    @typecheck
    def forward(self, z_a: Float[Tensor, "n d"], z_b: Float[Tensor, "n d"]) -> Float[Tensor, ""]:
        """Args:
            z_a: embeddings of the first views.
            z_b: embeddings of the second views of the same samples.

        Raises:
            ValueError: shapes that differ, or fewer than 2 samples.
        """
        if z_a.shape != z_b.shape:
            raise ValueError(
                f"z_a {tuple(z_a.shape)} and z_b {tuple(z_b.shape)} must have the same shape."
            )
        invariance = F.mse_loss(z_a, z_b)
        var = (variance(z_a, self.gamma, self.eps) + variance(z_b, self.gamma, self.eps)) / 2
        cov = covariance(z_a) + covariance(z_b)
        return self.lambda_param * invariance + self.mu_param * var + self.nu_param * cov

    def extra_repr(self) -> str:
        return (
            f"lambda_param={self.lambda_param}, mu_param={self.mu_param}, nu_param={self.nu_param}"
        )
