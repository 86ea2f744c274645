"""Train LeJEPA on the built-in rendered objects, evaluate it, and report.

    python examples/lejepa/train.py                        # demo: CPU, under 10 minutes
    python examples/lejepa/train.py --preset smoke         # seconds
    python examples/lejepa/train.py --out runs/lejepa --resume      # continue exactly
    torchrun --nproc-per-node 2 examples/lejepa/train.py --preset smoke --device cpu

LeJEPA (Balestriero & LeCun, arXiv 2511.08544, Algorithm 2) from the library's blocks: a timm
backbone through ``create_backbone``, a BN-MLP projector, global and local views from the
parameter-returning augmentations, ``LeJEPALoss`` (invariance to the mean of the global views
plus ``lam`` times SIGReg, every view in both terms; no EMA teacher, no stop-gradient, no
predictor). AdamW with a linear warm-up then a cosine to ``lr * final_lr_ratio``.

During training the backbone is probed every ``--eval-every`` steps (linear probe, kNN and
RankMe on held-out objects; step 0 is the untrained network), which gives the paper's
loss-accuracy correlation. At the end the same probes run again, longer, on the trained
network and on an untrained copy (the random-init floors).

Writes ``OUT/config.json``, ``OUT/metrics.json`` (probes and floors, the evaluation points,
the Spearman correlations, the loss history with both terms), ``OUT/curves.png`` and
``OUT/checkpoints/`` (atomic, the last K; ``--resume`` continues from the newest valid one
and logs the losses the uninterrupted run would have). SIGTERM saves a checkpoint and exits.
Exit codes: 0 done or stopped, 1 bad arguments, 2 a checkpoint that cannot be resumed, 3 a
non-finite loss. Under torchrun ``--batch-size`` is the global batch, split over the ranks;
SIGReg averages its characteristic function over the ranks, so the step is the one a single
process would take on the whole batch (up to the per-rank BatchNorm statistics).
"""

import argparse
import difflib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import timm
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lejepa_data import DataBundle, build_data  # noqa: E402
from lejepa_model import LeJEPAConfig, build_loss, build_model  # noqa: E402
from lejepa_presets import OPERATIONAL_FIELDS, PRESETS, TrainConfig  # noqa: E402
from lejepa_report import (  # noqa: E402
    format_results_table,
    loss_accuracy_correlation,
    plot_curves,
)

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.data.objects import NUISANCES, SIZE_PRESETS  # noqa: E402
from jepa_blocks.data.sampler import ResumableSampler  # noqa: E402
from jepa_blocks.eval import fit_linear_probe, knn_top1, rankme  # noqa: E402
from jepa_blocks.training import (
    CheckpointManager,
    Distributed,
    EpochLoop,
    adamw,
    capture_rng_state,
    finite_or_null,
    load_optimizer_state,  # noqa: E402
    parameter_checksum,
    precision_dtype,
    restore_rng_state,
    warmup_cosine,
)
from jepa_blocks.training.run import (  # noqa: E402
    NonFiniteLossError,
    default_out_dir,
    prepare_out_dir,
    run,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("lejepa")

#: How many of the last logged steps the "final loss" of the report averages.
FINAL_WINDOW = 20


# ----------------------------------------------------------------------------- configuration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="demo", help=f"one of {sorted(PRESETS)}")
    parser.add_argument(
        "--out", type=Path, help="output directory (default runs/lejepa-<preset>-<date>-<time>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    for f in fields(TrainConfig):
        if f.name in ("preset", "extra"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {int: int, float: float}.get(f.type, str)  # type: ignore[call-overload]
            parser.add_argument(flag, type=kind, default=None)
    return parser.parse_args(argv)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"error: {message}")


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Preset, then command-line overrides; every bad value stops here, before any work."""
    _require(
        args.preset in PRESETS,
        f"unknown preset {args.preset!r}; choose one of {', '.join(sorted(PRESETS))}.",
    )
    values: dict[str, Any] = {"preset": args.preset, **PRESETS[args.preset]}
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    c = TrainConfig(**values)
    _require(
        c.monitor_every >= 0,
        f"--monitor-every must be >= 0 (0 turns the collapse monitor off), got {c.monitor_every}.",
    )
    _require(
        c.objects_size in SIZE_PRESETS,
        f"--objects-size must be one of {', '.join(SIZE_PRESETS)}, got {c.objects_size!r}.",
    )
    _require(
        c.nuisances in NUISANCES,
        f"--nuisances must be one of {', '.join(NUISANCES)}, got {c.nuisances!r}.",
    )
    _require(
        c.views_from in ("image", "object"),
        f"--views-from must be 'image' or 'object', got {c.views_from!r}.",
    )
    _require(16 <= c.image_size <= 256, f"--image-size must be in [16, 256], got {c.image_size}.")
    _require(
        8 <= c.local_size <= c.image_size,
        f"--local-size must be in [8, --image-size={c.image_size}], got {c.local_size}.",
    )
    _require(
        c.num_global >= 1 and c.num_local >= 0,
        f"need --num-global >= 1 and --num-local >= 0, got {c.num_global} and {c.num_local}.",
    )
    _require(
        0 < c.global_scale_min <= 1 and 0 < c.local_scale_min <= c.local_scale_max <= 1,
        "crop scales must satisfy 0 < --global-scale-min <= 1 and 0 < --local-scale-min <= "
        f"--local-scale-max <= 1, got {c.global_scale_min}, {c.local_scale_min}, "
        f"{c.local_scale_max}.",
    )
    _require(0.0 <= c.lam <= 1.0, f"--lam must be in [0, 1] (paper: 0.05), got {c.lam}.")
    _require(c.lr > 0, f"--lr must be positive, got {c.lr}.")
    _require(
        0 < c.final_lr_ratio <= 1, f"--final-lr-ratio must be in (0, 1], got {c.final_lr_ratio}."
    )
    _require(c.epochs >= 1, f"--epochs must be >= 1, got {c.epochs}.")
    _require(c.batch_size >= 2, f"--batch-size must be >= 2 (SIGReg, BatchNorm), got "
             f"{c.batch_size}.")
    _require(c.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {c.warmup_steps}.")
    _require(c.eval_every >= 0, f"--eval-every must be >= 0 (0: no evaluation points), got "
             f"{c.eval_every}.")
    _require(
        min(c.eval_probe_epochs, c.probe_epochs, c.probe_batch_size, c.knn_k, c.log_every,
            c.save_every_epochs, c.keep_last) >= 1,
        "--eval-probe-epochs, --probe-epochs, --probe-batch-size, --knn-k, --log-every, "
        "--save-every-epochs and --keep-last must be >= 1.",
    )
    _require(c.threads >= 0, f"--threads must be >= 0 (0: torch's default), got {c.threads}.")
    _require(
        c.precision in ("auto", "fp32", "bf16"),
        f"--precision must be auto, fp32 or bf16, got {c.precision!r}.",
    )
    if not timm.is_model(c.backbone):
        close = difflib.get_close_matches(c.backbone, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise SystemExit(f"error: unknown timm model --backbone {c.backbone!r}.{hint}")
    is_resnet = timm.models.model_entrypoint(c.backbone).__module__ == "timm.models.resnet"
    _require(
        is_resnet or (c.zero_init_residual and not c.cifar_stem),
        f"--cifar-stem and --no-zero-init-residual apply to ResNets only; --backbone "
        f"{c.backbone!r} is not one (pass --zero-init-residual --no-cifar-stem).",
    )
    return c


def model_config(config: TrainConfig) -> LeJEPAConfig:
    return LeJEPAConfig(
        backbone=config.backbone,
        cifar_stem=config.cifar_stem,
        # Only passed when off, so timm's default stands for every other backbone.
        backbone_kwargs={} if config.zero_init_residual else {"zero_init_last": False},
        proj_hidden=config.proj_hidden,
        proj_dim=config.proj_dim,
        proj_layers=config.proj_layers,
        lam=config.lam,
        num_slices=config.num_slices,
        sigreg_seed=config.seed,
    )


def checked_config(config: TrainConfig, model_cfg: LeJEPAConfig) -> dict[str, Any]:
    """The fields a resumed run must share with the run that wrote the checkpoint."""
    train = {k: v for k, v in asdict(config).items() if k not in OPERATIONAL_FIELDS}
    return {"train": train, "model": model_cfg.to_dict()}


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def extract_features(
    model: nn.Module, dataset: Any, *, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features ``(n, dim)`` and labels of a dataset of ``{"image", "label"}`` items,
    in eval mode (the train/eval mode is put back afterwards)."""
    was_training = model.training
    model.eval()
    features, labels = [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            features.append(model.features(batch["image"].to(device)).float().cpu())
            labels.append(batch["label"])
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(labels)


def probe(
    model: nn.Module, data: DataBundle, *, epochs: int, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Linear probe and kNN top-1 (fitted on training objects, scored on held-out objects)
    and RankMe of the held-out features, all on the backbone.

    The linear probe reads features standardised with the training split's mean and std
    (a BatchNorm without affine before the head, as MAE's probe): Adam then fits trained and
    untrained features of any scale alike in few epochs. kNN (cosine) and RankMe read the raw
    features.
    """
    train_x, train_y = extract_features(
        model, data.probe_train, batch_size=config.probe_batch_size, device=device
    )
    test_x, test_y = extract_features(
        model, data.probe_test, batch_size=config.probe_batch_size, device=device
    )
    # Scales floored at 1 % of the mean unit's: a unit (almost) silent on the training split
    # would otherwise blow up on a held-out image that excites it.
    mean, std = train_x.mean(0), train_x.std(0)
    std = std.clamp_min(1e-2 * float(std.mean()) + 1e-12)
    linear = fit_linear_probe(
        (train_x - mean) / std, train_y, (test_x - mean) / std, test_y,
        num_classes=data.num_classes, epochs=epochs,
        batch_size=config.probe_batch_size, seed=config.seed, device=device, progress=False,
    )
    k = min(config.knn_k, train_x.shape[0])
    return {
        "linear_top1": linear.top1,
        "knn_top1": knn_top1(train_x, train_y, test_x, test_y, k=k, num_classes=data.num_classes),
        "rankme": rankme(test_x),
    }


# ----------------------------------------------------------------------------- training


class Trainer(EpochLoop):
    """Owns the run's state; ``state_dict`` is everything a checkpoint needs for exact resume."""

    def __init__(self, config: TrainConfig, out: Path, resume: bool) -> None:
        self.config = config
        self.out = out
        self.started = time.perf_counter()
        self.dist = Distributed(config.device)
        self.device = self.dist.device
        if config.threads:
            torch.set_num_threads(config.threads)
        self.data = build_data(config)
        self.model_cfg = model_config(config)
        # Seeded after the data (rendered or loaded from the cache, which must not matter):
        # identical initial weights on every rank and in every run of this config.
        torch.manual_seed(config.seed)
        # The generator state the weights are drawn from: the random-init floors rebuild
        # exactly this initialisation (untrained_model).
        self.init_rng_state = torch.get_rng_state()
        try:
            model = build_model(self.model_cfg)
        except ValueError as error:  # e.g. a stem the backbone does not have
            raise SystemExit(
                f"error: cannot build --backbone {config.backbone!r}: {error}"
            ) from error
        if config.sync_bn and self.dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = build_loss(self.model_cfg).to(self.device)
        self.monitor = (
            jb.CollapseMonitor(config.monitor_every, warn=self.dist.is_main)
            if config.monitor_every
            else None
        )
        self.autocast = precision_dtype(config.precision, self.device)  # None: fp32

        per_rank, remainder = divmod(config.batch_size, self.dist.world_size)
        if remainder or per_rank < 2:
            raise SystemExit(
                f"error: --batch-size {config.batch_size} must be a multiple of the "
                f"{self.dist.world_size} ranks with at least 2 images per rank (SIGReg, BatchNorm)."
            )
        self.batch_per_rank = per_rank
        self.sampler = ResumableSampler(
            len(self.data.train), seed=config.seed, num_replicas=self.dist.world_size,
            rank=self.dist.rank, drop_last=True,
        )
        self.steps_per_epoch = len(self.sampler) // per_rank
        if self.steps_per_epoch < 1:
            raise SystemExit(
                f"error: {len(self.data.train)} training {config.views_from}s do not fill one "
                f"global batch of {config.batch_size}; lower --batch-size."
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = adamw(
            self.model, lr=config.lr, weight_decay=config.weight_decay, device=self.device
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            # Warm-up from lr / 1000 (final_lr_ratio), then a cosine down to it, as the paper.
            lambda step: warmup_cosine(
                step, warmup_steps=config.warmup_steps, total_steps=self.total_steps,
                lr=config.lr, initial_lr=config.lr * config.final_lr_ratio,
                final_lr=config.lr * config.final_lr_ratio,
            ),
        )
        self.network: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.loader_generator = torch.Generator().manual_seed(config.seed)
        self.checkpoints = CheckpointManager(
            out / "checkpoints", keep_last=config.keep_last, keep_best=False,
            config=checked_config(config, self.model_cfg),
        )
        self.dataset = self.data.train
        self.init_loop()
        self.evals: list[dict[str, Any]] = []  # one row per evaluation point
        self.eval_seconds = 0.0
        if resume:
            self._resume()

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict(),  # SIGReg's direction step
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_state({"loader": self.loader_generator}),
            **self.loop_state(),
            "evals": self.evals,
            "monitor": None if self.monitor is None else self.monitor.state_dict(),
            "eval_seconds": self.eval_seconds,
        }

    def _resume(self) -> None:
        payload = self.checkpoints.load_latest(map_location=self.device)
        if payload is None:
            log.warning("--resume: no checkpoint in %s; starting from scratch", self.out)
            return
        state = payload["state"]
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        if self.monitor is not None and state.get("monitor"):
            self.monitor.load_state_dict(state["monitor"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], generators={"loader": self.loader_generator})
        self.load_loop_state(state)
        self.evals = list(state["evals"])
        self.eval_seconds = float(state["eval_seconds"])
        if self.dist.is_main:
            log.info("resumed at epoch %d, step %d", self.epoch, self.global_step)

    # -------------------------------------------------------------- one step

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimiser step; returns ``[loss, invariance, sigreg]`` ``(3,)``, detached, on
        the device (read on the host once per logging interval)."""
        global_views = batch["global"].to(self.device, non_blocking=True)
        local_views = batch.get("local")
        if local_views is not None:
            local_views = local_views.to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            z_global, z_local = self.network(global_views, local_views)
            out = self.loss_fn(z_global, z_local)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.loss_fn.advance()  # next step's SIGReg directions
        if self.monitor is not None and self.monitor.due(self.global_step):
            embeddings = z_global.detach().float()  # (global views, n, d), before the update
            if bool(torch.isfinite(embeddings).all()):  # a diverged step: the loss check says so
                self.monitor(embeddings, step=self.global_step)
        return torch.stack([out.loss, out.invariance, out.sigreg]).detach().float()

    def step_context(self) -> tuple[float]:
        return (self.optimizer.param_groups[0]["lr"],)

    def record(self, pending: list[tuple[int, torch.Tensor, float]]) -> None:
        """Record the pending steps (one host sync per logging interval). Under DDP the
        recorded values are the means over ranks, so every rank holds the same history."""
        values = torch.stack([terms for _, terms, _ in pending])
        if self.dist.enabled:
            dist.all_reduce(values)  # SUM: gloo has no AVG
            values /= self.dist.world_size
        for (step, _, lr), (loss, invariance, sigreg) in zip(
            pending, values.cpu().tolist(), strict=True
        ):
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss} at step {step} (invariance {invariance}, SIGReg {sigreg}); "
                    f"stopping. The last good checkpoint is in {self.out / 'checkpoints'}: "
                    "lower --lr in a new --out, or check the data."
                )
            self.history.append(
                {"step": step, "loss": loss, "invariance": invariance, "sigreg": sigreg,
                 "lr": lr}
            )

    def progress_postfix(self) -> dict[str, str]:
        last = self.history[-1]
        return {"loss": f"{last['loss']:.4f}", "lr": f"{last['lr']:.2e}"}

    def _evaluation_point(self) -> None:
        """Probe the backbone now (rank 0; the others wait); record the training loss of the
        steps since the previous point beside it."""
        if self.dist.is_main:
            started = time.perf_counter()
            row: dict[str, Any] = {"step": self.global_step}
            previous = self.evals[-1]["step"] if self.evals else -1
            window = [r["loss"] for r in self.history if previous <= r["step"] < self.global_step]
            row["train_loss"] = sum(window) / len(window) if window else None
            row.update(probe(
                self.model, self.data, epochs=self.config.eval_probe_epochs,
                config=self.config, device=self.device,
            ))
            self.evals.append(row)
            seconds = time.perf_counter() - started
            self.eval_seconds += seconds
            loss = "n/a" if row["train_loss"] is None else f"{row['train_loss']:.4f}"
            log.info(
                "step %d: loss %s, linear %.1f %%, kNN %.1f %%, RankMe %.1f (%.1f s)",
                self.global_step, loss, 100 * row["linear_top1"], 100 * row["knn_top1"],
                row["rankme"], seconds,
            )
        if self.dist.enabled:  # every rank holds the same evaluation rows (for checkpoints)
            rows = [self.evals]
            dist.broadcast_object_list(rows, src=0)
            self.evals = rows[0]

    def interlude_due(self) -> bool:
        """An evaluation point is due (``--eval-every``, and the last step)."""
        every = self.config.eval_every
        return every > 0 and (self.global_step % every == 0 or self.global_step == self.total_steps)

    def interlude(self) -> None:
        self._evaluation_point()

    def train(self) -> bool:
        """Run to the end (True) or until stopped (False); see ``EpochLoop.train``. The first
        evaluation point is the untrained network (step 0)."""
        if self.global_step == 0 and not self.evals and self.config.eval_every > 0:
            self._evaluation_point()
        self.network.train()
        return super().train()

    # -------------------------------------------------------------- evaluation and report

    def untrained_model(self) -> nn.Module:
        """The run's model as initialised, before any step (same config and generator state);
        the global RNG is left as it was. Its probes are the random-init floors."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.init_rng_state)
            model = build_model(self.model_cfg)
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def train_metrics(self) -> dict[str, Any]:
        last = self.history[-FINAL_WINDOW:]

        def mean(key: str) -> float | None:
            return sum(row[key] for row in last) / len(last) if last else None

        return {
            "train_seconds": round(self.train_seconds, 2),
            "eval_point_seconds": round(self.eval_seconds, 2),
            "steps": self.global_step,
            "final_loss": mean("loss"),
            "final_invariance": mean("invariance"),
            "final_sigreg": mean("sigreg"),
            "final_window_steps": len(last),
            "num_classes": self.data.num_classes,
            "probe_train_images": len(self.data.probe_train),  # type: ignore[arg-type]
            "probe_test_images": len(self.data.probe_test),  # type: ignore[arg-type]
        }

    def evaluate(self) -> dict[str, Any]:
        """The final probes on the trained backbone and on the untrained copy (floors), and
        the loss-accuracy correlation over the evaluation points."""
        started = time.perf_counter()
        config = self.config
        trained = probe(self.model, self.data, epochs=config.probe_epochs, config=config,
                        device=self.device)
        floor = probe(self.untrained_model(), self.data, epochs=config.probe_epochs,
                      config=config, device=self.device)
        metrics: dict[str, Any] = {**trained, **{f"{k}_floor": v for k, v in floor.items()}}
        metrics["loss_accuracy"] = loss_accuracy_correlation(self.evals, config.lam)
        metrics.update(self.train_metrics())
        metrics["final_eval_seconds"] = round(time.perf_counter() - started, 2)
        return metrics

    def report(self, metrics: dict[str, Any], *, evaluated: bool = True) -> None:
        """``metrics.json`` always; curves and the table after an evaluation."""
        metrics["wall_seconds"] = round(time.perf_counter() - self.started, 2)
        report = {
            **metrics,
            "evals": self.evals,
            "loss_history": self.history,
            "collapse_monitor": [] if self.monitor is None else self.monitor.history,
        }
        (self.out / "metrics.json").write_text(
            json.dumps(finite_or_null(report), indent=2, allow_nan=False)
        )
        if evaluated:
            plot_curves(self.history, self.evals, metrics, self.out / "curves.png")
            print(format_results_table(metrics, self.config, self.device), flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    config = resolve_config(args)
    out = prepare_out_dir(args.out or default_out_dir(f"lejepa-{config.preset}"), args.resume)

    def summary(trainer: Trainer) -> dict[str, Any]:
        return {"train": asdict(config), "model": trainer.model_cfg.to_dict(),
                "world_size": trainer.dist.world_size, "library_version": jb.__version__}

    def describe(trainer: Trainer) -> str:
        return (f"LeJEPA on {trainer.device}: {len(trainer.data.train)} training "
                f"{config.views_from}s, {trainer.steps_per_epoch} steps/epoch, "
                f"{config.epochs} epochs, global batch {config.batch_size}")

    return run(
        lambda: Trainer(config, out, resume=args.resume),
        out=out,
        evaluate=config.evaluate,
        summary=summary,
        describe=describe,
        checksums=lambda trainer: parameter_checksum(trainer.model),
    )


if __name__ == "__main__":
    sys.exit(main())
