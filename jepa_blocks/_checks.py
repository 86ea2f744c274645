"""Input checks shared by the blocks (private)."""

import torch
from torch import Tensor


def require_finite(name: str, value: Tensor, fix: str) -> None:
    """Raise ``ValueError`` naming ``name`` and ``fix`` when ``value`` holds NaN or Inf.

    A host sync on CUDA, so it is skipped while compiling or capturing a CUDA graph, where it
    cannot run.
    """
    if torch.compiler.is_compiling():
        return
    if value.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or Inf values; {fix}")


def require_positive_ints(**values: object) -> None:
    """Raise ``ValueError`` naming the first value that is not a positive int (bools are not
    ints here), e.g. ``require_positive_ints(dim=dim, heads=heads)``."""
    for name, value in values.items():
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
