"""Position embeddings of patch grids: fixed 2D / 3D sin-cos, and rotary (2D, 3D as V-JEPA 2).

Sin-cos, exactly as MAE / I-JEPA (2D) and V-JEPA (3D) compute them, a constant table over the
flattened grid in raster order. For a width ``D`` and integer coordinate ``p`` the 1D
embedding is ``[sin(p * omega_i), cos(p * omega_i)]_i`` (all sines, then all cosines) with
``omega_i = 10000 ** (-i / (D / 2))``, ``i = 0 .. D/2 - 1``.

* 2D: ``[emb(col) (D/2), emb(row) (D/2)]``. The column comes first: MAE's
  ``np.meshgrid(grid_w, grid_h)`` puts the column index in ``grid[0]``, which its code then
  names ``emb_h``; I-JEPA copies it. ``D`` divisible by 4.
* 3D: ``[emb(frame) (D/2), emb(row) (D/4), emb(col) (D/4)]`` (V-JEPA's default); with
  ``uniform_power=True`` three parts of ``2 * ceil(D / 6)`` each, truncated to ``D``.
  ``D`` divisible by 8 (each part's width must be even).

Rotary (RoPE, Su et al.), applied to queries and keys inside :class:`Attention`. Each of the
``a`` coordinate axes (``(row, col)`` in 2D, ``(frame, row, col)`` in 3D as V-JEPA 2) gets an
equal even slice of the head dimension, ``part = 2 * ((dh // a) // 2)``, in axis order; the
remaining ``dh - a * part`` channels are not rotated. Within a slice, channel pair
``(2i, 2i + 1)`` is rotated by the angle ``p * theta ** (-i / (part / 2))``. Scores
``q(p) . k(p')`` then depend on ``p - p'`` only.

V-JEPA 2's code (``rotate_queries_or_keys``) tiles its sines and cosines with
``.repeat(..., 2)`` where its pairs are interleaved, so the two channels of a pair turn by
different angles: not a rotation, and scores are not exactly a function of ``p - p'``. This
module implements the rotation its description (and RoFormer) states.

Axes (see :mod:`jepa_blocks._typing`): ``n`` tokens, ``d`` embedding width, ``a`` coordinate
axes, ``b`` batch, ``h`` heads, ``dh`` head width.
"""

import math

import torch
from torch import Tensor, nn

from jepa_blocks._typing import Float, Int, Shaped, typecheck

__all__ = ["RotaryEmbedding", "grid_coordinates", "sincos_embed_2d", "sincos_embed_3d"]


def _check_grid(grid, dims: int) -> tuple[int, ...]:
    names = "(h, w)" if dims == 2 else "(t, h, w)"
    if (
        not isinstance(grid, tuple | list)
        or len(grid) != dims
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in grid)
    ):
        raise ValueError(f"grid must be {dims} positive ints {names}, got {grid!r}")
    return tuple(grid)


def grid_coordinates(
    grid: tuple[int, ...], *, device: torch.device | str | None = None
) -> Int[Tensor, "n a"]:
    """Integer coordinates ``(n, a)`` of a grid's cells in raster order (last axis fastest).

    ``grid_coordinates((t, h, w))[i] == (frame, row, col)`` of flattened index ``i``: the
    ``positions`` argument of :class:`Attention` with a :class:`RotaryEmbedding`. Gather them
    with the tokens (``gather_tokens(coords.expand(b, -1, -1), mask)``) to keep each token's
    position after masking.

    Raises:
        ValueError: ``grid`` is not a tuple of positive ints.
    """
    if (
        not isinstance(grid, tuple | list)
        or not grid
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in grid)
    ):
        raise ValueError(f"grid must be a tuple of positive ints, got {grid!r}")
    axes = [torch.arange(size, device=device) for size in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid))


def _sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``(n, dim)``: ``[sin(p omega), cos(p omega)]`` in float64 (MAE's numpy precision)."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    angles = positions.to(torch.float64)[:, None] * (1.0 / 10000.0**omega)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _check_dim(dim, multiple: int, what: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < multiple or dim % multiple:
        raise ValueError(
            f"dim {dim!r} must be a positive multiple of {multiple} for {what} (each part's "
            f"sines and cosines need an even width); use e.g. dim={max(multiple, 8) * 48}"
        )
    return dim


@typecheck
def sincos_embed_2d(
    dim: int,
    grid: tuple[int, int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "n {dim}"]:
    """MAE / I-JEPA's fixed 2D sin-cos embedding of an ``(h, w)`` grid, ``(h * w, dim)``.

    Layout ``[sin(col w), cos(col w), sin(row w), cos(row w)]`` (see the module docstring).

    Raises:
        ValueError: ``dim`` not a multiple of 4, ``grid`` not two positive ints.
    """
    _check_dim(dim, 4, "a 2D sin-cos embedding")
    coords = grid_coordinates(_check_grid(grid, 2), device=device)
    rows, cols = coords.unbind(-1)
    table = torch.cat([_sincos_1d(dim // 2, cols), _sincos_1d(dim // 2, rows)], dim=1)
    return table.to(dtype)


@typecheck
def sincos_embed_3d(
    dim: int,
    grid: tuple[int, int, int],
    *,
    uniform_power: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "n {dim}"]:
    """V-JEPA's fixed 3D sin-cos embedding of a ``(t, h, w)`` grid, ``(t * h * w, dim)``.

    Layout ``[emb(frame) (dim/2), emb(row) (dim/4), emb(col) (dim/4)]``, or three equal parts
    of ``2 * ceil(dim / 6)`` truncated to ``dim`` with ``uniform_power`` (V-JEPA's option).

    Raises:
        ValueError: ``dim`` not a multiple of 8 (2 with ``uniform_power``), a bad ``grid``.
    """
    coords = grid_coordinates(_check_grid(grid, 3), device=device)
    frames, rows, cols = coords.unbind(-1)
    if uniform_power:
        _check_dim(dim, 2, "a 3D sin-cos embedding with uniform_power")
        part = 2 * math.ceil(dim / 6)
        widths = (part, part, part)
    else:
        _check_dim(dim, 8, "a 3D sin-cos embedding")
        widths = (dim // 2, dim // 4, dim // 4)
    parts = [_sincos_1d(w, p) for w, p in zip(widths, (frames, rows, cols), strict=True)]
    return torch.cat(parts, dim=1)[:, :dim].to(dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over ``axes`` coordinates (2 for images, 3 for video).

    Pass it to :class:`Attention` (``Attention(dim, heads, rope=RotaryEmbedding(dim // heads,
    axes=2))``) and give the attention ``positions``; it rotates queries and keys before any
    core. It holds no parameters (its inverse frequencies are a non-persistent buffer), so it
    adds nothing to a checkpoint.

    Args:
        head_dim: ``dh``, the width of one attention head.
        axes: the number of coordinate axes ``a``; each rotates ``2 * ((dh // a) // 2)``
            channels, the rest of the head is not rotated.
        theta: the frequency base (10000 in RoFormer and V-JEPA 2).

    Raises:
        ValueError: ``axes < 1``, ``theta <= 0``, or a head too narrow to give every axis two
            channels (``dh < 2 * axes``).
    """

    def __init__(
        self, head_dim: int, *, axes: int = 2, theta: float = 10000.0, device=None
    ) -> None:
        super().__init__()
        if isinstance(axes, bool) or not isinstance(axes, int) or axes < 1:
            raise ValueError(f"axes must be a positive int (2 for (row, col)), got {axes!r}")
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 2 * axes:
            raise ValueError(
                f"head_dim {head_dim!r} is too narrow for rotary embeddings over {axes} axes: "
                f"each axis needs an even slice of at least 2 channels (head_dim >= "
                f"{2 * axes}); use fewer heads or fewer axes"
            )
        if not theta > 0:
            raise ValueError(f"theta must be positive (10000 is the usual base), got {theta!r}")
        self.head_dim, self.axes, self.theta = head_dim, axes, float(theta)
        self.part_dim = 2 * ((head_dim // axes) // 2)
        self.rotated_dim = self.part_dim * axes
        half = self.part_dim // 2
        exponent = torch.arange(half, dtype=torch.float64, device=device) / half
        inv_freq = (self.theta**-exponent).to(torch.float32)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def angles(
        self, positions: Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor]:
        """``cos, sin`` of shape ``(b or 1, 1, n, rotated_dim // 2)`` for ``(b, n, a)`` or
        ``(n, a)`` coordinates, computed in ``dtype`` (fp32 at least, whatever the
        coordinates' dtype)."""
        dtype = torch.promote_types(dtype, torch.float32)
        if positions.ndim == 2:
            positions = positions[None]
        inv_freq = self.inv_freq.to(device=positions.device, dtype=dtype)
        if dtype == torch.float64:  # the buffer is fp32; recompute it exactly
            half = self.part_dim // 2
            exponent = torch.arange(half, dtype=dtype, device=positions.device) / half
            inv_freq = self.theta**-exponent
        # (b, n, a, 1) * (part / 2,) -> (b, n, a * part / 2): axis-major, like the channels
        freqs = positions.to(dtype)[..., None] * inv_freq
        freqs = freqs.flatten(-2)[:, None]  # (b, 1, n, rotated / 2): broadcast over heads
        return freqs.cos(), freqs.sin()

    def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotate ``x (b, h, n, dh)`` by precomputed :meth:`angles`; the result has x's dtype."""
        rotated, rest = x[..., : self.rotated_dim], x[..., self.rotated_dim :]
        compute = torch.promote_types(x.dtype, torch.float32)  # half types rotate in fp32
        pairs = rotated.to(compute).unflatten(-1, (-1, 2))  # (b, h, n, rotated / 2, 2)
        even, odd = pairs.unbind(-1)
        cos, sin = cos.to(compute), sin.to(compute)
        turned = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return torch.cat([turned.flatten(-2).to(x.dtype), rest], dim=-1)

    def check_positions(self, positions: Tensor, b: int, n: int) -> None:
        """Raise ``ValueError`` unless ``positions`` is ``(b, n, axes)`` or ``(n, axes)``."""
        shape = tuple(positions.shape)
        if shape not in ((b, n, self.axes), (n, self.axes)) or positions.dtype == torch.bool:
            raise ValueError(
                f"positions must be (batch, tokens, axes) = {(b, n, self.axes)} or "
                f"(tokens, axes) = {(n, self.axes)} coordinates, got {positions.dtype} {shape}; "
                "build them with grid_coordinates(grid) and gather them with the tokens"
            )

    @typecheck
    def forward(
        self,
        x: Float[Tensor, "b h n dh"],
        positions: Shaped[Tensor, "b n a"] | Shaped[Tensor, "n a"],
    ) -> Float[Tensor, "b h n dh"]:
        """Rotate queries or keys ``x (b, h, n, dh)`` at coordinates ``(b, n, a)`` / ``(n, a)``.

        Raises:
            ValueError: ``x``'s last axis is not ``head_dim``, or bad ``positions``.
        """
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"x has head width {x.shape[-1]} but this RotaryEmbedding was built for "
                f"head_dim={self.head_dim}; build it with RotaryEmbedding(dim // heads)"
            )
        self.check_positions(positions, x.shape[0], x.shape[2])
        cos, sin = self.angles(positions, x.dtype)
        return self.rotate(x, cos, sin)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, axes={self.axes}, theta={self.theta}, "
            f"rotated={self.rotated_dim}"
        )
