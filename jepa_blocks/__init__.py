"""jepa_blocks: typed, composable PyTorch building blocks for joint-embedding predictive
architectures, with seq-JEPA (Ghaemi et al., NeurIPS 2025) assembled from them in
``examples/``.

The public API is re-exported here; submodules hold one family each (see DESIGN.md).
"""

from jepa_blocks.actions import (
    ActionEncoder,
    canonicalize_quaternion,
    euler_to_quaternion,
    parameter_deltas,
    position_deltas,
    quaternion_conjugate,
    quaternion_multiply,
    relative_rotation,
    relative_rotation_from_euler,
)
from jepa_blocks.aggregator import SequenceAggregator
from jepa_blocks.backbones import Backbone, create_backbone
from jepa_blocks.ema import (
    ConstantMomentum,
    CosineMomentum,
    EMATarget,
    LinearMomentum,
    MomentumSchedule,
    WarmupMomentum,
)
from jepa_blocks.layers import (
    ATTENTION_CORE_ENV,
    ATTENTION_CORES,
    SDPA_BACKENDS,
    Attention,
    Mlp,
    TransformerBlock,
    attention_core,
    cuda_graph_supported,
    default_attention_core,
    graph_module,
    set_attention_core,
)
from jepa_blocks.losses import (
    MASKED_LOSSES,
    LeJEPALoss,
    LeJEPAOutput,
    SeqJEPALoss,
    SIGReg,
    VICRegLoss,
    covariance,
    masked_prediction_loss,
    seq_jepa_loss,
    sigreg,
    sigreg_quadrature,
    variance,
)
from jepa_blocks.masked import MaskedEncoder, MaskedPredictor, gather_targets
from jepa_blocks.masks import BlockMasks, MultiBlockMasks, TubeMasks, gather_tokens, scatter_tokens
from jepa_blocks.monitors import CollapseMonitor, CollapseWarning
from jepa_blocks.positions import (
    RotaryEmbedding,
    grid_coordinates,
    sincos_embed_2d,
    sincos_embed_3d,
)
from jepa_blocks.predictor import PREDICTOR_MODES, ConditionedPredictor
from jepa_blocks.tokens import ViewActionConcat

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # actions
    "ActionEncoder",
    "canonicalize_quaternion",
    "euler_to_quaternion",
    "parameter_deltas",
    "position_deltas",
    "quaternion_conjugate",
    "quaternion_multiply",
    "relative_rotation",
    "relative_rotation_from_euler",
    # tokens, aggregation, prediction
    "ViewActionConcat",
    "ATTENTION_CORES",
    "Attention",
    "attention_core",
    "ATTENTION_CORE_ENV",
    "default_attention_core",
    "set_attention_core",
    "Mlp",
    "SDPA_BACKENDS",
    "graph_module",
    "cuda_graph_supported",
    "SequenceAggregator",
    "TransformerBlock",
    "PREDICTOR_MODES",
    "ConditionedPredictor",
    # targets and losses
    "EMATarget",
    "MomentumSchedule",
    "ConstantMomentum",
    "CosineMomentum",
    "LinearMomentum",
    "WarmupMomentum",
    "SeqJEPALoss",
    "seq_jepa_loss",
    # anti-collapse regularisers and the LeJEPA objective
    "SIGReg",
    "sigreg",
    "sigreg_quadrature",
    "LeJEPALoss",
    "LeJEPAOutput",
    "VICRegLoss",
    # collapse monitors
    "CollapseMonitor",
    "CollapseWarning",
    "variance",
    "covariance",
    # backbones
    "Backbone",
    "create_backbone",
    # masked prediction: masks, kept tokens, positions
    "BlockMasks",
    "MultiBlockMasks",
    "TubeMasks",
    "gather_tokens",
    "scatter_tokens",
    "RotaryEmbedding",
    "grid_coordinates",
    "sincos_embed_2d",
    "sincos_embed_3d",
    # masked prediction (I-JEPA, V-JEPA)
    "MaskedEncoder",
    "MaskedPredictor",
    "gather_targets",
    "MASKED_LOSSES",
    "masked_prediction_loss",
]
