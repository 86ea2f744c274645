"""Masked prediction as in I-JEPA / V-JEPA: a context encoder that runs a timm ViT on the kept
patches only, and a predictor that fills the target positions from the context.

    masks = MultiBlockMasks((8, 8))(b)                          # context (b, n), targets (b, k, n)
    encoder = MaskedEncoder("vit_tiny_patch16_224", image_size=32, patch_size=4)
    target = EMATarget(encoder, ...)                            # the same model on all patches
    context, pad = encoder(images, masks.context)               # (b, L, d): cost ~ kept tokens
    predictor = MaskedPredictor(encoder.dim, 96, encoder.dim, depth=2, heads=4, grid=(8, 8))
    pred, pred_pad = predictor(context, masks.context, masks.targets)   # (b, k, T, d)
    with torch.no_grad():
        h = layer_norm(target(images), ...)                     # (b, n, d)
    loss = masked_prediction_loss(pred, gather_targets(h, masks.targets), pred_pad)

Padding is honest: kept counts vary per sample, tokens are padded per batch with a padding
mask that every attention honours, so a sample's outputs do not depend on the other samples.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Bool, Float, typecheck
from jepa_blocks.layers import Attention, TransformerBlock
from jepa_blocks.masks import gather_tokens
from jepa_blocks.positions import RotaryEmbedding, grid_coordinates, sincos_embed_2d

__all__ = ["MaskedEncoder", "MaskedPredictor", "gather_targets"]

POSITION_KINDS = ("sincos", "rope")


def _positions_of(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Grid indices of the kept tokens ``(b, L)`` in ``gather_tokens`` order, and padding."""
    b, n = mask.shape
    index = torch.arange(n, device=mask.device).expand(b, n)
    return gather_tokens(index, mask)


def _repeat_per_target(mask: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, int]:
    """``targets (b, n)`` or ``(b, k, n)`` -> ``(b k, n)`` and the context mask repeated."""
    if targets.ndim == 2:
        return mask, targets, 1
    k = targets.shape[1]
    return mask.repeat_interleave(k, dim=0), targets.flatten(0, 1), k


class MaskedPredictor(nn.Module):
    """Predict the embeddings at target positions from the context tokens (I-JEPA).

    The context tokens (projected to ``dim``) and one learned mask token per target position,
    each with its position (a fixed 2D sin-cos embedding added, or rotary attention), go
    through pre-norm transformer blocks; the outputs at the target positions are projected to
    ``dim_out``. With several target blocks per sample (``targets (b, k, n)``) the context is
    repeated for each block, as I-JEPA does.

    Args:
        dim_in: width of the context tokens (the encoder's).
        dim: the predictor's width (narrow: 384 for ViT-H in I-JEPA).
        dim_out: width of the predictions (the target encoder's).
        depth, heads: transformer layers and heads.
        grid: the patch grid ``(h, w)``.
        pos: ``"sincos"`` (I-JEPA) or ``"rope"`` (2D rotary in every attention).
        mlp_ratio: FFN width over ``dim``.
        attn_core: the attention core, or None for the library default.

    Raises:
        ValueError: non-positive sizes, ``dim`` not divisible by ``heads`` (or, for sin-cos,
            not a multiple of 4), an unknown ``pos``.
    """

    def __init__(
        self,
        dim_in: int,
        dim: int,
        dim_out: int,
        *,
        depth: int,
        heads: int,
        grid: tuple[int, int],
        pos: str = "sincos",
        mlp_ratio: float = 4.0,
        attn_core: str | None = None,
    ) -> None:
        super().__init__()
        require_positive_ints(dim_in=dim_in, dim=dim, dim_out=dim_out, depth=depth, heads=heads)
        if pos not in POSITION_KINDS:
            raise ValueError(f"pos must be one of {POSITION_KINDS}, got {pos!r}.")
        if dim % heads:
            raise ValueError(
                f"dim {dim} is not divisible by heads {heads}; pick heads dividing dim."
            )
        self.dim_in, self.dim, self.dim_out, self.grid, self.pos = dim_in, dim, dim_out, grid, pos
        self.embed = nn.Linear(dim_in, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        attn_layer: Callable[..., nn.Module] = partial(Attention, core=attn_core)
        if pos == "sincos":
            # A fixed table: a buffer, not saved (it is a function of grid and dim).
            self.register_buffer("pos_table", sincos_embed_2d(dim, grid), persistent=False)
            self.register_buffer("coords", None, persistent=False)
        else:
            self.register_buffer("pos_table", None, persistent=False)
            self.register_buffer("coords", grid_coordinates(grid).float(), persistent=False)
            attn_layer = partial(attn_layer, rope=RotaryEmbedding(dim // heads, axes=2))
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim, heads, mlp_ratio=mlp_ratio, dropout=0.0, norm_first=True,
                act_layer=nn.GELU, attn_layer=attn_layer,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim_out)

    @typecheck
    def forward(
        self,
        context: Float[Tensor, "b L {self.dim_in}"],
        context_mask: Bool[Tensor, "b n"],
        targets: Bool[Tensor, "b n"] | Bool[Tensor, "b k n"],
    ) -> tuple[Float[Tensor, "b *k T {self.dim_out}"], Bool[Tensor, "b *k T"]]:
        """Predictions at the target positions.

        Args:
            context: the context tokens as :class:`MaskedEncoder` (or ``gather_tokens``) lays
                them out: the kept patches in grid order, padding last.
            context_mask: ``(b, n)``, the patches the context tokens are.
            targets: ``(b, n)`` or ``(b, k, n)`` target masks.

        Returns:
            ``predictions (b, [k,] T, dim_out)`` at the target positions in grid order, padded
            to the largest target, and their padding mask ``(b, [k,] T)``.

        Raises:
            ValueError: a grid of another size than the predictor's, or context tokens that do
                not match ``context_mask``'s kept count.
        """
        n = self.grid[0] * self.grid[1]
        if context_mask.shape[1] != n or targets.shape[-1] != n:
            raise ValueError(
                f"masks cover {context_mask.shape[1]} and {targets.shape[-1]} patches but the "
                f"predictor's grid {self.grid} has {n}; build it with the encoder's grid."
            )
        b = context.shape[0]
        mask, flat_targets, k = _repeat_per_target(context_mask, targets)
        context_index, context_pad = _positions_of(mask)
        if context_index.shape[1] != context.shape[1]:
            raise ValueError(
                f"context has {context.shape[1]} tokens but context_mask keeps at most "
                f"{context_index.shape[1]}; pass the encoder's outputs for this mask."
            )
        target_index, target_pad = _positions_of(flat_targets)
        x = self.embed(context.repeat_interleave(k, dim=0) if k > 1 else context)
        queries = self.mask_token.expand(x.shape[0], target_index.shape[1], -1)
        index = torch.cat((context_index, target_index), dim=1)
        padding = torch.cat((context_pad, target_pad), dim=1)
        x = torch.cat((x, queries.to(x.dtype)), dim=1)
        positions = None
        if self.pos_table is not None:
            x = x + self.pos_table[index].to(x.dtype)
        else:
            positions = self.coords[index]
        for block in self.blocks:
            x = block(x, padding, positions)
        out = self.proj(self.norm(x[:, context_index.shape[1]:]))
        if targets.ndim == 3:
            return out.unflatten(0, (b, k)), target_pad.unflatten(0, (b, k))
        return out, target_pad

    def extra_repr(self) -> str:
        return (
            f"dim_in={self.dim_in}, dim={self.dim}, dim_out={self.dim_out}, grid={self.grid}, "
            f"pos={self.pos!r}"
        )


class MaskedEncoder(nn.Module):
    """A timm Vision Transformer that encodes the kept patches only (cost proportional to the
    kept tokens), or every patch (the EMA target) when no mask is given.

    Patch embedding and position embedding run on the whole grid, then the kept patch tokens
    are gathered (padded per batch) and the blocks attend over them with the padding masked
    out; prefix tokens (a class token, registers) are always kept.

    Args:
        vit: a timm ``VisionTransformer`` or its name (built with ``num_classes=0``).
        image_size, **timm_kwargs: passed to ``timm.create_model`` with a name
            (``patch_size=4`` for 32-px images, ...).

    Raises:
        ValueError: a model without ``patch_embed``, ``blocks`` and ``_pos_embed`` (not a timm
            ViT), one that drops patches at random itself (``patch_drop_rate > 0``), or one
            whose final norm is applied after pooling (``fc_norm``).
    """

    def __init__(self, vit: nn.Module | str, *, image_size: int | None = None, **timm_kwargs):
        super().__init__()
        if isinstance(vit, str):
            import timm

            kwargs = dict(timm_kwargs, num_classes=0)
            if image_size is not None:
                kwargs["img_size"] = image_size
            vit = timm.create_model(vit, **kwargs)
        if not all(hasattr(vit, name) for name in ("patch_embed", "blocks", "_pos_embed")):
            raise ValueError(
                f"{type(vit).__name__} is not a timm VisionTransformer (no patch_embed, blocks "
                "and _pos_embed); pass e.g. 'vit_tiny_patch16_224' with image_size and "
                "patch_size."
            )
        if not isinstance(getattr(vit, "fc_norm", nn.Identity()), nn.Identity):
            raise ValueError(
                "the ViT's final LayerNorm is its fc_norm (applied after pooling, as with "
                "global_pool='avg'), so its tokens would come out un-normed; build it with "
                "fc_norm=False (its norm then applies to the tokens)."
            )
        if not isinstance(vit.patch_drop, nn.Identity):
            raise ValueError(
                "the ViT drops patches itself (patch_drop_rate > 0); build it with "
                "patch_drop_rate=0: MaskedEncoder chooses the patches from the mask."
            )
        self.vit = vit
        self.dim = int(vit.embed_dim)
        self.grid = tuple(int(v) for v in vit.patch_embed.grid_size)
        self.num_prefix = int(getattr(vit, "num_prefix_tokens", 0))

    @typecheck
    def forward(
        self,
        images: Float[Tensor, "b c hh ww"],
        mask: Bool[Tensor, "b n"] | None = None,
    ) -> Float[Tensor, "b n {self.dim}"] | tuple[Float[Tensor, "b L {self.dim}"], Bool[Tensor, "b L"]]:  # noqa: E501
        """Patch tokens after the final norm: ``(b, n, dim)`` for all patches (no mask), or
        ``(tokens (b, L, dim), padding_mask (b, L))`` for the kept ones."""
        vit = self.vit
        x = vit._pos_embed(vit.patch_embed(images))
        x = vit.norm_pre(vit.patch_drop(x))
        prefix, patches = x[:, : self.num_prefix], x[:, self.num_prefix :]
        padding = None
        attn_mask = None
        if mask is not None:
            patches, padding = gather_tokens(patches, mask)
            prefix_kept = padding.new_ones(padding.shape[0], self.num_prefix)  # never padding
            keep = torch.cat((prefix_kept, ~padding), dim=1)
            attn_mask = keep[:, None, None, :]  # SDPA's boolean mask: True takes part
        x = torch.cat((prefix, patches), dim=1)
        for block in vit.blocks:
            x = block(x, attn_mask=attn_mask)
        x = vit.norm(x)[:, self.num_prefix :]
        return x if mask is None else (x, padding)


def gather_targets(
    tokens: Float[Tensor, "b n d"], targets: Bool[Tensor, "b n"] | Bool[Tensor, "b k n"]
) -> Float[Tensor, "b *k T d"]:
    """The target encoder's tokens at the target positions, laid out as
    :class:`MaskedPredictor` returns its predictions."""
    if targets.ndim == 2:
        return gather_tokens(tokens, targets)[0]
    b, k, n = targets.shape
    flat = tokens.repeat_interleave(k, dim=0)
    return gather_tokens(flat, targets.flatten(0, 1))[0].unflatten(0, (b, k))
