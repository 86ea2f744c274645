"""Saccade sequences: fixations sampled from a saliency map, and the glimpses they land on.

seq-JEPA's "predictive learning across saccades" (PLS, spec §2.3) turns one image into a
sequence of small foveal glimpses: fixations are drawn one after another from a saliency map
(``torch.multinomial``), with *inhibition of return* (IoR) suppressing the neighbourhood of
every fixation so later ones go elsewhere. The action between glimpses is the relative
position of their centres. This module holds the sampler, the glimpse extractor and a
sequence dataset that wraps any ``(image, label)`` dataset.

Faithfulness notes (official code ``datasets.py STL10_SalMap``):

- IoR zeroes a ``(2 * (fovea // 2) + 1)``-pixel *square* (33 x 33 for a 32-px fovea), adds
  ``1e-16`` everywhere and renormalises. The paper says "circular area with radius of 16"
  (spec §7.1 #9): ``ior_shape="circle"`` does that; the default follows the code.
- With ``use_sal=0`` the official code samples each fixation from a *fresh* uniform map, so
  its IoR has no effect there. Here a uniform map (``saliency=None``) honours IoR like any
  other map; pass ``ior=False`` to reproduce the official uniform sampling.
- Glimpses: the official code resamples a 32-px patch with ``grid_sample`` (bilinear, zero
  padding) on a grid spanning 32 px with 32 samples (spacing 32/31 px) around
  ``(row - 0.5, col - 0.5)``. The default ``method="slice"`` takes the plain crop with the
  same centre (rows ``row - fovea // 2`` to ``row - fovea // 2 + fovea - 1``, zero outside
  the image); ``method="grid_sample"`` is the official resampling. The official code also
  rounds patches to uint8 through PIL; this one does not.
- **The official glimpse is centred at ``(col, row)``, not at the fixation ``(row, col)``.**
  Its grid is built transposed (``meshgrid`` in ``ij`` order, then ``x`` from the row), and
  the ``rotate(-90)`` + ``hflip`` that follows transposes the patch back but not its
  location (verified against a port of the official code in the tests; the spec's "equals
  a plain centred crop" holds only for ``row == col``). The saliency maps are in
  ``(row, col)`` order, so the official patches land on the *transposed* salient location
  while the actions are computed from ``(row, col)``. Here glimpses are taken at the
  fixation; ``SaccadeSequences(transpose_glimpses=True)`` reproduces the official location
  (square images only).
"""

from collections.abc import Callable, Sequence
from typing import Any, SupportsIndex

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Int, Tensor, typecheck
from jepa_blocks.actions import position_deltas
from jepa_blocks.data.sequences import ImageSequences, as_image_size, check_index, normalize

__all__ = [
    "STL10_MEAN",
    "STL10_STD",
    "IOR_SHAPES",
    "GLIMPSE_METHODS",
    "sample_fixations",
    "extract_glimpses",
    "SaccadeSequences",
]

#: STL-10 statistics used by the official PLS code (spec §2.3).
STL10_MEAN: tuple[float, float, float] = (0.4467, 0.4398, 0.4066)
STL10_STD: tuple[float, float, float] = (0.2241, 0.2215, 0.2239)

IOR_SHAPES: tuple[str, ...] = ("square", "circle")
GLIMPSE_METHODS: tuple[str, ...] = ("slice", "grid_sample")

# Added to the inhibited map before renormalising, as in the official code: keeps every pixel
# drawable so the map never sums to zero.
_IOR_FLOOR = 1e-16


def _check_saliency(saliency: Tensor) -> None:
    if not bool(torch.isfinite(saliency).all()):
        raise ValueError(
            "saliency contains NaN or Inf; pass a finite, non-negative map (e.g. "
            "torch.nan_to_num(map), or exp of a clamped log-density)."
        )
    low = float(saliency.min())
    if low < 0:
        raise ValueError(
            f"saliency has negative probabilities (min {low:.3g}); pass a non-negative map, "
            "e.g. exp(log_density) or map.clamp(min=0)."
        )
    if float(saliency.sum()) <= 0:
        raise ValueError(
            "saliency sums to zero; pass a map with some positive mass, or None for uniform."
        )


@typecheck
def sample_fixations(
    saliency: Float[Tensor, "hh ww"] | None,
    num_fixations: int,
    *,
    fovea: int = 32,
    ior: bool = True,
    ior_shape: str = "square",
    image_size: int | tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> Int[Tensor, "k 2"]:
    """Draw fixation centres one at a time from a saliency map, with inhibition of return.

    Each fixation is ``torch.multinomial`` from the current map; with ``ior`` the
    neighbourhood of that fixation is then zeroed (``ior_shape="square"``: ``|drow|, |dcol|
    <= fovea // 2``, the official code; ``"circle"``: ``drow^2 + dcol^2 <= (fovea // 2)^2``,
    the paper), ``1e-16`` is added everywhere and the map renormalised.

    Args:
        saliency: non-negative (not necessarily normalised) map; ``None`` for uniform.
        num_fixations: how many fixations (``m + 1`` for a sequence with a target).
        fovea: glimpse side; sets the inhibited radius ``fovea // 2``.
        ior: apply inhibition of return.
        ior_shape: ``"square"`` or ``"circle"``.
        image_size: ``(hh, ww)`` of the image; required when ``saliency`` is None, checked
            against the map otherwise.
        generator: random source (the global RNG when None).

    Returns:
        ``(num_fixations, 2)`` int64 ``(row, col)`` pixel positions, in sampling order.

    Raises:
        ValueError: negative, non-finite or all-zero saliency; a saliency map whose shape is
            not ``image_size``; ``fovea`` larger than the image; ``num_fixations < 1``; an
            unknown ``ior_shape``.
    """
    if not isinstance(num_fixations, int) or num_fixations < 1:
        raise ValueError(f"num_fixations must be a positive int, got {num_fixations!r}.")
    if ior_shape not in IOR_SHAPES:
        raise ValueError(f"unknown ior_shape {ior_shape!r}; choose one of {IOR_SHAPES}.")
    if saliency is None:
        if image_size is None:
            raise ValueError("pass image_size=(hh, ww) when saliency is None (uniform map).")
        height, width = as_image_size(image_size)
        probs = torch.ones(height, width)
    else:
        height, width = saliency.shape
        if image_size is not None and as_image_size(image_size) != (height, width):
            raise ValueError(
                f"saliency shape mismatch: map is {(height, width)} but image_size is "
                f"{as_image_size(image_size)}; resize the map to the image."
            )
        _check_saliency(saliency)
        probs = saliency.detach().float().cpu()
    if not isinstance(fovea, int) or fovea < 1 or fovea > min(height, width):
        raise ValueError(
            f"fovea {fovea} is larger than the image {height}x{width} (or not a positive "
            "int); use a fovea no larger than the image's shorter side."
        )
    radius = fovea // 2
    offsets = torch.arange(-radius, radius + 1)
    disk = offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2 <= radius**2
    probs = probs.clone()
    positions = []
    for _ in range(num_fixations):
        flat = int(torch.multinomial(probs.reshape(-1), 1, generator=generator))
        row, col = divmod(flat, width)
        positions.append((row, col))
        if ior:
            # Zeroing only the window gives the same values as the official full-map
            # ``probs * (1 - mask)``, at a fraction of the cost.
            top, bottom = max(row - radius, 0), min(row + radius + 1, height)
            left, right = max(col - radius, 0), min(col + radius + 1, width)
            if ior_shape == "square":
                probs[top:bottom, left:right] = 0.0
            else:
                shape = disk[
                    top - row + radius : bottom - row + radius,
                    left - col + radius : right - col + radius,
                ]
                probs[top:bottom, left:right].masked_fill_(shape, 0.0)
            probs += _IOR_FLOOR
            probs /= probs.sum()
    return torch.tensor(positions, dtype=torch.long)


@typecheck
def extract_glimpses(
    image: Float[Tensor, "c hh ww"],
    positions: Int[Tensor, "k 2"],
    size: int = 32,
    *,
    method: str = "slice",
) -> Float[Tensor, "k c {size} {size}"]:
    """Square glimpses of side ``size`` centred on ``positions``, zero outside the image.

    ``method="slice"`` copies pixels: glimpse ``[a, b]`` is ``image[row - size // 2 + a,
    col - size // 2 + b]``. ``method="grid_sample"`` is the official bilinear resampling (see
    the module docstring): same centre, sample spacing ``size / (size - 1)`` px.

    Args:
        image: the full image (un-normalised, so padding is black as in the official code).
        positions: ``(row, col)`` centres inside the image.
        size: glimpse side.

    Raises:
        ValueError: positions outside the image, ``size < 1`` or an unknown method.
    """
    if size < 1:
        raise ValueError(f"size must be a positive int, got {size}.")
    if method not in GLIMPSE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {GLIMPSE_METHODS}.")
    height, width = image.shape[-2:]
    if positions.numel() and (
        bool((positions < 0).any())
        or int(positions[:, 0].max()) >= height
        or int(positions[:, 1].max()) >= width
    ):
        raise ValueError(
            f"positions must be (row, col) inside the {height}x{width} image, got rows "
            f"{positions[:, 0].tolist()} and cols {positions[:, 1].tolist()}."
        )
    if method == "grid_sample":
        return _grid_sample_glimpses(image, positions, size)
    padded = F.pad(image, (size, size, size, size))
    offsets = torch.arange(size, device=image.device) - size // 2 + size
    rows = positions[:, :1].to(image.device) + offsets  # (k, size), in padded coordinates
    cols = positions[:, 1:].to(image.device) + offsets
    patches = padded[:, rows[:, :, None], cols[:, None, :]]  # (c, k, size, size)
    return rearrange(patches, "c k hh ww -> k c hh ww")


def _grid_sample_glimpses(image: Tensor, positions: Tensor, size: int) -> Tensor:
    height, width = image.shape[-2:]
    base = torch.linspace(-1.0, 1.0, size, device=image.device)
    centers = positions.to(device=image.device, dtype=image.dtype)
    # Normalised (align_corners=False) coordinates, as in the official generate_cropping_grid,
    # but in grid_sample's (x, y) order so no rotate/flip is needed afterwards.
    ys = base.view(1, -1) * (size / height) + (2.0 * centers[:, :1] / height - 1.0)
    xs = base.view(1, -1) * (size / width) + (2.0 * centers[:, 1:] / width - 1.0)
    count = positions.shape[0]
    grid = torch.stack(
        (xs[:, None, :].expand(count, size, size), ys[:, :, None].expand(count, size, size)),
        dim=-1,
    )
    batch = image.unsqueeze(0).expand(count, -1, -1, -1)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class SaccadeSequences(ImageSequences):
    """Sequences of foveal glimpses of one image with their positions and relative actions.

    Wraps any ``(image, label)`` dataset (float ``(c, hh, ww)`` in [0, 1], uint8 tensor, PIL
    image or HWC array). Item ``index`` is a dict:

    - ``views``     ``(k, c, image_size, image_size)``: glimpses at the ``k = num_views`` fixations
      in sampling order (the first ``k - 1`` are observations, the last the target),
      extracted from the un-normalised image then normalised with ``mean``/``std``;
    - ``positions`` ``(k, 2)``: fixation ``(row / hh, col / ww)``, as the official code
      returns them (``/ 96`` on STL-10);
    - ``actions``   ``(k - 1, 2)``: relative positions ``positions[i + 1] - positions[i]``
      (:func:`jepa_blocks.actions.position_deltas`);
    - ``label``     int64 scalar;
    - ``image``     ``(c, hh, ww)``: the whole image, normalised (for full-image probes).

    Args:
        images: the ``(image, label)`` dataset.
        num_views: ``k = m + 1`` fixations (5 in the paper: 4 observations and 1 target), >= 2.
        image_size: glimpse side, the ``fovea`` of :func:`sample_fixations` (32 in the paper).
        saliency: ``None`` (uniform), a callable ``image (c, hh, ww) -> map (hh, ww)`` such
            as :func:`jepa_blocks.data.sources.shipped.simple_saliency`, or precomputed maps indexed
            like ``images`` (a tensor ``(n, hh, ww)`` / ``(n, 1, hh, ww)`` or any sequence of
            maps, e.g. the released STL-10 DeepGaze maps loaded with numpy).
        ior, ior_shape: inhibition of return (see :func:`sample_fixations`).
        glimpse_method: ``"slice"`` or ``"grid_sample"`` (see :func:`extract_glimpses`).
        transpose_glimpses: take each glimpse at ``(col, row)`` like the official code (see
            the module docstring); ``positions`` and ``actions`` stay ``(row, col)``. With
            ``glimpse_method="grid_sample"`` this reproduces the official patches exactly
            (up to their uint8 rounding). Square images only.
        mean, std: per-channel normalisation (e.g. :data:`STL10_MEAN`); both ``None`` keeps
            [0, 1].
        seed: base seed; item randomness comes from ``(seed, epoch, index)`` only, so workers
            reproduce the main process; call :meth:`set_epoch` for fresh fixations per epoch.

    Raises:
        ValueError: ``num_views < 2``; precomputed saliency whose length differs from
            ``images``; bad ``saliency`` type; (per item) a map whose shape differs from the
            image, a fovea larger than the image.
    """

    def __init__(
        self,
        images: Dataset,
        *,
        num_views: int = 5,
        image_size: int = 32,
        saliency: None | Callable[[Tensor], Tensor] | Tensor | Sequence[Any] = None,
        ior: bool = True,
        ior_shape: str = "square",
        glimpse_method: str = "slice",
        transpose_glimpses: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(num_views, int) or num_views < 2:
            raise ValueError(
                f"num_views must be an int >= 2 (observations + 1 target), got "
                f"{num_views!r}; the paper uses 5."
            )
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
        if ior_shape not in IOR_SHAPES:
            raise ValueError(f"unknown ior_shape {ior_shape!r}; choose one of {IOR_SHAPES}.")
        if glimpse_method not in GLIMPSE_METHODS:
            raise ValueError(
                f"unknown glimpse_method {glimpse_method!r}; choose one of {GLIMPSE_METHODS}."
            )
        if saliency is not None and not callable(saliency):
            if not hasattr(saliency, "__getitem__") or not hasattr(saliency, "__len__"):
                raise ValueError(
                    "saliency must be None, a callable image -> map, or maps indexed like "
                    f"the images (tensor or sequence); got {type(saliency).__name__}."
                )
            if len(saliency) != len(images):  # type: ignore[arg-type]
                raise ValueError(
                    f"saliency has {len(saliency)} maps but images has "  # type: ignore[arg-type]
                    f"{len(images)} items; pass one map per image, in the same order."  # type: ignore[arg-type]
                )
        super().__init__(images, num_views=num_views, mean=mean, std=std, seed=seed)
        self.image_size = image_size
        self.saliency = saliency
        self.ior = ior
        self.ior_shape = ior_shape
        self.glimpse_method = glimpse_method
        self.transpose_glimpses = transpose_glimpses

    @property
    def dim_action(self) -> int:
        """Width of one action: 2, the relative ``(row, col)`` position."""
        return 2

    def _saliency_for(self, index: int, image: Tensor) -> Tensor | None:
        if self.saliency is None:
            return None
        if callable(self.saliency):
            raw = self.saliency(image)
        else:
            raw = self.saliency[index]
        saliency = torch.as_tensor(raw).float()
        if saliency.dim() == 3 and saliency.shape[0] == 1:
            saliency = saliency[0]
        if tuple(saliency.shape) != tuple(image.shape[-2:]):
            raise ValueError(
                f"saliency shape mismatch at index {index}: map {tuple(saliency.shape)} vs "
                f"image {tuple(image.shape[-2:])}; resize the maps to the images."
            )
        return saliency

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        index = check_index(index, len(self), "SaccadeSequences")
        image, label = self.load_image(index)
        height, width = image.shape[-2:]
        saliency = self._saliency_for(index, image)
        positions = sample_fixations(
            saliency,
            self.num_views,
            fovea=self.image_size,
            ior=self.ior,
            ior_shape=self.ior_shape,
            image_size=(height, width),
            generator=self.generator(index),
        )
        centres = positions
        if self.transpose_glimpses:
            if height != width:
                raise ValueError(
                    f"transpose_glimpses needs square images, got {height}x{width}; it only "
                    "exists to reproduce the official STL-10 code (96x96)."
                )
            centres = positions.flip(-1)
        views = extract_glimpses(image, centres, self.image_size, method=self.glimpse_method)
        normalised = positions.float() / torch.tensor([float(height), float(width)])
        return {
            "views": normalize(views, self._stats),
            "positions": normalised,
            "actions": position_deltas(normalised),
            "label": torch.as_tensor(label, dtype=torch.long),
            "image": normalize(image, self._stats),
        }
