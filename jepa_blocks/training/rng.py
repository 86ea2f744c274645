"""Capture and restore every random number generator a run uses, for exact resume:
Python's ``random``, NumPy's global generator, torch's CPU and CUDA generators, and any
named ``torch.Generator`` of the caller (a sampler's, a loader's)."""

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from jepa_blocks.training.serialization import kind_name

__all__ = ["capture_rng_state", "restore_rng_state"]

logger = logging.getLogger(__name__)


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict:
    """Snapshot every random number generator that can influence training.

    Args:
        generators: named ``torch.Generator`` objects in play besides the global ones
            (a sampler's, a dataset's), saved under their names.

    Returns:
        ``{"python", "numpy", "torch", "cuda", "generators"}``, readable with
        ``torch.load(weights_only=True)``: Python's ``random`` state as a list of ints,
        numpy's legacy global MT19937 state with its key as an int64 tensor, torch's CPU
        state, one state per visible CUDA device (empty when CUDA is unavailable) and one
        per named generator.
    """
    generators = dict(generators or {})
    for name, gen in generators.items():
        if type(name) is not str or not isinstance(gen, torch.Generator):
            raise ValueError(
                f"generators must map names (str) to torch.Generator objects, got "
                f"{name!r}: {kind_name(gen)}; pass e.g. {{'sampler': sampler.generator}}."
            )
    version, mt_state, gauss_next = random.getstate()
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": {
            "version": int(version),
            "state": [int(v) for v in mt_state],
            "gauss_next": gauss_next,
        },
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "generators": {name: gen.get_state() for name, gen in generators.items()},
    }


def restore_rng_state(
    state: Mapping[str, Any], *, generators: Mapping[str, torch.Generator] | None = None
) -> None:
    """Put every generator back to a :func:`capture_rng_state` snapshot.

    Args:
        state: the snapshot (tensors may live on any device; they are moved to CPU).
        generators: the live generators to restore, by the names used at capture. Names in
            ``state`` that are not passed here are left alone.

    Raises:
        ValueError: if ``state`` lacks a section or a requested generator, or a state is
            rejected (wrong size, wrong device); nothing has changed then (a part-way
            failure puts the previous states back before raising).

    CUDA states are restored for ``min(saved, visible)`` devices, with a warning when the
    counts differ (resuming on another machine cannot be bit-exact then).
    """
    missing = [k for k in ("python", "numpy", "torch", "cuda", "generators") if k not in state]
    if missing:
        raise ValueError(
            f"RNG state lacks {missing}; pass the dict returned by capture_rng_state() "
            "(e.g. payload['state']['rng'])."
        )
    generators = dict(generators or {})
    absent = sorted(set(generators) - set(state["generators"]))
    if absent:
        raise ValueError(
            f"RNG state has no generator named {absent} (saved: "
            f"{sorted(state['generators'])}); pass the same names to capture_rng_state() "
            "when saving."
        )
    snapshot = capture_rng_state(generators)
    try:
        _set_rng_state(state, generators)
    except Exception as err:
        _set_rng_state(snapshot, generators)
        raise ValueError(
            f"RNG state could not be restored ({type(err).__name__}: {err}); every generator "
            "was put back as it was. Pass an unmodified capture_rng_state() snapshot, with "
            "generators of the same device as when it was captured."
        ) from err
    except BaseException:
        _set_rng_state(snapshot, generators)
        raise


def _set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    for name, gen in generators.items():
        gen.set_state(state["generators"][name].cpu())
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    keys = numpy_state["keys"]
    keys = keys.cpu().numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state(
        (
            numpy_state["bit_generator"],
            keys.astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    python_state = state["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["state"]), python_state["gauss_next"])
    )
    saved_cuda = list(state["cuda"])
    if saved_cuda and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count != len(saved_cuda):
            logger.warning(
                "RNG state holds %d CUDA device state(s) but %d device(s) are visible; "
                "restoring the first %d, so resume is not bit-exact on the others.",
                len(saved_cuda),
                count,
                min(count, len(saved_cuda)),
            )
        for index, cuda_state in enumerate(saved_cuda[:count]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device=index)
    elif saved_cuda:
        logger.warning(
            "RNG state holds %d CUDA device state(s) but CUDA is not available; CUDA "
            "generators are not restored.",
            len(saved_cuda),
        )
