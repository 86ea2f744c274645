"""The epoch loop every training script shares: resumable position, logging flushes, periodic
and epoch-end checkpoints, and stops (SIGTERM, ``max_steps``) that every DDP rank agrees on.

A script subclasses :class:`EpochLoop` and writes only what is its own: how one step goes
(:meth:`EpochLoop.train_step`), what a logged row holds (:meth:`EpochLoop.record`), and what a
checkpoint holds (its ``state_dict``, which includes :meth:`EpochLoop.loop_state`).

The subclass sets, before :meth:`EpochLoop.train` runs: ``config`` (with ``epochs``,
``log_every``, ``save_every_steps``, ``save_every_epochs``, ``max_steps``, ``progress`` and
``num_workers``), ``dist`` (:class:`~jepa_blocks.training.Distributed`), ``device``,
``dataset`` (a dataset with ``set_epoch``), ``sampler`` (a
:class:`~jepa_blocks.data.sampler.ResumableSampler`), ``batch_per_rank``,
``loader_generator``, ``steps_per_epoch``, ``total_steps``, ``checkpoints`` (a
:class:`~jepa_blocks.training.CheckpointManager`) and ``out``.
"""

import logging
import signal
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

__all__ = ["EpochLoop"]

log = logging.getLogger(__name__)


class EpochLoop:
    """Epochs of a resumable sampler, one optimiser step per batch (see the module)."""

    def init_loop(self) -> None:
        """The loop's position and records at the start of a run (call in ``__init__``)."""
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []  # one row per logged optimiser step
        self.train_seconds = 0.0
        self.stop_requested = False

    def loop_state(self) -> dict[str, Any]:
        """The position, history and training time, for the checkpoint."""
        return {
            "position": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
            },
            "history": self.history,
            "train_seconds": self.train_seconds,
        }

    def load_loop_state(self, state: dict[str, Any]) -> None:
        position = state["position"]
        self.epoch = position["epoch"]
        self.step_in_epoch = position["step_in_epoch"]
        self.global_step = position["global_step"]
        self.history = list(state["history"])
        self.train_seconds = float(state["train_seconds"])

    # -------------------------------------------------------------- what a script writes

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimiser step on ``batch``; returns the (detached) loss."""
        raise NotImplementedError

    def step_context(self) -> tuple:
        """Values read before the step and logged with it (e.g. the learning rate)."""
        return ()

    def record(self, pending: list[tuple]) -> None:
        """Append the rows of ``pending`` ``(step, loss, *step_context)`` to ``history``
        (one host sync per logging interval); raise to stop on a non-finite loss."""
        raise NotImplementedError

    def progress_postfix(self) -> dict[str, str]:
        """Shown on the progress bar after each flush."""
        return {"loss": f"{self.history[-1]['loss']:.4f}"} if self.history else {}

    def interlude_due(self) -> bool:
        """Whether :meth:`interlude` runs after this step."""
        return False

    def interlude(self) -> None:
        """Untimed work between two steps (e.g. an evaluation point), after the pending
        losses are recorded."""

    def epoch_metric(self) -> float | None:
        """The metric recorded with an epoch-end checkpoint (for "best"), or None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    # -------------------------------------------------------------- the shared machinery

    def save(self, metric: float | None = None) -> None:
        """Rank 0 writes a checkpoint; every rank waits for it."""
        if self.dist.is_main:
            path = self.checkpoints.save(
                self.state_dict(), step=self.global_step, epoch=self.epoch, metric=metric
            )
            log.info("saved %s", path)
        self.dist.barrier()

    def saves_after_epoch(self, epoch: int) -> bool:
        """Whether a checkpoint is written when ``epoch`` epochs are complete."""
        return epoch % self.config.save_every_epochs == 0 or epoch == self.config.epochs

    def loader(self) -> DataLoader:
        """This epoch's batches from the current position on (mid-epoch after a resume)."""
        self.dataset.set_epoch(self.epoch)
        self.sampler.set_position(self.epoch, self.step_in_epoch * self.batch_per_rank)
        return DataLoader(
            self.dataset,
            batch_size=self.batch_per_rank,
            sampler=self.sampler,
            num_workers=self.config.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator,  # keeps the global RNG (dropout) untouched
        )

    def should_stop(self) -> bool:
        """SIGTERM or ``max_steps``. Under torchrun the ranks agree (an all-reduce at logging
        intervals), so they all save and leave at the same step."""
        config = self.config
        # A limit at (or past) the run's last step is no interruption: the run completes.
        if config.max_steps and config.max_steps <= self.global_step < self.total_steps:
            return True
        if not self.dist.enabled:
            return self.stop_requested
        if self.global_step % config.log_every != 0:
            return False
        flag = torch.tensor([float(self.stop_requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _flush(self, pending: list[tuple]) -> None:
        if pending:
            self.record(pending)
            pending.clear()

    def train(self) -> bool:
        """Run to the end (True) or until stopped by SIGTERM / ``max_steps`` (False)."""

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        config = self.config
        progress = None
        if self.dist.is_main and config.progress:
            from tqdm.auto import tqdm

            progress = tqdm(
                total=self.total_steps, initial=self.global_step, desc="train", unit="step",
                dynamic_ncols=True,
            )
        pending: list[tuple] = []
        try:
            while self.epoch < config.epochs:
                started = time.perf_counter()
                for batch in self.loader():
                    context = self.step_context()
                    loss = self.train_step(batch)
                    pending.append((self.global_step, loss, *context))
                    self.global_step += 1
                    self.step_in_epoch += 1
                    if progress is not None:
                        progress.update(1)
                    if len(pending) >= config.log_every:
                        self._flush(pending)
                        if progress is not None:
                            progress.set_postfix(self.progress_postfix())
                    if self.interlude_due():
                        self._flush(pending)
                        self.train_seconds += time.perf_counter() - started
                        self.interlude()
                        started = time.perf_counter()
                    interrupted = self.should_stop()
                    # At an epoch's last step the epoch-end save (if due) follows at once:
                    # one write of the same step is enough.
                    epoch_save_follows = self.step_in_epoch == self.steps_per_epoch and (
                        self.saves_after_epoch(self.epoch + 1)
                    )
                    periodic = (
                        config.save_every_steps
                        and self.global_step % config.save_every_steps == 0
                        and not epoch_save_follows
                    )
                    if interrupted or periodic:
                        self._flush(pending)
                        self.train_seconds += time.perf_counter() - started
                        started = time.perf_counter()
                        self.save()
                    if interrupted:
                        if self.dist.is_main:
                            reason = "a stop signal" if self.stop_requested else "--max-steps"
                            log.warning(
                                "stopped by %s at step %d; resume with --out %s --resume",
                                reason, self.global_step, self.out,
                            )
                        return False
                self._flush(pending)
                self.train_seconds += time.perf_counter() - started
                self.epoch += 1
                self.step_in_epoch = 0
                if self.saves_after_epoch(self.epoch):
                    self.save(metric=self.epoch_metric())
        finally:
            if progress is not None:
                progress.close()
        return True
