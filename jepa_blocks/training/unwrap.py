"""The one way to reach the plain module inside training wrappers."""

from torch import nn

__all__ = ["unwrap_model"]


def unwrap_model(module: nn.Module) -> nn.Module:
    """The plain module under DDP / DataParallel (``.module``) and ``torch.compile``
    (``._orig_mod``), however they are nested."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel | nn.DataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module
