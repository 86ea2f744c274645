"""Tests for jepa_blocks.aggregator: golden equivalence with ``nn.TransformerEncoder`` from
copied weights (post- and pre-norm, with and without padding), padding and length
independence, permutation invariance without positional embeddings, gradients and errors."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from _contract import assert_every_parameter_gets_a_gradient
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError
from torch import nn

from jepa_blocks.aggregator import SequenceAggregator
from jepa_blocks.layers import Attention, TransformerBlock, set_attention_core


def _reference_from(agg: SequenceAggregator, *, dropout: float = 0.1) -> nn.TransformerEncoder:
    """PyTorch's encoder (the official code's ``TransformerEncoder_``) with ``agg``'s weights."""
    first = agg.blocks[0]
    layer = nn.TransformerEncoderLayer(
        agg.dim,
        agg.heads,
        first.mlp.fc1.out_features,
        dropout,
        batch_first=True,
        norm_first=first.norm_first,
    )
    reference = nn.TransformerEncoder(
        layer, agg.depth, norm=nn.LayerNorm(agg.dim), enable_nested_tensor=False
    )
    with torch.no_grad():
        for ours, theirs in zip(agg.blocks, reference.layers, strict=True):
            theirs.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
            theirs.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
            theirs.self_attn.out_proj.weight.copy_(ours.attn.proj.weight)
            theirs.self_attn.out_proj.bias.copy_(ours.attn.proj.bias)
            theirs.linear1.weight.copy_(ours.mlp.fc1.weight)
            theirs.linear1.bias.copy_(ours.mlp.fc1.bias)
            theirs.linear2.weight.copy_(ours.mlp.fc2.weight)
            theirs.linear2.bias.copy_(ours.mlp.fc2.bias)
            for name in ("norm1", "norm2"):
                getattr(theirs, name).weight.copy_(getattr(ours, name).weight)
                getattr(theirs, name).bias.copy_(getattr(ours, name).bias)
        reference.norm.weight.copy_(agg.norm.weight)
        reference.norm.bias.copy_(agg.norm.bias)
    return reference


def _randomise(module: nn.Module) -> nn.Module:
    # LayerNorms start at (1, 0); random affine parameters make the copy test meaningful.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return module


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("attn_core", ["sdpa", "naive", "online"])
def test_golden_against_torch_transformer_encoder(
    norm_first: bool, padded: bool, attn_core: str
) -> None:
    agg = _randomise(
        SequenceAggregator(
            24, depth=2, heads=4, norm_first=norm_first,
            attn_layer=partial(Attention, core=attn_core),
        )
    )
    reference = _reference_from(agg)
    agg.eval()
    reference.eval()
    tokens = torch.randn(3, 5, 24)
    padding = None
    reference_mask = None
    if padded:
        padding = torch.arange(5) >= torch.tensor([5, 3, 1])[:, None]
        reference_mask = torch.cat((torch.zeros(3, 1, dtype=torch.bool), padding), dim=1)
    with torch.no_grad():
        x = torch.cat((agg.agg_token.expand(3, 1, 24), tokens), dim=1)
        expected = reference(x, src_key_padding_mask=reference_mask)
        ours = agg.forward_tokens(tokens, padding)
        z_agg = agg(tokens, padding)
    assert ours.shape == (3, 6, 24) and z_agg.shape == (3, 24)
    assert (agg.agg_token == 0).all()  # the same zero [AGG] token, prepended
    real = torch.ones(3, 6, dtype=torch.bool) if padding is None else ~reference_mask
    torch.testing.assert_close(ours[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z_agg, expected[:, 0], atol=1e-5, rtol=1e-5)


def test_golden_with_a_trained_agg_token() -> None:
    agg = _randomise(SequenceAggregator(16, depth=1, heads=2))
    with torch.no_grad():
        agg.agg_token.normal_()
    reference = _reference_from(agg).eval()
    agg.eval()
    tokens = torch.randn(2, 4, 16)
    with torch.no_grad():
        expected = reference(torch.cat((agg.agg_token.expand(2, 1, 16), tokens), dim=1))[:, 0]
        torch.testing.assert_close(agg(tokens), expected, atol=1e-5, rtol=1e-5)


class _ContiguousDropout(nn.Module):
    """``nn.Dropout`` on a contiguous copy. ``nn.MultiheadAttention`` returns a transposed
    (non-contiguous) batch-first view, and dropout draws its mask in memory order."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x.contiguous(), self.p, self.training)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("attn_core", ["sdpa", "naive"])
def test_golden_in_train_mode_with_dropout(norm_first: bool, attn_core: str) -> None:
    # Same seed, same dropout draws in the same order (attention weights, after attention,
    # inside the MLP, after the MLP): PyTorch's training-mode output is reproduced, so every
    # dropout sits where PyTorch puts it.
    agg = _randomise(
        SequenceAggregator(
            16, depth=2, heads=2, dropout=0.3, norm_first=norm_first,
            attn_layer=partial(Attention, core=attn_core),
        )
    )
    reference = _reference_from(agg, dropout=0.3).train()
    for layer in reference.layers:
        layer.dropout1 = _ContiguousDropout(0.3)
    tokens = torch.randn(3, 4, 16)
    padding = torch.arange(4) >= torch.tensor([4, 2, 3])[:, None]
    reference_mask = torch.cat((torch.zeros(3, 1, dtype=torch.bool), padding), dim=1)
    torch.manual_seed(123)
    ours = agg.forward_tokens(tokens, padding)
    torch.manual_seed(123)
    x = torch.cat((agg.agg_token.expand(3, 1, 16), tokens), dim=1)
    expected = reference(x, src_key_padding_mask=reference_mask)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    torch.manual_seed(124)
    assert not torch.allclose(agg.forward_tokens(tokens, padding), ours)  # dropout is on


def test_transformer_block_alone_matches_torch_layer_with_gradients() -> None:
    # Training-mode arithmetic without dropout, gradients included.
    block = _randomise(TransformerBlock(12, 3, dropout=0.0))
    agg = SequenceAggregator(12, depth=1, heads=3, dropout=0.0)
    agg.blocks[0] = block
    reference = _reference_from(agg, dropout=0.0).layers[0]
    x = torch.randn(2, 5, 12, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, expected = block(x), reference(x_ref)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        block.attn.qkv.weight.grad, reference.self_attn.in_proj_weight.grad, atol=1e-5, rtol=1e-5
    )


def _lengths_mask(lengths: list[int], m: int) -> torch.Tensor:
    return torch.arange(m) >= torch.tensor(lengths)[:, None]


def test_padding_equals_unpadded_for_mixed_lengths() -> None:
    agg = SequenceAggregator(16, depth=2, heads=4).eval()
    lengths = [6, 1, 4, 2]
    tokens = torch.randn(4, 6, 16)
    padding = _lengths_mask(lengths, 6)
    tokens[padding] = 100.0  # padded slots must be ignored, whatever they hold
    with torch.no_grad():
        batched = agg(tokens, padding)
        for i, length in enumerate(lengths):
            alone = agg(tokens[i : i + 1, :length])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_fully_padded_sequence_is_finite_and_ignores_its_tokens() -> None:
    agg = SequenceAggregator(8, depth=2, heads=2).eval()
    padding = torch.tensor([[False, False, False], [True, True, True]])
    tokens = torch.randn(2, 3, 8)
    garbage = tokens.clone()
    garbage[1] = torch.randn(3, 8) * 50
    with torch.no_grad():
        out, out_garbage = agg(tokens, padding), agg(garbage, padding)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, out_garbage, atol=1e-6, rtol=1e-6)


def test_no_padding_mask_equals_all_false_mask() -> None:
    agg = SequenceAggregator(8, depth=1, heads=2).eval()
    tokens = torch.randn(3, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            agg(tokens), agg(tokens, torch.zeros(3, 4, dtype=torch.bool)), atol=1e-6, rtol=1e-6
        )


@pytest.mark.parametrize("m", range(1, 10))
def test_any_length_at_inference(m: int) -> None:
    agg = SequenceAggregator(16, depth=1, heads=4).eval()
    with torch.no_grad():
        out = agg.forward_tokens(torch.randn(2, m, 16))
    assert out.shape == (2, m + 1, 16)
    assert torch.isfinite(out).all()


def test_permutation_invariance_without_positional_embeddings() -> None:
    agg = SequenceAggregator(16, depth=2, heads=4).eval()
    tokens = torch.randn(3, 5, 16)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out = agg.forward_tokens(tokens)
        out_perm = agg.forward_tokens(tokens[:, perm])
    torch.testing.assert_close(out_perm[:, 0], out[:, 0], atol=1e-5, rtol=1e-5)  # invariant
    torch.testing.assert_close(out_perm[:, 1:], out[:, 1:][:, perm], atol=1e-5, rtol=1e-5)


def test_positional_embeddings_break_permutation_invariance() -> None:
    agg = SequenceAggregator(16, depth=2, heads=4, max_len=5).eval()
    assert agg.pos_embed is not None and agg.pos_embed.shape == (1, 5, 16)
    tokens = torch.randn(3, 5, 16)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        assert not torch.allclose(agg(tokens[:, perm]), agg(tokens), atol=1e-4)
        assert agg(tokens[:, :2]).shape == (3, 16)  # shorter sequences use the first rows


def test_agg_token_zero_initialised_and_defaults() -> None:
    agg = SequenceAggregator(32)
    assert agg.agg_token.shape == (1, 1, 32)
    assert (agg.agg_token == 0).all()
    assert agg.pos_embed is None
    assert len(agg.blocks) == 3 and all(b.attn.heads == 4 for b in agg.blocks)


def test_dropout_active_in_train_mode_only() -> None:
    agg = SequenceAggregator(16, depth=1, heads=2, dropout=0.5)
    tokens = torch.randn(4, 3, 16)
    assert not torch.allclose(agg(tokens), agg(tokens))
    agg.eval()
    torch.testing.assert_close(agg(tokens), agg(tokens), atol=0, rtol=0)


@pytest.mark.parametrize("max_len", [None, 6])
@pytest.mark.parametrize("norm_first", [False, True])
def test_every_parameter_gets_a_gradient(max_len: int | None, norm_first: bool) -> None:
    agg = SequenceAggregator(16, depth=2, heads=4, max_len=max_len, norm_first=norm_first)
    tokens = torch.randn(3, 4, 16, requires_grad=True)
    z_agg = agg(tokens)
    # A random projection: the squared norm of a LayerNorm output is constant (no gradient).
    (z_agg * torch.randn_like(z_agg)).sum().backward()
    assert_every_parameter_gets_a_gradient(agg)  # the zero-initialised [AGG] token included
    if agg.pos_embed is not None:
        assert agg.pos_embed.grad[:, :4].abs().sum(-1).gt(0).all()
        assert (agg.pos_embed.grad[:, 4:] == 0).all()  # rows beyond the sequence length
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0


@pytest.mark.parametrize(("b", "m", "d", "heads", "depth"), [(1, 1, 4, 1, 1), (2, 7, 12, 3, 2)])
def test_shapes(b: int, m: int, d: int, heads: int, depth: int) -> None:
    agg = SequenceAggregator(d, depth=depth, heads=heads, final_norm=False, act_layer=nn.GELU)
    assert isinstance(agg.norm, nn.Identity)
    assert isinstance(agg.blocks[0].mlp.act, nn.GELU)
    assert agg(torch.randn(b, m, d)).shape == (b, d)
    assert agg.forward_tokens(torch.randn(b, m, d)).shape == (b, m + 1, d)


def test_errors() -> None:
    with pytest.raises(ValueError, match="dim 10 is not divisible by heads 4"):
        SequenceAggregator(10, heads=4)
    with pytest.raises(ValueError, match="dim 642 is not divisible by heads 4"):
        SequenceAggregator(642)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        SequenceAggregator(0)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        SequenceAggregator(8, heads=2, depth=0)
    with pytest.raises(ValueError, match="max_len must be a positive int or None"):
        SequenceAggregator(8, heads=2, max_len=0)
    agg = SequenceAggregator(8, heads=2, depth=1, max_len=3)
    with pytest.raises(ValueError, match=r"empty \(m = 0\)"):
        agg(torch.randn(2, 0, 8))
    with pytest.raises(ValueError, match="4 tokens exceed max_len=3"):
        agg(torch.randn(2, 4, 8))
    with pytest.raises(TypeCheckError):
        agg(torch.randn(2, 3, 9))  # wrong token width
    with pytest.raises(TypeCheckError):
        agg(torch.randn(2, 3, 8), torch.zeros(2, 2, dtype=torch.bool))


@settings(max_examples=15, deadline=None)
@given(
    heads=st.integers(1, 4),
    head_dim=st.integers(1, 8),
    depth=st.integers(1, 2),
    m=st.integers(1, 6),
    b=st.integers(1, 4),
    norm_first=st.booleans(),
    data=st.data(),
)
def test_shape_and_padding_hypothesis(
    heads: int, head_dim: int, depth: int, m: int, b: int, norm_first: bool, data
) -> None:
    dim = heads * head_dim
    agg = SequenceAggregator(dim, depth=depth, heads=heads, norm_first=norm_first).eval()
    lengths = data.draw(st.lists(st.integers(1, m), min_size=b, max_size=b))
    tokens = torch.randn(b, m, dim)
    padding = _lengths_mask(lengths, m)
    with torch.no_grad():
        out = agg(tokens, padding)
        assert out.shape == (b, dim)
        for i, length in enumerate(lengths):
            alone = agg(tokens[i : i + 1, :length])
            torch.testing.assert_close(out[i : i + 1], alone, atol=1e-4, rtol=1e-4)


def test_checkpoints_from_the_sequential_mlp_load() -> None:
    """Before the one Mlp, the FFN was nn.Sequential(Linear, ReLU, Dropout, Linear): keys
    mlp.0 / mlp.3. Such state dicts still load, into fc1 / fc2, strictly."""
    agg = SequenceAggregator(8, depth=2, heads=2)
    old = {
        k.replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3."): torch.randn_like(v)
        for k, v in agg.state_dict().items()
    }
    assert "blocks.1.mlp.3.weight" in old
    fresh = SequenceAggregator(8, depth=2, heads=2)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.blocks[1].mlp.fc2.weight, old["blocks.1.mlp.3.weight"])
    assert torch.equal(fresh.blocks[0].mlp.fc1.bias, old["blocks.0.mlp.0.bias"])


def test_the_default_core_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("JEPA_BLOCKS_ATTN_CORE", "online")
    agg = SequenceAggregator(8, depth=2, heads=2)
    assert {block.attn.core for block in agg.blocks} == {"online"}
    assert set_attention_core(agg, "naive") == 2
    assert {block.attn.core for block in agg.blocks} == {"naive"}
    monkeypatch.setenv("JEPA_BLOCKS_ATTN_CORE", "flash")
    with pytest.raises(ValueError, match="JEPA_BLOCKS_ATTN_CORE='flash' names no attention core"):
        SequenceAggregator(8, depth=1, heads=2)
    with pytest.raises(ValueError, match="backend='math' applies only to core='sdpa'"):
        set_attention_core(agg, "online", backend="math")
    assert {block.attn.core for block in agg.blocks} == {"naive"}  # nothing switched


def test_transformer_block_passes_positions_to_rotary_attention() -> None:
    import jepa_blocks as jb

    torch.manual_seed(0)
    rope = jb.RotaryEmbedding(4, axes=2)
    block = TransformerBlock(8, 2, dropout=0.0, attn_layer=partial(Attention, rope=rope)).eval()
    x = torch.randn(2, 5, 8)
    positions = torch.randint(0, 6, (5, 2)).float()
    out = block(x, None, positions)
    # Rotary scores depend on position differences only: a common shift changes nothing.
    torch.testing.assert_close(block(x, None, positions + 3.0), out, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(block(x, None, positions.flip(0)), out, atol=1e-4)
    with pytest.raises(ValueError, match="positions"):
        block(x)  # a rotary attention needs its positions
