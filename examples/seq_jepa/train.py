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

import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from config import parse_args, resolve_config  # noqa: E402
from trainer import Trainer  # noqa: E402

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.training.run import default_out_dir, prepare_out_dir, run  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("seq_jepa")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv, description=__doc__)
    config = resolve_config(args)
    out = prepare_out_dir(args.out or default_out_dir(config.preset), args.resume)

    def summary(trainer: Trainer) -> dict:
        return {"train": asdict(config), "model": trainer.model_cfg.to_dict(),
                "world_size": trainer.dist.world_size, "library_version": jb.__version__}

    def describe(trainer: Trainer) -> str:
        return (f"{config.model.variant} on {trainer.device}: {len(trainer.data.train)} "
                f"sequences, {trainer.steps_per_epoch} steps/epoch, {config.epochs} epochs, "
                f"global batch {config.batch_size}")

    def export(trainer: Trainer) -> None:
        loader = trainer.export_encoder()
        if loader is not None:
            print(f"encoder for stock timm: {loader}")

    return run(
        lambda: Trainer(config, out, resume=args.resume),
        out=out,
        evaluate=config.evaluate,
        summary=summary,
        describe=describe,
        checksums=lambda trainer: "{} target checksum {}".format(*trainer.parameter_checksums()),
        finish=export,
    )


if __name__ == "__main__":
    sys.exit(main())
