"""Sin-cos and rotary position embeddings (jepa_blocks/positions.py) and Attention(rope=...).

Oracles: the sin-cos tables are recomputed with MAE's / V-JEPA's numpy code, written out
below as they publish it; the 3D rotary is recomputed from V-JEPA 2's description (head
dimension split in three equal even parts rotated by frame, row and column, the rest not
rotated) with explicit 2 x 2 rotation matrices.
"""

import math

import numpy as np
import pytest
import torch
from _contract import typecheck_off

import jepa_blocks as jb
from jepa_blocks import Attention, RotaryEmbedding, grid_coordinates

# --------------------------------------------------------------- the published numpy code


def _np_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def _np_2d(embed_dim: int, height: int, width: int) -> np.ndarray:
    """MAE's get_2d_sincos_pos_embed (square there; (h, w) here, same meshgrid)."""
    grid_h = np.arange(height, dtype=np.float32)
    grid_w = np.arange(width, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, height, width])
    emb_h = _np_1d(embed_dim // 2, grid[0])
    emb_w = _np_1d(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def _np_3d(embed_dim: int, depth: int, size: int, uniform_power: bool) -> np.ndarray:
    """V-JEPA's get_3d_sincos_pos_embed."""
    grid_d = np.arange(depth, dtype=float)
    grid_h = np.arange(size, dtype=float)
    grid_w = np.arange(size, dtype=float)
    grid_h, grid_d, grid_w = np.meshgrid(grid_h, grid_d, grid_w)
    if not uniform_power:
        h_dim, w_dim, d_dim = embed_dim // 4, embed_dim // 4, embed_dim // 2
    else:
        h_dim = w_dim = d_dim = int(np.ceil(embed_dim / 6) * 2)
    emb = np.concatenate(
        [_np_1d(d_dim, grid_d), _np_1d(h_dim, grid_h), _np_1d(w_dim, grid_w)], axis=1
    )
    return emb[:, :embed_dim]


@pytest.mark.parametrize(("dim", "grid"), [(64, (14, 14)), (32, (3, 5)), (4, (1, 2))])
def test_sincos_2d_equals_the_mae_formula(dim: int, grid: tuple[int, int]) -> None:
    table = jb.sincos_embed_2d(dim, grid, dtype=torch.float64)
    assert table.shape == (grid[0] * grid[1], dim)
    np.testing.assert_allclose(table.numpy(), _np_2d(dim, *grid), rtol=0, atol=1e-12)
    # Row-major flattening: token 1 is (row 0, col 1), token w is (row 1, col 0); the first
    # half encodes the column, the second the row.
    half, width = dim // 2, grid[1]
    if grid[0] > 1:
        assert torch.equal(table[1, :half], table[width, half:])


@pytest.mark.parametrize("uniform_power", [False, True])
@pytest.mark.parametrize(("dim", "depth", "size"), [(64, 4, 5), (48, 2, 3)])
def test_sincos_3d_equals_the_vjepa_formula(
    dim: int, depth: int, size: int, uniform_power: bool
) -> None:
    table = jb.sincos_embed_3d(
        dim, (depth, size, size), uniform_power=uniform_power, dtype=torch.float64
    )
    expected = _np_3d(dim, depth, size, uniform_power)
    np.testing.assert_allclose(table.numpy(), expected, rtol=0, atol=1e-12)


def test_sincos_bad_input_is_named() -> None:
    with typecheck_off():
        with pytest.raises(ValueError, match=r"dim 30 must be a positive multiple of 4"):
            jb.sincos_embed_2d(30, (14, 14))
        with pytest.raises(ValueError, match=r"dim 36 must be a positive multiple of 8"):
            jb.sincos_embed_3d(36, (2, 14, 14))
        with pytest.raises(ValueError, match=r"grid must be 2 positive ints \(h, w\), got"):
            jb.sincos_embed_2d(32, (14, 0))
        with pytest.raises(ValueError, match=r"grid must be a tuple of positive ints"):
            grid_coordinates(())


def test_grid_coordinates_are_raster_order() -> None:
    coords = grid_coordinates((2, 3, 4))
    assert coords.shape == (24, 3)
    index = (coords[:, 0] * 3 + coords[:, 1]) * 4 + coords[:, 2]
    assert torch.equal(index, torch.arange(24))


# ------------------------------------------------------------------------------------ rotary


def _rotary_reference(x: torch.Tensor, positions: torch.Tensor, axes: int) -> torch.Tensor:
    """From the description: per axis an even slice of ``2 * ((dh // axes) // 2)`` channels,
    pair i of a slice rotated by ``p * 10000 ** (-2i / part)``; the rest untouched."""
    dh = x.shape[-1]
    part = 2 * ((dh // axes) // 2)
    out = x.clone()
    b, heads, n, _ = x.shape
    for batch in range(b):
        for token in range(n):
            for axis in range(axes):
                p = float(positions[batch, token, axis])
                for i in range(part // 2):
                    angle = p * 10000.0 ** (-2.0 * i / part)
                    rotation = torch.tensor(
                        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                        dtype=x.dtype,
                    )
                    c = axis * part + 2 * i
                    out[batch, :, token, c : c + 2] = x[batch, :, token, c : c + 2] @ rotation.T
    return out


@pytest.mark.parametrize(("head_dim", "axes"), [(16, 3), (14, 3), (12, 2), (8, 1)])
def test_rotary_equals_the_description(head_dim: int, axes: int) -> None:
    rope = RotaryEmbedding(head_dim, axes=axes)
    x = torch.randn(2, 2, 5, head_dim, dtype=torch.float64)
    positions = torch.randint(0, 9, (2, 5, axes))
    expected = _rotary_reference(x, positions, axes)
    torch.testing.assert_close(rope(x, positions), expected, rtol=1e-6, atol=1e-6)
    rest = rope.rotated_dim
    assert rest == axes * 2 * ((head_dim // axes) // 2)
    assert torch.equal(rope(x, positions)[..., rest:], x[..., rest:])
    # (n, a) coordinates broadcast over the batch.
    shared = rope(x, positions[0])
    torch.testing.assert_close(shared[0], rope(x, positions)[0])


def test_vjepa2_head_split() -> None:
    """V-JEPA 2 ViT-L: head_dim 64 -> three slices of 2 * ((64 // 3) // 2) = 20, 4 unrotated."""
    rope = RotaryEmbedding(64, axes=3)
    assert (rope.part_dim, rope.rotated_dim) == (20, 60)


@pytest.mark.parametrize("axes", [2, 3])
def test_rotary_scores_depend_on_position_differences_only(axes: int) -> None:
    rope = RotaryEmbedding(24, axes=axes)
    q = torch.randn(2, 3, 7, 24, dtype=torch.float64)
    k = torch.randn(2, 3, 7, 24, dtype=torch.float64)
    positions = torch.randint(0, 14, (2, 7, axes)).double()
    offset = torch.tensor([5.0, -3.0, 11.0][:axes], dtype=torch.float64)

    def scores(pos: torch.Tensor) -> torch.Tensor:
        return rope(q, pos) @ rope(k, pos).transpose(-2, -1)

    torch.testing.assert_close(scores(positions + offset), scores(positions), rtol=0, atol=1e-12)
    assert not torch.allclose(scores(positions * 2), scores(positions))


def test_rotary_has_no_state_and_keeps_half_precision() -> None:
    rope = RotaryEmbedding(16, axes=2)
    assert not rope.state_dict() and not list(rope.parameters())
    x = torch.randn(1, 2, 4, 16, dtype=torch.bfloat16)
    assert rope(x, grid_coordinates((2, 2))).dtype == torch.bfloat16


@pytest.mark.parametrize("core", ["sdpa", "online"])
def test_every_core_agrees_with_naive_with_rotary(core: str) -> None:
    torch.manual_seed(0)
    dim, heads = 48, 4  # head_dim 12: three slices of 4, no rest; axes 2: two of 6
    for axes, grid in ((2, (3, 4)), (3, (2, 2, 3))):
        oracle = Attention(dim, heads, core="naive", rope=RotaryEmbedding(dim // heads, axes=axes))
        other = Attention(
            dim, heads, core=core, block_size=5, rope=RotaryEmbedding(dim // heads, axes=axes)
        )
        other.load_state_dict(oracle.state_dict())
        x = torch.randn(3, 12, dim)
        positions = grid_coordinates(grid)[torch.randperm(12)].expand(3, -1, -1)
        padding = torch.zeros(3, 12, dtype=torch.bool)
        padding[1, 9:] = True
        xs = [x.clone().requires_grad_() for _ in range(2)]
        outs = [
            module(inp, key_padding_mask=padding, positions=positions)
            for module, inp in zip((oracle, other), xs, strict=True)
        ]
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
        weights = torch.randn_like(outs[0])
        for out in outs:
            (out * weights).sum().backward()
        torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-5, atol=1e-5)
        for (name, p), (_, q) in zip(
            oracle.named_parameters(), other.named_parameters(), strict=True
        ):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5, msg=name)


def test_rotary_attention_on_gathered_tokens_is_padding_independent() -> None:
    """Kept tokens with their own coordinates: the same outputs however much padding."""
    masks = jb.MultiBlockMasks((6, 6), min_keep=4)(4, torch.Generator().manual_seed(0))
    attention = Attention(32, 2, rope=RotaryEmbedding(16, axes=2)).eval()
    x = torch.randn(4, 36, 32)
    coords = grid_coordinates((6, 6)).expand(4, -1, -1)
    tokens, padding = jb.gather_tokens(x, masks.context)
    positions, _ = jb.gather_tokens(coords, masks.context)
    longer, longer_padding = jb.gather_tokens(x, masks.context, length=36)
    longer_positions, _ = jb.gather_tokens(coords, masks.context, length=36)
    out = attention(tokens, key_padding_mask=padding, positions=positions)
    out_longer = attention(longer, key_padding_mask=longer_padding, positions=longer_positions)
    kept = ~padding
    torch.testing.assert_close(out_longer[:, : out.shape[1]][kept], out[kept])


def test_rotary_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"head_dim 4 is too narrow for rotary embeddings over 3"):
        RotaryEmbedding(4, axes=3)
    with pytest.raises(ValueError, match=r"axes must be a positive int"):
        RotaryEmbedding(16, axes=0)
    with pytest.raises(ValueError, match=r"rope must be a RotaryEmbedding of head width .* = 8"):
        Attention(32, 4, rope=RotaryEmbedding(16))
    plain = Attention(32, 4)
    rotary = Attention(32, 4, rope=RotaryEmbedding(8, axes=2))
    x = torch.randn(2, 6, 32)
    with typecheck_off():
        with pytest.raises(ValueError, match=r"positions are given but this Attention has no"):
            plain(x, positions=grid_coordinates((2, 3)))
        with pytest.raises(ValueError, match=r"pass positions=\(b, n, 2\) or \(6, 2\)"):
            rotary(x)
        with pytest.raises(ValueError, match=r"positions must be \(batch, tokens, axes\)"):
            rotary(x, positions=grid_coordinates((2, 3, 1)))
    # Attention without rope is unchanged: no submodule state, same keys as before.
    assert set(plain.state_dict()) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    assert set(rotary.state_dict()) == set(plain.state_dict())
