"""Multi-block and tube masks, gather / scatter of kept tokens (jepa_blocks/masks.py).

The coverage properties are the ones the official collators break (reference
jepa-family.md §4): blocks on the last row and column, and no context starvation of central
patches at batch >= 128.
"""

import math

import pytest
import torch
from _contract import typecheck_off
from jaxtyping import TypeCheckError

import jepa_blocks as jb
from jepa_blocks.masks import MultiBlockMasks, TubeMasks, gather_tokens, scatter_tokens


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _block_sides(mask: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Rows and columns spanned by each ``(..., h * w)`` block mask, and whether it is a
    filled rectangle."""
    grid = mask.reshape(*mask.shape[:-1], height, width)
    rows, cols = grid.any(-1).sum(-1), grid.any(-2).sum(-1)
    return rows, cols, grid.sum((-2, -1)) == rows * cols


@pytest.fixture(scope="module")
def draws() -> jb.BlockMasks:
    """4,096 samples of the paper's defaults on 14 x 14, in batches of 256."""
    sampler = MultiBlockMasks((14, 14))
    generator = _gen(1)
    parts = [sampler(256, generator) for _ in range(16)]
    return jb.BlockMasks(
        torch.cat([p.context for p in parts]), torch.cat([p.targets for p in parts])
    )


def test_every_patch_is_in_some_target_and_some_context(draws: jb.BlockMasks) -> None:
    target_hits = draws.targets.any(1).sum(0).reshape(14, 14)
    context_hits = draws.context.sum(0).reshape(14, 14)
    assert (target_hits > 0).all(), target_hits
    assert (context_hits > 0).all(), context_hits
    # The last row and column, which the official collator never puts in a block.
    for hits in (target_hits, context_hits):
        assert (hits[-1] > 0).all() and (hits[:, -1] > 0).all()
    # Corners are uniform: the last column is as often a block's edge as the first.
    first, last = target_hits[:, 0].sum(), target_hits[:, -1].sum()
    assert 0.8 < first / last < 1.25, (first, last)


def test_no_patch_is_starved_of_context_in_a_batch_of_256(draws: jb.BlockMasks) -> None:
    for start in range(0, 4096, 256):
        frequency = draws.context[start : start + 256].float().mean(0)
        assert frequency.min() >= 0.1 * frequency.mean(), frequency.reshape(14, 14)


def test_targets_never_overlap_the_context(draws: jb.BlockMasks) -> None:
    assert not (draws.targets & draws.context[:, None]).any()
    assert (draws.context.sum(1) >= 10).all()


def test_block_sizes_and_counts_are_within_the_configured_ranges(draws: jb.BlockMasks) -> None:
    n = 196
    assert draws.targets.shape == (4096, 4, n) and draws.context.shape == (4096, n)
    rows, cols, filled = _block_sides(draws.targets, 14, 14)
    assert filled.all(), "every target is a filled rectangle"
    # h = round(sqrt(floor(s n) a)), w = round(sqrt(floor(s n) / a)) is monotone in s and a.
    low, high = math.floor(0.15 * n), math.floor(0.2 * n)
    assert rows.min() >= round(math.sqrt(low * 0.75)) and rows.max() <= round(math.sqrt(high * 1.5))
    assert cols.min() >= round(math.sqrt(low / 1.5)) and cols.max() <= round(math.sqrt(high / 0.75))
    # Sizes vary per block (not one size per batch as in the official collator).
    assert len(set((rows * 100 + cols).flatten().tolist())) > 5


def test_context_block_sides_follow_context_scale() -> None:
    sampler = MultiBlockMasks((14, 14), allow_overlap=True)
    masks = sampler(512, _gen(2))
    rows, cols, filled = _block_sides(masks.context, 14, 14)
    assert filled.all() and (rows == cols).all()  # aspect 1
    assert rows.min() >= round(math.sqrt(math.floor(0.85 * 196))) and rows.max() == 14
    assert masks.targets[:, :, None].logical_and(masks.context[:, None, :, None]).any()


def test_same_generator_seed_same_masks() -> None:
    sampler = MultiBlockMasks((14, 14))
    first, second = sampler(64, _gen(7)), sampler(64, _gen(7))
    assert torch.equal(first.context, second.context)
    assert torch.equal(first.targets, second.targets)
    other = sampler(64, _gen(8))
    assert not torch.equal(first.targets, other.targets)


def test_short_contexts_are_redrawn_not_emptied() -> None:
    # Big targets on a small grid: most first draws keep fewer than min_keep patches.
    sampler = MultiBlockMasks((6, 6), target_scale=(0.3, 0.4), min_keep=8)
    masks = sampler(512, _gen(3))
    assert (masks.context.sum(1) >= 8).all()
    assert not (masks.targets & masks.context[:, None]).any()


def test_impossible_context_raises_runtime_error() -> None:
    # Feasible in the best case (the config check passes), never in practice.
    sampler = MultiBlockMasks(
        (8, 8), num_targets=16, target_scale=(0.2, 0.25), context_scale=(1.0, 1.0), min_keep=30
    )
    with pytest.raises(RuntimeError, match=r"contexts under min_keep=30 after 40 redraws"):
        sampler(16, _gen(4))


def test_tube_masks_span_the_clip_and_cover_every_patch() -> None:
    short, long = TubeMasks.vjepa((4, 8, 8))
    generator = _gen(5)
    for sampler, k in ((short, 8), (long, 2)):
        masks = sampler(512, generator)
        assert masks.targets.shape == (512, k, 256) and masks.context.shape == (512, 256)
        grid = masks.targets.reshape(512, k, 4, 64)
        assert (grid == grid[:, :, :1]).all(), "a tube spans every frame"
        assert torch.equal(masks.context, ~masks.targets.any(1))
        assert (masks.context.sum(1) >= 1).all()
        assert masks.targets.any(1).any(0).all()
        if k == 8:  # two tubes of 0.7 (aspect up to 1.5) cover the centre of 8 x 8 every time
            assert masks.context.any(0).all()
        rows, cols, filled = _block_sides(grid[:, :, 0], 8, 8)
        assert filled.all()
    assert (
        long(8, _gen(6)).targets.any(1).float().mean()
        > short(8, _gen(6)).targets.any(1).float().mean()
    )


def test_tube_masks_temporal_scale_and_determinism() -> None:
    sampler = TubeMasks((8, 6, 6), num_blocks=3, temporal_scale=(0.25, 0.5))
    masks = sampler(256, _gen(9))
    frames = masks.targets.reshape(256, 3, 8, 36).any(-1)  # (b, k, t)
    span = frames.sum(-1)
    assert span.min() >= 2 and span.max() <= 4
    assert frames[..., 0].any() and frames[..., -1].any()
    again = sampler(256, _gen(9))
    assert torch.equal(masks.targets, again.targets)


def test_generator_device_must_match() -> None:
    with pytest.raises(ValueError, match=r"generator is on cpu but device=meta"):
        MultiBlockMasks((4, 4), min_keep=1)(2, _gen(), device="meta")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": (14,)}, r"grid must be 2 positive ints \(h, w\), got \(14,\)"),
        ({"grid": (0, 14)}, r"grid must be 2 positive ints"),
        ({"target_scale": (0.1, 1.5)}, r"target_scale=\(0.1, 1.5\) is not a valid range.*<= 1.0"),
        ({"context_scale": (0.0, 1.0)}, r"context_scale=\(0.0, 1.0\) is not a valid range"),
        ({"target_aspect": (2.0, 1.0)}, r"target_aspect=\(2.0, 1.0\) is not a valid range"),
        ({"target_scale": 0.2}, r"target_scale must be a \(low, high\) pair of numbers"),
        ({"num_targets": 0}, r"num_targets must be an int >= 1, got 0"),
        ({"min_keep": 0}, r"min_keep must be an int >= 1, got 0"),
        (
            {"grid": (4, 4), "min_keep": 20},
            r"grid \(4, 4\) is too small for min_keep=20: .* at most 14 patches; lower min_keep",
        ),
    ],
)
def test_bad_configuration_is_named(kwargs: dict, match: str) -> None:
    kwargs = {"grid": (14, 14), **kwargs}
    with pytest.raises(ValueError, match=match):
        MultiBlockMasks(**kwargs)


def test_bad_tube_configuration_and_batch_are_named() -> None:
    with pytest.raises(ValueError, match=r"grid must be 3 positive ints \(t, h, w\)"):
        TubeMasks((14, 14))
    with pytest.raises(ValueError, match=r"spatial_scale=\(0.0, 0.2\) is not a valid range"):
        TubeMasks((2, 4, 4), spatial_scale=(0.0, 0.2))
    with pytest.raises(ValueError, match=r"grid \(1, 2, 2\) is too small for min_keep=4"):
        TubeMasks((1, 2, 2), min_keep=4)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        MultiBlockMasks((14, 14))(0)


# ----------------------------------------------------------------------------- gather/scatter


def test_gather_keeps_order_and_pads_to_the_largest_count() -> None:
    x = torch.arange(2 * 5, dtype=torch.float32).reshape(2, 5, 1)
    mask = torch.tensor([[True, False, True, True, False], [False, True, False, False, False]])
    tokens, padding = gather_tokens(x, mask)
    assert tokens.squeeze(-1).tolist() == [[0.0, 2.0, 3.0], [6.0, 0.0, 0.0]]
    assert padding.tolist() == [[False, False, False], [False, True, True]]


def test_gather_scatter_round_trip_and_padding_independence() -> None:
    masks = MultiBlockMasks((14, 14))(32, _gen(10))
    x = torch.randn(32, 196, 8, requires_grad=True)
    tokens, padding = gather_tokens(x, masks.context)
    assert tokens.shape[1] == int(masks.context.sum(1).max())
    assert torch.equal(padding.logical_not().sum(1), masks.context.sum(1))
    back = scatter_tokens(tokens, padding, masks.context, fill=-1.0)
    expected = torch.where(masks.context[..., None], x, torch.full_like(x, -1.0))
    assert torch.equal(back, expected)
    back.sum().backward()
    assert torch.equal(x.grad, masks.context[..., None].float().expand_as(x))
    # More padding (a longer length, or garbage in the padding slots) changes nothing.
    longer, longer_padding = gather_tokens(x.detach(), masks.context, length=196)
    assert torch.equal(longer[:, : tokens.shape[1]], tokens.detach())
    assert (longer[:, tokens.shape[1] :] == 0).all()
    garbage = longer.masked_fill(longer_padding[..., None], 123.0)
    again = scatter_tokens(garbage, longer_padding, masks.context, fill=-1.0)
    assert torch.equal(again, expected.detach())


def test_gather_targets_flattened_and_integer_positions() -> None:
    masks = MultiBlockMasks((6, 6), min_keep=2)(4, _gen(11))
    coords = jb.grid_coordinates((6, 6))  # (n, 2) int
    flat = masks.targets.flatten(0, 1)  # (b * k, n)
    tokens, padding = gather_tokens(coords.expand(flat.shape[0], -1, -1), flat)
    assert tokens.dtype == coords.dtype
    rows = tokens[..., 0].masked_fill(padding, -1)
    assert (rows.max(1).values - rows.masked_fill(padding, 99).min(1).values < 6).all()




def test_gather_and_scatter_compile_without_graph_breaks() -> None:
    mask = torch.tensor([[True, False, True], [False, False, True]])
    x = torch.randn(2, 3, 4)

    def round_trip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return scatter_tokens(*gather_tokens(x, mask, length=2), mask)

    with typecheck_off():
        try:
            compiled = torch.compile(round_trip, fullgraph=True, backend="eager")
            torch.testing.assert_close(compiled(x, mask), x * mask[..., None])
        finally:
            torch._dynamo.reset()


def test_gather_and_scatter_reject_bad_input_with_typed_annotations() -> None:
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    with pytest.raises((ValueError, TypeCheckError)):
        gather_tokens(x, mask.float())


@typecheck_off()
def test_gather_and_scatter_reject_bad_input() -> None:
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(batch, tokens\)"):
        gather_tokens(x, mask.float())
    with pytest.raises(ValueError, match=r"a row of mask keeps no token"):
        gather_tokens(x, torch.tensor([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match=r"length must be an int in 1 .. n = 4, got 0"):
        gather_tokens(x, mask, length=0)
    with pytest.raises(RuntimeError, match=r"keeps no token or more than length=1"):
        gather_tokens(x, mask, length=1)
    tokens, padding = gather_tokens(x, mask)
    with pytest.raises(RuntimeError, match=r"padding_mask does not match mask"):
        scatter_tokens(tokens, padding, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"padding_mask must be a bool tensor"):
        scatter_tokens(tokens, padding.float(), mask)
