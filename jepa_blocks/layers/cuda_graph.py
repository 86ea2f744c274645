"""Capture a module's forward and backward as CUDA graphs, with an eager fallback.

Why it exists: seq-JEPA's aggregator attends over 5-9 tokens, so on a GPU its cost is kernel
launches, not FLOPs (anchors: a 3-layer aggregator runs 3.5x faster captured as one CUDA
graph). Triton-free, the lever is PyTorch's own :func:`torch.cuda.make_graphed_callables`,
which records the forward and the backward each as one graph and replays them inside a single
autograd node. :func:`graph_module` wraps it with the checks and the CPU fallback a library
block needs: on CPU (or with ``enabled=False``) the module comes back untouched, eager.

Requirements of a captured module (PyTorch's, restated):

* **Static shapes, dtypes and devices**: every call must pass tensors shaped exactly like
  ``sample_args``, in the same order, with the same ``requires_grad`` flags. Another shape
  (e.g. the last, smaller batch of an epoch) needs its own capture or ``drop_last=True``.
* Only tensors as arguments (no ``None``, no keyword arguments): capture the mask variant and
  the unmasked variant separately if both occur.
* The module's training mode at capture is the one that replays; in the other mode the
  module runs eagerly (``make_graphed_callables`` checks ``module.training`` per call).
* Outputs live in static buffers that the next replay overwrites: use them (loss, backward)
  before calling again, or ``.clone()`` them.
* Dropout and other RNG ops are fine: ``make_graphed_callables`` registers the CUDA generator
  with the graph, so each replay draws fresh random numbers (Philox offsets advance). The
  exception is :class:`~jepa_blocks.layers.attention.Attention` with ``core="online"`` and dropout,
  which draws its seed on the host and therefore refuses capture; use ``core="sdpa"``.
* Autocast must run with ``cache_enabled=False``; no host syncs (``.item()``) or
  data-dependent Python control flow inside the forward; no hooks on the module at capture;
  parameters and buffers may not be added or removed afterwards.
* ``make_graphed_callables`` replaces the module's ``forward`` in place: the returned module
  is the same object (same parameters, so an existing optimizer keeps working).
"""

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

__all__ = ["cuda_graph_supported", "graph_module"]

_M = TypeVar("_M", bound=nn.Module | Callable)


def _as_tuple(sample_args) -> tuple:
    return sample_args if isinstance(sample_args, tuple) else (sample_args,)


def cuda_graph_supported(sample_args: Tensor | tuple[Tensor, ...]) -> bool:
    """True when CUDA is available and every sample tensor lives on a CUDA device."""
    args = _as_tuple(sample_args)
    return (
        torch.cuda.is_available()
        and len(args) > 0
        and all(isinstance(a, Tensor) and a.is_cuda for a in args)
    )


def graph_module(
    module: _M,
    sample_args: Tensor | tuple[Tensor, ...],
    *,
    enabled: bool | None = None,
    num_warmup_iters: int = 3,
    allow_unused_input: bool = False,
    pool=None,
) -> _M:
    """Capture ``module``'s forward and backward as CUDA graphs, or return it eager.

    Args:
        module: an ``nn.Module`` or a plain callable taking tensors positionally.
        sample_args: a tensor or tuple of tensors shaped, typed and ``requires_grad``-flagged
            exactly like every later call's arguments (their values do not matter; the
            warm-up runs forward and backward on them).
        enabled: ``None`` (auto) captures only when CUDA is available and every sample tensor
            is on CUDA; ``False`` never captures; ``True`` captures or raises.
        num_warmup_iters: eager warm-up iterations on a side stream before capture (DDP
            needs 11).
        allow_unused_input: forwarded to ``make_graphed_callables`` (inputs that get no grad).
        pool: optional graph memory pool shared with other captures.

    Returns:
        The graphed module (the same object, ``forward`` replaced) or callable when capturing;
        otherwise ``module`` itself, unchanged.

    Raises:
        ValueError: a sample argument is not a tensor, or ``enabled=True`` without CUDA
            tensors, or ``num_warmup_iters < 1``.
    """
    args = _as_tuple(sample_args)
    for index, arg in enumerate(args):
        if not isinstance(arg, Tensor):
            raise ValueError(
                f"sample_args[{index}] is {type(arg).__name__}, but CUDA graph capture takes "
                "tensors only; wrap the module in a function that fixes the non-tensor "
                "arguments (e.g. lambda x: module(x, key_padding_mask=None))"
            )
    if num_warmup_iters < 1:
        raise ValueError(f"num_warmup_iters must be >= 1, got {num_warmup_iters}")
    supported = cuda_graph_supported(args)
    if enabled is None:
        enabled = supported
    elif enabled and not supported:
        devices = sorted({str(a.device) for a in args})
        raise ValueError(
            f"enabled=True needs CUDA and CUDA sample tensors, got devices {devices} "
            f"(torch.cuda.is_available()={torch.cuda.is_available()}); move the module and "
            "samples to CUDA, or pass enabled=None to fall back to eager execution"
        )
    if not enabled:
        return module
    return torch.cuda.make_graphed_callables(
        module,
        args,
        num_warmup_iters=num_warmup_iters,
        allow_unused_input=allow_unused_input,
        pool=pool,
    )
