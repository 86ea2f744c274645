"""Training presets for the I-JEPA example: the run's configuration and its named presets.

Each preset is a dict of :class:`TrainConfig` overrides; command-line flags override the
preset. ``demo`` is the default: the built-in rendered objects at 32 px, a 4-block ViT-Tiny
on an 8 x 8 patch grid, sized to train, evaluate and print its table in under 10 minutes on
2 CPU cores (RESULTS.md has the measured time). ``smoke`` runs in seconds (tests).
"""

from dataclasses import dataclass, field
from typing import Any

REGULARIZERS = ("ema", "sigreg")
SIGREG_ON = ("tokens", "pooled")

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        # 10 classes x 100 objects x 50 rendered views (80 training objects per class, 20
        # held out); an item is an object, its image one of its views drawn per epoch
        "objects_size": "large",
        "nuisances": "view",
        "image_size": 32,
        # vit_tiny_patch16_224 at 32 px with 4-px patches: an 8 x 8 grid (I-JEPA: 14 x 14).
        # 4 of its 12 blocks: 6 blocks cost 1.8 s per step of 64 images on one thread with
        # ema and 3.4 s with sigreg (a second, differentiable pass on every patch), which
        # would leave ~150 sigreg steps in the budget.
        "depth": 4,
        "pred_dim": 96,  # the paper's predictor is narrow (384 for ViT-H's 1280)
        "pred_depth": 2,
        "pred_heads": 4,
        "epochs": 16,  # 12 steps of 64 objects each: 192 steps
        "batch_size": 64,
        "lr": 1e-3,
        "warmup_steps": 20,
        "eval_every": 64,
        # A ViT pass over every patch of 6,000 images took 28 s on one thread: 3,000 keep an
        # evaluation point near 14 s
        "probe_train_size": 2000,  # 2-3 views of each of the 800 training objects
        "probe_test_size": 1000,  # 5 views of each of the 200 held-out objects
        "save_every_epochs": 4,
    },
    "smoke": {
        "objects_size": "small",  # 60 training objects x 8 views, 20 held out
        "image_size": 32,
        "depth": 2,
        "pred_dim": 32,
        "pred_depth": 1,
        "pred_heads": 2,
        "num_slices": 64,
        "epochs": 2,
        "batch_size": 8,  # 7 steps per epoch
        "lr": 1e-3,
        "warmup_steps": 3,
        "eval_every": 5,
        "eval_probe_epochs": 3,
        "probe_epochs": 5,
        # 4 of the 8 views of each training object, 4 of each held-out one: a ViT pass over
        # every patch of 640 images takes ~1 s on one thread, most of an evaluation point
        "probe_train_size": 240,
        "probe_test_size": 80,
        "knn_k": 5,
        "log_every": 1,
        "monitor_every": 2,
        "threads": 1,
    },
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (model widths are copied into IJEPAConfig)."""

    preset: str = "demo"
    # data: the built-in rendered objects (jepa_blocks.data.RenderedObjects)
    objects_size: str = "large"  # small | default | large
    image_size: int = 32  # rendered side (px)
    num_classes: int = 10
    nuisances: str = "view"  # scene latents drawn per view | per object | fixed
    crop_scale_min: float = 0.3  # I-JEPA's RandomResizedCrop area (0.3, 1.0); no other aug
    data_seed: int = 0  # the rendering's seed (objects, poses, scenes)
    # model: a timm ViT through jepa_blocks.MaskedEncoder, jepa_blocks.MaskedPredictor
    vit: str = "vit_tiny_patch16_224"
    patch_size: int = 4
    depth: int = 12  # encoder blocks (timm's vit_tiny has 12)
    pred_dim: int = 96
    pred_depth: int = 3
    pred_heads: int = 4
    pred_pos: str = "sincos"  # sincos (I-JEPA) | rope
    # masks: jepa_blocks.MultiBlockMasks, the paper's defaults
    num_targets: int = 4
    target_scale_min: float = 0.15
    target_scale_max: float = 0.2
    context_scale_min: float = 0.85
    min_keep: int = 10
    # objective: ema (I-JEPA: EMA target, stop-gradient) | sigreg (no EMA, no stop-gradient)
    regularizer: str = "ema"
    ema_start: float = 0.996  # linear to ema_end over the run (I-JEPA)
    ema_end: float = 1.0
    lam: float = 0.05  # sigreg: loss = (1 - lam) prediction + lam SIGReg (LeJEPA's 0.05)
    sigreg_on: str = "tokens"  # tokens: every patch token; pooled: one per image
    num_slices: int = 256
    # optimisation: AdamW, linear warm-up then a cosine to lr * final_lr_ratio
    epochs: int = 25
    batch_size: int = 64  # GLOBAL batch: split evenly across torchrun ranks
    lr: float = 1e-3
    final_lr_ratio: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.05
    seed: int = 0
    # evaluation: probes on mean-pooled encoder tokens of training objects, scored on
    # held-out objects
    eval_every: int = 60  # steps between evaluation points during training (0: none)
    eval_probe_epochs: int = 20  # linear-probe epochs at the evaluation points
    probe_epochs: int = 100  # linear-probe epochs of the final evaluation
    probe_train_size: int = 2000  # images (spread over all objects); 0: the whole split
    probe_test_size: int = 1000
    probe_batch_size: int = 256
    knn_k: int = 20
    # operational (not part of the checkpoint compatibility check)
    num_workers: int = 0
    threads: int = 0  # torch's intra-op threads; 0: torch's default (one per core)
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16
    log_every: int = 10
    # CollapseMonitor on the encoder's tokens every k steps (the target's with an EMA, the
    # online encoder's with SIGReg: the ones the probes read); 0 turns it off
    monitor_every: int = 25
    save_every_steps: int = 0  # 0: at epoch ends only
    save_every_epochs: int = 1  # at every k-th epoch end (and the last); SIGTERM always saves
    keep_last: int = 2
    max_steps: int = 0  # 0: run all epochs (tests stop early to simulate an interruption)
    evaluate: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


#: Fields that may differ between a run and its resumption.
OPERATIONAL_FIELDS = (
    "num_workers",
    "threads",
    "device",
    "log_every",
    "monitor_every",
    "save_every_steps",
    "save_every_epochs",
    "keep_last",
    "max_steps",
    "evaluate",
    "progress",
    "probe_epochs",
    "extra",
)
