"""Faithfulness to seq-JEPA (spec §1): the paper configuration's sizes and defaults, and the
blocks assembled as in the official forward pass (spec §1.9) against a re-implementation of
that pass with plain ``torch.nn`` modules."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jepa_blocks.actions import ActionEncoder
from jepa_blocks.aggregator import SequenceAggregator
from jepa_blocks.backbones import create_backbone
from jepa_blocks.ema import CosineMomentum, EMATarget
from jepa_blocks.losses import seq_jepa_loss
from jepa_blocks.predictor import ConditionedPredictor
from jepa_blocks.tokens import ViewActionConcat

RESNET18 = 11_176_512
RESNET18_CIFAR = 11_168_832
ACTION_ENCODER = 512
AGGREGATOR = 14_772_480
PREDICTOR = 1_313_280
TOTAL = 27_262_784


def _params(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.fixture(scope="module")
def paper_model() -> dict[str, nn.Module]:
    # Constructed once, never run at full size.
    return {
        "encoder": create_backbone("resnet18"),
        "action_encoder": ActionEncoder(4, 128),
        "aggregator": SequenceAggregator(512 + 128, depth=3, heads=4),
        "predictor": ConditionedPredictor(640, 128, 512, hidden=1024),
    }


def test_paper_parameter_counts(paper_model: dict[str, nn.Module]) -> None:
    assert _params(paper_model["encoder"]) == RESNET18
    assert paper_model["encoder"].dim == 512
    assert _params(paper_model["action_encoder"]) == ACTION_ENCODER
    aggregator = paper_model["aggregator"]
    assert _params(aggregator) == AGGREGATOR == 3 * 4_923_520 + 1_280 + 640
    assert all(_params(block) == 4_923_520 for block in aggregator.blocks)
    assert _params(aggregator.norm) == 1_280 and aggregator.agg_token.numel() == 640
    assert _params(paper_model["predictor"]) == PREDICTOR
    total = sum(_params(m, trainable_only=True) for m in paper_model.values())
    assert total == TOTAL == RESNET18 + ACTION_ENCODER + AGGREGATOR + PREDICTOR
    assert round(total / 1e6, 2) == 27.26


def test_cifar_encoder_and_ablation_sizes() -> None:
    assert _params(create_backbone("resnet18", cifar_stem=True)) == RESNET18_CIFAR
    # Without action conditioning the transformer width is 512 (spec §1.6).
    assert _params(SequenceAggregator(512, depth=1, heads=4).blocks[0]) == 3_152_384


def test_ema_target_is_an_untrainable_encoder_copy(paper_model: dict[str, nn.Module]) -> None:
    target = EMATarget(paper_model["encoder"], schedule=CosineMomentum(total_steps=10))
    assert _params(target) == RESNET18
    assert _params(target, trainable_only=True) == 0


def test_aggregator_defaults_are_the_official_code(paper_model: dict[str, nn.Module]) -> None:
    aggregator = paper_model["aggregator"]
    assert (aggregator.dim, aggregator.depth, aggregator.heads) == (640, 3, 4)
    assert aggregator.pos_embed is None and aggregator.max_len is None  # no positional encoding
    assert (aggregator.agg_token == 0).all()
    assert isinstance(aggregator.norm, nn.LayerNorm) and aggregator.norm.eps == 1e-5
    for block in aggregator.blocks:
        assert block.norm_first is False  # post-norm
        assert block.attn.heads == 4 and block.attn.dropout == 0.1
        assert block.mlp.fc1.out_features == 4 * 640  # FFN 4x
        assert isinstance(block.mlp.act, nn.ReLU)
        assert block.mlp.drop.p == block.drop1.p == block.drop2.p == 0.1
        assert block.norm1.eps == block.norm2.eps == 1e-5


def test_action_encoder_and_predictor_layers(paper_model: dict[str, nn.Module]) -> None:
    encoder = paper_model["action_encoder"]
    assert isinstance(encoder.proj, nn.Linear) and encoder.proj.bias is None
    assert isinstance(encoder.norm, nn.BatchNorm1d) and not encoder.norm.affine
    predictor = paper_model["predictor"]
    layers = [predictor.fc1, predictor.norm, predictor.act, predictor.fc2]
    assert [type(m) for m in layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert predictor.fc1.bias is None and predictor.fc1.in_features == 640 + 128


def test_paper_ema_schedule_per_epoch() -> None:
    # engine.py: tau = 1 - (1 - 0.996) (cos(pi epoch / E) + 1) / 2, updated after every step.
    schedule = CosineMomentum(0.996, 1.0, total_steps=1000 * 20, steps_per_epoch=20)
    for epoch in (0, 1, 250, 500, 999, 1000):
        expected = 1 - (1 - 0.996) * (math.cos(math.pi * epoch / 1000) + 1) / 2
        assert schedule(epoch * 20) == pytest.approx(expected, abs=1e-15)
        assert schedule(epoch * 20 + 19) == schedule(epoch * 20) or epoch == 1000


# ----------------------------------------------------------------------------- spec §1.9


class _OfficialHead(nn.Module):
    """The official ``SeqJEPA`` head (spec §1.4-1.8) with plain ``torch.nn`` modules."""

    def __init__(self, dv: int, da: int, de: int, heads: int, depth: int, hidden: int) -> None:
        super().__init__()
        d = dv + de
        self.action_proj = nn.Sequential(
            nn.Linear(da, de, bias=False), nn.BatchNorm1d(de, affine=False)
        )
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True)
        self.transformer = nn.TransformerEncoder(
            layer, depth, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.agg_token = nn.Parameter(torch.zeros(1, 1, d))
        self.predictor = nn.Sequential(
            nn.Linear(d + de, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, dv),
        )

    def forward(
        self, z: torch.Tensor, act: torch.Tensor, z_tgt: torch.Tensor, zero_slot: bool = False
    ) -> tuple:
        b, m, _ = z.shape
        act_tok = act.clone()  # 3DIEBench keeps a_M in slot M; aug/PLS put zeros there
        if zero_slot:
            act_tok[:, m - 1] = 0
        e_tok = self.action_proj(act_tok.flatten(0, 1)).view(b, m, -1).clone()
        e_tok[:, m - 1] = 0
        e_m = self.action_proj(act[:, m - 1])
        tok = torch.cat([z, e_tok], -1)
        h = self.transformer(torch.cat([self.agg_token.expand(b, 1, -1), tok], 1))
        pred = self.predictor(torch.cat([h[:, 0], e_m], -1))
        loss = 1 - F.cosine_similarity(pred, z_tgt.detach(), dim=1).mean()
        return pred, loss


def _copy_into_official(official: _OfficialHead, blocks: dict[str, nn.Module]) -> None:
    action_encoder, aggregator, predictor = (
        blocks["action_encoder"],
        blocks["aggregator"],
        blocks["predictor"],
    )
    with torch.no_grad():
        official.action_proj[0].weight.copy_(action_encoder.proj.weight)
        official.agg_token.copy_(aggregator.agg_token)
        for ours, theirs in zip(aggregator.blocks, official.transformer.layers, strict=True):
            theirs.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
            theirs.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
            theirs.self_attn.out_proj.weight.copy_(ours.attn.proj.weight)
            theirs.self_attn.out_proj.bias.copy_(ours.attn.proj.bias)
            theirs.linear1.load_state_dict(ours.mlp.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.mlp.fc2.state_dict())
            theirs.norm1.load_state_dict(ours.norm1.state_dict())
            theirs.norm2.load_state_dict(ours.norm2.state_dict())
        official.transformer.norm.load_state_dict(aggregator.norm.state_dict())
        official.predictor[0].weight.copy_(predictor.fc1.weight)
        official.predictor[1].load_state_dict(predictor.norm.state_dict())
        official.predictor[3].load_state_dict(predictor.fc2.state_dict())


def test_blocks_reproduce_the_official_forward_pass() -> None:
    b, m, dv, da, de, heads, depth, hidden = 6, 3, 12, 4, 4, 4, 2, 20
    blocks = {
        "action_encoder": ActionEncoder(da, de),
        "concat": ViewActionConcat(dv, de),
        "aggregator": SequenceAggregator(dv + de, depth=depth, heads=heads, dropout=0.0),
        "predictor": ConditionedPredictor(dv + de, de, dv, hidden=hidden),
    }
    with torch.no_grad():
        blocks["aggregator"].agg_token.normal_()  # as after training; zero at init
        blocks["predictor"].norm.weight.normal_(1.0, 0.2)
    official = _OfficialHead(dv, da, de, heads, depth, hidden)
    _copy_into_official(official, blocks)

    encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, dv), nn.ReLU())
    target = EMATarget(encoder, schedule=CosineMomentum(0.996, total_steps=10))
    x = torch.randn(b, m + 1, 3, 4, 4)
    act = torch.randn(b, m, da)  # relative actions; act[:, m-1] = a_M (3DIEBench layout)

    z = encoder(x[:, :m].flatten(0, 1)).view(b, m, dv)
    z_tgt = target(x[:, m])
    pred_ref, loss_ref = official(z, act, z_tgt)

    e = blocks["action_encoder"](act)  # BN call 1: all b * m token actions
    tokens = blocks["concat"](z, e)  # the last token's action embedding zeroed
    z_agg = blocks["aggregator"](tokens)
    pred = blocks["predictor"](z_agg, blocks["action_encoder"](act[:, -1]))  # BN call 2
    loss = seq_jepa_loss(pred, z_tgt)

    assert z_agg.shape == (b, dv + de) and pred.shape == (b, dv)
    torch.testing.assert_close(pred, pred_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, loss_ref, atol=1e-6, rtol=1e-6)
    # The action projector's BN statistics were updated twice per step, as in the code.
    theirs_bn, ours_bn = official.action_proj[1], blocks["action_encoder"].norm
    assert ours_bn.num_batches_tracked == theirs_bn.num_batches_tracked == 2
    torch.testing.assert_close(ours_bn.running_mean, theirs_bn.running_mean)
    torch.testing.assert_close(ours_bn.running_var, theirs_bn.running_var)

    # Same gradients, in the blocks and in the (shared) encoder; none into the target.
    grads = torch.autograd.grad(
        loss,
        [
            blocks["action_encoder"].proj.weight,
            blocks["aggregator"].agg_token,
            blocks["predictor"].fc1.weight,
            encoder[1].weight,
        ],
        retain_graph=True,
    )
    grads_ref = torch.autograd.grad(
        loss_ref,
        [
            official.action_proj[0].weight,
            official.agg_token,
            official.predictor[0].weight,
            encoder[1].weight,
        ],
    )
    for ours, theirs in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert not z_tgt.requires_grad


@pytest.mark.parametrize(("mode", "zero_slot"), [("separate", False), ("separate-zero-slot", True)])
def test_example_model_separate_action_calls_reproduce_the_official_forward(
    mode: str, zero_slot: bool
) -> None:
    """``SeqJEPAConfig(action_norm_calls="separate...")``: the official code's two action
    projector calls (spec §1.4), in train mode, outputs and BN running statistics."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))
    from model import SeqJEPA, SeqJEPAConfig

    b, m, da, de, heads, hidden = 6, 3, 4, 8, 4, 20
    torch.manual_seed(0)
    model = SeqJEPA(
        SeqJEPAConfig(
            backbone="test_resnet",
            dim_action=da,
            dim_action_embed=de,
            depth=2,
            heads=heads,
            pred_hidden=hidden,
            dropout=0.0,
            action_norm_calls=mode,
        )
    ).train()
    with torch.no_grad():
        model.aggregator.agg_token.normal_()
        model.predictor.norm.weight.normal_(1.0, 0.2)
    official = _OfficialHead(model.dim_view, da, de, heads, 2, hidden)
    _copy_into_official(official, dict(model.named_children()))

    views = torch.randn(b, m + 1, 3, 32, 32)
    act = torch.randn(b, m, da)
    act[:, -1] += 1.0  # a batch of a_M alone has other statistics than all actions
    z_tgt = torch.randn(b, model.dim_view)
    with torch.no_grad():
        z = model.encode(views[:, :m])  # train-mode BN: the same z as inside the forward
    pred_ref, _ = official(z, act, z_tgt, zero_slot=zero_slot)
    pred = model(views, act)["z_hat"]

    torch.testing.assert_close(pred, pred_ref, atol=1e-5, rtol=1e-5)
    theirs_bn, ours_bn = official.action_proj[1], model.action_encoder.norm
    assert ours_bn.num_batches_tracked == theirs_bn.num_batches_tracked == 2
    torch.testing.assert_close(ours_bn.running_mean, theirs_bn.running_mean)
    torch.testing.assert_close(ours_bn.running_var, theirs_bn.running_var)
