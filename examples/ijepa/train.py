"""Train I-JEPA on the built-in rendered objects, evaluate it, and report.

    python examples/ijepa/train.py                          # demo: CPU, under 10 minutes
    python examples/ijepa/train.py --regularizer sigreg     # SIGReg instead of the EMA target
    python examples/ijepa/train.py --preset smoke           # seconds
    python examples/ijepa/train.py --out runs/ijepa --resume         # continue exactly
    torchrun --nproc-per-node 2 examples/ijepa/train.py --preset smoke --device cpu

I-JEPA (Assran et al., arXiv 2301.08243) from the library's blocks: multi-block masks on the
patch grid (``MultiBlockMasks``: 4 targets of 15-20 % of the grid, a context block of
85-100 % minus the targets), a timm ViT on the context patches only (``MaskedEncoder``), a
narrow predictor with sin-cos positions (``MaskedPredictor``), and the smooth-L1 loss to the
layer-normed tokens of the target encoder on every patch (``gather_targets``,
``masked_prediction_loss``). ``--regularizer ema`` (the paper): the target is an
``EMATarget`` copy of the encoder, momentum 0.996 -> 1 (linear), under stop-gradient.
``--regularizer sigreg``: no EMA and no stop-gradient; the target tokens come from the online
encoder on every patch, and ``SIGReg`` on its tokens (``--sigreg-on tokens``, or one mean
token per image with ``pooled``) keeps them from collapsing: ``loss = (1 - lam) prediction +
lam SIGReg``, ``lam = 0.05`` as LeJEPA. AdamW with a linear warm-up then a cosine.

The masks of step ``s`` are drawn from a generator seeded by ``(seed, s)`` for the global
batch (each rank takes its slice), so a resumed run draws the uninterrupted run's masks.

During training the encoder is probed every ``--eval-every`` steps (linear probe, kNN and
RankMe of mean-pooled tokens on held-out objects; step 0 is the untrained network). The
probed encoder is the EMA target with ``ema`` (the paper evaluates the target encoder; the
final report adds the online encoder) and the online encoder with ``sigreg``. At the end the
same probes run again, longer, on the trained encoder and on an untrained copy (the
random-init floors).

Writes ``OUT/config.json``, ``OUT/metrics.json`` (probes and floors, the evaluation points,
the loss history with its terms), ``OUT/curves.png`` and ``OUT/checkpoints/`` (atomic, the
last K; ``--resume`` continues from the newest valid one and logs the losses the
uninterrupted run would have). SIGTERM saves a checkpoint and exits. Exit codes: 0 done or
stopped, 1 bad arguments, 2 a checkpoint that cannot be resumed, 3 a non-finite loss. Under
torchrun ``--batch-size`` is the global batch, split over the ranks; SIGReg averages its
characteristic function over the ranks.
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

from ijepa_data import DataBundle, build_data  # noqa: E402
from ijepa_model import IJEPAConfig, build_masks, build_model, layer_normed  # noqa: E402
from ijepa_presets import (  # noqa: E402
    OPERATIONAL_FIELDS,
    PRESETS,
    REGULARIZERS,
    SIGREG_ON,
    TrainConfig,
)
from ijepa_report import format_results_table, plot_curves  # noqa: E402

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.data.objects import NUISANCES, SIZE_PRESETS  # noqa: E402
from jepa_blocks.data.sampler import ResumableSampler  # noqa: E402
from jepa_blocks.data.sequences import item_generator  # noqa: E402
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
log = logging.getLogger("ijepa")

#: How many of the last logged steps the "final loss" of the report averages.
FINAL_WINDOW = 20
#: The mask stream's key beside (seed, step): no (seed, epoch, index) of the data has it.
MASK_STREAM = 2**31 - 1


# ----------------------------------------------------------------------------- configuration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="demo", help=f"one of {sorted(PRESETS)}")
    parser.add_argument(
        "--out", type=Path, help="output directory (default runs/ijepa-<preset>-<date>-<time>)"
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
        c.regularizer in REGULARIZERS,
        f"--regularizer must be one of {', '.join(REGULARIZERS)}, got {c.regularizer!r}.",
    )
    _require(
        c.sigreg_on in SIGREG_ON,
        f"--sigreg-on must be one of {', '.join(SIGREG_ON)}, got {c.sigreg_on!r}.",
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
        c.monitor_every >= 0,
        f"--monitor-every must be >= 0 (0 turns the collapse monitor off), got {c.monitor_every}.",
    )
    _require(16 <= c.image_size <= 256, f"--image-size must be in [16, 256], got {c.image_size}.")
    _require(
        c.patch_size >= 1 and c.image_size % c.patch_size == 0,
        f"--patch-size must divide --image-size={c.image_size}, got {c.patch_size}.",
    )
    _require(0 < c.crop_scale_min <= 1, f"--crop-scale-min must be in (0, 1], got "
             f"{c.crop_scale_min}.")
    _require(
        min(c.depth, c.pred_dim, c.pred_depth, c.pred_heads, c.num_slices) >= 1,
        "--depth, --pred-dim, --pred-depth, --pred-heads and --num-slices must be >= 1.",
    )
    _require(
        c.pred_dim % c.pred_heads == 0,
        f"--pred-dim {c.pred_dim} must be a multiple of --pred-heads {c.pred_heads}.",
    )
    _require(c.pred_pos in ("sincos", "rope"), f"--pred-pos must be sincos or rope, got "
             f"{c.pred_pos!r}.")
    _require(
        0.0 <= c.ema_start <= c.ema_end <= 1.0,
        f"need 0 <= --ema-start <= --ema-end <= 1 (paper: 0.996 -> 1), got {c.ema_start} and "
        f"{c.ema_end}.",
    )
    _require(0.0 <= c.lam <= 1.0, f"--lam must be in [0, 1] (LeJEPA: 0.05), got {c.lam}.")
    _require(c.lr > 0, f"--lr must be positive, got {c.lr}.")
    _require(
        0 < c.final_lr_ratio <= 1, f"--final-lr-ratio must be in (0, 1], got {c.final_lr_ratio}."
    )
    _require(c.epochs >= 1, f"--epochs must be >= 1, got {c.epochs}.")
    _require(c.batch_size >= 2, f"--batch-size must be >= 2 (SIGReg), got {c.batch_size}.")
    _require(c.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {c.warmup_steps}.")
    _require(c.weight_decay >= 0, f"--weight-decay must be >= 0, got {c.weight_decay}.")
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
    if not timm.is_model(c.vit):
        close = difflib.get_close_matches(c.vit, timm.list_models("vit_*"), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise SystemExit(f"error: unknown timm model --vit {c.vit!r}.{hint}")
    _require(
        timm.models.model_entrypoint(c.vit).__module__ == "timm.models.vision_transformer",
        f"--vit must be a timm VisionTransformer (e.g. vit_tiny_patch16_224), got {c.vit!r}.",
    )
    # The masks' own checks (scales, a grid too small for --min-keep), before any work.
    grid = (c.image_size // c.patch_size,) * 2
    try:
        build_masks(model_config(c), grid)
    except ValueError as error:
        raise SystemExit(f"error: bad mask options for the {grid[0]} x {grid[1]} patch grid "
                         f"(--image-size / --patch-size): {error}") from error
    return c


def model_config(config: TrainConfig) -> IJEPAConfig:
    return IJEPAConfig(
        vit=config.vit,
        image_size=config.image_size,
        patch_size=config.patch_size,
        depth=config.depth,
        pred_dim=config.pred_dim,
        pred_depth=config.pred_depth,
        pred_heads=config.pred_heads,
        pred_pos=config.pred_pos,
        num_targets=config.num_targets,
        target_scale=(config.target_scale_min, config.target_scale_max),
        context_scale=(config.context_scale_min, 1.0),
        min_keep=config.min_keep,
        regularizer=config.regularizer,
        lam=config.lam,
        sigreg_on=config.sigreg_on,
        num_slices=config.num_slices,
        sigreg_seed=config.seed,
    )


def checked_config(config: TrainConfig, model_cfg: IJEPAConfig) -> dict[str, Any]:
    """The fields a resumed run must share with the run that wrote the checkpoint."""
    train = {k: v for k, v in asdict(config).items() if k not in OPERATIONAL_FIELDS}
    return {"train": train, "model": model_cfg.to_dict()}


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def extract_features(
    encoder: nn.Module, dataset: Any, *, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pooled encoder tokens ``(n, dim)`` on every patch, and labels, of a dataset of
    ``{"image", "label"}`` items, in eval mode (the mode is put back afterwards)."""
    was_training = encoder.training
    encoder.eval()
    features, labels = [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            tokens = encoder(batch["image"].to(device))
            features.append(tokens.mean(dim=1).float().cpu())
            labels.append(batch["label"])
    finally:
        encoder.train(was_training)
    return torch.cat(features), torch.cat(labels)


def probe(
    encoder: nn.Module, data: DataBundle, *, epochs: int, config: TrainConfig,
    device: torch.device,
) -> dict[str, float]:
    """Linear probe and kNN top-1 (fitted on training objects, scored on held-out objects)
    and RankMe of the held-out features, all on mean-pooled encoder tokens.

    The linear probe reads features standardised with the training split's mean and std
    (a BatchNorm without affine before the head, as MAE's probe); kNN (cosine) and RankMe
    read the raw features.
    """
    train_x, train_y = extract_features(
        encoder, data.probe_train, batch_size=config.probe_batch_size, device=device
    )
    test_x, test_y = extract_features(
        encoder, data.probe_test, batch_size=config.probe_batch_size, device=device
    )
    # Scales floored at 1 % of the mean unit's, so a unit silent on the training split does
    # not blow up on a held-out image that excites it.
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
        # exactly this initialisation (untrained_encoder).
        self.init_rng_state = torch.get_rng_state()
        self.model = build_model(self.model_cfg).to(self.device)
        self.masks = build_masks(self.model_cfg, self.model.encoder.grid)
        self.autocast = precision_dtype(config.precision, self.device)  # None: fp32

        per_rank, remainder = divmod(config.batch_size, self.dist.world_size)
        if remainder or per_rank < 2:
            raise SystemExit(
                f"error: --batch-size {config.batch_size} must be a multiple of the "
                f"{self.dist.world_size} ranks with at least 2 images per rank (SIGReg)."
            )
        self.batch_per_rank = per_rank
        self.sampler = ResumableSampler(
            len(self.data.train), seed=config.seed, num_replicas=self.dist.world_size,
            rank=self.dist.rank, drop_last=True,
        )
        self.steps_per_epoch = len(self.sampler) // per_rank
        if self.steps_per_epoch < 1:
            raise SystemExit(
                f"error: {len(self.data.train)} training objects do not fill one global batch "
                f"of {config.batch_size}; lower --batch-size."
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        # The EMA target (ema only): outside DDP, every rank applies the same update to the
        # same all-reduced weights.
        self.target: jb.EMATarget | None = None
        if config.regularizer == "ema":
            self.target = jb.EMATarget(
                self.model.encoder,
                schedule=jb.LinearMomentum(config.ema_start, config.ema_end,
                                           total_steps=self.total_steps),
            )
        # The objective with sigreg; with ema the same statistic of the target's tokens is
        # logged as a collapse gauge (no gradient flows into it).
        self.sigreg = jb.SIGReg(config.num_slices, seed=config.seed).to(self.device)
        self.monitor = (
            jb.CollapseMonitor(config.monitor_every, warn=self.dist.is_main)
            if config.monitor_every
            else None
        )
        self.optimizer = adamw(
            self.model, lr=config.lr, weight_decay=config.weight_decay, device=self.device
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
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

    @property
    def probed_encoder(self) -> nn.Module:
        """What the probes read: the EMA target (I-JEPA evaluates it), else the online one."""
        return self.target.target if self.target is not None else self.model.encoder

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "target": self.target.state_dict() if self.target is not None else None,
            "sigreg": self.sigreg.state_dict(),  # the direction stream's step
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
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        self.sigreg.load_state_dict(state["sigreg"])
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

    def draw_masks(self) -> jb.BlockMasks:
        """This step's masks for this rank: the global batch's, drawn from ``(seed, step)``
        on the CPU (the same on every rank and in a resumed run), then this rank's slice."""
        generator = item_generator(self.config.seed, MASK_STREAM, self.global_step)
        masks = self.masks(self.config.batch_size, generator=generator)
        rows = slice(self.dist.rank * self.batch_per_rank,
                     (self.dist.rank + 1) * self.batch_per_rank)
        return jb.BlockMasks(*(m[rows].to(self.device, non_blocking=True) for m in masks))

    def _sigreg_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """SIGReg's samples: every patch token ``(b n, d)``, or one mean token per image."""
        if self.config.sigreg_on == "pooled":
            return tokens.mean(dim=1)
        return tokens.flatten(0, 1)

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimiser step; returns ``[loss, prediction, sigreg]`` ``(3,)``, detached, on
        the device (read on the host once per logging interval)."""
        images = batch["image"].to(self.device, non_blocking=True)
        masks = self.draw_masks()
        use_sigreg = self.target is None
        lam = self.config.lam
        with torch.autocast(
            self.device.type, dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            pred, pred_pad, full = self.network(
                images, masks.context, masks.targets, all_patches=use_sigreg
            )
            if use_sigreg:
                tokens = full  # the online encoder on every patch, with gradients
            else:
                assert self.target is not None
                tokens = self.target(images)  # under no_grad: the stop-gradient
            target = jb.gather_targets(layer_normed(tokens.float()), masks.targets)
            prediction = jb.masked_prediction_loss(pred.float(), target, pred_pad)
            if use_sigreg:
                regularizer = self.sigreg(self._sigreg_input(tokens.float()))
                loss = (1 - lam) * prediction + lam * regularizer
            else:
                with torch.no_grad():
                    regularizer = self.sigreg(self._sigreg_input(tokens.float()))
                loss = prediction
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.target is not None:
            self.target.update(self.model.encoder)
        self.sigreg.advance()  # next step's SIGReg directions
        if self.monitor is not None and self.monitor.due(self.global_step):
            embeddings = tokens.detach().float()  # (b, n, d), the tokens the probes read
            if bool(torch.isfinite(embeddings).all()):  # a diverged step: the loss check says so
                self.monitor(embeddings, step=self.global_step)
        return torch.stack([loss, prediction, regularizer]).detach().float()

    def step_context(self) -> tuple[float, float | None]:
        momentum = self.target.momentum if self.target is not None else None
        return (self.optimizer.param_groups[0]["lr"], momentum)

    def record(self, pending: list[tuple[int, torch.Tensor, float, float | None]]) -> None:
        """Record the pending steps (one host sync per logging interval). Under DDP the
        recorded values are the means over ranks, so every rank holds the same history."""
        values = torch.stack([terms for _, terms, *_ in pending])
        if self.dist.enabled:
            dist.all_reduce(values)  # SUM: gloo has no AVG
            values /= self.dist.world_size
        for (step, _, lr, momentum), (loss, prediction, sigreg) in zip(
            pending, values.cpu().tolist(), strict=True
        ):
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss} at step {step} (prediction {prediction}, SIGReg {sigreg}); "
                    f"stopping. The last good checkpoint is in {self.out / 'checkpoints'}: "
                    "lower --lr in a new --out, or check the data."
                )
            self.history.append(
                {"step": step, "loss": loss, "prediction": prediction, "sigreg": sigreg,
                 "lr": lr, "momentum": momentum}
            )

    def progress_postfix(self) -> dict[str, str]:
        last = self.history[-1]
        return {"loss": f"{last['loss']:.4f}", "lr": f"{last['lr']:.2e}"}

    def _evaluation_point(self) -> None:
        """Probe the encoder now (rank 0; the others wait); record the training loss of the
        steps since the previous point beside it."""
        if self.dist.is_main:
            started = time.perf_counter()
            row: dict[str, Any] = {"step": self.global_step}
            previous = self.evals[-1]["step"] if self.evals else -1
            window = [r["loss"] for r in self.history if previous <= r["step"] < self.global_step]
            row["train_loss"] = sum(window) / len(window) if window else None
            row.update(probe(
                self.probed_encoder, self.data, epochs=self.config.eval_probe_epochs,
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
        if self.target is not None:
            self.target.train()
        return super().train()

    # -------------------------------------------------------------- evaluation and report

    def untrained_encoder(self) -> nn.Module:
        """The run's encoder as initialised, before any step (same config and generator
        state); the global RNG is left as it was. Its probes are the random-init floors."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.init_rng_state)
            model = build_model(self.model_cfg)
        return model.encoder.to(self.device)

    def train_metrics(self) -> dict[str, Any]:
        last = self.history[-FINAL_WINDOW:]

        def mean(key: str) -> float | None:
            return sum(row[key] for row in last) / len(last) if last else None

        grid = self.model.encoder.grid
        return {
            "train_seconds": round(self.train_seconds, 2),
            "eval_point_seconds": round(self.eval_seconds, 2),
            "steps": self.global_step,
            "final_loss": mean("loss"),
            "final_prediction": mean("prediction"),
            "final_sigreg": mean("sigreg"),
            "final_window_steps": len(last),
            "num_classes": self.data.num_classes,
            "grid": f"{grid[0]} x {grid[1]}",
            "probed_encoder": "EMA target" if self.target is not None else "online",
            "probe_train_images": len(self.data.probe_train),  # type: ignore[arg-type]
            "probe_test_images": len(self.data.probe_test),  # type: ignore[arg-type]
        }

    def evaluate(self) -> dict[str, Any]:
        """The final probes on the trained encoder (with ema: the target, then the online
        encoder too) and on the untrained copy (floors)."""
        started = time.perf_counter()
        config = self.config

        def run(encoder: nn.Module) -> dict[str, float]:
            return probe(encoder, self.data, epochs=config.probe_epochs, config=config,
                         device=self.device)

        trained = run(self.probed_encoder)
        floor = run(self.untrained_encoder())
        metrics: dict[str, Any] = {**trained, **{f"{k}_floor": v for k, v in floor.items()}}
        if self.target is not None:
            metrics.update({f"online_{k}": v for k, v in run(self.model.encoder).items()})
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
    out = prepare_out_dir(args.out or default_out_dir(f"ijepa-{config.preset}"), args.resume)

    def summary(trainer: Trainer) -> dict[str, Any]:
        return {"train": asdict(config), "model": trainer.model_cfg.to_dict(),
                "world_size": trainer.dist.world_size, "library_version": jb.__version__}

    def describe(trainer: Trainer) -> str:
        return (f"I-JEPA ({config.regularizer}) on {trainer.device}: "
                f"{len(trainer.data.train)} training objects, {trainer.steps_per_epoch} "
                f"steps/epoch, {config.epochs} epochs, global batch {config.batch_size}")

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
