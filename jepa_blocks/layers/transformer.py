"""A transformer encoder layer built from parts passed in (attention, MLP, norm classes)."""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from jepa_blocks.layers.attention import Attention
from jepa_blocks.layers.mlp import Mlp, remap_state_dict_keys

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """One encoder layer with the same arithmetic as ``nn.TransformerEncoderLayer``.

    ``norm_first=False`` (post-norm, PyTorch's default and the paper's):
    ``x = norm1(x + drop(attn(x)))``, ``x = norm2(x + drop(mlp(x)))``; pre-norm otherwise.
    Dropout acts on the attention weights, after the attention, inside the MLP and after it,
    as in PyTorch, so weights copied from an ``nn.TransformerEncoderLayer`` give its outputs.

    The parts are classes (or ``functools.partial`` of them), as in timm:
    ``attn_layer(dim, heads, dropout=...)`` (:class:`Attention`, whose core is the library's
    default: see :func:`~jepa_blocks.default_attention_core`; pass
    ``partial(Attention, core="online")`` to pin one), ``mlp_layer(dim, hidden, dim,
    act_layer=..., dropout=...)`` (:class:`Mlp`) and ``norm_layer(dim, eps=...)``.

    Checkpoints written when the MLP was an ``nn.Sequential`` (keys ``mlp.0``, ``mlp.3``)
    load unchanged.

    Raises:
        ValueError: an ``mlp_ratio`` that leaves no hidden unit (and whatever the parts raise,
            e.g. ``dim`` not divisible by ``heads``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        norm_first: bool = False,
        attn_layer: Callable[..., nn.Module] = Attention,
        mlp_layer: Callable[..., nn.Module] = Mlp,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio {mlp_ratio} gives an empty MLP for dim {dim}.")
        self.dim = dim
        self.norm_first = norm_first
        self.attn = attn_layer(dim, heads, dropout=dropout, **factory)
        self.norm1 = norm_layer(dim, eps=eps, **factory)
        self.norm2 = norm_layer(dim, eps=eps, **factory)
        self.mlp = mlp_layer(dim, hidden, dim, act_layer=act_layer, dropout=dropout, **factory)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)
        remap_state_dict_keys(self, {"mlp.0.": "mlp.fc1.", "mlp.3.": "mlp.fc2."})

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``x (b, n, dim)``; ``positions`` (per-token coordinates) reach an attention built
        with rotary embeddings (``attn_layer=partial(Attention, rope=...)``)."""
        extra = {} if positions is None else {"positions": positions}
        if self.norm_first:
            x = x + self.drop1(self.attn(self.norm1(x), key_padding_mask, **extra))
            return x + self.drop2(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x, key_padding_mask, **extra)))
        return self.norm2(x + self.drop2(self.mlp(x)))
