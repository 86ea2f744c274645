"""The main job every training script runs: the output folder, the trainer, training, the
report, and the exit codes (0 done or stopped, 2 a checkpoint that cannot be resumed, 3 a
non-finite loss; bad arguments exit 1 before this, from the script's own checks)."""

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch.distributed as dist

from jepa_blocks.training.checkpoint import CheckpointError, ConfigMismatchError

__all__ = ["NonFiniteLossError", "RunnableTrainer", "default_out_dir", "prepare_out_dir", "run"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf and the script's NaN policy is to stop."""


class RunnableTrainer(Protocol):
    """What :func:`run` needs of a trainer (the examples' ``Trainer`` classes)."""

    dist: Any  # a Distributed

    def train(self) -> bool: ...
    def evaluate(self) -> dict[str, Any]: ...
    def train_metrics(self) -> dict[str, Any]: ...
    def report(self, metrics: dict[str, Any], *, evaluated: bool = True) -> None: ...


def default_out_dir(name: str) -> Path:
    """``runs/<name>-<date>-<time>``: a fresh folder per run, so one command run twice never
    mixes two runs' checkpoints (continuing a run names its folder with ``--out``)."""
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_out_dir(out: Path, resume: bool) -> Path:
    """Create ``out``; refuse (``SystemExit``) a folder holding an earlier run's checkpoints
    unless the run is resumed."""
    if not resume and any((out / "checkpoints").glob("ckpt-*.pt")):
        raise SystemExit(
            f"error: {out / 'checkpoints'} holds checkpoints of an earlier run; pass --resume to "
            "continue it, or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(
    build: Callable[[], RunnableTrainer],
    *,
    out: Path,
    evaluate: bool,
    summary: Callable[[Any], dict[str, Any]],
    describe: Callable[[Any], str],
    checksums: Callable[[Any], str],
    finish: Callable[[Any], None] | None = None,
) -> int:
    """Build the trainer (resuming if it was asked to), write ``OUT/config.json``
    (``summary(trainer)``, rank 0), train, and report: the evaluation with its table, or the
    training metrics alone; then ``finish(trainer)`` on rank 0 (e.g. an export).

    Returns:
        The exit code: 0 done or stopped by SIGTERM / ``--max-steps``, 2 a checkpoint that
        cannot be resumed (the message names the file and what differs), 3 a non-finite loss.
    """
    try:
        trainer = build()
    except (ConfigMismatchError, CheckpointError) as error:
        if dist.is_initialized():
            dist.destroy_process_group()
        print(f"error: cannot resume from {out / 'checkpoints'}: {error}", file=sys.stderr)
        return 2
    try:
        if trainer.dist.is_main:
            (out / "config.json").write_text(json.dumps(summary(trainer), indent=2))
            log.info("%s", describe(trainer))
        try:
            finished = trainer.train()
        except NonFiniteLossError as error:
            log.error("%s", error)
            return 3
        log.info("rank %d param checksum %s", trainer.dist.rank, checksums(trainer))
        if not finished:
            return 0
        if trainer.dist.is_main:
            if evaluate:
                trainer.report(trainer.evaluate())
            else:
                trainer.report(trainer.train_metrics(), evaluated=False)
            if finish is not None:
                finish(trainer)
        trainer.dist.barrier()
        return 0
    finally:
        trainer.dist.close()
