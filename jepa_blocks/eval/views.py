"""Per-view features: every view embedded once, for the ridge probes of :mod:`.ridge`.

:func:`extract_view_features` embeds views one by one (every view of a per-view dataset such
as :class:`~jepa_blocks.data.objects.RenderedObjects`, or every view of sequence batches), with
a :class:`~jepa_blocks.eval.contract.SequenceModel` or any image encoder; :class:`PooledPixels`
is the raw-pixel "encoder" whose probes are the floor of what the input itself holds.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.eval.contract import (
    Batch,
    SequenceModel,
    _cpu,
    _encode,
    _progress,
    _resolve_device,
    _shape_of,
    _to_device,
    eval_mode,
)

__all__ = ["ViewFeatures", "PooledPixels", "extract_view_features"]


@dataclass
class ViewFeatures:
    """Per-view embeddings and what the data say about each view (one row per view).

    Attributes:
        z: ``(N, dv)`` float32 embeddings.
        latents: ``(N, L)`` float32 per-view latents (Euler xyz first), ``None`` when the
            data carry none.
        objects: ``(N,)`` int64 id of the object each view shows (``object`` of per-view
            items, ``index`` of sequence items), or ``None``.
        labels: ``(N,)`` int64 class labels, or ``None``.
    """

    z: Tensor
    latents: Tensor | None = None
    objects: Tensor | None = None
    labels: Tensor | None = None


class PooledPixels(nn.Module):
    """Raw pixels as an "encoder": each channel average-pooled to at most ``size x size``,
    then flattened, ``(b, c, hh, ww) -> (b, c * size * size)``.

    The floor of what a probe finds in the input itself: pass it to
    :func:`extract_view_features` like a trained encoder. Pooling keeps a ridge on it cheap
    (768 features for RGB at ``size=16`` instead of 3,072 at 32 px, or 49,152 at 128 px) and
    keeps the image's layout; images no larger than ``size`` pass unchanged. No parameters.

    Raises:
        ValueError: ``size`` < 1.
    """

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1 (pixels per side), got {size!r}.")
        self.size = size

    @typecheck
    def forward(self, images: Float[Tensor, "b c hh ww"]) -> Float[Tensor, "b d"]:
        height, width = images.shape[-2:]
        pooled = F.adaptive_avg_pool2d(images, (min(self.size, height), min(self.size, width)))
        return einops.rearrange(pooled, "b c hh ww -> b (c hh ww)")


ViewSource = Tensor | Dataset | Iterable[Batch]


def _view_batches(
    data: ViewSource, batch_size: int, num_workers: int
) -> Iterable[Batch] | Iterable[Tensor]:
    if isinstance(data, Tensor):
        if data.dim() != 4:
            raise ValueError(
                f"images must have shape (N, c, hh, ww), got {tuple(data.shape)}; pass one "
                "image per view."
            )
        return (data[start : start + batch_size] for start in range(0, data.shape[0], batch_size))
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return data


def _embed_views(encoder: nn.Module, views: Tensor) -> Tensor:
    """``(b, k, c, hh, ww) -> (b, k, dv)`` with a sequence model's ``encode`` or a plain
    ``(b, c, hh, ww) -> (b, dv)`` module."""
    if isinstance(encoder, SequenceModel):
        return _encode(encoder, views)
    flat = einops.rearrange(views, "b k c hh ww -> (b k) c hh ww")
    z = encoder(flat)
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] != flat.shape[0]:
        raise ValueError(
            f"the encoder returned {_shape_of(z)} for images {tuple(flat.shape)}; it must return "
            f"(b, dv) = ({flat.shape[0]}, dv), or have encode(views) -> (b, k, dv)."
        )
    return einops.rearrange(z, "(b k) dv -> b k dv", b=views.shape[0])


def _views_of(batch: dict, device: torch.device) -> tuple[Tensor, str]:
    """The batch's views ``(b, k, c, hh, ww)`` and the key naming each row's object."""
    if "image" in batch:
        views = batch["image"].to(device)
        if views.dim() != 4:
            raise ValueError(
                f"batch['image'] must have shape (b, c, hh, ww), got {tuple(views.shape)}."
            )
        return views[:, None], "object"
    if "views" in batch:
        views = batch["views"]
        if views.dim() != 5:
            raise ValueError(
                f"batch['views'] must have shape (b, k, c, hh, ww), got {tuple(views.shape)}."
            )
        return views, "index" if "index" in batch else "object"
    raise ValueError(
        f"batch has neither 'image' (per-view items) nor 'views' (sequences); it has "
        f"{sorted(batch)}."
    )


def _latent_rows(latents: Tensor, per_view: tuple[int, ...]) -> Tensor:
    if latents.dim() != len(per_view) + 1 or latents.shape[:-1] != per_view:
        raise ValueError(
            f"batch['latents'] must have shape ({', '.join(map(str, per_view))}, L) (one row "
            f"per view), got {tuple(latents.shape)}."
        )
    return _cpu(latents.reshape(math.prod(per_view), -1))


def _id_rows(batch: dict, key: str, rows: int, num_views: int) -> Tensor | None:
    """``batch[key]`` (one id per item), repeated for each of the item's views."""
    if key not in batch:
        return None
    if batch[key].shape != (rows,):
        raise ValueError(
            f"batch[{key!r}] must have shape (b,) = ({rows},), got {tuple(batch[key].shape)}."
        )
    return batch[key].reshape(rows, 1).expand(rows, num_views).flatten().long().cpu()


def _batch_view_features(
    encoder: nn.Module, raw: Batch | Tensor, device: torch.device
) -> ViewFeatures:
    batch = {"image": raw} if isinstance(raw, Tensor) else _to_device(raw, device)
    views, object_key = _views_of(batch, device)
    rows, num_views = views.shape[:2]
    per_view = (rows,) if "image" in batch else (rows, num_views)
    latents = _latent_rows(batch["latents"], per_view) if "latents" in batch else None
    objects = _id_rows(batch, object_key, rows, num_views)
    labels = _id_rows(batch, "label", rows, num_views)
    z = _cpu(_embed_views(encoder, views).flatten(0, 1))
    return ViewFeatures(z, latents=latents, objects=objects, labels=labels)


def _concatenate_views(parts: list[ViewFeatures]) -> ViewFeatures:
    def cat(name: str) -> Tensor | None:
        present = [value for part in parts if (value := getattr(part, name)) is not None]
        if not present:
            return None
        if len(present) != len(parts):
            raise ValueError(
                f"only some batches carry {name}; every batch must carry the same keys."
            )
        return torch.cat(present)

    return ViewFeatures(
        z=torch.cat([part.z for part in parts]), latents=cat("latents"), objects=cat("objects"),
        labels=cat("labels"),
    )


def extract_view_features(
    encoder: nn.Module,
    data: ViewSource,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "view features",
) -> ViewFeatures:
    """Embed every view of ``data`` once (encoder in eval mode under ``no_grad``, each
    submodule's mode restored afterwards), in batches.

    ``encoder`` is either a :class:`SequenceModel` (its ``encode`` is used) or any module
    mapping images ``(b, c, hh, ww)`` to ``(b, dv)`` (a backbone, :class:`PooledPixels`).
    ``data`` is one of

    - an image tensor ``(N, c, hh, ww)`` (then only ``z`` is returned);
    - a map-style per-view dataset whose items are dicts with ``image`` ``(c, hh, ww)`` and
      optionally ``latents`` ``(L,)``, ``object`` and ``label`` (e.g.
      :class:`~jepa_blocks.data.objects.RenderedObjects`, whose items are already
      normalised); it is batched here in order, with ``num_workers`` workers;
    - an iterable of such batches (``image`` ``(b, c, hh, ww)``, ...), or of sequence batches
      (``views`` ``(b, k, c, hh, ww)``, optional ``latents`` ``(b, k, L)``, ``index`` (the
      object), ``label``), whose every view becomes a row, sequence by sequence; a
      map-style sequence dataset is batched the same way.

    Returns:
        :class:`ViewFeatures`, float32 and int64 on the CPU; ``latents``, ``objects`` and
        ``labels`` are ``None`` unless every batch carries them.

    Raises:
        ValueError: a non-positive ``batch_size``, images that are not ``(N, c, hh, ww)``,
            batches with neither ``image`` nor ``views`` or with mismatched shapes, batches
            that carry different keys, an encoder output of the wrong shape, or no views.
    """
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"encoder must be an nn.Module (a SequenceModel or an image -> (b, dv) module), "
            f"got {type(encoder).__name__}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    target_device = _resolve_device(encoder, device)
    with eval_mode(encoder):
        batches = _view_batches(data, batch_size, num_workers)
        parts = [
            _batch_view_features(encoder, raw, target_device)
            for raw in _progress(batches, desc=desc, progress=progress)
        ]
    if not parts:
        raise ValueError("the data yielded no views; pass a non-empty dataset or loader.")
    return _concatenate_views(parts)
