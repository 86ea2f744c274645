"""Small helpers every training script needs for its outputs and its DDP sanity checks."""

import hashlib
import math
from typing import Any

import torch
from torch import nn

__all__ = ["finite_or_null", "parameter_checksum", "precision_dtype"]


def parameter_checksum(module: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of the parameters' names and exact bytes, for checking
    that DDP ranks hold the same weights. Buffers are left out: BN running statistics come from
    each rank's own shard and differ."""
    sha = hashlib.sha256()
    for name, param in sorted(module.named_parameters(), key=lambda item: item[0]):
        sha.update(name.encode())
        sha.update(param.detach().cpu().contiguous().flatten().view(torch.uint8).numpy())
    return sha.hexdigest()[:16]


def finite_or_null(value: Any) -> Any:
    """NaN and Inf become ``None`` (``null``), recursively, so that a metrics file stays strict
    JSON (``json.dumps`` would write a bare ``NaN`` that most JSON readers reject)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``"fp32"`` (None: no autocast), ``"bf16"``, ``"fp16"`` or
    ``"auto"`` (bf16 on CUDA, fp32 elsewhere).

    Raises:
        ValueError: another name.
    """
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}.")
    return dtypes[precision]
