"""The axis legend, jaxtyping aliases and the one runtime type-check switch.

Axis legend (one vocabulary across the package):

====== ==============================================================
axis   meaning
====== ==============================================================
b      batch (sequences in a batch)
m      views (observation tokens) in a sequence; ``m + 1`` with the target
n      tokens seen by attention (``m`` plus the [AGG] token); in the regularisers,
       losses and monitors on embeddings (SIGReg, VICReg, CollapseMonitor): samples
h      attention heads
dh     width of one head (``dim // heads``)
d      model width of a block (``dim``)
dv     view-embedding width (encoder output, 512 for ResNet-18)
da     raw action width (4 for a quaternion, 2 for a position delta, ...)
de     action-embedding width (128 in the paper)
dc     conditioning width of a predictor
p      parameters of a transformation (crop i, j, h, w, jitter, blur, ...)
c      image channels; ``hh``, ``ww`` image height and width
views  views stacked on the first axis of a regulariser's input (mean over them)
vg, vl global and local views (LeJEPA)
slices SIGReg's projection directions (``num_slices``)
knots  SIGReg's integration knots
k      target blocks of a mask sampler (``MultiBlockMasks``, ``TubeMasks``)
L      kept tokens after :func:`~jepa_blocks.masks.gather_tokens` (the batch's largest
       kept count; shorter rows padded)
a      coordinate axes of a position (2: row, col; 3: frame, row, col)
====== ==============================================================

Runtime checking: every public forward is wrapped in :func:`typecheck`. With the environment
variable ``JEPA_BLOCKS_TYPECHECK=1`` set before ``jepa_blocks`` is imported, jaxtyping and
beartype check every annotated tensor argument and return (shape, rank and dtype) and raise
``jaxtyping.TypeCheckError`` on a mismatch. Unset (the default), the decorator returns the
function unchanged, so checking costs nothing; ``benchmarks/typecheck.py`` measures the cost.
"""

import os
from collections.abc import Callable
from typing import TypeVar

from jaxtyping import Bool, Float, Int, Shaped, jaxtyped
from torch import Tensor

__all__ = [
    "Bool",
    "Float",
    "Int",
    "Shaped",
    "Tensor",
    "TYPECHECK_ENV",
    "typecheck",
    "typecheck_enabled",
]

TYPECHECK_ENV = "JEPA_BLOCKS_TYPECHECK"

_F = TypeVar("_F", bound=Callable)


def typecheck_enabled() -> bool:
    """Whether runtime shape/dtype checking is on (read from the environment at import)."""
    return _ENABLED


def _read_switch() -> bool:
    value = os.environ.get(TYPECHECK_ENV, "0").strip().lower()
    return value in ("1", "true", "yes", "on")


_ENABLED = _read_switch()


def typecheck(fn: _F) -> _F:
    """Check ``fn``'s jaxtyping annotations at call time when the switch is on; else a no-op."""
    if not _ENABLED:
        return fn
    from beartype import beartype

    return jaxtyped(typechecker=beartype)(fn)
