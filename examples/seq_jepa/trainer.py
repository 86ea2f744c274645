"""The training loop of ``train.py``: the run's state, one step, exact resume, the collapse
monitor, evaluation and the report. ``Trainer.state_dict`` is everything a checkpoint needs.
"""

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from config import TrainConfig, checked_config, ignored_on_resume, model_config
from data import build_data
from evaluate import evaluate_sequence_model
from model import build_model, build_target, compute_loss, online_for_target, target_encoder
from report import format_results_table, plot_curves
from torch import nn
from torch.utils.data import DataLoader

import jepa_blocks as jb
from jepa_blocks.data.sampler import ResumableSampler
from jepa_blocks.training import (
    CheckpointManager,
    Distributed,
    adamw,
    capture_rng_state,
    finite_or_null,
    load_optimizer_state,
    parameter_checksum,
    precision_dtype,
    restore_rng_state,
    warmup_cosine,
)
from jepa_blocks.training.loop import EpochLoop
from jepa_blocks.training.run import NonFiniteLossError

log = logging.getLogger("seq_jepa")

#: The rotation R^2s in metrics.json, each beside its floors; None for data without rotations
#: (ridge keys: data without per-view latents and object ids).
ROTATION_KEYS = (
    "r2_rel_rotation",
    "r2_rel_rotation_floor",
    "r2_indiv_rotation",
    "r2_indiv_rotation_floor",
    "ridge_r2_indiv_rotation",
    "ridge_r2_indiv_rotation_floor",
    "ridge_r2_indiv_rotation_pixels",
    "ridge_r2_rel_rotation",
    "ridge_r2_rel_rotation_floor",
    "ridge_r2_rel_rotation_pixels",
)


# ----------------------------------------------------------------------------- optimisation


# ----------------------------------------------------------------------------- training


class Trainer(EpochLoop):
    """Owns the run's state; ``state_dict`` is everything a checkpoint needs for exact resume."""

    def __init__(self, config: TrainConfig, out: Path, resume: bool) -> None:
        self.config = config
        self.out = out
        self.dist = Distributed(config.device)
        self.device = self.dist.device
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.data = build_data(config)
        self.model_cfg = model_config(config, self.data.dim_action)
        # The CPU generator's state the weights are drawn from: the random-init floors of the
        # evaluation rebuild exactly this initialisation (see untrained_model).
        self.init_rng_state = torch.get_rng_state()
        model = build_model(self.model_cfg)
        if config.sync_bn and self.dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.autocast = precision_dtype(config.precision, self.device)  # None: fp32
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)

        per_rank, remainder = divmod(config.batch_size, self.dist.world_size)
        if remainder or per_rank < 2:
            raise SystemExit(
                f"error: --batch-size {config.batch_size} must be a multiple of the "
                f"{self.dist.world_size} ranks with at least 2 sequences per rank (BatchNorm)."
            )
        self.batch_per_rank = per_rank
        self.sampler = ResumableSampler(
            len(self.data.train),
            seed=config.seed,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            drop_last=True,
        )
        self.steps_per_epoch = len(self.sampler) // per_rank
        if self.steps_per_epoch < 1:
            raise SystemExit(
                f"error: {len(self.data.train)} training sequences are fewer than one global "
                f"batch of {config.batch_size}; lower --batch-size."
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        schedule = jb.CosineMomentum(
            config.ema_base, config.ema_final, total_steps=self.total_steps
        )
        self.target = build_target(self.model, schedule)  # None for seq-jepa-sigreg
        if self.target is not None:
            self.target = self.target.to(self.device)
            self.target.train()  # the target's BN uses batch statistics, as the official code
        self.sigreg = getattr(self.model, "sigreg", None)  # seq-jepa-sigreg's direction stream
        self.monitor = (
            jb.CollapseMonitor(config.monitor_every, warn=self.dist.is_main)
            if config.monitor_every
            else None
        )
        self.optimizer = adamw(
            self.model, lr=config.lr, weight_decay=config.weight_decay, device=self.device
        )
        warmup_steps = self.steps_per_epoch * config.warmup_epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: warmup_cosine(
                step,
                warmup_steps=warmup_steps,
                total_steps=self.total_steps,
                lr=config.lr,
                initial_lr=config.initial_lr,
                final_lr=config.final_lr,
            ),
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.autocast == torch.float16
        )
        self.network: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if config.compile:
            self.network = torch.compile(self.network)
        self.loader_generator = torch.Generator().manual_seed(config.seed)
        self.checkpoints = CheckpointManager(
            out / "checkpoints",
            keep_last=config.keep_last,
            metric="loss",
            mode="min",
            config=checked_config(config, self.model_cfg),
            ignore_keys=ignored_on_resume(),
        )
        self.dataset = self.data.train
        self.init_loop()
        self.skipped_steps: list[int] = []
        if resume:
            self._resume()

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "target": None if self.target is None else self.target.state_dict(),
            "monitor": None if self.monitor is None else self.monitor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state({"loader": self.loader_generator}),
            **self.loop_state(),
            "skipped_steps": self.skipped_steps,
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
        if self.monitor is not None and state.get("monitor"):  # older checkpoints have none
            self.monitor.load_state_dict(state["monitor"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], generators={"loader": self.loader_generator})
        self.load_loop_state(state)
        self.skipped_steps = list(state["skipped_steps"])
        if self.dist.is_main:
            log.info("resumed at epoch %d, step %d", self.epoch, self.global_step)

    # -------------------------------------------------------------- one step

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        views = batch["views"].to(self.device, non_blocking=True)
        actions = batch["actions"].to(self.device, non_blocking=True)
        skip_policy = self.config.nan_policy == "skip"
        # The forward already updates BatchNorm running statistics (online and target): a
        # skipped step must leave no trace, so keep a copy to put back (small: BN buffers).
        modules = [m for m in (self.model, self.target) if m is not None]
        buffers = [b for m in modules for b in m.buffers()] if skip_policy else []
        saved = [b.clone() for b in buffers]
        with torch.autocast(
            self.device.type,
            dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            loss, out = compute_loss(self.network, self.target, views, actions)
        if skip_policy and not self._all_finite(loss):
            # A skip needs the answer before the optimiser step: one host sync per step.
            with torch.no_grad():
                for buffer, copy in zip(buffers, saved, strict=True):
                    buffer.copy_(copy)
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps.append(self.global_step)
            log.warning("non-finite loss at step %d: step skipped", self.global_step)
            return loss.detach()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.target is not None:
            self.target.update(online_for_target(self.model))
        if self.sigreg is not None:
            self.sigreg.advance()
        if self.monitor is not None and self.monitor.due(self.global_step):
            self._monitor(views, out["z"])
        return loss.detach()

    def _monitor(self, views: torch.Tensor, z: torch.Tensor) -> None:
        """The collapse gauges on this step's view embeddings (``z``, before the update) and,
        for EMA variants, the target encoder's embeddings of view 1 for the teacher cosine.
        That extra target forward runs in train mode, as the target does in training, and
        its BatchNorm buffers are put back: monitoring leaves the run unchanged."""
        z = z.detach().float()
        if not bool(torch.isfinite(z).all()):  # a diverged step: the loss check reports it
            return
        teacher = target_encoder(self.model, self.target)
        pair = None
        if teacher is not None:
            buffers = list(self.target.buffers())
            saved = [b.clone() for b in buffers]
            with torch.no_grad():
                first = teacher(views[:, 0]).float()
                for buffer, copy in zip(buffers, saved, strict=True):
                    buffer.copy_(copy)
            if not bool(torch.isfinite(first).all()):  # the target diverged: no measurement
                return
            pair = (z[:, 0], first)
        self.monitor(z, step=self.global_step, teacher=pair)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank: under DDP the ranks must skip together,
        or the ones that step would wait forever for the others' gradients."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.dist.enabled:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def step_context(self) -> tuple[float, float]:
        """The learning rate and EMA momentum the step runs with."""
        momentum = self.target.momentum if self.target is not None else 0.0
        return self.optimizer.param_groups[0]["lr"], momentum

    def record(self, pending: list[tuple[int, torch.Tensor, float, float]]) -> None:
        """Record the pending losses (one host sync per logging interval). Under DDP the
        recorded loss is the mean over ranks, the loss of the global batch, so that every rank
        sees the same values (and a NaN on any rank stops them all)."""
        losses = torch.stack([loss for _, loss, _, _ in pending]).float()
        if self.dist.enabled:
            dist.all_reduce(losses)  # SUM: gloo has no AVG
            losses /= self.dist.world_size
        values = losses.cpu().tolist()
        for (step, _, lr, momentum), value in zip(pending, values, strict=True):
            if not math.isfinite(value) and self.config.nan_policy == "stop":
                raise NonFiniteLossError(
                    f"loss is {value} at step {step} (epoch {self.epoch}); stopping. The last "
                    f"good checkpoint is kept in {self.out / 'checkpoints'}: lower --lr (in a "
                    "new --out), check the data for NaN/Inf, or continue with --resume "
                    "--nan-policy skip."
                )
            self.history.append({"step": step, "loss": value, "lr": lr, "momentum": momentum})

    def train(self) -> bool:
        """Run to the end (True) or until stopped (False); see ``EpochLoop.train``."""
        self.network.train()
        if self.target is not None:
            self.target.train()  # batch statistics, as the official code
        return super().train()

    def progress_postfix(self) -> dict[str, str]:
        last = self.history[-1]
        return {
            "loss": f"{last['loss']:.4f}",
            "lr": f"{last['lr']:.2e}",
            "ema": f"{last['momentum']:.4f}",
        }

    def epoch_metric(self) -> float | None:
        """The epoch's mean loss, for the "best" checkpoint."""
        losses = [row["loss"] for row in self.history[-self.steps_per_epoch :]]
        return sum(losses) / max(1, len(losses))

    def parameter_checksums(self) -> tuple[str, str]:
        """Checksums of the online and EMA-target parameters, logged by every rank at the end:
        under DDP they must agree (rank 0 alone saves checkpoints)."""
        target = "none" if self.target is None else parameter_checksum(self.target)
        return parameter_checksum(self.model), target

    # -------------------------------------------------------------- evaluation and report

    def train_metrics(self) -> dict[str, Any]:
        return {
            "train_seconds": round(self.train_seconds, 2),
            "steps": self.global_step,
            "final_loss": self.history[-1]["loss"] if self.history else None,
        }

    def untrained_model(self) -> nn.Module:
        """The run's model as it was initialised, before any step: built from the same config
        and generator state (after ``torch.manual_seed(config.seed)``), on the run's device.
        The global RNG is left as it was. Its probes are the random-init floors."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.init_rng_state)
            model = build_model(self.model_cfg)
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def evaluate(self) -> dict[str, Any]:
        """The paper's probes and the ridge probes, each R^2 with its floors (the probes on
        :meth:`untrained_model`; raw pixels for the ridge), see ``evaluate_sequence_model``.
        The MLP floors cover the two transformation R^2s and path integration at the lengths
        evaluated, not the ablations or the classification probes."""
        config = self.config
        loaders = [
            DataLoader(
                dataset,
                batch_size=config.probe_batch_size,
                shuffle=False,
                num_workers=config.num_workers,
            )
            for dataset in (self.data.eval_train, self.data.eval_test)
        ]
        view_data = None
        if self.data.view_train is not None and self.data.view_test is not None:
            view_data = (self.data.view_train, self.data.view_test)
        metrics = evaluate_sequence_model(
            self.model,
            loaders[0],
            loaders[1],
            m_vals=range(1, config.m_val_max + 1),
            path_ms=range(1, config.path_max + 1) if config.path_max else "all",
            action_kind=self.data.action_kind,
            num_classes=self.data.num_classes,
            epochs_linear=config.probe_epochs_linear,
            epochs_mlp=config.probe_epochs_mlp,
            epochs_linear_regressor=config.probe_epochs_linear_regressor,
            batch_size=config.probe_batch_size,
            view_data=view_data,
            floor_model=self.untrained_model(),
            num_workers=config.num_workers,
            seed=config.seed,
            device=self.device,
            progress=config.progress,
        )
        # One schema for every dataset: rotation keys are None where the data have none.
        for key in ROTATION_KEYS:
            metrics.setdefault(key, None)
        metrics.update(self.train_metrics())
        return metrics

    def export_encoder(self) -> str | None:
        """Write the trained encoder as ``OUT/encoder.safetensors`` for stock timm and return
        the ``timm.create_model`` call that loads it; None (with the reason logged) for an
        encoder timm cannot rebuild, e.g. the paper's CIFAR stem."""
        encoder = self.model.encoder
        kwargs = dict(self.model_cfg.backbone_kwargs)
        if self.model_cfg.image_size is not None and "img_size" in _init_parameters(encoder):
            kwargs["img_size"] = self.model_cfg.image_size
        path = self.out / "encoder.safetensors"
        try:
            jb.training.export_timm_encoder(encoder, path, **kwargs)
        except ValueError as error:
            log.warning("encoder not exported for stock timm: %s", error)
            return None
        args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
        return (
            f"timm.create_model({encoder.name!r}, num_classes=0{args}).load_state_dict("
            f"safetensors.torch.load_file({str(path)!r}))"
        )

    def report(self, metrics: dict[str, Any], *, evaluated: bool = True) -> None:
        """``metrics.json`` always (the loss history is there); curves and table only after
        an evaluation."""
        monitor = [] if self.monitor is None else self.monitor.history
        report = {
            **metrics,
            "loss_history": self.history,
            "collapse_monitor": monitor,
            "skipped_steps": self.skipped_steps,
        }
        (self.out / "metrics.json").write_text(
            json.dumps(finite_or_null(report), indent=2, allow_nan=False)
        )
        if evaluated:
            plot_curves(self.history, metrics, self.out / "curves.png", monitor=monitor)
            print(format_results_table(metrics, self.config, self.model_cfg, self.device))


def _init_parameters(backbone: nn.Module) -> set[str]:
    """The constructor arguments of the timm model inside a backbone adapter."""
    import inspect

    return set(inspect.signature(type(backbone.model).__init__).parameters)
