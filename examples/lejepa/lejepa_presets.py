"""Training presets for the LeJEPA example: the run's configuration and its named presets.

Each preset is a dict of :class:`TrainConfig` overrides; command-line flags override the
preset. ``demo`` is the default: the built-in rendered objects, sized to train, evaluate and
print its table in under 10 minutes on 2 CPU cores (RESULTS.md has the measured time).
``smoke`` runs in seconds (tests).
"""

from dataclasses import dataclass, field
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        # 10 classes x 100 objects x 50 rendered views (80 training objects per class, 20
        # held out), each view with its own floor hue and light (3DIEBench's nuisances)
        "objects_size": "large",
        "nuisances": "view",
        "views_from": "object",  # views of an object, not crops of one image: lejepa_data.py
        "image_size": 32,
        "local_size": 16,  # the paper's 224 / 96 px, scaled to 32 / 16
        "num_global": 2,
        "num_local": 4,
        # resnet18 with the ImageNet stem at 32 px: the paper's CIFAR stem (3x3 stride 1, no
        # max-pool) costs 16x the FLOPs (6.5 s against 0.9 s per step of 64 images and their 6
        # views on one thread), which would leave ~50 steps in the budget.
        "backbone": "resnet18",
        "cifar_stem": False,
        # At 32 px with the ImageNet stem, timm's zero-initialised last BN of each residual
        # block makes the network see only the top-left stem pixel at step 0 (see
        # examples/seq_jepa/presets.py): keep the residual blocks live.
        "zero_init_residual": False,
        "proj_hidden": 1024,
        "epochs": 25,  # 12 steps of 64 objects each: 300 steps
        "batch_size": 64,
        "lr": 1e-3,
        "warmup_steps": 30,
        "weight_decay": 5e-4,  # the paper's for a ResNet
        "eval_every": 30,
        "probe_train_size": 4000,  # 5 views of each of the 800 training objects
        "probe_test_size": 2000,  # 10 views of each of the 200 held-out objects
        # One intra-op thread: on 2 shared cores two OpenMP threads wait on each other at
        # every small op (examples/seq_jepa measured 3-5x); --threads 0 uses every core.
        "threads": 1,
        "save_every_epochs": 5,  # a checkpoint (155 MB with AdamW's moments) took ~0.6 s
    },
    "smoke": {
        "objects_size": "small",  # 60 training objects x 8 views, 20 held out
        "image_size": 32,
        "local_size": 16,
        "num_local": 2,
        "backbone": "test_resnet",  # timm's 0.37 M-parameter test ResNet: seconds, not minutes
        "proj_hidden": 64,
        "proj_dim": 32,
        "num_slices": 64,
        "epochs": 2,
        "batch_size": 8,  # 7 steps per epoch
        "lr": 1e-3,
        "warmup_steps": 3,
        "eval_every": 5,
        "eval_probe_epochs": 3,
        "probe_epochs": 5,
        "probe_train_size": 0,  # every image: 480 training, 160 held out
        "probe_test_size": 0,
        "knn_k": 5,
        "log_every": 1,
        "monitor_every": 2,
        "threads": 1,
    },
}

# The demo's recipe run 10x longer (3,000 steps): roughly an hour on an idle 2-core machine
# (not measured end to end).
PRESETS["cpu-hour"] = {**PRESETS["demo"], "epochs": 250, "eval_every": 150, "save_every_epochs": 25}


@dataclass
class TrainConfig:
    """Everything that defines a training run (model widths are copied into LeJEPAConfig)."""

    preset: str = "demo"
    # data: the built-in rendered objects (jepa_blocks.data.RenderedObjects)
    objects_size: str = "large"  # small | default | large
    image_size: int = 32  # rendered side = global-view side (px)
    local_size: int = 16  # local-view side (px)
    num_classes: int = 10
    nuisances: str = "view"  # scene latents drawn per view | per object | fixed
    # object: an item is an object, each view crops one of its rendered views (drawn per
    # view); image: an item is an image, every view crops it (lejepa_data.py: why object)
    views_from: str = "object"
    num_global: int = 2
    num_local: int = 6
    global_scale_min: float = 0.3  # global crops cover 30-100 % of the image
    local_scale_min: float = 0.05  # local crops 5-30 %
    local_scale_max: float = 0.3
    data_seed: int = 0  # the rendering's seed (objects, poses, scenes)
    # model and objective
    backbone: str = "resnet18"
    cifar_stem: bool = False
    zero_init_residual: bool = True  # timm's default init; ResNets only
    proj_hidden: int = 2048
    proj_dim: int = 128
    proj_layers: int = 3
    lam: float = 0.05
    num_slices: int = 1024
    # optimisation: AdamW, linear warm-up then a cosine to lr * final_lr_ratio (paper: /1000)
    epochs: int = 25
    batch_size: int = 64  # GLOBAL batch: split evenly across torchrun ranks
    lr: float = 5e-4
    final_lr_ratio: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 5e-4
    seed: int = 0
    # evaluation: probes on backbone features of training objects, scored on held-out objects
    eval_every: int = 40  # steps between evaluation points during training (0: none)
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
    sync_bn: bool = False
    log_every: int = 10
    # CollapseMonitor on the global views' embeddings every k steps; 0 turns it off
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
