"""Multi-block and tube masks (I-JEPA, V-JEPA), and gather / scatter of the kept tokens.

Why it exists: the official collators of I-JEPA and V-JEPA draw masks one sample at a time in
Python, never put a block on the last row or column (I-JEPA draws ``randint(0, H - h)``,
exclusive: ijepa PR #40 / #59), and truncate every mask of a batch to the batch's smallest
one *by position*, which at batch >= 128 removes central patches from every context (ijepa
#60). Here masks are drawn for the whole batch at once with tensor ops on any device, every
valid corner is equally likely, and variable sizes are kept honestly:
:func:`~jepa_blocks.gather.gather_tokens` pads to the largest kept count with a padding mask,
:func:`~jepa_blocks.gather.scatter_tokens` inverts it.

Block size (both official collators): for a scale ``s`` and an aspect ratio ``a`` drawn
uniformly from their ranges, ``area = floor(s * H * W)``, ``h = round(sqrt(area * a))``,
``w = round(sqrt(area / a))`` (round half to even, as Python's ``round``), clipped to
``[1, H]`` and ``[1, W]``. The top-left corner is uniform over ``0 .. H - h`` and
``0 .. W - w``, both ends included. Unlike the official I-JEPA collator, which draws one block
size per batch (shared by every sample) from a single uniform for both scale and aspect, each
block of each sample draws its own scale and aspect independently; and a block may span the
whole grid (the official code clips ``h`` to ``H - 1``).

Masks are boolean over the flattened grid in raster order (``index = row * W + col``, and
``(frame * H + row) * W + col`` for clips); True marks a patch that is kept (context) or
predicted (target).

Axes (see :mod:`jepa_blocks._typing`): ``b`` batch, ``k`` target blocks, ``n`` patches of the
grid, ``L`` kept tokens after gathering (the batch's largest kept count), ``d`` token width.
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["BlockMasks", "MultiBlockMasks", "TubeMasks", "gather_tokens", "scatter_tokens"]

# The kept tokens of a mask, padded per batch, live beside the masks' users; re-exported here.
from jepa_blocks.gather import gather_tokens, scatter_tokens  # noqa: E402

#: Redraw rounds before giving up on a configuration (the official collator's timeout is 20).
_TRIES = 20


class BlockMasks(NamedTuple):
    """What :class:`MultiBlockMasks` and :class:`TubeMasks` return.

    Attributes:
        context: ``(b, n)`` bool, True for the patches the context encoder sees.
        targets: ``(b, k, n)`` bool, one mask per target block (the union is
            ``targets.any(1)``); never overlapping the context unless ``allow_overlap``.
    """

    context: Tensor
    targets: Tensor


def _check_range(name: str, value, *, upper: float | None) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    bad_upper = upper is not None and high > upper
    if not (0.0 < low <= high) or bad_upper or not math.isfinite(high):
        bound = f"0 < low <= high <= {upper}" if upper is not None else "0 < low <= high"
        raise ValueError(
            f"{name}={value!r} is not a valid range; it needs {bound} "
            f"(e.g. {name}=(0.15, 0.2) for a scale, (0.75, 1.5) for an aspect ratio)"
        )
    return low, high


def _check_grid(grid, dims: int) -> tuple[int, ...]:
    names = "(h, w)" if dims == 2 else "(t, h, w)"
    try:
        sizes = tuple(int(v) for v in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be {names} patch counts, got {grid!r}") from None
    if len(sizes) != dims or any(s < 1 for s in sizes) or sizes != tuple(grid):
        raise ValueError(
            f"grid must be {dims} positive ints {names}, got {grid!r} "
            f"(e.g. {(14, 14) if dims == 2 else (8, 14, 14)} for 224 px and patch 16)"
        )
    return sizes


def _check_count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _block_sides(area: float, aspect: float, height: int, width: int) -> tuple[int, int]:
    """Host-side twin of :func:`_sides` for configuration checks."""
    side_h = min(max(round(math.sqrt(area * aspect)), 1), height)
    side_w = min(max(round(math.sqrt(area / aspect)), 1), width)
    return side_h, side_w


def _sides(area: Tensor, aspect: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    side_h = torch.round(torch.sqrt(area * aspect)).clamp(1, height)
    side_w = torch.round(torch.sqrt(area / aspect)).clamp(1, width)
    return side_h, side_w


def _uniform(shape, bounds: tuple[float, float], generator, device) -> Tensor:
    low, high = bounds
    # float64: block sides are rounded from these, and the draws must not depend on precision
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return low + u * (high - low)


def _sample_blocks(
    shape: tuple[int, ...],
    height: int,
    width: int,
    scale: tuple[float, float],
    aspect: tuple[float, float],
    generator,
    device,
) -> Tensor:
    """``shape + (height * width,)`` bool: one rectangle per entry, drawn as described above."""
    area = torch.floor(_uniform(shape, scale, generator, device) * (height * width))
    side_h, side_w = _sides(area, _uniform(shape, aspect, generator, device), height, width)
    # Corner uniform over 0 .. H - h inclusive: floor(u * (H - h + 1)) with u in [0, 1).
    top = torch.floor(_uniform(shape, (0.0, 1.0), generator, device) * (height - side_h + 1))
    left = torch.floor(_uniform(shape, (0.0, 1.0), generator, device) * (width - side_w + 1))
    top = torch.minimum(top, height - side_h)  # guard against u * m rounding up to m
    left = torch.minimum(left, width - side_w)
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    in_rows = (rows >= top[..., None]) & (rows < (top + side_h)[..., None])  # (*shape, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + side_w)[..., None])  # (*shape, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).flatten(-2)


def _device_of(generator, device) -> torch.device:
    if device is None:
        return generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but device={device}; create the generator "
            f"on the device (torch.Generator(device={str(device)!r})) or drop device="
        )
    return device


def _check_batch(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


class MultiBlockMasks:
    """I-JEPA's multi-block masks: ``k`` target blocks and one context block minus the targets.

    Sampled for the whole batch at once (no per-sample Python loop), on the generator's device.
    Defaults are the paper's: 4 targets of scale (0.15, 0.2) and aspect (0.75, 1.5), a context
    block of scale (0.85, 1.0) and aspect 1, at least 10 context patches.

    The context rule (``min_keep``): a sample whose context would keep fewer than ``min_keep``
    patches redraws its context block (every such sample at once), up to 20 times; a sample
    still short then redraws its targets too, up to 20 more times; after that a ``RuntimeError``
    names the configuration. Targets are never merged into the context to make room (the
    official collator lets the context overlap the targets after its 20 tries), contexts are
    never empty and never truncated. Each redraw round syncs once with the host (``any()``);
    draw masks in the data pipeline (e.g. the collate function, on the CPU), not in a
    compiled step.

    Args:
        grid: ``(h, w)`` patches (14 x 14 for 224 px images and patch 16).
        num_targets: target blocks per sample (``k``).
        target_scale, target_aspect: ranges of a target block's area fraction and h / w ratio.
        context_scale, context_aspect: the same for the context block.
        min_keep: the fewest context patches a sample may keep.
        allow_overlap: keep target patches in the context (then the context is the block).

    Raises:
        ValueError: a grid that is not two positive ints, a scale outside (0, 1], an aspect
            not positive, ``low > high``, ``num_targets < 1``, or a grid too small for
            ``min_keep`` (even the largest context block minus the smallest target keeps
            fewer patches).
    """

    def __init__(
        self,
        grid: tuple[int, int],
        *,
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 10,
        allow_overlap: bool = False,
    ) -> None:
        self.grid = _check_grid(grid, 2)
        self.num_targets = _check_count("num_targets", num_targets, 1)
        self.target_scale = _check_range("target_scale", target_scale, upper=1.0)
        self.target_aspect = _check_range("target_aspect", target_aspect, upper=None)
        self.context_scale = _check_range("context_scale", context_scale, upper=1.0)
        self.context_aspect = _check_range("context_aspect", context_aspect, upper=None)
        self.min_keep = _check_count("min_keep", min_keep, 1)
        self.allow_overlap = bool(allow_overlap)
        height, width = self.grid
        n = height * width
        # Best case: the largest context block, and the smallest target as far out of it as
        # the grid allows.
        best = max(
            math.prod(_block_sides(math.floor(self.context_scale[1] * n), a, height, width))
            for a in self.context_aspect
        )
        if not allow_overlap:
            smallest = min(
                math.prod(_block_sides(math.floor(self.target_scale[0] * n), a, height, width))
                for a in self.target_aspect
            )
            best = min(best, n - smallest)
        if best < self.min_keep:
            raise ValueError(
                f"grid {self.grid} is too small for min_keep={min_keep}: the largest context "
                f"block minus the smallest target keeps at most {best} patches; lower "
                "min_keep, raise context_scale, lower target_scale, or use a larger grid"
            )

    @property
    def num_patches(self) -> int:
        """``n = h * w``, the length of every mask."""
        return self.grid[0] * self.grid[1]

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> BlockMasks:
        """Draw ``batch_size`` samples of masks.

        Args:
            batch_size: ``b``.
            generator: the source of randomness (same seed, same masks); ``None`` draws from
                the global generator of ``device``.
            device: where the masks are drawn; defaults to the generator's device, else CPU.

        Returns:
            ``BlockMasks(context (b, n), targets (b, k, n))``.

        Raises:
            ValueError: a bad ``batch_size``, a generator on another device.
            RuntimeError: 40 redraw rounds left some context under ``min_keep``.
        """
        b = _check_batch(batch_size)
        device = _device_of(generator, device)
        targets = self._targets(b, generator, device)
        context = self._context(b, targets, generator, device)
        for attempt in range(2 * _TRIES + 1):
            short = context.sum(-1) < self.min_keep  # (b,)
            if not bool(short.any()):
                return BlockMasks(context, targets)
            if attempt == 2 * _TRIES:
                break
            if attempt >= _TRIES:  # the context alone did not fit: redraw the targets too
                targets = torch.where(
                    short[:, None, None], self._targets(b, generator, device), targets
                )
            fresh = self._context(b, targets, generator, device)
            context = torch.where(short[:, None], fresh, context)
        raise RuntimeError(
            f"MultiBlockMasks(grid={self.grid}, num_targets={self.num_targets}, "
            f"target_scale={self.target_scale}, context_scale={self.context_scale}) left "
            f"{int(short.sum())} of {b} contexts under min_keep={self.min_keep} after "
            f"{2 * _TRIES} redraws; lower min_keep, num_targets or target_scale, or raise "
            "context_scale"
        )

    def _targets(self, b: int, generator, device) -> Tensor:
        height, width = self.grid
        return _sample_blocks(
            (b, self.num_targets),
            height,
            width,
            self.target_scale,
            self.target_aspect,
            generator,
            device,
        )

    def _context(self, b: int, targets: Tensor, generator, device) -> Tensor:
        height, width = self.grid
        block = _sample_blocks(
            (b,), height, width, self.context_scale, self.context_aspect, generator, device
        )
        return block if self.allow_overlap else block & ~targets.any(1)

    def __repr__(self) -> str:
        return (
            f"MultiBlockMasks(grid={self.grid}, num_targets={self.num_targets}, "
            f"target_scale={self.target_scale}, target_aspect={self.target_aspect}, "
            f"context_scale={self.context_scale}, context_aspect={self.context_aspect}, "
            f"min_keep={self.min_keep}, allow_overlap={self.allow_overlap})"
        )


class TubeMasks:
    """V-JEPA's 3D multi-block masks: ``k`` tubes, the context is everything else.

    Each tube is a spatial block (scale and aspect as in :class:`MultiBlockMasks`) spanning
    ``t_block = max(1, floor(temporal_scale * t))`` consecutive frames from a uniform start;
    with the default ``temporal_scale=(1.0, 1.0)`` every tube spans the whole clip. The targets
    are the tubes; the context is the complement of their union (no context block), as in
    V-JEPA. V-JEPA uses two mask generators on every clip, each giving its own (context,
    targets) pair: the short-range one, 8 tubes of spatial scale 0.15 (the defaults), and the
    long-range one, 2 tubes of spatial scale 0.7; :meth:`vjepa` builds both.

    The context rule: a sample whose context keeps fewer than ``min_keep`` patches (V-JEPA
    requires a non-empty context, ``min_keep=1``) redraws all its tubes, every such sample at
    once, up to 40 times; then a ``RuntimeError`` names the configuration.

    Args:
        grid: ``(t, h, w)`` tubelets (8 x 14 x 14 for 16 frames, tubelet 2 x 16 x 16).
        num_blocks: tubes per sample (``k``).
        spatial_scale, aspect: ranges of a tube's area fraction of a frame and h / w ratio.
        temporal_scale: range of a tube's frame fraction.
        min_keep: the fewest context tubelets a sample may keep.

    Raises:
        ValueError: a grid that is not three positive ints, a scale outside (0, 1], an aspect
            not positive, ``low > high``, ``num_blocks < 1``, ``min_keep`` above ``t*h*w``
            minus the smallest tube.
    """

    def __init__(
        self,
        grid: tuple[int, int, int],
        *,
        num_blocks: int = 8,
        spatial_scale: tuple[float, float] = (0.15, 0.15),
        aspect: tuple[float, float] = (0.75, 1.5),
        temporal_scale: tuple[float, float] = (1.0, 1.0),
        min_keep: int = 1,
    ) -> None:
        self.grid = _check_grid(grid, 3)
        self.num_blocks = _check_count("num_blocks", num_blocks, 1)
        self.spatial_scale = _check_range("spatial_scale", spatial_scale, upper=1.0)
        self.aspect = _check_range("aspect", aspect, upper=None)
        self.temporal_scale = _check_range("temporal_scale", temporal_scale, upper=1.0)
        self.min_keep = _check_count("min_keep", min_keep, 1)
        frames, height, width = self.grid
        smallest = max(1, math.floor(self.temporal_scale[0] * frames)) * min(
            math.prod(
                _block_sides(math.floor(self.spatial_scale[0] * height * width), a, height, width)
            )
            for a in self.aspect
        )
        if frames * height * width - smallest < self.min_keep:
            raise ValueError(
                f"grid {self.grid} is too small for min_keep={min_keep}: one tube of the "
                f"smallest size already leaves only {frames * height * width - smallest} "
                "tubelets; lower min_keep or spatial_scale, or use a larger grid"
            )

    @classmethod
    def vjepa(cls, grid: tuple[int, int, int]) -> tuple["TubeMasks", "TubeMasks"]:
        """V-JEPA's two generators: 8 tubes of scale 0.15 and 2 of 0.7, aspect (0.75, 1.5)."""
        return cls(grid), cls(grid, num_blocks=2, spatial_scale=(0.7, 0.7))

    @property
    def num_patches(self) -> int:
        """``n = t * h * w``, the length of every mask."""
        return math.prod(self.grid)

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> BlockMasks:
        """Draw ``batch_size`` samples; ``BlockMasks(context (b, n), targets (b, k, n))``.

        Arguments and errors as :meth:`MultiBlockMasks.__call__`.
        """
        b = _check_batch(batch_size)
        device = _device_of(generator, device)
        targets = self._tubes(b, generator, device)
        for attempt in range(2 * _TRIES + 1):
            short = (~targets.any(1)).sum(-1) < self.min_keep
            if not bool(short.any()):
                return BlockMasks(~targets.any(1), targets)
            if attempt == 2 * _TRIES:
                break
            targets = torch.where(short[:, None, None], self._tubes(b, generator, device), targets)
        raise RuntimeError(
            f"TubeMasks(grid={self.grid}, num_blocks={self.num_blocks}, "
            f"spatial_scale={self.spatial_scale}) left {int(short.sum())} of {b} contexts "
            f"under min_keep={self.min_keep} after {2 * _TRIES} redraws; lower min_keep, "
            "num_blocks or spatial_scale"
        )

    def _tubes(self, b: int, generator, device) -> Tensor:
        frames, height, width = self.grid
        shape = (b, self.num_blocks)
        span = torch.floor(_uniform(shape, self.temporal_scale, generator, device) * frames)
        span = span.clamp(1, frames)
        start = torch.floor(_uniform(shape, (0.0, 1.0), generator, device) * (frames - span + 1))
        start = torch.minimum(start, frames - span)
        steps = torch.arange(frames, device=device, dtype=torch.float64)
        in_time = (steps >= start[..., None]) & (steps < (start + span)[..., None])  # (b, k, t)
        spatial = _sample_blocks(
            shape, height, width, self.spatial_scale, self.aspect, generator, device
        )  # (b, k, h * w)
        return (in_time[..., :, None] & spatial[..., None, :]).flatten(-2)

    def __repr__(self) -> str:
        return (
            f"TubeMasks(grid={self.grid}, num_blocks={self.num_blocks}, "
            f"spatial_scale={self.spatial_scale}, aspect={self.aspect}, "
            f"temporal_scale={self.temporal_scale}, min_keep={self.min_keep})"
        )
