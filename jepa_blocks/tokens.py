"""Tokens for the sequence aggregator: each view embedding beside its action embedding."""

import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Bool, Float, typecheck

__all__ = ["ViewActionConcat", "last_token_mask"]


@typecheck
def last_token_mask(
    padding_mask: Bool[Tensor, "b m"] | None, batch: int, length: int, device: torch.device
) -> Bool[Tensor, "b m"]:
    """``True`` at each sequence's last real token (index ``m - 1`` without padding)."""
    positions = torch.arange(length, device=device)
    if padding_mask is None:
        return (positions == length - 1).expand(batch, length)
    lengths = (~padding_mask).sum(dim=1, keepdim=True)
    return positions.unsqueeze(0) == lengths - 1


class ViewActionConcat(nn.Module):
    """``u_i = [z_i ; e(a_i)]``, with the last token's action embedding set to zero.

    In seq-JEPA the action a_i takes view i to view i + 1, so the last observation's action
    (a_M, the one leading to the target) is *not* shown to the aggregator; it goes to the
    predictor instead. The paper says "except for z_M, each z_i is concatenated with its
    action embedding"; the official code realises that with a zero embedding (spec §1.5).

    Args:
        dim_view: view-embedding width ``dv``.
        dim_action: action-embedding width ``de``.
        zero_last: zero the last (real) token's action embedding, as in the paper.

    Raises:
        ValueError: non-positive widths.
    """

    def __init__(self, dim_view: int, dim_action: int, *, zero_last: bool = True) -> None:
        super().__init__()
        require_positive_ints(dim_view=dim_view, dim_action=dim_action)
        self.dim_view = dim_view
        self.dim_action = dim_action
        self.zero_last = zero_last

    @property
    def dim_out(self) -> int:
        return self.dim_view + self.dim_action

    @typecheck
    def forward(
        self,
        views: Float[Tensor, "b m {self.dim_view}"],
        actions: Float[Tensor, "b m {self.dim_action}"],
        padding_mask: Bool[Tensor, "b m"] | None = None,
    ) -> Float[Tensor, "b m {self.dim_out}"]:
        """Concatenate per-token view and action embeddings.

        Args:
            views: encoder outputs ``z_1..z_m``.
            actions: action embeddings ``e(a_1)..e(a_m)``.
            padding_mask: ``True`` at padded tokens; the last *real* token is the one zeroed,
                and padded tokens' action embeddings are zeroed too.

        Raises:
            ValueError: shapes that disagree, or ``m = 0``.
        """
        if views.dim() != 3 or actions.dim() != 3 or views.shape[:2] != actions.shape[:2]:
            raise ValueError(
                "views (b, m, dv) and actions (b, m, de) must agree on batch and views, got "
                f"{tuple(views.shape)} and {tuple(actions.shape)}; pass one action per view."
            )
        batch, length = views.shape[:2]
        if length == 0:
            raise ValueError("sequences are empty (m = 0); pass at least one view per sequence.")
        if padding_mask is not None and padding_mask.shape != (batch, length):
            raise ValueError(
                f"padding_mask must have shape ({batch}, {length}), "
                f"got {tuple(padding_mask.shape)}."
            )
        keep = torch.ones(batch, length, dtype=torch.bool, device=views.device)
        if self.zero_last:
            keep = keep & ~last_token_mask(padding_mask, batch, length, views.device)
        if padding_mask is not None:
            keep = keep & ~padding_mask
        actions = actions * keep.unsqueeze(-1).to(actions.dtype)
        return torch.cat((views, actions.to(views.dtype)), dim=-1)

    def extra_repr(self) -> str:
        return f"dim_view={self.dim_view}, dim_action={self.dim_action}, zero_last={self.zero_last}"
