"""Training presets: the paper's hyperparameters per dataset, and small CPU presets.

Each preset is a dict of :class:`TrainConfig` overrides; command-line flags override the
preset. ``demo`` is the default: the built-in rendered objects, sized to train, evaluate and
print its table in under 10 minutes on 2 CPU cores. ``smoke`` runs in seconds (tests).
The ``paper-*`` presets carry spec §3.1's recipe and need ``--data-dir``.
"""

from dataclasses import dataclass, field
from typing import Any

PAPER_COMMON: dict[str, Any] = {
    "batch_size": 512,
    "lr": 4e-4,
    "initial_lr": 1e-5,
    "final_lr": 1e-5,
    "warmup_epochs": 20,
    "weight_decay": 1e-3,
    "ema_base": 0.996,
    "m_val_max": 8,
    "probe_epochs_linear": 300,
    "probe_epochs_mlp": 300,
    "probe_epochs_linear_regressor": 50,
    "probe_batch_size": 256,
    "num_workers": 8,
}

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "dataset": "objects",
        "image_size": 32,
        "objects_size": "large",  # 1,000 objects x 50 views, like 3DIEBench's 50 views
        # At 32 px with the ImageNet stem, layer 4 is 1x1 and every downsampling shortcut is a
        # strided 1x1 convolution, so a ResNet whose residual blocks start at zero (the
        # official init) maps an image to a function of its top-left stem pixel only: the
        # backdrop. A few hundred self-supervised steps never leave that state (every probe at
        # chance); with live residual blocks the centre is seen from step 0. At the paper's
        # 128 px the last map is 4x4 and the official init is harmless.
        "zero_init_residual": False,
        # One scene for every view: rotation is the only thing that changes between the views
        # of an object, and it is what the actions describe (RESULTS.md: the sweep).
        "nuisances": "fixed",
        "seq_len": 3,
        "epochs": 12,
        "batch_size": 32,
        "lr": 3e-4,
        "initial_lr": 1e-4,
        "final_lr": 1e-5,
        "warmup_epochs": 2,
        "weight_decay": 1e-3,
        "ema_base": 0.996,  # the paper's; lr 1e-3 with EMA 0.99 collapsed in 30 epochs
        "m_val_max": 8,
        "probe_epochs_linear": 60,
        "probe_epochs_mlp": 30,
        "path_max": 3,
        "probe_epochs_linear_regressor": 50,
        "probe_batch_size": 256,
        "probe_repeats": 2,
        "num_workers": 0,
        # A checkpoint (model, EMA target, AdamW moments: ~370 MB, fsynced) takes ~1-2 s, as
        # much as 2-4 steps: saving at every 4th epoch end (and SIGTERM) risks < 1 min of work.
        "save_every_epochs": 4,
        # One intra-op thread: the step is ~1,000 small ops (32 px, 4 tokens), and on 2 cores
        # shared with anything else two OpenMP threads wait on each other at every one; one
        # thread ran the step 3-5x faster there (benchmarks/results/step-cpu.md). On an idle
        # machine, --threads 0 (all cores) may be faster.
        "threads": 1,
    },
    # The demo's recipe trained about 17x longer (5,000 steps): roughly an hour of training on
    # an idle 2-core machine at the demo's speed (not yet measured end to end).
    "cpu-hour": {},
    "smoke": {
        "dataset": "objects",
        "image_size": 32,
        "objects_size": "small",
        "seq_len": 2,
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "initial_lr": 1e-4,
        "final_lr": 1e-5,
        "warmup_epochs": 1,
        "ema_base": 0.99,
        "m_val_max": 3,
        "probe_epochs_linear": 2,
        "probe_epochs_mlp": 2,
        "probe_epochs_linear_regressor": 2,
        "probe_batch_size": 32,
        "num_workers": 0,
        "dropout": 0.0,
        "backbone": "test_resnet",  # timm's 0.37 M-parameter test ResNet: seconds, not minutes
        "dim_action_embed": 32,
        "depth": 1,
        "pred_hidden": 128,
        "log_every": 1,
        "monitor_every": 1,
    },
    "paper-3diebench": {
        **PAPER_COMMON,
        "dataset": "3diebench",
        "image_size": 128,
        "seq_len": 3,
        "epochs": 1000,
        "action": "rot",
    },
    "paper-cifar100": {
        **PAPER_COMMON,
        "dataset": "cifar100",
        "image_size": 32,
        "cifar_stem": True,
        "seq_len": 2,
        "epochs": 2000,
        "action": "all",
    },
    "paper-stl10-pls": {
        **PAPER_COMMON,
        "dataset": "stl10-pls",
        "image_size": 32,  # glimpse size of the 96-px images
        "cifar_stem": True,
        "seq_len": 4,  # num_saccades = 5: 4 observations + 1 target
        "epochs": 2000,
        "action": "pos",
        "m_val_max": 4,
    },
}

PRESETS["cpu-hour"] = {
    **PRESETS["demo"],
    "epochs": 200,
    "warmup_epochs": 10,
    "save_every_epochs": 10,
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (model widths live in ``SeqJEPAConfig``)."""

    preset: str = "demo"
    variant: str = "seq-jepa"
    dataset: str = "objects"  # objects | 3diebench | cifar100 | stl10-pls
    data_dir: str | None = None
    image_size: int = 32
    objects_size: str = "default"  # built-in dataset scale: small | default | large
    # built-in objects: scene latents (floor hue, light) drawn per view (3DIEBench), per object
    # or fixed (RenderedObjects(nuisances=...))
    nuisances: str = "view"
    action: str = "rot"  # rot | rotcolor (objects, 3diebench); all|crop|jitter|blur; pos
    seq_len: int = 3  # M_tr: observed views per training sequence (plus one target)
    backbone: str = "resnet18"
    cifar_stem: bool = False
    # The official code's init (torchvision zero_init_residual=True, timm's zero_init_last):
    # each residual block starts as the identity. See the demo preset for why it is off there.
    zero_init_residual: bool = True
    dim_action_embed: int = 128
    depth: int = 3
    heads: int = 4
    pred_hidden: int = 1024
    dropout: float = 0.1
    # single (ours: one BatchNorm call for all actions) | separate | separate-zero-slot (the
    # official code's two calls, 3DIEBench and augmentation/saccade layouts): model.py
    action_norm_calls: str = "single"
    # seq-jepa-sigreg: loss = (1 - lam) prediction + lam SIGReg (LeJEPA's lam)
    sigreg_lambda: float = 0.05
    epochs: int = 25
    batch_size: int = 64  # GLOBAL batch: split evenly across torchrun ranks
    lr: float = 4e-4
    initial_lr: float = 1e-5
    final_lr: float = 1e-5
    warmup_epochs: int = 20
    weight_decay: float = 1e-3
    ema_base: float = 0.996
    ema_final: float = 1.0
    m_val_max: int = 8
    probe_epochs_linear: int = 300
    probe_epochs_mlp: int = 300
    probe_epochs_linear_regressor: int = 50
    probe_batch_size: int = 256
    path_max: int = 0  # path-integration lengths 1..path_max (0: every length the data allows)
    probe_repeats: int = 1  # built-in data: random sequences per training object for the probes
    seed: int = 0
    # operational (not part of the checkpoint compatibility check)
    num_workers: int = 0
    threads: int = 0  # torch's intra-op threads; 0: torch's default (one per core)
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False
    # the aggregator's attention core (sdpa | online | naive); unset: the library default
    attn_core: str | None = None
    sync_bn: bool = False
    nan_policy: str = "stop"  # stop | skip
    log_every: int = 10
    # CollapseMonitor (RankMe, per-dim std, SIGReg statistic, teacher cosine) every k steps;
    # 0 turns it off. It does not change the training (a no-grad look at the step's embeddings).
    monitor_every: int = 25
    save_every_steps: int = 0  # 0: at epoch ends only
    save_every_epochs: int = 1  # at every k-th epoch end (and the last); SIGTERM always saves
    keep_last: int = 3
    max_steps: int = 0  # 0: run all epochs (tests stop early to simulate interruption)
    evaluate: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


#: Fields that may differ between a run and its resumption.
OPERATIONAL_FIELDS = (
    "attn_core",
    "monitor_every",
    "data_dir",
    "num_workers",
    "threads",
    "device",
    "compile",
    "nan_policy",  # a stopped run may be resumed with --nan-policy skip, as the error suggests
    "log_every",
    "save_every_steps",
    "save_every_epochs",
    "keep_last",
    "max_steps",
    "evaluate",
    "progress",
    "probe_epochs_linear",
    "probe_epochs_mlp",
    "probe_epochs_linear_regressor",
    "probe_batch_size",
    "probe_repeats",
    "path_max",
    "extra",
)
