"""The sequence aggregator: a small transformer that pools view tokens into one [AGG] vector.

seq-JEPA (spec §1.6): a zero-initialised [AGG] token is prepended, then a 3-layer, 4-head,
post-norm transformer encoder (FFN 4x, ReLU, dropout 0.1) and a final LayerNorm; the output
at the [AGG] position is the invariant representation ``z_agg``. There is no positional
encoding, so the aggregator is permutation-equivariant over tokens and works at any length.
"""

import torch
from torch import Tensor, nn

from jepa_blocks._typing import Bool, Float, typecheck
from jepa_blocks.attention import Attention

__all__ = ["SequenceAggregator", "TransformerBlock"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


class TransformerBlock(nn.Module):
    """One encoder layer with the same arithmetic as ``nn.TransformerEncoderLayer``.

    ``norm_first=False`` (post-norm, PyTorch's default and the paper's):
    ``x = norm1(x + drop(attn(x)))``, ``x = norm2(x + drop(mlp(x)))``; pre-norm otherwise.
    Dropout acts on the attention weights, after the attention, inside the MLP and after it,
    as in PyTorch, so weights copied from an ``nn.TransformerEncoderLayer`` give its outputs.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
        attn_core: str = "sdpa",
        norm_layer: type[nn.Module] = nn.LayerNorm,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        factory = {"device": device, "dtype": dtype}
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio {mlp_ratio} gives an empty MLP for dim {dim}.")
        self.dim = dim
        self.norm_first = norm_first
        self.attn = Attention(dim, heads, dropout=dropout, core=attn_core, **factory)
        self.norm1 = norm_layer(dim, eps=eps, **factory)
        self.norm2 = norm_layer(dim, eps=eps, **factory)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden, **factory),
            _ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim, **factory),
        )
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self.drop1(self.attn(self.norm1(x), key_padding_mask))
            return x + self.drop2(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x, key_padding_mask)))
        return self.norm2(x + self.drop2(self.mlp(x)))


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
        activation: ``"relu"`` (the paper) or ``"gelu"``.
        attn_core: the attention core of every layer (``"sdpa"``, ``"online"``, ``"naive"``).

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
        activation: str = "relu",
        attn_core: str = "sdpa",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}.")
        if not isinstance(heads, int) or heads < 1 or dim % heads != 0:
            raise ValueError(
                f"dim {dim} is not divisible by heads {heads}; pick heads that divide dim "
                "(or change the view/action widths so that dv + de is divisible)."
            )
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, got {depth!r}.")
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
                activation=activation,
                attn_core=attn_core,
                **factory,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, **factory) if final_norm else nn.Identity()

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
