"""Training presets: the paper's hyperparameters per dataset, and small CPU presets.

Each preset is a dict of :class:`TrainConfig` overrides; command-line flags override the
preset. ``demo`` is the default: the built-in rendered objects, sized to train, evaluate and
print its table in under 10 minutes on 2 CPU cores. ``smoke`` runs in seconds (tests).
The ``paper-*`` presets carry spec §3.1's recipe and need ``--data-dir``.
"""

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
        # machine --threads 0 (all cores) is faster: 248 against 408 ms a step on 2 idle cores.
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
