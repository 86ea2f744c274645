"""torchrun's environment, or a single process: rank, world size, device, process group."""

import os

import torch
import torch.distributed as dist

__all__ = ["Distributed"]


class Distributed:
    """Read torchrun's ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (one process without them),
    pick the device and start the process group (NCCL on CUDA, gloo on the CPU).

    Args:
        device: ``"auto"`` (the local GPU if there is one, else the CPU), ``"cuda"``, ``"cpu"``
            or any device string.
    """

    def __init__(self, device: str = "auto") -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        wants_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if wants_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu" if device == "auto" else device)
        if self.world_size > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics and plots."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
