"""Train seq-JEPA (or an ablation, the BYOL baseline, or seq-JEPA with SIGReg in place of the
EMA target), evaluate it, and report.

    python examples/seq_jepa/train.py                       # demo: built-in data, CPU, < 10 min
    python examples/seq_jepa/train.py --preset smoke        # seconds
    python examples/seq_jepa/train.py --preset paper-3diebench --data-dir /data/3DIEBench
    torchrun --nproc-per-node 4 examples/seq_jepa/train.py --preset paper-cifar100 --data-dir ...
    python examples/seq_jepa/train.py --out runs/demo --resume   # continue exactly

Follows the paper where the official code departs from it (spec §3.3, §7): AdamW with weight
decay 1e-3 on weights (not biases/norms), linear warm-up from ``initial_lr`` then a cosine
to ``final_lr`` (the official code's cosine is overwritten by a constant LR), a real DDP
wrapper under torchrun (the official ``--distributed`` trains independent models), workers
seeded per (seed, epoch, index), probes on a backbone in eval mode.

Writes ``OUT/config.json``, ``OUT/metrics.json`` (the loss history; the collapse monitor's
gauges every ``--monitor-every`` steps, a ``CollapseWarning`` when one crosses; probe results
unless ``--no-evaluate``, each R^2 beside its floors: the same probe on the run's untrained
initialisation, and on pixels for the ridge probes), ``OUT/curves.png`` (after an
evaluation), ``OUT/checkpoints/`` (atomic, last K and best; ``--resume`` continues from the
newest valid one with identical losses) and ``OUT/encoder.safetensors`` (the trained encoder
for stock ``timm.create_model``; the call that loads it is printed).
SIGTERM saves a checkpoint and exits cleanly. Exit codes: 0 done or stopped, 1 bad
arguments or data, 2 a checkpoint that cannot be resumed, 3 a non-finite loss.

The pieces: ``config.py`` (flags, presets, checks), ``trainer.py`` (the loop, resume,
monitor, report), ``model.py``, ``data.py``, ``evaluate.py`` (the paper's protocol).
"""

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from config import parse_args, resolve_config  # noqa: E402
from trainer import NonFiniteLossError, Trainer  # noqa: E402

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.training import CheckpointError, ConfigMismatchError  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("seq_jepa")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv, description=__doc__)
    config = resolve_config(args)
    # A fresh directory per run by default, so running the same command twice never mixes
    # two runs' checkpoints; continuing a run names its directory with --out ... --resume.
    out = args.out or Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.resume and any((out / "checkpoints").glob("ckpt-*.pt")):
        raise SystemExit(
            f"error: {out / 'checkpoints'} holds checkpoints of an earlier run; pass --resume to "
            "continue it, or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(config, out, resume=args.resume)
    except (ConfigMismatchError, CheckpointError) as error:
        # Only --resume reads checkpoints; the message names the file and what differs.
        if dist.is_initialized():
            dist.destroy_process_group()
        print(f"error: cannot resume from {out / 'checkpoints'}: {error}", file=sys.stderr)
        return 2
    try:
        if trainer.dist.is_main:
            summary = {"train": asdict(config), "model": trainer.model_cfg.to_dict(),
                       "world_size": trainer.dist.world_size, "library_version": jb.__version__}
            (out / "config.json").write_text(json.dumps(summary, indent=2))
            log.info(
                "%s on %s: %d sequences, %d steps/epoch, %d epochs, global batch %d",
                config.model.variant, trainer.device, len(trainer.data.train),
                trainer.steps_per_epoch, config.epochs, config.batch_size,
            )
        try:
            finished = trainer.train()
        except NonFiniteLossError as error:
            log.error("%s", error)
            return 3
        log.info("rank %d param checksum %s target checksum %s",
                 trainer.dist.rank, *trainer.parameter_checksums())
        if not finished:
            return 0
        if trainer.dist.is_main:
            if config.evaluate:
                trainer.report(trainer.evaluate())
            else:
                trainer.report(trainer.train_metrics(), evaluated=False)
            loader = trainer.export_encoder()
            if loader is not None:
                print(f"encoder for stock timm: {loader}")
        trainer.dist.barrier()
        return 0
    finally:
        trainer.dist.close()


if __name__ == "__main__":
    sys.exit(main())
