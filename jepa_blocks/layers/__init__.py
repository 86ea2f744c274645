"""Generic parts every family builds on: attention (selectable cores), the one MLP, a
transformer layer assembled from parts passed in, and CUDA-graph capture."""

from jepa_blocks.layers.attention import (
    ATTENTION_CORE_ENV,
    ATTENTION_CORES,
    SDPA_BACKENDS,
    Attention,
    attention_core,
    default_attention_core,
    set_attention_core,
)
from jepa_blocks.layers.cuda_graph import cuda_graph_supported, graph_module
from jepa_blocks.layers.mlp import Mlp, remap_state_dict_keys
from jepa_blocks.layers.transformer import TransformerBlock

__all__ = [
    "ATTENTION_CORE_ENV",
    "ATTENTION_CORES",
    "SDPA_BACKENDS",
    "Attention",
    "Mlp",
    "TransformerBlock",
    "attention_core",
    "cuda_graph_supported",
    "default_attention_core",
    "graph_module",
    "remap_state_dict_keys",
    "set_attention_core",
]
