"""A resumable, distributed-aware sampler: the same shuffled order for a given (seed, epoch),
sharded across ranks, and able to start mid-epoch.

``DistributedSampler`` reshuffles with ``set_epoch`` but cannot start at a batch offset, so a
run resumed mid-epoch would either repeat or skip data. Here the order is a pure function of
``(seed, epoch)``; ``set_position(epoch, start)`` skips the first ``start`` samples of this
rank's shard without loading them, so a resumed run sees exactly the batches it would have.
"""

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    """Shuffled (or ordered) indices of ``dataset_size`` items, sharded ``rank::num_replicas``.

    Args:
        dataset_size: number of items.
        shuffle: a fresh permutation per epoch (from ``seed`` and the epoch).
        seed: the base seed; every rank must use the same one.
        num_replicas, rank: the data-parallel world (1, 0 for a single process).
        drop_last: drop the tail so every rank gets the same number of *full* samples;
            otherwise the order is padded by wrapping around, as ``DistributedSampler`` does.

    Raises:
        ValueError: an empty dataset, or a rank outside ``[0, num_replicas)``.
    """

    def __init__(
        self,
        dataset_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if dataset_size < 1:
            raise ValueError(
                f"dataset_size must be >= 1, got {dataset_size}; the dataset is empty."
            )
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, num_replicas={num_replicas}).")
        self.dataset_size, self.shuffle, self.seed = dataset_size, shuffle, seed
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        if drop_last:
            self.per_rank = dataset_size // num_replicas
            if self.per_rank == 0:
                raise ValueError(
                    f"{dataset_size} items cannot give each of {num_replicas} ranks one sample "
                    "with drop_last=True."
                )
        else:
            self.per_rank = math.ceil(dataset_size / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and start from its beginning."""
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, start: int) -> None:
        """Start ``epoch`` at this rank's ``start``-th sample (for resuming mid-epoch)."""
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} is outside [0, {self.per_rank}] for this rank.")
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.dataset_size, generator=generator).tolist()
        else:
            order = list(range(self.dataset_size))
        total = self.per_rank * self.num_replicas
        if total > len(order):
            order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[:total]

    def __iter__(self) -> Iterator[int]:
        shard = self._order()[self.rank :: self.num_replicas]
        return iter(shard[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start
