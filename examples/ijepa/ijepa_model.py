"""I-JEPA assembled from jepa_blocks' public blocks (Assran et al., arXiv 2301.08243).

    masks: context (b, n), targets (b, k, n)      MultiBlockMasks on the h x w patch grid
    c      = f(x | context)       (b, L, d)       MaskedEncoder: the ViT on the kept patches
    p      = g(c, context, targets) (b, k, T, d)  MaskedPredictor: mask tokens + 2D sin-cos
    h      = LN(f_bar(x))         (b, n, d)       the target on every patch, layer-normed
    loss   = smooth_l1(p, h[targets])             masked_prediction_loss, real tokens only

``regularizer="ema"`` (the paper): ``f_bar`` is an :class:`EMATarget` copy of ``f`` (momentum
0.996 -> 1, linear) under stop-gradient. ``regularizer="sigreg"`` (LeJEPA's proposal): no EMA
and no stop-gradient; ``f_bar = f`` run on every patch with gradients, and SIGReg keeps the
online embeddings from collapsing: ``loss = (1 - lam) prediction + lam SIGReg``.

The probes read the mean of the encoder's patch tokens (I-JEPA has no class token).

File names carry an ``ijepa_`` prefix so that they never shadow other examples' modules of
the same role when several examples are imported in one process (the test suite).
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

import jepa_blocks as jb

__all__ = ["IJEPAConfig", "IJEPA", "build_model", "build_masks", "layer_normed"]


@dataclass
class IJEPAConfig:
    """Everything that defines the model, its masks and its objective."""

    vit: str = "vit_tiny_patch16_224"  # a timm ViT name
    image_size: int = 32
    patch_size: int = 4  # 32 / 4: an 8 x 8 grid
    depth: int = 12
    pred_dim: int = 96
    pred_depth: int = 3
    pred_heads: int = 4
    pred_pos: str = "sincos"
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    context_scale: tuple[float, float] = (0.85, 1.0)
    min_keep: int = 10
    regularizer: str = "ema"
    lam: float = 0.05
    sigreg_on: str = "tokens"
    num_slices: int = 256
    sigreg_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_normed(tokens: Tensor) -> Tensor:
    """I-JEPA's target: ``layer_norm`` over the embedding axis, without affine parameters."""
    return F.layer_norm(tokens, (tokens.shape[-1],))


class IJEPA(nn.Module):
    """The online encoder and the predictor; ``forward`` is one step's differentiable part.

    Args:
        encoder: a :class:`jepa_blocks.MaskedEncoder`.
        predictor: a :class:`jepa_blocks.MaskedPredictor` on the encoder's grid and width.
    """

    def __init__(self, encoder: jb.MaskedEncoder, predictor: jb.MaskedPredictor) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    @property
    def dim_features(self) -> int:
        return self.encoder.dim

    def features(self, images: Tensor) -> Tensor:
        """Mean-pooled patch tokens ``(b, dim)`` of images on every patch (what probes read)."""
        return self.encoder(images).mean(dim=1)

    def forward(
        self, images: Tensor, context: Tensor, targets: Tensor, *, all_patches: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Predictions ``(b, k, T, d)`` at the target positions, their padding ``(b, k, T)``,
        and (``all_patches``) the encoder's tokens on every patch ``(b, n, d)`` with
        gradients (the SIGReg variant's target and regularised embeddings), else None.

        Both encoder passes run inside this one call, so DistributedDataParallel sees one
        forward per step.
        """
        tokens, _ = self.encoder(images, context)
        pred, pred_pad = self.predictor(tokens, context, targets)
        full = self.encoder(images) if all_patches else None
        return pred, pred_pad, full


def build_model(config: IJEPAConfig) -> IJEPA:
    """The ViT by name through :class:`jepa_blocks.MaskedEncoder` (timm, never downloads; no
    class token, as I-JEPA) and a fresh predictor; draws its weights from the global RNG."""
    encoder = jb.MaskedEncoder(
        config.vit, image_size=config.image_size, patch_size=config.patch_size,
        # No class token (I-JEPA has none). fc_norm=False keeps timm's final LayerNorm on
        # the tokens: with global_pool="avg" timm moves it after the pooling (fc_norm), which
        # MaskedEncoder never calls, and the tokens would come out un-normed.
        depth=config.depth, class_token=False, global_pool="avg", fc_norm=False,
    )
    predictor = jb.MaskedPredictor(
        encoder.dim, config.pred_dim, encoder.dim, depth=config.pred_depth,
        heads=config.pred_heads, grid=encoder.grid, pos=config.pred_pos,
    )
    return IJEPA(encoder, predictor)


def build_masks(config: IJEPAConfig, grid: tuple[int, int]) -> jb.MultiBlockMasks:
    """The paper's multi-block masks on ``grid`` (target aspect 0.75-1.5, context aspect 1)."""
    return jb.MultiBlockMasks(
        grid, num_targets=config.num_targets, target_scale=config.target_scale,
        context_scale=config.context_scale, min_keep=config.min_keep,
    )
