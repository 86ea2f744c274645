"""The kept tokens of a boolean mask, padded per batch, and back: ``gather_tokens`` /
``scatter_tokens``. Kept counts differ from sample to sample (masks of I-JEPA / V-JEPA, padded
view sequences); nothing is truncated, a padding mask says which tokens are real.

Axes (see :mod:`jepa_blocks._typing`): ``b`` batch, ``n`` tokens of the whole grid, ``L`` kept
tokens after gathering (the batch's largest kept count), ``d`` token width.
"""

import torch
from torch import Tensor

from jepa_blocks._typing import Bool, Shaped, typecheck

__all__ = ["gather_tokens", "scatter_tokens"]


def _kept_first(mask: Tensor) -> Tensor:
    """``(b, n)`` long: kept positions first, in their original order, then the others."""
    return torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)


def _check_mask(mask: Tensor, b: int, n: int, name: str = "mask") -> None:
    if mask.dtype != torch.bool or tuple(mask.shape) != (b, n):
        raise ValueError(
            f"{name} must be a bool tensor of shape (batch, tokens) = {(b, n)} with True "
            f"marking a kept token; got {mask.dtype} {tuple(mask.shape)} (flatten "
            "(b, k, n) target masks to (b * k, n) and repeat x to match)"
        )


@typecheck
def gather_tokens(
    x: Shaped[Tensor, "b n *d"],
    mask: Bool[Tensor, "b n"],
    *,
    length: int | None = None,
) -> tuple[Shaped[Tensor, "b L *d"], Bool[Tensor, "b L"]]:
    """The kept tokens of each sequence, in order, padded to the batch's largest kept count.

    Args:
        x: ``(b, n, ...)`` tokens (or positions) over the whole grid.
        mask: ``(b, n)`` bool, True for the tokens to keep (e.g. ``BlockMasks.context``).
        length: the padded length ``L``. ``None`` computes the largest kept count, one host
            sync when ``mask`` is on a GPU (none when it is on the CPU) and a graph break
            under ``torch.compile``. Given (e.g. computed in the collate function), nothing
            syncs; it must be at least every row's kept count.

    Returns:
        ``tokens (b, L, ...)``, the kept tokens first in grid order, then zeros;
        ``padding_mask (b, L)``, True at padding (the convention of :class:`Attention`).

    Raises:
        ValueError: ``mask`` not a ``(b, n)`` bool tensor, ``length`` not in ``1 .. n``, or
            (``length=None``) a row that keeps nothing or more than ``length`` tokens.
        RuntimeError: (``length`` given) a row keeps nothing or more than ``length`` tokens;
            raised by an asynchronous device assert, so nothing syncs.
    """
    b, n = x.shape[:2]
    _check_mask(mask, b, n)
    counts = mask.sum(1)
    if length is None:
        low, length = int(counts.min()), int(counts.max())
        if low == 0:
            raise ValueError(
                "a row of mask keeps no token; an empty context or target is a bug upstream "
                "(draw masks with min_keep >= 1)"
            )
    else:
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= n:
            raise ValueError(f"length must be an int in 1 .. n = {n}, got {length!r}")
        torch._assert_async(
            ((counts >= 1) & (counts <= length)).all(),
            f"gather_tokens: a row of mask keeps no token or more than length={length}; pass "
            "length=None or the largest kept count",
        )
    index = _kept_first(mask)[:, :length]  # (b, L)
    padding = torch.arange(length, device=mask.device) >= counts[:, None]  # (b, L)
    expand = index.reshape(b, length, *([1] * (x.ndim - 2))).expand(b, length, *x.shape[2:])
    tokens = torch.gather(x, 1, expand)
    pad = padding.reshape(b, length, *([1] * (x.ndim - 2)))
    return tokens.masked_fill(pad, 0), padding


@typecheck
def scatter_tokens(
    tokens: Shaped[Tensor, "b L *d"],
    padding_mask: Bool[Tensor, "b L"],
    mask: Bool[Tensor, "b n"],
    *,
    fill: float = 0.0,
) -> Shaped[Tensor, "b n *d"]:
    """The inverse of :func:`gather_tokens`: tokens back at their grid positions.

    ``scatter_tokens(*gather_tokens(x, mask), mask)`` is ``x`` where ``mask`` is True and
    ``fill`` elsewhere. Padding tokens are never written (they get no gradient). The grid size
    ``n`` is ``mask.shape[1]``.

    Args:
        tokens: ``(b, L, ...)`` as :func:`gather_tokens` lays them out (e.g. a predictor's
            outputs at the target positions).
        padding_mask: ``(b, L)``, True at padding, as :func:`gather_tokens` returned it.
        mask: ``(b, n)``, the mask the tokens were gathered with.
        fill: the value at positions ``mask`` does not keep.

    Returns:
        ``(b, n, ...)``.

    Raises:
        ValueError: ``mask`` or ``padding_mask`` of the wrong dtype or shape, or ``L > n``.
        RuntimeError: ``padding_mask`` does not match ``mask`` (a different kept count in
            some row); raised by an asynchronous device assert, so nothing syncs.
    """
    b, length = tokens.shape[:2]
    _check_mask(padding_mask, b, length, "padding_mask")
    if mask.dtype != torch.bool or mask.ndim != 2 or mask.shape[0] != b or mask.shape[1] < length:
        raise ValueError(
            f"mask must be a bool tensor (batch, n) = ({b}, n >= {length}) with True marking "
            f"the kept tokens; got {mask.dtype} {tuple(mask.shape)}"
        )
    n = mask.shape[1]
    torch._assert_async(
        ((~padding_mask).sum(1) == mask.sum(1)).all(),
        "scatter_tokens: padding_mask does not match mask; pass the padding mask that "
        "gather_tokens returned with this mask",
    )
    index = _kept_first(mask)[:, :length]  # distinct positions: kept ones, then unkept ones
    feature = (1,) * (tokens.ndim - 2)
    values = tokens.masked_fill(padding_mask.reshape(b, length, *feature), fill)
    out = torch.full((b, n, *tokens.shape[2:]), fill, dtype=tokens.dtype, device=tokens.device)
    expand = index.reshape(b, length, *feature).expand(b, length, *tokens.shape[2:])
    return out.scatter(1, expand, values)
