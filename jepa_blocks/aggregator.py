"""The sequence aggregator: a small transformer that pools view tokens into one [AGG] vector.

seq-JEPA (spec §1.6): a zero-initialised [AGG] token is prepended, then a 3-layer, 4-head,
post-norm transformer encoder (FFN 4x, ReLU, dropout 0.1) and a final LayerNorm; the output
at the [AGG] position is the invariant representation ``z_agg``. There is no positional
encoding, so the aggregator is permutation-equivariant over tokens and works at any length.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Bool, Float, typecheck
from jepa_blocks.layers import Attention, TransformerBlock

__all__ = ["SequenceAggregator"]

class SequenceAggregator(nn.Module):
    """Pool ``m`` tokens into ``z_agg`` through a prepended [AGG] token and a transformer.

    Args:
        dim: token width (``dv + de``; 640 in the paper).
        depth: number of layers (3).
        heads: attention heads (4); must divide ``dim``.
        mlp_ratio: FFN width over ``dim`` (4.0).
        dropout: dropout in attention and MLP (0.1, PyTorch's default, as the official code).
        norm_first: pre-norm if True; the paper uses post-norm (False).
        final_norm: a LayerNorm after the last layer (True, as the official code).
        max_len: if given, learned positional embeddings for up to ``max_len`` view tokens
            (the paper uses none; without them any length works at inference).
        act_layer: the FFN's non-linearity class (``nn.ReLU``, the paper; ``nn.GELU``).
        attn_layer: the attention class of every layer (:class:`Attention`, whose core is the
            library default; ``partial(Attention, core="online")`` pins one, and
            :func:`~jepa_blocks.set_attention_core` switches a built model).
        norm_layer: the normalisation class of the layers and the final norm (``nn.LayerNorm``).

    Raises:
        ValueError: ``dim`` not divisible by ``heads``, ``depth < 1``, a bad ``max_len``.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        norm_first: bool = False,
        final_norm: bool = True,
        max_len: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        attn_layer: Callable[..., nn.Module] = Attention,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        require_positive_ints(dim=dim)
        if not isinstance(heads, int) or heads < 1 or dim % heads != 0:
            raise ValueError(
                f"dim {dim} is not divisible by heads {heads}; pick heads that divide dim "
                "(or change the view/action widths so that dv + de is divisible)."
            )
        require_positive_ints(depth=depth)
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"max_len must be a positive int or None, got {max_len!r}.")
        factory = {"device": device, "dtype": dtype}
        self.dim, self.depth, self.heads, self.max_len = dim, depth, heads, max_len
        self.agg_token = nn.Parameter(torch.zeros(1, 1, dim, **factory))
        self.pos_embed: nn.Parameter | None = None
        if max_len is not None:
            self.pos_embed = nn.Parameter(torch.empty(1, max_len, dim, **factory))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                heads,
                mlp_ratio=mlp_ratio,
                dropout=dropout,
                norm_first=norm_first,
                act_layer=act_layer,
                attn_layer=attn_layer,
                norm_layer=norm_layer,
                **factory,
            )
            for _ in range(depth)
        )
        self.norm = norm_layer(dim, **factory) if final_norm else nn.Identity()

    @typecheck
    def forward_tokens(
        self,
        tokens: Float[Tensor, "b m {self.dim}"],
        padding_mask: Bool[Tensor, "b m"] | None = None,
    ) -> Float[Tensor, "b n {self.dim}"]:
        """All outputs, the [AGG] position first: ``(b, 1 + m, dim)``.

        A sequence whose every token is padding is not an error (checking would sync the
        host): the [AGG] token then attends only to itself, so its ``z_agg`` is finite and
        depends on no token.

        Raises:
            ValueError: ``m = 0``, more tokens than ``max_len``, a mask of the wrong shape.
        """
        batch, length, _ = tokens.shape
        if length == 0:
            raise ValueError("sequences are empty (m = 0); pass at least one token per sequence.")
        if self.max_len is not None and length > self.max_len:
            raise ValueError(
                f"{length} tokens exceed max_len={self.max_len} positional embeddings; build "
                "the aggregator with a larger max_len or without positional embeddings."
            )
        if padding_mask is not None and padding_mask.shape != (batch, length):
            raise ValueError(
                f"padding_mask must have shape ({batch}, {length}) (True = padding), got "
                f"{tuple(padding_mask.shape)}."
            )
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed[:, :length]
        x = torch.cat((self.agg_token.expand(batch, -1, -1).to(tokens.dtype), tokens), dim=1)
        key_padding_mask = None
        if padding_mask is not None:
            # The [AGG] token is never padding, so no attention row is ever fully masked.
            agg_column = padding_mask.new_zeros(batch, 1)
            key_padding_mask = torch.cat((agg_column, padding_mask), dim=1)
        for block in self.blocks:
            x = block(x, key_padding_mask)
        return self.norm(x)

    @typecheck
    def forward(
        self,
        tokens: Float[Tensor, "b m {self.dim}"],
        padding_mask: Bool[Tensor, "b m"] | None = None,
    ) -> Float[Tensor, "b {self.dim}"]:
        """Aggregate ``m >= 1`` tokens per sequence into ``z_agg``.

        Args:
            tokens: view tokens ``[z_i ; e(a_i)]``.
            padding_mask: ``True`` at padded tokens, so sequences of different lengths batch
                together; a padded sequence gives the same ``z_agg`` as the unpadded one.
        """
        return self.forward_tokens(tokens, padding_mask)[:, 0]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, depth={self.depth}, heads={self.heads}, max_len={self.max_len}"
