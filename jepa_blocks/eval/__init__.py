"""Evaluation on frozen features: probes, regressors, ridge, kNN, RankMe, feature extraction.

A JEPA is judged by what its frozen representations support (spec §4). The blocks here are
generic and depend on a model only through :class:`SequenceModel` (``encode`` and
``aggregate``) or an image encoder:

- :mod:`.contract`: the model and batch contract, :func:`eval_mode`;
- :mod:`.features`: one pass over a sequence loader (z_AGG per inference length, encoder
  outputs, pairs, path-integration inputs and ablations); :mod:`.views`: every view embedded
  once, and :class:`PooledPixels`, the raw-pixel floor;
- :mod:`.targets`: rotation and displacement targets of the transformation probes;
- :mod:`.heads`, :mod:`.linear`, :mod:`.regression`: seeded heads trained with Adam (the
  linear probe, linear and MLP regressors); :mod:`.ridge`: closed-form ridge probes;
- :mod:`.metrics`: R^2, top-1, RankMe, kNN top-1.

A method's whole protocol (seq-JEPA's is ``examples/seq_jepa/evaluate.py``) is assembled from
these. Accuracies are fractions in ``[0, 1]``.
"""

from jepa_blocks.eval.contract import SequenceModel, eval_mode, model_device
from jepa_blocks.eval.features import (
    SequenceFeatures,
    extract_aggregate_features,
    extract_pair_features,
    extract_path_integration_features,
    extract_sequence_features,
    extract_single_view_features,
)
from jepa_blocks.eval.heads import make_mlp_head
from jepa_blocks.eval.linear import ProbeResult, fit_linear_probe
from jepa_blocks.eval.metrics import knn_top1, r2_score, rankme, top1_accuracy
from jepa_blocks.eval.regression import RegressionResult, fit_regressor
from jepa_blocks.eval.ridge import (
    DEFAULT_PENALTIES,
    BilinearPairFeatures,
    RidgeProbe,
    RotationR2,
    fit_ridge,
    rotation_ridge_r2,
    sample_view_pairs,
)
from jepa_blocks.eval.targets import (
    PathTargetFn,
    absolute_rotation_target,
    additive_path_target,
    rotation_path_target,
)
from jepa_blocks.eval.views import PooledPixels, ViewFeatures, extract_view_features

__all__ = [
    # metrics
    "r2_score",
    "top1_accuracy",
    "rankme",
    "knn_top1",
    # heads and probes
    "ProbeResult",
    "RegressionResult",
    "make_mlp_head",
    "fit_linear_probe",
    "fit_regressor",
    # the model contract
    "SequenceModel",
    "eval_mode",
    "model_device",
    # targets
    "PathTargetFn",
    "absolute_rotation_target",
    "rotation_path_target",
    "additive_path_target",
    # features
    "SequenceFeatures",
    "extract_sequence_features",
    "extract_aggregate_features",
    "extract_pair_features",
    "extract_single_view_features",
    "extract_path_integration_features",
    "ViewFeatures",
    "PooledPixels",
    "extract_view_features",
    # ridge probes
    "DEFAULT_PENALTIES",
    "RidgeProbe",
    "fit_ridge",
    "BilinearPairFeatures",
    "sample_view_pairs",
    "RotationR2",
    "rotation_ridge_r2",
]
