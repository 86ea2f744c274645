"""The bad-input sweep: every public block fed wrong ranks, widths and dtypes, NaN/Inf, empty
batches, m = 0, mismatched batch sizes and non-contiguous tensors. Each call must fail with a
clear error (ValueError, or jaxtyping's TypeCheckError with the typecheck switch on, as in the
tests) and leave every piece of state (BatchNorm statistics, EMA weights and step) untouched.
"""

import copy
from collections.abc import Callable

import pytest
import torch
from jaxtyping import TypeCheckError
from torch import nn

import jepa_blocks as jb

CLEAR = (ValueError, TypeCheckError)
# jaxtyping names the parameter and the expected shape; our ValueErrors say what must hold.
EXPLAINED = r"Type-check error|must|empty|need|got"


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    for name, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, after[name]), f"{name} changed on a rejected call"


def _action_encoder() -> nn.Module:
    return jb.ActionEncoder(4, 8).train()


def _aggregator() -> nn.Module:
    return jb.SequenceAggregator(16, depth=1, heads=4).train()


def _predictor() -> nn.Module:
    return jb.ConditionedPredictor(16, 8, 12, hidden=32).train()


CASES: list[tuple[str, Callable[[], nn.Module], Callable[[nn.Module], object], str]] = [
    ("action wrong width", _action_encoder, lambda m: m(torch.randn(3, 5)), EXPLAINED),
    ("action wrong rank", _action_encoder, lambda m: m(torch.randn(2, 3, 4, 4)), EXPLAINED),
    ("action int dtype", _action_encoder, lambda m: m(torch.ones(3, 4, dtype=torch.long)),
     EXPLAINED),
    ("action NaN", _action_encoder, lambda m: m(torch.tensor([[0.0] * 4, [float("nan")] * 4])),
     "NaN or Inf"),
    ("action Inf", _action_encoder, lambda m: m(torch.full((3, 2, 4), float("inf"))),
     "NaN or Inf"),
    ("action empty batch", _action_encoder, lambda m: m(torch.randn(0, 4)), EXPLAINED),
    ("action batch of one in train", _action_encoder, lambda m: m(torch.randn(1, 4)),
     "at least 2"),
    ("aggregator m = 0", _aggregator, lambda m: m(torch.randn(2, 0, 16)), EXPLAINED),
    ("aggregator wrong width", _aggregator, lambda m: m(torch.randn(2, 3, 15)), EXPLAINED),
    ("aggregator wrong rank", _aggregator, lambda m: m(torch.randn(2, 16)), EXPLAINED),
    ("aggregator mask shape", _aggregator,
     lambda m: m(torch.randn(2, 3, 16), torch.zeros(2, 4, dtype=torch.bool)), EXPLAINED),
    ("aggregator float mask", _aggregator,
     lambda m: m(torch.randn(2, 3, 16), torch.zeros(2, 3)), EXPLAINED),
    ("predictor batch mismatch", _predictor, lambda m: m(torch.randn(4, 16), torch.randn(3, 8)),
     EXPLAINED),
    ("predictor missing cond", _predictor, lambda m: m(torch.randn(4, 16)), "cond is required"),
    ("predictor batch of one", _predictor, lambda m: m(torch.randn(1, 16), torch.randn(1, 8)),
     "at least 2"),
    ("predictor wrong width", _predictor, lambda m: m(torch.randn(4, 15), torch.randn(4, 8)),
     EXPLAINED),
]


@pytest.mark.parametrize(("name", "build", "call", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_without_state_change(
    name: str, build: Callable[[], nn.Module], call: Callable[[nn.Module], object], message: str
) -> None:
    module = build()
    before = _state(module)
    with pytest.raises(CLEAR, match=message):
        call(module)
    _assert_unchanged(module, before)


def test_tokens_reject_mismatched_batches_and_empty_sequences() -> None:
    concat = jb.ViewActionConcat(8, 4)
    with pytest.raises(CLEAR, match=EXPLAINED):
        concat(torch.randn(3, 2, 8), torch.randn(2, 2, 4))
    with pytest.raises(CLEAR, match=EXPLAINED):
        concat(torch.randn(3, 0, 8), torch.randn(3, 0, 4))


def test_loss_rejects_shape_mismatch_and_empty_batch() -> None:
    with pytest.raises(CLEAR, match=EXPLAINED):
        jb.seq_jepa_loss(torch.randn(4, 8), torch.randn(4, 7))
    with pytest.raises(CLEAR, match=EXPLAINED):
        jb.seq_jepa_loss(torch.randn(0, 8), torch.randn(0, 8))


def test_ema_rejects_bad_momentum_and_foreign_modules_without_change() -> None:
    online = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    ema = jb.EMATarget(online, schedule=0.99)
    before = _state(ema)
    ema.schedule = jb.ConstantMomentum.__new__(jb.ConstantMomentum)
    ema.schedule.momentum = 1.5  # a schedule gone wrong
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\]"):
        ema.update(online)
    ema.schedule = jb.ConstantMomentum(0.99)
    with pytest.raises(ValueError, match="does not match the EMA target"):
        ema.update(nn.Sequential(nn.Linear(4, 8)))
    assert ema.step == 0
    _assert_unchanged(ema, before)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jb.ConstantMomentum(-0.1)


def test_non_contiguous_inputs_give_the_same_results() -> None:
    """Non-contiguous tensors are not an error: they must give the contiguous answer."""
    aggregator = jb.SequenceAggregator(16, depth=1, heads=4).eval()
    tokens = torch.randn(3, 16, 2).transpose(1, 2)  # (3, 2, 16), non-contiguous
    assert not tokens.is_contiguous()
    torch.testing.assert_close(aggregator(tokens), aggregator(tokens.contiguous()))
    encoder = jb.ActionEncoder(4, 8).eval()
    actions = torch.randn(3, 4, 5).transpose(1, 2)  # (3, 5, 4), non-contiguous
    torch.testing.assert_close(encoder(actions), encoder(actions.contiguous()))


def test_configuration_errors_name_the_values() -> None:
    with pytest.raises(ValueError, match="dim 18 is not divisible by heads 4"):
        jb.SequenceAggregator(18, heads=4)
    with pytest.raises(ValueError, match="dim 18 is not divisible by heads 4"):
        jb.Attention(18, 4)
    with pytest.raises(ValueError, match="dim_action must be a positive int"):
        jb.ActionEncoder(0)
    with pytest.raises(ValueError, match="mode must be one of"):
        jb.ConditionedPredictor(4, 4, 4, mode="gated")
    with pytest.raises(ValueError, match="unknown timm model 'resnet19'"):
        jb.create_backbone("resnet19")


def test_datasets_reject_impossible_sequences(tmp_path) -> None:
    from jepa_blocks.data import ObjectSequences, RenderedObjects, ResumableSampler

    objects = RenderedObjects(
        tmp_path, size="small", image_size=16, num_classes=2, instances_per_class=2,
        views_per_object=3,
    )
    with pytest.raises(ValueError, match="3"):
        ObjectSequences(objects, num_views=4)
    with pytest.raises(ValueError, match="action must be"):
        ObjectSequences(objects, num_views=2, action="euler")
    with pytest.raises(ValueError, match="dataset is empty"):
        ResumableSampler(0)
    with pytest.raises(ValueError, match="outside"):
        ResumableSampler(10, num_replicas=2, rank=2)
