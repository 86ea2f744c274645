"""The block contract (DESIGN.md, "Contracts"), checked the same way for every public block.

Each public ``nn.Module`` class and loss of ``jepa_blocks`` has at least one entry in
:data:`CASES`: a factory that builds it with tiny sizes and makes example inputs. Every entry
goes through the same checks:

- fp32 forward: the documented output shapes, fp32, finite; a random projection of the outputs
  gives every trainable parameter (and every input that should have one) a finite gradient,
  non-zero somewhere;
- bf16 autocast: forward and backward run, outputs and gradients finite;
- ``torch.compile(fullgraph=True)``: no graph break, the same outputs, gradients and buffers
  (BatchNorm statistics, SIGReg's step) as eager.

The same checks run on CUDA when it is available. :func:`test_every_public_block_has_a_case`
fails when a name joins ``jepa_blocks.__all__`` without a case here or a reasoned entry in
:data:`NOT_BLOCKS`.
"""

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from _contract import assert_every_parameter_gets_a_gradient, assert_gets_a_gradient, typecheck_off
from torch import Tensor, nn

import jepa_blocks as jb

# CUDA cases exist where a GPU does (benchmarks/gpu.sh runs this file there); on a CPU-only
# machine they are not generated, rather than reported as ~100 skips.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

# Tiny sizes: b sequences of m views, embeddings of width d; n samples for the regularisers.
B, M, DA, DE, DV, D, N = 4, 3, 4, 8, 6, 16, 8

# (block, positional inputs, keyword inputs)
Example = tuple[Callable[..., Any], tuple[Tensor, ...], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One public block with tiny sizes.

    Attributes:
        name: the test id.
        covers: the ``jepa_blocks.__all__`` names this case stands for.
        make: ``make(device) -> (block, args, kwargs)``; ``args`` are tensors.
        shapes: the documented shape of each output (a tuple output is flattened).
        grad_args: positions in ``args`` that must receive a gradient.
        frozen_args: positions in ``args`` that must receive none (stop-gradient targets).
        differentiable: ``False`` for a block whose output carries no graph (EMA target).
        no_fullgraph: why the block cannot be compiled with ``fullgraph=True``; the compile
            check is then an expected (strict) failure, so a fix shows up.
        tol: ``rtol = atol`` of the compiled-versus-eager comparison.
    """

    name: str
    covers: tuple[str, ...]
    make: Callable[[torch.device], Example]
    shapes: tuple[tuple[int, ...], ...]
    grad_args: tuple[int, ...] = ()
    frozen_args: tuple[int, ...] = ()
    differentiable: bool = True
    no_fullgraph: str | None = None
    tol: float = 1e-5


def _randn(device: torch.device, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, device=device) * scale


def _padding(device: torch.device) -> Tensor:
    """``(B, M)`` padding mask (True = padding): sequence 1 has two real views, 2 has one."""
    mask = torch.zeros(B, M, dtype=torch.bool, device=device)
    mask[1, 2:] = True
    mask[2, 1:] = True
    return mask


def _action_encoder(**kwargs: Any) -> Callable[[torch.device], Example]:
    padded = kwargs.pop("padded", False)

    def make(device: torch.device) -> Example:
        block = jb.ActionEncoder(DA, DE, device=device, **kwargs)
        extra = {"padding_mask": _padding(device)} if padded else {}
        return block, (_randn(device, B, M, DA),), extra

    return make


def _concat(padded: bool) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        extra = {"padding_mask": _padding(device)} if padded else {}
        views, actions = _randn(device, B, M, DV), _randn(device, B, M, DE)
        return jb.ViewActionConcat(DV, DE), (views, actions), extra

    return make


def _aggregator(padded: bool, **kwargs: Any) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        # dropout 0: compiled and eager runs must see the same network
        block = jb.SequenceAggregator(D, depth=2, heads=4, dropout=0.0, device=device, **kwargs)
        extra = {"padding_mask": _padding(device)} if padded else {}
        return block, (_randn(device, B, M, D),), extra

    return make


def _transformer_block(device: torch.device) -> Example:
    block = jb.TransformerBlock(D, 4, dropout=0.0, device=device)
    x = _randn(device, B, M + 1, D)
    return block, (x,), {"key_padding_mask": F.pad(_padding(device), (1, 0))}


def _attention(core: str, dropout: float = 0.0) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        # block_size 2 on 4 tokens: the online core runs more than one tile per row
        block = jb.Attention(D, 4, core=core, dropout=dropout, block_size=2, device=device)
        x = _randn(device, B, M + 1, D)
        return block, (x,), {"key_padding_mask": F.pad(_padding(device), (1, 0))}

    return make


def _rope_attention(core: str) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        # head width 8 over 3 axes: slices of 2 channels each, 2 channels not rotated
        rope = jb.RotaryEmbedding(D // 2, axes=3, device=device)
        block = jb.Attention(D, 2, core=core, block_size=2, rope=rope, device=device)
        x = _randn(device, B, M + 1, D)
        positions = jb.grid_coordinates((1, 2, 2), device=device).expand(B, -1, -1)
        kwargs = {"key_padding_mask": F.pad(_padding(device), (1, 0)), "positions": positions}
        return block, (x,), kwargs

    return make


def _rotary(device: torch.device) -> Example:
    block = jb.RotaryEmbedding(8, axes=3, device=device)
    positions = jb.grid_coordinates((1, 2, 2), device=device)  # (n, a), shared by the batch
    return block, (_randn(device, B, 2, M + 1, 8),), {"positions": positions}


def _scatter_tokens(device: torch.device) -> Example:
    mask = torch.tensor([[True, False, True, True, False, False]] * B, device=device)
    mask[1] = torch.tensor([False, True, False, False, False, True])
    tokens = _randn(device, B, 3, D)
    padding = torch.arange(3, device=device) >= mask.sum(1, keepdim=True)
    return jb.scatter_tokens, (tokens, padding, mask), {"fill": 0.5}


def _attention_core(core: str) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        q, k, v = (_randn(device, B, 2, M + 1, 4) for _ in range(3))
        mask = F.pad(_padding(device), (0, 1))  # padding at the end, so causal rows stay
        kwargs = {"key_padding_mask": mask, "core": core, "causal": True, "block_size": 2}
        return jb.attention_core, (q, k, v), kwargs

    return make


def _mlp(device: torch.device) -> Example:
    block = jb.Mlp(D, 2 * D, DV, norm_layer=nn.LayerNorm, device=device)
    return block, (_randn(device, B, M, D),), {}


def _predictor(mode: str, dim_cond: int = DE) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        block = jb.ConditionedPredictor(D, dim_cond, DV, hidden=2 * D, mode=mode, device=device)
        args = (_randn(device, B, D),) + ((_randn(device, B, dim_cond),) if dim_cond else ())
        return block, args, {}

    return make


def _ema_target(device: torch.device) -> Example:
    online = jb.Mlp(DV, D, DE, norm_layer=nn.BatchNorm1d, device=device)
    return jb.EMATarget(online, schedule=0.9), (_randn(device, B, DV),), {}


def _seq_jepa_loss(device: torch.device) -> Example:
    return jb.SeqJEPALoss(), (_randn(device, B, DV), _randn(device, B, DV)), {}


def _seq_jepa_loss_fn(device: torch.device) -> Example:
    args = (_randn(device, B, M, DV), _randn(device, B, M, DV))
    return jb.seq_jepa_loss, args, {"reduction": "none"}


def _sigreg_module(device: torch.device) -> Example:
    return jb.SIGReg(16, device=device), (_randn(device, 2, N, DV),), {}


def _sigreg_fn(official_knots: bool) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        directions = F.normalize(_randn(device, DV, 16), dim=0)
        kwargs = {}
        if official_knots:  # the official package's half-domain rule, as documented
            knots, weights = jb.sigreg_quadrature(17, 3.0, half_domain=True, device=device)
            kwargs = {"knots": knots, "weights": weights}
        return jb.sigreg, (_randn(device, N, DV), directions), kwargs

    return make


def _lejepa(device: torch.device) -> Example:
    loss = jb.LeJEPALoss(0.3, sigreg=jb.SIGReg(16, device=device))
    return loss, (_randn(device, 2, N, DV), _randn(device, 3, N, DV)), {}


def _vicreg(device: torch.device) -> Example:
    # Scaled down so the variance hinge is active and passes a gradient.
    return jb.VICRegLoss(), (_randn(device, N, DV, scale=0.5), _randn(device, N, DV)), {}


def _vicreg_term(fn: Callable[..., Tensor]) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        return fn, (_randn(device, N, DV, scale=0.5),), {}

    return make


def _backbone(name: str, views: bool, **kwargs: Any) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        block = jb.create_backbone(name, **kwargs).to(device)
        # timm zero-initialises each residual branch's last norm scale, which starves the
        # branch of gradient at initialisation; a value makes every parameter reachable.
        with torch.no_grad():
            for module in block.modules():
                weight = getattr(module, "weight", None)
                if isinstance(module, nn.BatchNorm2d) and not weight.any():
                    weight.fill_(1.0)
        shape = (2, 2, 3, 32, 32) if views else (2, 3, 32, 32)
        return block, (_randn(device, *shape),), {}

    return make


_ONLINE_DROPOUT = (
    "the online core draws its dropout seed on the host (int(torch.randint(...)), seeding a "
    "torch.Generator per tile in its custom autograd function); dynamo cannot trace either, "
    "so with dropout > 0 in training mode it graph-breaks. Without dropout (and in eval mode) "
    "it compiles: see the Attention-online case."
)


class _Tokens(nn.Module):
    """The float output of a block that also returns a padding mask (the contract compares
    float outputs; the masks have their own tests in test_masked.py)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, *args: Tensor) -> Tensor:
        return self.block(*args)[0]


def _masked_masks(device: torch.device) -> tuple[Tensor, Tensor]:
    """Context and two target blocks on a 4 x 4 grid, with different kept counts per row."""
    context = torch.zeros(2, 16, dtype=torch.bool, device=device)
    context[0, :9] = True
    context[1, 3:10] = True
    targets = torch.zeros(2, 2, 16, dtype=torch.bool, device=device)
    targets[:, 0, 12:15] = True
    targets[:, 1, 10:12] = True
    return context, targets


def _masked_encoder(masked: bool) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        block = jb.MaskedEncoder("test_vit", image_size=16, patch_size=4).to(device)
        images = _randn(device, 2, 3, 16, 16)
        if not masked:
            return block, (images,), {}
        return _Tokens(block), (images, _masked_masks(device)[0]), {}

    return make


def _masked_predictor(pos: str) -> Callable[[torch.device], Example]:
    def make(device: torch.device) -> Example:
        block = jb.MaskedPredictor(D, 16, D, depth=1, heads=2, grid=(4, 4), pos=pos).to(device)
        context, targets = _masked_masks(device)
        return _Tokens(block), (_randn(device, 2, 9, D), context, targets), {}

    return make


def _masked_loss(device: torch.device) -> Example:
    padding = torch.zeros(2, 5, dtype=torch.bool, device=device)
    padding[1, 3:] = True
    pred, target = _randn(device, 2, 5, D), _randn(device, 2, 5, D)
    return jb.masked_prediction_loss, (pred, target, padding), {"kind": "smooth_l1"}


CASES = [
    Case("ActionEncoder", ("ActionEncoder",), _action_encoder(), ((B, M, DE),), (0,)),
    Case(
        "ActionEncoder-hidden-layer-padded",
        ("ActionEncoder",),
        _action_encoder(hidden=D, norm="layer", padded=True),
        ((B, M, DE),),
        (0,),
    ),
    Case(
        "ActionEncoder-batch-padded",
        ("ActionEncoder",),
        _action_encoder(padded=True),
        ((B, M, DE),),
        (0,),
    ),
    Case("ViewActionConcat", ("ViewActionConcat",), _concat(False), ((B, M, DV + DE),), (0, 1)),
    Case(
        "ViewActionConcat-padded",
        ("ViewActionConcat",),
        _concat(True),
        ((B, M, DV + DE),),
        (0, 1),
    ),
    Case("SequenceAggregator", ("SequenceAggregator",), _aggregator(False), ((B, D),), (0,)),
    Case(
        "SequenceAggregator-prenorm-pos-padded",
        ("SequenceAggregator",),
        _aggregator(True, norm_first=True, max_len=M + 2),
        ((B, D),),
        (0,),
    ),
    Case("TransformerBlock", ("TransformerBlock",), _transformer_block, ((B, M + 1, D),), (0,)),
    *(
        Case(f"Attention-{core}", ("Attention",), _attention(core), ((B, M + 1, D),), (0,))
        for core in jb.ATTENTION_CORES
    ),
    *(
        Case(
            f"Attention-{core}-rope",
            ("Attention", "RotaryEmbedding"),
            _rope_attention(core),
            ((B, M + 1, D),),
            (0,),
        )
        for core in jb.ATTENTION_CORES
    ),
    Case("RotaryEmbedding", ("RotaryEmbedding",), _rotary, ((B, 2, M + 1, 8),), (0,)),
    Case("scatter_tokens", ("scatter_tokens",), _scatter_tokens, ((B, 6, D),), (0,)),
    Case(
        "Attention-online-dropout",
        ("Attention",),
        _attention("online", dropout=0.1),
        ((B, M + 1, D),),
        (0,),
        no_fullgraph=_ONLINE_DROPOUT,
    ),
    *(
        Case(
            f"attention_core-{core}-causal",
            ("attention_core",),
            _attention_core(core),
            ((B, 2, M + 1, 4),),
            (0, 1, 2),
        )
        for core in jb.ATTENTION_CORES
    ),
    Case("MaskedEncoder", ("MaskedEncoder",), _masked_encoder(False), ((2, 16, 64),), (0,),
         tol=1e-4),
    Case(
        "MaskedEncoder-kept-patches",
        ("MaskedEncoder",),
        _masked_encoder(True),
        ((2, 9, 64),),
        (0,),
        no_fullgraph="kept counts vary per batch: gather_tokens reads the largest on the host",
        tol=1e-4,
    ),
    *(
        Case(
            f"MaskedPredictor-{pos}",
            ("MaskedPredictor",),
            _masked_predictor(pos),
            ((2, 2, 3, D),),
            (0,),
            no_fullgraph="kept counts vary per batch: gather_tokens reads the largest on the host",
        )
        for pos in ("sincos", "rope")
    ),
    Case("masked_prediction_loss", ("masked_prediction_loss",), _masked_loss, ((),), (0, 1)),
    Case("Mlp", ("Mlp",), _mlp, ((B, M, DV),), (0,)),
    *(
        Case(
            f"ConditionedPredictor-{mode}",
            ("ConditionedPredictor",),
            _predictor(mode),
            ((B, DV),),
            # FiLM and AdaLN start as the unconditioned MLP (zero modulation): no gradient
            # reaches the condition at initialisation, only the modulation's weights.
            (0, 1) if mode == "concat" else (0,),
        )
        for mode in jb.PREDICTOR_MODES
    ),
    Case(
        "ConditionedPredictor-unconditioned",
        ("ConditionedPredictor",),
        _predictor("concat", dim_cond=0),
        ((B, DV),),
        (0,),
    ),
    Case("EMATarget", ("EMATarget",), _ema_target, ((B, DE),), differentiable=False),
    Case("SeqJEPALoss", ("SeqJEPALoss",), _seq_jepa_loss, ((),), (0,), frozen_args=(1,)),
    Case(
        "seq_jepa_loss-none",
        ("seq_jepa_loss",),
        _seq_jepa_loss_fn,
        ((B, M),),
        (0,),
        frozen_args=(1,),
    ),
    Case("SIGReg", ("SIGReg",), _sigreg_module, ((),), (0,)),
    Case("sigreg", ("sigreg",), _sigreg_fn(False), ((),), (0,)),
    Case("sigreg-official-knots", ("sigreg",), _sigreg_fn(True), ((),), (0,)),
    Case("LeJEPALoss", ("LeJEPALoss",), _lejepa, ((), (), ()), (0, 1)),
    Case("VICRegLoss", ("VICRegLoss",), _vicreg, ((),), (0, 1)),
    Case("variance", ("variance",), _vicreg_term(jb.variance), ((),), (0,)),
    Case("covariance", ("covariance",), _vicreg_term(jb.covariance), ((),), (0,)),
    Case(
        "create_backbone-test_resnet",
        ("create_backbone", "Backbone"),
        _backbone("test_resnet", views=False),
        ((2, 96),),
        (0,),
        tol=1e-4,
    ),
    Case(
        "create_backbone-test_vit-views",
        ("create_backbone", "Backbone"),
        _backbone("test_vit", views=True, image_size=32),
        ((2, 2, 64),),
        (0,),
        tol=1e-4,
    ),
]

# Public names that are not blocks, each with the reason. A new public name must land either
# in CASES or here; an nn.Module subclass is never allowed here.
NOT_BLOCKS = {
    "__version__": "a string",
    "MASKED_LOSSES": "a tuple of names",
    "gather_targets": "gather_tokens for target masks, tested in test_masked.py",
    # Relative actions: tensor maths that computes the *inputs* of the blocks, tested against
    # scipy in test_actions.py.
    "canonicalize_quaternion": "action maths, not a layer",
    "euler_to_quaternion": "action maths, not a layer",
    "parameter_deltas": "action maths, not a layer",
    "position_deltas": "action maths, not a layer",
    "quaternion_conjugate": "action maths, not a layer",
    "quaternion_multiply": "action maths, not a layer",
    "relative_rotation": "action maths, not a layer",
    "relative_rotation_from_euler": "action maths, not a layer",
    # Attention configuration; every core is a case (Attention-*, attention_core-*).
    "ATTENTION_CORES": "a constant",
    "ATTENTION_CORE_ENV": "a constant",
    "SDPA_BACKENDS": "a constant",
    "default_attention_core": "reads the environment",
    "set_attention_core": "switches the core of a built model",
    # Wraps a block for CUDA-graph capture (test_cuda_graph.py); it is not one.
    "graph_module": "a wrapper, not a layer",
    "cuda_graph_supported": "a predicate",
    "PREDICTOR_MODES": "a constant; every mode is a case",
    # EMA momentum schedules: host-side functions of the step number (test_ema.py).
    "MomentumSchedule": "a schedule",
    "ConstantMomentum": "a schedule",
    "CosineMomentum": "a schedule",
    "LinearMomentum": "a schedule",
    "WarmupMomentum": "a schedule",
    "sigreg_quadrature": "knots and weights of SIGReg's integral, no embedding input",
    "LeJEPAOutput": "the NamedTuple LeJEPALoss returns",
    # Not an nn.Module: a host-side gauge that reads floats by design, so neither compile nor
    # gradients apply; test_collapse_monitor_contract checks what does.
    "CollapseMonitor": "a host-side gauge",
    "CollapseWarning": "a warning class",
    # Masked prediction (test_masks.py, test_positions.py). Mask samplers are host-side
    # callables with no parameters, drawn in the data pipeline; gather_tokens returns a bool
    # padding mask beside the tokens (its gradient, round trip and fullgraph compile are
    # tested in test_masks.py); the rest compute constant tables or coordinates.
    "BlockMasks": "the NamedTuple the mask samplers return",
    "MultiBlockMasks": "a mask sampler, not a layer",
    "TubeMasks": "a mask sampler, not a layer",
    "gather_tokens": "returns (tokens, bool padding mask); contract checks in test_masks.py",
    "grid_coordinates": "integer coordinates of a grid, no tensor input",
    "sincos_embed_2d": "a constant table, no tensor input",
    "sincos_embed_3d": "a constant table, no tensor input",
}


def test_every_public_block_has_a_case() -> None:
    public = set(jb.__all__)
    covered = {name for case in CASES for name in case.covers}
    assert covered <= public, f"cases cover names that are not public: {covered - public}"
    assert not covered & NOT_BLOCKS.keys(), f"both a case and exempt: {covered & NOT_BLOCKS.keys()}"
    stale = NOT_BLOCKS.keys() - public
    assert not stale, f"NOT_BLOCKS names that are no longer public: {sorted(stale)}"
    modules = [
        name
        for name in NOT_BLOCKS
        if isinstance(getattr(jb, name), type) and issubclass(getattr(jb, name), nn.Module)
    ]
    assert not modules, f"nn.Module classes cannot be exempt from the contract: {modules}"
    unclassified = public - covered - NOT_BLOCKS.keys()
    assert not unclassified, (
        f"public names without a contract case: {sorted(unclassified)}; add a Case to CASES "
        "in tests/test_block_contract.py (or, for a constant, schedule or non-layer function, "
        "an entry with its reason to NOT_BLOCKS)"
    )
    assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"


# ------------------------------------------------------------------------------------ helpers


def _outputs(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, tuple) else (out,)


def _inputs(case: Case, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Fresh leaves; those in ``grad_args`` and ``frozen_args`` require a gradient."""
    tracked = set(case.grad_args) | set(case.frozen_args)
    return tuple(
        arg.detach().clone().requires_grad_(i in tracked) for i, arg in enumerate(args)
    )


def _projection(outputs: tuple[Tensor, ...]) -> Tensor:
    """A fixed, non-uniform scalar of every output (the sum of a LayerNorm output would be
    its bias alone)."""
    generator = torch.Generator().manual_seed(1234)
    total = torch.zeros((), device=outputs[0].device)
    for out in outputs:
        weights = torch.rand(out.shape, generator=generator) + 0.5
        total = total + (out.float() * weights.to(out.device)).sum()
    return total


def _parameters(block: Callable[..., Any]) -> list[tuple[str, nn.Parameter]]:
    if not isinstance(block, nn.Module):
        return []
    return [(name, p) for name, p in block.named_parameters() if p.requires_grad]


def _check_backward(case: Case, block: Callable[..., Any], inputs: tuple[Tensor, ...]) -> None:
    for i in case.grad_args:
        assert_gets_a_gradient(f"input {i}", inputs[i])
    for i in case.frozen_args:
        assert inputs[i].grad is None, f"input {i} is a stop-gradient target but got a gradient"
    if _parameters(block):
        assert_every_parameter_gets_a_gradient(block)
    assert case.grad_args or _parameters(block), f"{case.name}: nothing to check a gradient on"




# ------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fp32_shapes_and_gradients(case: Case, device: str) -> None:
    block, args, kwargs = case.make(torch.device(device))
    inputs = _inputs(case, args)
    outputs = _outputs(block(*inputs, **kwargs))
    assert tuple(out.shape for out in outputs) == case.shapes
    for out in outputs:
        assert out.dtype == torch.float32 and out.device.type == device
        assert torch.isfinite(out).all()
    if not case.differentiable:
        # A target network: frozen, and its output carries no graph even from inputs that
        # require a gradient.
        assert not _parameters(block) and not any(out.requires_grad for out in outputs)
        return
    _projection(outputs).backward()
    _check_backward(case, block, inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bf16_autocast(case: Case, device: str) -> None:
    block, args, kwargs = case.make(torch.device(device))
    inputs = _inputs(case, args)
    with torch.autocast(device, dtype=torch.bfloat16):
        outputs = _outputs(block(*inputs, **kwargs))
        assert tuple(out.shape for out in outputs) == case.shapes
        for out in outputs:
            assert out.dtype in (torch.float32, torch.bfloat16)
            assert torch.isfinite(out).all()
        scalar = _projection(outputs) if case.differentiable else None
    if scalar is not None:
        scalar.backward()
        for name, p in _parameters(block):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        for i in case.grad_args:
            assert torch.isfinite(inputs[i].grad).all(), f"input {i}"


def _compile_params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.no_fullgraph is not None:
            marks.append(pytest.mark.xfail(reason=case.no_fullgraph, strict=True))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", _compile_params())
def test_compile_fullgraph_matches_eager(case: Case, device: str) -> None:
    import torch._dynamo

    torch._dynamo.reset()  # a fresh cache per case: no recompile limit across cases
    block, args, kwargs = case.make(torch.device(device))
    twin = copy.deepcopy(block) if isinstance(block, nn.Module) else block
    eager_inputs, compiled_inputs = _inputs(case, args), _inputs(case, args)
    expected = _outputs(block(*eager_inputs, **kwargs))
    # aot_eager traces forward and backward through dynamo and AOTAutograd as inductor does,
    # without inductor's C++ compile (minutes on a busy 2-core machine).
    with typecheck_off():
        compiled = torch.compile(twin, fullgraph=True, backend="aot_eager")
        actual = _outputs(compiled(*compiled_inputs, **kwargs))
        tol = {"rtol": case.tol, "atol": case.tol}
        assert len(actual) == len(expected)
        for out, ref in zip(actual, expected, strict=True):
            torch.testing.assert_close(out, ref, **tol)
            assert out.requires_grad == ref.requires_grad
        if case.differentiable:
            _projection(expected).backward()
            _projection(actual).backward()
            _check_backward(case, twin, compiled_inputs)
            for (name, p), (_, q) in zip(_parameters(block), _parameters(twin), strict=True):
                torch.testing.assert_close(q.grad, p.grad, **tol, msg=name)
            for i in case.grad_args:
                torch.testing.assert_close(compiled_inputs[i].grad, eager_inputs[i].grad, **tol)
    if isinstance(block, nn.Module):  # BatchNorm statistics, SIGReg's step, ...
        for (name, buffer), (_, twin_buffer) in zip(
            block.named_buffers(), twin.named_buffers(), strict=True
        ):
            torch.testing.assert_close(twin_buffer, buffer, **tol, msg=name)
    torch._dynamo.reset()


# ------------------------------------------------------------------ CollapseMonitor (no forward)


@pytest.mark.parametrize("device", DEVICES)
def test_collapse_monitor_contract(device: str) -> None:
    """CollapseMonitor is not an nn.Module and syncs with the host by design (it returns
    floats), so compile and gradients do not apply. Its contract: bf16 embeddings from
    autocast on any device give finite gauges; it neither draws from the global RNG nor
    touches the embeddings' graph."""
    model = nn.Linear(D, 2 * D, device=device)
    x = _randn(torch.device(device), 4 * D, D)
    monitor = jb.CollapseMonitor(every=1, num_slices=16, warn=False)
    assert not isinstance(monitor, nn.Module)
    with torch.autocast(device, dtype=torch.bfloat16):
        z = model(x)
        target = model(x + 0.01).detach()
    assert z.dtype == torch.bfloat16 and z.requires_grad
    cpu_rng = torch.get_rng_state()
    grad_fn = z.grad_fn
    metrics = monitor(z, step=0, teacher=(z, target))
    assert torch.equal(torch.get_rng_state(), cpu_rng)
    assert z.grad_fn is grad_fn
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
    assert {"rankme", "std_ratio", "sigreg", "teacher_cosine"} <= metrics.keys()
    z.float().square().sum().backward()  # the training step's graph is intact
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
