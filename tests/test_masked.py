"""Masked prediction: the kept-patch encoder against timm on the same tokens, the predictor's
independence from padding, the target layout, and the I-JEPA / V-JEPA losses."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import jepa_blocks as jb


def _raw(fn):
    """The function without the jaxtyping layer, to reach its own ValueError checks."""
    return getattr(fn, "__wrapped__", fn)


@pytest.fixture(scope="module")
def encoder() -> jb.MaskedEncoder:
    torch.manual_seed(0)
    return jb.MaskedEncoder("test_vit", image_size=16, patch_size=4).eval()


def _masks(b: int = 3, seed: int = 0) -> jb.BlockMasks:
    sampler = jb.MultiBlockMasks((4, 4), num_targets=2, min_keep=3)
    return sampler(b, generator=torch.Generator().manual_seed(seed))


def test_all_patches_equal_timm(encoder) -> None:
    images = torch.randn(2, 3, 16, 16)
    expected = encoder.vit.forward_features(images)[:, encoder.num_prefix :]
    assert torch.equal(encoder(images), expected)


def test_kept_patches_equal_timm_blocks_on_those_tokens_alone(encoder) -> None:
    """The oracle: timm's own blocks on [prefix ; kept patches] of one image, no padding."""
    images, masks = torch.randn(3, 3, 16, 16), _masks()
    tokens, padding = encoder(images, masks.context)
    vit = encoder.vit
    for i in range(3):
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images[i : i + 1])))
        prefix, patches = x[:, : encoder.num_prefix], x[:, encoder.num_prefix :]
        kept = torch.cat((prefix, patches[:, masks.context[i]]), dim=1)
        for block in vit.blocks:
            kept = block(kept)
        expected = vit.norm(kept)[0, encoder.num_prefix :]
        count = int(masks.context[i].sum())
        torch.testing.assert_close(tokens[i, :count], expected, atol=1e-5, rtol=1e-5)
        assert not padding[i, :count].any() and padding[i, count:].all()


@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_predictor_ignores_padding_and_other_samples(encoder, pos) -> None:
    torch.manual_seed(1)
    predictor = jb.MaskedPredictor(encoder.dim, 32, 24, depth=2, heads=4, grid=(4, 4), pos=pos)
    predictor.eval()
    images, masks = torch.randn(3, 3, 16, 16), _masks()
    context, _ = encoder(images, masks.context)
    pred, pad = predictor(context, masks.context, masks.targets)
    assert pred.shape[:2] == (3, 2) and pred.shape[-1] == 24 and pad.shape == pred.shape[:3]
    for i in range(3):
        alone, _ = encoder(images[i : i + 1], masks.context[i : i + 1])
        single, single_pad = predictor(alone, masks.context[i : i + 1], masks.targets[i : i + 1])
        for j in range(2):  # per target block
            real = ~single_pad[0, j]
            torch.testing.assert_close(
                pred[i, j, : real.shape[0]][real], single[0, j][real], atol=1e-5, rtol=1e-5
            )
    # Several blocks at once equal one block at a time (the context repeated per block).
    one, one_pad = predictor(context, masks.context, masks.targets[:, 1])
    real = ~one_pad
    torch.testing.assert_close(pred[:, 1, : one.shape[1]][real], one[real], atol=1e-5, rtol=1e-5)


def test_sincos_positions_are_the_mae_table() -> None:
    predictor = jb.MaskedPredictor(8, 16, 8, depth=1, heads=2, grid=(3, 5))
    torch.testing.assert_close(predictor.pos_table, jb.sincos_embed_2d(16, (3, 5)))
    assert "pos_table" not in predictor.state_dict()  # a function of grid and dim


def test_gather_targets_matches_the_prediction_layout() -> None:
    tokens = torch.randn(3, 16, 5)
    masks = _masks()
    gathered = jb.gather_targets(tokens, masks.targets)
    for i in range(3):
        for j in range(2):
            kept = tokens[i][masks.targets[i, j]]
            torch.testing.assert_close(gathered[i, j, : kept.shape[0]], kept)
    single_block = masks.targets[:, 0]
    torch.testing.assert_close(
        jb.gather_targets(tokens, single_block), jb.gather_tokens(tokens, single_block)[0]
    )


def test_losses_equal_the_formulas_on_real_tokens() -> None:
    pred, target = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    padding = torch.tensor([[False, False, True, True], [False, False, False, True]])
    real = ~padding
    smooth = jb.masked_prediction_loss(pred, target, padding)
    torch.testing.assert_close(smooth, F.smooth_l1_loss(pred[real], target[real]))
    l1 = jb.masked_prediction_loss(pred, target, padding, kind="l1")
    torch.testing.assert_close(l1, (pred[real] - target[real]).abs().mean())
    changed = pred.clone()
    changed[padding] = 1e6  # padding counts for nothing
    torch.testing.assert_close(jb.masked_prediction_loss(changed, target, padding), smooth)
    torch.testing.assert_close(
        jb.masked_prediction_loss(pred, target), F.smooth_l1_loss(pred, target)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: _raw(jb.masked_prediction_loss)(torch.ones(2, 3), torch.ones(2, 4)),
         r"pred \(2, 3\) and target \(2, 4\) differ"),
        (lambda: jb.masked_prediction_loss(torch.ones(2, 3), torch.ones(2, 3), kind="l2"),
         "kind must be one of"),
        (lambda: _raw(jb.masked_prediction_loss)(torch.ones(2, 3), torch.ones(2, 3),
                                                 torch.zeros(3, dtype=torch.bool)),
         r"padding_mask has shape \(3,\), expected \(2,\)"),
        (lambda: jb.masked_prediction_loss(torch.ones(2, 3), torch.ones(2, 3),
                                           torch.ones(2, dtype=torch.bool)),
         "every token is padding"),
        (lambda: jb.MaskedPredictor(8, 10, 8, depth=1, heads=3, grid=(2, 2)),
         "dim 10 is not divisible by heads 3"),
        (lambda: jb.MaskedPredictor(8, 16, 8, depth=1, heads=2, grid=(2, 2), pos="learned"),
         "pos must be one of"),
        (lambda: jb.MaskedEncoder(nn.Linear(3, 3)), "not a timm VisionTransformer"),
        (lambda: jb.MaskedEncoder("test_vit", image_size=16, patch_size=4, patch_drop_rate=0.5),
         r"drops patches itself \(patch_drop_rate > 0\)"),
        (lambda: jb.MaskedEncoder("test_vit", image_size=16, patch_size=4, global_pool="avg"),
         "final LayerNorm is its fc_norm"),
    ],
)
def test_bad_input(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_masks_of_another_grid_or_context_are_refused(encoder) -> None:
    predictor = jb.MaskedPredictor(encoder.dim, 16, 8, depth=1, heads=2, grid=(4, 4))
    masks = _masks()
    context, _ = encoder(torch.randn(3, 3, 16, 16), masks.context)
    wrong_grid = torch.ones(3, 9, dtype=torch.bool)
    forward = _raw(type(predictor).forward)  # past the shape annotations, to its own check
    with pytest.raises(ValueError, match=r"masks cover 9 and 16 patches but the predictor's grid"):
        forward(predictor, context, wrong_grid, masks.targets)
    with pytest.raises(ValueError, match="context has 2 tokens but context_mask keeps at most"):
        predictor(context[:, :2], masks.context, masks.targets)
