"""The datasets of each preset: training sequences and the two evaluation splits.

Training sequences have ``seq_len + 1`` views (M_tr observations and the target); the
evaluation splits have ``m_val_max + 1`` views so one extraction serves every M_val and path
length. Datasets whose views carry rotation latents and object ids also give per-view data
for the ridge rotation probes (``view_train`` / ``view_test``): every rendered view of the
built-in objects, every view of the evaluation sequences for 3DIEBench (all 50 renders of
its 41,920 training objects would be 2 M images). Every bad path, width or length is
reported here, before a model is built.
"""

from dataclasses import dataclass
from typing import Any

from config import TrainConfig
from torch.utils.data import ConcatDataset, Dataset

from jepa_blocks.data.objects import ObjectSequences, RenderedObjects


@dataclass
class DataBundle:
    train: Any  # a Dataset of dict items with set_epoch(epoch)
    eval_train: Dataset
    eval_test: Dataset
    dim_action: int
    action_kind: str  # "rot" | "aug" | "pos": what the R^2 and path-integration heads regress
    num_classes: int
    # Per-view data with latents and object ids for the ridge probes (None: no ridge probes).
    view_train: Dataset | None = None
    view_test: Dataset | None = None


def _objects(config: TrainConfig) -> DataBundle:
    def split(name: str) -> RenderedObjects:
        return RenderedObjects(
            split=name, size=config.objects_size, image_size=config.image_size, seed=config.seed,
            nuisances=config.nuisances,
        )

    train_objects, val_objects = split("train"), split("val")
    available = train_objects.views_per_object
    if config.m_val_max + 1 > available:
        raise SystemExit(
            f"error: --m-val-max {config.m_val_max} needs {config.m_val_max + 1} views per "
            f"object but the built-in {config.objects_size!r} objects have {available}; lower "
            "--m-val-max or pick a larger --objects-size."
        )

    def sequences(objects: RenderedObjects, views: int, seed: int) -> ObjectSequences:
        return ObjectSequences(objects, num_views=views, action=config.action, seed=seed)

    train = sequences(train_objects, config.seq_len + 1, config.seed)
    # Several random sequences per training object give the probes more examples to fit (the
    # built-in dataset has few objects); each repeat draws other views and orders.
    probe_train = ConcatDataset([
        sequences(train_objects, config.m_val_max + 1, config.seed + 1 + repeat)
        for repeat in range(config.probe_repeats)
    ])
    return DataBundle(
        train=train,
        eval_train=probe_train,
        eval_test=sequences(val_objects, config.m_val_max + 1, config.seed + 2),
        dim_action=train.dim_action,
        action_kind="rot",
        num_classes=train_objects.num_classes,
        view_train=train_objects,
        view_test=val_objects,
    )


def _threediebench(config: TrainConfig) -> DataBundle:
    from jepa_blocks.data.sources import ThreeDIEBenchSequences

    def sequences(split: str, views: int, seed: int) -> ThreeDIEBenchSequences:
        return ThreeDIEBenchSequences(
            config.data_dir, split=split, num_views=views, action=config.action,
            image_size=config.image_size, seed=seed,
        )

    train = sequences("train", config.seq_len + 1, config.seed)
    eval_train = sequences("train", config.m_val_max + 1, config.seed + 1)
    eval_test = sequences("val", config.m_val_max + 1, config.seed + 2)
    return DataBundle(
        train=train,
        eval_train=eval_train,
        eval_test=eval_test,
        dim_action=train.dim_action,
        action_kind="rot",
        num_classes=train.num_classes,
        view_train=eval_train,
        view_test=eval_test,
    )


def _cifar100(config: TrainConfig) -> DataBundle:
    from jepa_blocks.data.augmented import CIFAR100_MEAN, CIFAR100_STD, AugmentedSequences
    from jepa_blocks.data.sources import CIFAR100

    def sequences(split: str, views: int, seed: int) -> AugmentedSequences:
        return AugmentedSequences(
            CIFAR100(config.data_dir, split=split), num_views=views, action=config.action,
            mean=CIFAR100_MEAN, std=CIFAR100_STD, image_size=config.image_size, seed=seed,
        )

    train = sequences("train", config.seq_len + 1, config.seed)
    return DataBundle(
        train=train,
        eval_train=sequences("train", config.m_val_max + 1, config.seed + 1),
        eval_test=sequences("test", config.m_val_max + 1, config.seed + 2),
        dim_action=train.dim_action,
        action_kind="aug",
        num_classes=100,
    )


def _stl10_pls(config: TrainConfig) -> DataBundle:
    from jepa_blocks.data.saccades import STL10_MEAN, STL10_STD, SaccadeSequences
    from jepa_blocks.data.sources import STL10

    def sequences(split: str, fixations: int, seed: int) -> SaccadeSequences:
        return SaccadeSequences(
            STL10(config.data_dir, split=split), num_views=fixations,
            image_size=config.image_size, mean=STL10_MEAN, std=STL10_STD, seed=seed,
        )

    # SSL on the unlabeled split; probes train on train and test on test (spec §2.3).
    train = sequences("unlabeled", config.seq_len + 1, config.seed)
    return DataBundle(
        train=train,
        eval_train=sequences("train", config.m_val_max + 1, config.seed + 1),
        eval_test=sequences("test", config.m_val_max + 1, config.seed + 2),
        dim_action=train.dim_action,
        action_kind="pos",
        num_classes=10,
    )


BUILDERS = {
    "objects": _objects,
    "3diebench": _threediebench,
    "cifar100": _cifar100,
    "stl10-pls": _stl10_pls,
}


def build_data(config: TrainConfig) -> DataBundle:
    """The preset's datasets; a missing or malformed dataset stops here with its path."""
    if config.dataset not in BUILDERS:
        raise SystemExit(
            f"error: unknown dataset {config.dataset!r}; choose one of {sorted(BUILDERS)}."
        )
    try:
        return BUILDERS[config.dataset](config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: cannot load {config.dataset} data: {error}") from error
