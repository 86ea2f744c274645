"""Assertions shared by the block tests (``test_block_contract.py`` runs every public block
through them; the per-block test files use them for their own variants)."""

from collections.abc import Iterator
from contextlib import contextmanager

import jaxtyping
import torch
from torch import Tensor, nn

__all__ = ["assert_every_parameter_gets_a_gradient", "assert_gets_a_gradient"]


def assert_gets_a_gradient(name: str, tensor: Tensor, *, nonzero: bool = True) -> None:
    """``tensor.grad`` exists, is finite and (with ``nonzero``) is non-zero somewhere."""
    assert tensor.grad is not None, f"no gradient reached {name}"
    assert torch.isfinite(tensor.grad).all(), f"non-finite gradient in {name}"
    if nonzero:
        assert tensor.grad.abs().sum() > 0, f"the gradient of {name} is zero everywhere"


def assert_every_parameter_gets_a_gradient(module: nn.Module, *, nonzero: bool = True) -> None:
    """After a backward pass from a scalar of ``module``'s outputs, every trainable parameter
    has a finite gradient that is non-zero somewhere.

    Use a scalar that depends on every output unit non-uniformly (e.g. a random projection):
    the plain sum of a LayerNorm's output is its bias alone, which starves the layers below.

    Args:
        module: the module whose parameters are checked (frozen ones are skipped).
        nonzero: also require a non-zero gradient; pass ``False`` only where a parameter
            legitimately gets an all-zero gradient from this particular scalar.
    """
    trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    assert trainable, f"{type(module).__name__} has no trainable parameter to check"
    missing = [name for name, p in trainable if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    non_finite = [name for name, p in trainable if not torch.isfinite(p.grad).all()]
    assert not non_finite, f"non-finite gradients in {non_finite}"
    if nonzero:
        zero = [name for name, p in trainable if not p.grad.abs().sum() > 0]
        assert not zero, f"the gradients of {zero} are zero everywhere"


@contextmanager
def typecheck_off() -> Iterator[None]:
    """The test session checks jaxtyping annotations at runtime (conftest.py), and dynamo
    cannot trace the checks (a custom isinstance on tensors). Users compile with the switch
    off (the default), i.e. the undecorated forwards, which is what this traces."""
    previous = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", previous)
