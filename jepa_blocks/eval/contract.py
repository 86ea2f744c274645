"""What evaluation needs from a model and from a loader, and the checked calls that use it.

Evaluation depends on a two-method contract, :class:`SequenceModel`, never on a concrete
class: ``encode`` runs the online encoder on every view and ``aggregate`` runs the sequence
aggregator on per-view embeddings and their actions (the last action is zeroed inside, as in
training). Extraction runs under :func:`eval_mode`: ``torch.no_grad`` with every submodule in
eval mode, each submodule's previous mode restored afterwards. The official code probed with
the backbone in train mode, so BatchNorm statistics drifted during evaluation (spec §7.4.3).

Loaders yield dict batches:

============ ===================== =================================================
key          shape                 meaning
============ ===================== =================================================
views        (b, m+1, c, hh, ww)   the views of a sequence, in order
actions      (b, m, da)            a_i takes view i to view i+1
label        (b,)                  class label (for classification probes)
latents      (b, m+1, >=3)         optional; per-view latents, Euler xyz first (3DIEBench)
============ ===================== =================================================

Other keys are moved to the device and handed to path-integration target functions.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from jepa_blocks._typing import Tensor

__all__ = ["SequenceModel", "eval_mode", "model_device"]

Batch = Mapping[str, Any]
"""One dict batch of a loader (see the module docstring)."""


@runtime_checkable
class SequenceModel(Protocol):
    """What evaluation needs from a model (an ``nn.Module`` that has these two methods).

    ``encode(views)``: ``(b, k, c, hh, ww) -> (b, k, dv)``, the online encoder on each view.

    ``aggregate(z, actions)``: ``(b, m, dv), (b, m, da) -> (b, d_agg)``, the invariant
    representation z_AGG of ``m`` view embeddings. ``actions[:, i]`` takes view i to view
    i + 1; the model zeroes the last token's action itself (spec §1.5), so evaluation may pass
    a zero placeholder there.
    """

    def encode(self, views: Tensor) -> Tensor: ...

    def aggregate(self, z: Tensor, actions: Tensor) -> Tensor: ...


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode under ``torch.no_grad``; each one's mode restored after.

    Restoring per submodule (not ``model.train(previous)``) keeps mixed states intact, e.g.
    a frozen backbone that was deliberately in eval mode inside a training model.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (else first buffer; the CPU if it has none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    return model_device(model) if device is None else torch.device(device)


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module) or not isinstance(model, SequenceModel):
        raise ValueError(
            f"model must be an nn.Module with encode(views) and aggregate(z, actions) methods "
            f"(the SequenceModel protocol), got {type(model).__name__}; wrap your model so "
            "evaluation can switch it to eval mode."
        )
    return model


def _check_lengths(name: str, values: Iterable[int]) -> tuple[int, ...]:
    """Positive ints, sorted and deduplicated."""
    values = tuple(values)
    for value in values:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be positive ints, got {values!r}.")
    return tuple(sorted(set(values)))


def _to_device(batch: Batch, device: torch.device) -> dict[str, Any]:
    if not isinstance(batch, Mapping):
        raise ValueError(
            f"loader must yield dict batches (views, actions, label, ...), got "
            f"{type(batch).__name__}."
        )
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, Tensor) else value
        for key, value in batch.items()
    }


def _check_batch(batch: dict[str, Any], *, need: Sequence[str]) -> tuple[int, int]:
    """Validate ``views`` and the keys in ``need``; return ``(rows, views per sequence)``."""
    for key in ("views", *need):
        if key not in batch:
            raise ValueError(
                f"batch is missing key {key!r} (has {sorted(batch)}); the loader must yield "
                "views (b, m+1, c, hh, ww), actions (b, m, da) and label (b,), plus latents "
                "(b, m+1, L) for rotation targets."
            )
    views = batch["views"]
    if views.dim() != 5:
        raise ValueError(
            f"batch['views'] must have shape (b, m+1, c, hh, ww), got {tuple(views.shape)}."
        )
    rows, num_views = views.shape[:2]
    if "actions" in need:
        actions = batch["actions"]
        if actions.dim() != 3 or actions.shape[:2] != (rows, num_views - 1):
            raise ValueError(
                f"batch['actions'] must have shape (b, m, da) = ({rows}, {num_views - 1}, da) "
                f"for {num_views} views, got {tuple(actions.shape)}."
            )
    if "label" in need and batch["label"].shape != (rows,):
        raise ValueError(
            f"batch['label'] must have shape (b,) = ({rows},), got "
            f"{tuple(batch['label'].shape)}."
        )
    if "latents" in need:
        latents = batch["latents"]
        if latents.dim() != 3 or latents.shape[:2] != (rows, num_views):
            raise ValueError(
                f"batch['latents'] must have shape (b, m+1, L) = ({rows}, {num_views}, L), "
                f"got {tuple(latents.shape)}."
            )
    return rows, num_views


def _shape_of(value: object) -> object:
    return tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__


def _encode(model: Any, views: Tensor) -> Tensor:
    """``model.encode(views)``, checked to be ``(b, k, dv)``."""
    z = model.encode(views)
    if not isinstance(z, Tensor) or z.dim() != 3 or z.shape[:2] != views.shape[:2]:
        raise ValueError(
            f"model.encode returned {_shape_of(z)} for views {tuple(views.shape)}; it must "
            f"return (b, k, dv) = ({views.shape[0]}, {views.shape[1]}, dv)."
        )
    return z


def _aggregate(model: Any, z: Tensor, actions: Tensor) -> Tensor:
    """``model.aggregate(z, actions)``, checked to be ``(b, d_agg)``."""
    out = model.aggregate(z, actions)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != z.shape[0]:
        raise ValueError(
            f"model.aggregate returned {_shape_of(out)} for z {tuple(z.shape)}; it must "
            f"return (b, d_agg) with b = {z.shape[0]}."
        )
    return out


def _cpu(value: Tensor) -> Tensor:
    return value.detach().float().cpu()


def _progress(items: Iterable[Any], *, desc: str, progress: bool) -> Any:
    """A tqdm bar over ``items`` (hidden when stderr is not a terminal, or ``progress=False``)."""
    return tqdm(items, desc=desc, disable=None if progress else True, leave=False)
