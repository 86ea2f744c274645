"""The LeJEPA objective (Balestriero & LeCun, arXiv 2511.08544, Algorithm 2): views of an
image pulled to their global views' mean, every view regularised by SIGReg."""

from typing import NamedTuple

import torch
from torch import Tensor, nn

from jepa_blocks._typing import Float, typecheck
from jepa_blocks.losses.sigreg import SIGReg

__all__ = ["LeJEPALoss", "LeJEPAOutput"]


class LeJEPAOutput(NamedTuple):
    """The LeJEPA loss and its two terms (the terms are unweighted)."""

    loss: Tensor
    invariance: Tensor
    sigreg: Tensor


class LeJEPALoss(nn.Module):
    """The LeJEPA objective (Balestriero & LeCun, arXiv 2511.08544, Algorithm 2).

    ``loss = (1 - lam) * mean_{v,n,k} (mu_n - z_{v,n})_k^2 + lam * mean_v SIGReg(z_v)`` with
    ``mu_n`` the mean of image ``n``'s global-view embeddings (no stop-gradient) and ``v``
    running over every view, global and local: every view enters both terms. The invariance
    term averages over the embedding axis too (``.square().mean()``, as in the paper's code),
    i.e. it is ``mean_{v,n} ||mu_n - z_{v,n}||^2 / d``.

    Args:
        lam: weight of SIGReg, in [0, 1] (0.05 in the paper).
        sigreg: the :class:`SIGReg` to use; default ``SIGReg()`` (1024 slices, 17 knots).
            Call :meth:`advance` once per optimiser step.

    Raises:
        ValueError: ``lam`` outside [0, 1].
    """

    def __init__(self, lam: float = 0.05, *, sigreg: SIGReg | None = None) -> None:
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {lam}; the paper uses 0.05.")
        self.lam = lam
        self.sigreg = SIGReg() if sigreg is None else sigreg

    def advance(self) -> None:
        """Advance SIGReg's direction stream; call once per optimiser step."""
        self.sigreg.advance()

    @typecheck
    def forward(
        self,
        global_views: Float[Tensor, "vg n d"],
        local_views: Float[Tensor, "vl n d"] | None = None,
    ) -> LeJEPAOutput:
        """Args:
            global_views: embeddings (after the projector) of the ``vg`` global views.
            local_views: embeddings of the ``vl`` local views of the same images, or None.

        Returns:
            ``LeJEPAOutput(loss, invariance, sigreg)``.

        Raises:
            ValueError: no global view, or local views of another batch size or width.
        """
        if global_views.ndim != 3 or global_views.shape[0] < 1:
            raise ValueError(
                f"global_views must have shape (vg >= 1, n, d), got {tuple(global_views.shape)}."
            )
        views = global_views
        if local_views is not None:
            if local_views.ndim != 3 or local_views.shape[1:] != global_views.shape[1:]:
                raise ValueError(
                    f"local_views {tuple(local_views.shape)} must have shape (vl, n, d) with "
                    f"(n, d) = {tuple(global_views.shape[1:])} as global_views."
                )
            views = torch.cat([global_views, local_views.to(global_views.dtype)])
        centers = global_views.mean(0)  # (n, d), no stop-gradient (paper Algorithm 2)
        invariance = (centers - views).square().mean()
        regulariser = self.sigreg(views)
        loss = (1 - self.lam) * invariance + self.lam * regulariser
        return LeJEPAOutput(loss, invariance, regulariser)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"
