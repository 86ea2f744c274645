"""Tests for jepa_blocks.attention: every core against the naive oracle, forward and backward."""

import math
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError
from torch import nn

from jepa_blocks.layers import online_attention as online_module
from jepa_blocks.layers.attention import ATTENTION_CORES, SDPA_BACKENDS, Attention, attention_core

FAST_CORES = ("sdpa", "online")
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _qkv(b, h, n, dh, dtype, nk=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    nk = n if nk is None else nk
    q = torch.randn(b, h, n, dh, generator=gen, dtype=dtype)
    k = torch.randn(b, h, nk, dh, generator=gen, dtype=dtype)
    v = torch.randn(b, h, nk, dh, generator=gen, dtype=dtype)
    return tuple(t.requires_grad_() for t in (q, k, v))


def _padding(b, nk, seed=1, p=0.3):
    mask = torch.rand(b, nk, generator=torch.Generator().manual_seed(seed)) < p
    mask[:, 0] = False  # keep at least one key per sequence (all-masked is tested apart)
    return mask


def _query_rows(rows_per_block: int, bh: int, block: int, element_size: int):
    """Patch the online core's tile budget so query blocks hold ``rows_per_block`` key blocks."""
    budget = (rows_per_block * block) * bh * block * element_size  # rows x tile row bytes
    return mock.patch.object(online_module, "_TILE_BYTES", budget)


def _run(core, q, k, v, **kwargs):
    """Output and the gradients of a fixed, non-uniform scalar of it w.r.t. q, k, v."""
    out = attention_core(q, k, v, core=core, **kwargs)
    weights = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * weights).sum(), (q, k, v))
    return out, grads


def _assert_close(actual, expected, tol):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- vs the oracle


@pytest.mark.parametrize("core", FAST_CORES)
@pytest.mark.parametrize(
    "dtype, query_rows",
    [(torch.float64, 1), (torch.float64, 3), (torch.float32, 3)],
    ids=["f64-square-tiles", "f64-tall-tiles", "f32-tall-tiles"],
)
@pytest.mark.parametrize(
    "shape, block_size",
    [
        ((2, 3, 1, 8), 4),  # N = 1
        ((2, 2, 5, 16), 128),  # aggregator-like, one block
        ((1, 2, 37, 8), 8),  # N not a multiple of the block
        ((3, 1, 64, 4), 16),  # exact multiple
        ((1, 1, 13, 5), 1),  # block of one key, odd head width
    ],
)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_core_matches_naive(core, dtype, shape, block_size, masked, causal, query_rows):
    b, h, n, dh = shape
    q, k, v = _qkv(b, h, n, dh, dtype)
    mask = _padding(b, n) if masked else None
    kwargs = dict(key_padding_mask=mask, causal=causal, block_size=block_size)
    with _query_rows(query_rows, b * h, block_size, q.element_size()):
        out, grads = _run(core, q, k, v, **kwargs)
    ref, ref_grads = _run("naive", q, k, v, **kwargs)
    _assert_close(out, ref, TOL[dtype])
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        _assert_close(grad, ref_grad, TOL[dtype])


@pytest.mark.parametrize("core", FAST_CORES)
def test_cross_attention_lengths(core):
    q, k, v = _qkv(2, 2, 11, 8, torch.float64, nk=7)
    mask = _padding(2, 7)
    for causal, rows in ((False, 1), (True, 1), (True, 2)):
        kwargs = dict(key_padding_mask=mask, causal=causal, block_size=3)
        with _query_rows(rows, 4, 3, 8):
            out, grads = _run(core, q, k, v, **kwargs)
        ref, ref_grads = _run("naive", q, k, v, **kwargs)
        _assert_close(out, ref, 1e-10)
        for grad, ref_grad in zip(grads, ref_grads, strict=True):
            _assert_close(grad, ref_grad, 1e-10)


def test_naive_matches_explicit_softmax_formula():
    q, k, v = _qkv(1, 1, 4, 3, torch.float64)
    mask = torch.tensor([[False, True, False, False]])
    out = attention_core(q, k, v, key_padding_mask=mask, core="naive")
    scores = q[0, 0] @ k[0, 0].T / math.sqrt(3)
    weights = torch.exp(scores) * torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    weights = weights / weights.sum(-1, keepdim=True)
    _assert_close(out[0, 0], weights @ v[0, 0], 1e-12)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(1, 3),
    n=st.integers(1, 20),
    dh=st.integers(1, 9),
    block_size=st.integers(1, 24),
    query_rows=st.integers(1, 4),
    masked=st.booleans(),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_online_and_sdpa_match_naive(
    b, h, n, dh, block_size, query_rows, masked, causal, seed
):
    q, k, v = _qkv(b, h, n, dh, torch.float64, seed=seed)
    mask = _padding(b, n, seed=seed + 1, p=0.5) if masked else None
    kwargs = dict(key_padding_mask=mask, causal=causal, block_size=block_size)
    ref, ref_grads = _run("naive", q, k, v, **kwargs)
    for core in FAST_CORES:
        with _query_rows(query_rows, b * h, block_size, 8):
            out, grads = _run(core, q, k, v, **kwargs)
        _assert_close(out, ref, 1e-10)
        for grad, ref_grad in zip(grads, ref_grads, strict=True):
            _assert_close(grad, ref_grad, 1e-10)


def test_online_gradcheck():
    q, k, v = _qkv(1, 2, 9, 4, torch.float64)
    mask = _padding(1, 9)

    def fn(q, k, v):
        return attention_core(
            q, k, v, key_padding_mask=mask, core="online", block_size=4, causal=True
        )

    with _query_rows(1, 2, 4, 8):
        assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n, nk, block, q_block", [(10, 10, 4, 4), (10, 10, 3, 6), (7, 12, 5, 5)])
def test_online_tiles_cover_every_visible_pair_once(causal, n, nk, block, q_block):
    covered = torch.zeros(n, nk, dtype=torch.int64)
    for _, i0, i1, j0, j1, cut, _ in online_module._tiles(n, nk, block, q_block, causal):
        covered[i0:i1, j0:j1] += 1
        future = torch.arange(j0, j1)[None, :] > torch.arange(i0, i1)[:, None]
        assert cut == bool(causal and future.any())
        assert not (causal and future.all())  # tiles entirely in the future are skipped
    visible = torch.ones(n, nk, dtype=torch.bool)
    if causal:
        visible = torch.arange(nk)[None, :] <= torch.arange(n)[:, None]
    assert torch.all(covered[visible] == 1)
    assert torch.all(covered[~visible] <= 1)  # cut tiles are masked inside, not skipped


def test_query_block_is_a_multiple_of_the_key_block_within_budget():
    with mock.patch.object(online_module, "_TILE_BYTES", 50 * 8 * 16 * 4):  # 50 rows
        assert online_module._query_block(1000, 8, 16, 4) == 48
        assert online_module._query_block(20, 8, 16, 4) == 20  # capped at n
    with mock.patch.object(online_module, "_TILE_BYTES", 1):
        assert online_module._query_block(1000, 8, 16, 4) == 16  # never below one block


# ----------------------------------------------------------------------------- memory


def _saved_tensors(fn):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


def test_online_saves_linear_state():
    def saved_for(core, n):
        q, k, v = _qkv(1, 2, n, 8, torch.float32)
        mask = _padding(1, n)
        _, saved = _saved_tensors(
            lambda: attention_core(q, k, v, key_padding_mask=mask, core=core, block_size=64)
        )
        return saved

    n = 256
    small, large = saved_for("online", n), saved_for("online", 2 * n)
    for saved, length in ((small, n), (large, 2 * n)):
        assert all(t.numel() < length * length for t in saved)
    bytes_small = sum(t.numel() * t.element_size() for t in small)
    bytes_large = sum(t.numel() * t.element_size() for t in large)
    assert bytes_large == pytest.approx(2 * bytes_small, rel=0.02)
    # The check can fail: the oracle keeps its N x N weights for backward.
    naive = saved_for("naive", n)
    assert any(t.numel() >= n * n for t in naive)


def test_online_saves_only_inputs_output_and_lse():
    b, h, n, dh = 2, 3, 40, 8
    q, k, v = _qkv(b, h, n, dh, torch.float32)
    _, saved = _saved_tensors(lambda: attention_core(q, k, v, core="online", block_size=16))
    sizes = sorted(t.numel() for t in saved)
    # q, k, v, out: b*h*n*dh each; lse: b*h*n; nothing else.
    assert sizes == [b * h * n] + [b * h * n * dh] * 4


# ----------------------------------------------------------------------------- all masked


@pytest.mark.parametrize("core", ATTENTION_CORES)
@pytest.mark.parametrize("causal", [False, True])
def test_all_masked_rows_give_zeros_and_zero_grads(core, causal):
    q, k, v = _qkv(3, 2, 6, 4, torch.float64)
    mask = _padding(3, 6)
    mask[1] = True  # every key of sequence 1 is padding
    if causal:
        mask[2, :3] = True  # queries 0-2 of sequence 2 see only padding
    with _query_rows(1, 6, 4, 8):  # 4-row query blocks: a fully padded tile comes first
        out, (dq, dk, dv) = _run(core, q, k, v, key_padding_mask=mask, causal=causal, block_size=4)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    for grad in (dq, dk, dv):
        assert torch.isfinite(grad).all()
        assert torch.equal(grad[1], torch.zeros_like(grad[1]))
    if causal:
        assert torch.equal(out[2, :, :3], torch.zeros_like(out[2, :, :3]))
    # The other sequences are untouched by the empty one.
    keep = [0, 2]
    ref = attention_core(
        q[keep], k[keep], v[keep], key_padding_mask=mask[keep], core="naive", causal=causal
    )
    if causal:
        ref[1, :, :3] = 0.0
    _assert_close(out[keep], ref, 1e-10)


def test_module_all_masked_sequence_outputs_proj_bias():
    attn = Attention(8, 2).double()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0] = True
    for core in ATTENTION_CORES:
        attn.core = core
        out = attn(x, mask)
        _assert_close(out[0], attn.proj.bias.expand(4, 8), 1e-12)


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("core", ATTENTION_CORES)
def test_dropout_drops_weights_at_rate_p(core):
    # q = k = 0 gives uniform weights 1/n; with v = I the output is the weight matrix itself.
    n, p = 32, 0.25
    zeros = torch.zeros(2, 4, n, n)
    eye = torch.eye(n).expand(2, 4, n, n)
    torch.manual_seed(0)
    out = attention_core(zeros, zeros, eye, core=core, dropout_p=p, block_size=8)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.02)
    kept = out[out != 0]
    _assert_close(kept, torch.full_like(kept, 1.0 / (n * (1 - p))), 1e-5)


def test_online_dropout_backward_matches_its_forward():
    q, k, v = _qkv(1, 1, 7, 3, torch.float64)

    def fn(q, k, v):
        torch.manual_seed(0)  # same dropout masks on every call
        return attention_core(q, k, v, core="online", dropout_p=0.3, block_size=4)

    with _query_rows(1, 1, 4, 8):
        assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("core", ATTENTION_CORES)
def test_module_dropout_only_in_training(core):
    attn = Attention(16, 4, dropout=0.5, core=core, block_size=4)
    x = torch.randn(2, 9, 16)
    attn.eval()
    clean = attn(x)
    attn.dropout = 0.0
    _assert_close(clean, attn(x), 1e-6)
    attn.dropout = 0.5
    attn.train()
    torch.manual_seed(0)
    assert not torch.allclose(attn(x), clean)


# ----------------------------------------------------------------------------- module


def test_module_every_core_matches_naive_including_parameter_grads():
    torch.manual_seed(0)
    attn = Attention(24, 3, core="naive", block_size=4).double()
    x = torch.randn(2, 11, 24, dtype=torch.float64, requires_grad=True)
    mask = _padding(2, 11)
    results = {}
    for core in ATTENTION_CORES:
        attn.core = core  # same weights, flipped core
        attn.zero_grad()
        out = attn(x, mask)
        (dx,) = torch.autograd.grad(out.square().sum(), x, retain_graph=True)
        out.square().sum().backward()
        grads = {name: p.grad.clone() for name, p in attn.named_parameters()}
        assert set(grads) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
        assert all(g.abs().sum() > 0 for g in grads.values())
        results[core] = (out, dx, grads)
    ref_out, ref_dx, ref_grads = results["naive"]
    for core in FAST_CORES:
        out, dx, grads = results[core]
        _assert_close(out, ref_out, 1e-10)
        _assert_close(dx, ref_dx, 1e-10)
        for name, grad in grads.items():
            _assert_close(grad, ref_grads[name], 1e-10)


def test_module_matches_timm_attention():
    from timm.layers import Attention as TimmAttention

    torch.manual_seed(0)
    ours = Attention(32, 4)
    theirs = TimmAttention(32, num_heads=4, qkv_bias=True)
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=True)
    assert not missing and not unexpected
    x = torch.randn(3, 7, 32)
    expected = theirs(x)
    for core in ATTENTION_CORES:
        ours.core = core
        _assert_close(ours(x), expected, 2e-5)


def test_module_matches_multihead_attention_with_padding():
    torch.manual_seed(0)
    ours = Attention(16, 2, block_size=3).double()
    mha = nn.MultiheadAttention(16, 2, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.qkv.weight)
        mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight)
        mha.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    mask = _padding(2, 8, p=0.5)
    expected, _ = mha(x, x, x, key_padding_mask=mask, need_weights=False)
    for core in ATTENTION_CORES:
        ours.core = core
        _assert_close(ours(x, mask), expected, 1e-10)


@pytest.mark.parametrize("core", ATTENTION_CORES)
def test_bf16_close_to_fp32(core):
    torch.manual_seed(0)
    attn = Attention(64, 4, core=core, block_size=16)
    x = torch.randn(2, 33, 64)
    mask = _padding(2, 33)
    expected = attn(x, mask)
    out = attn.to(torch.bfloat16)(x.bfloat16(), mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.03)


def test_online_bf16_core_gradients_close_to_fp32():
    q, k, v = _qkv(1, 2, 40, 16, torch.float32)
    ref, ref_grads = _run("naive", q, k, v)
    q16, k16, v16 = (t.detach().bfloat16().requires_grad_() for t in (q, k, v))
    out, grads = _run("online", q16, k16, v16, block_size=16)
    assert out.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.03)
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad.float(), ref_grad, rtol=0.05, atol=0.05)


def test_backend_math_pins_and_matches():
    q, k, v = _qkv(2, 2, 9, 8, torch.float64)
    mask = _padding(2, 9)
    ref = attention_core(q, k, v, key_padding_mask=mask, core="naive")
    out = attention_core(q, k, v, key_padding_mask=mask, backend="math")
    _assert_close(out, ref, 1e-10)
    attn = Attention(16, 2, backend="math")
    assert attn(torch.randn(1, 3, 16)).shape == (1, 3, 16)


def test_extra_repr_names_core():
    assert "core='online'" in repr(Attention(8, 2, core="online"))


# ----------------------------------------------------------------------------- errors


def test_error_dim_not_divisible():
    with pytest.raises(ValueError, match=r"dim 642 is not divisible by heads 4; choose heads"):
        Attention(642, 4)


def test_error_unknown_core_everywhere():
    with pytest.raises(ValueError, match=r"unknown attention core 'flash'; choose one of"):
        Attention(8, 2, core="flash")
    attn = Attention(8, 2)
    with pytest.raises(ValueError, match=r"unknown attention core 'fast'"):
        attn.core = "fast"
    assert attn.core == "sdpa"  # unchanged by the failed assignment
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match=r"choose one of \('naive', 'sdpa', 'online'\)"):
        attention_core(q, q, q, core="triton")


def test_error_unknown_backend():
    with pytest.raises(ValueError, match=r"unknown SDPA backend 'fa3'; choose one of"):
        Attention(8, 2, backend="fa3")
    attn = Attention(8, 2)
    with pytest.raises(ValueError, match=r"unknown SDPA backend 'xformers'"):
        attn.backend = "xformers"
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match=r"applies only to core='sdpa'"):
        attention_core(q, q, q, core="online", backend="math")
    assert set(SDPA_BACKENDS) == {"math", "flash", "efficient", "cudnn"}


@pytest.mark.filterwarnings("ignore:.*(kernel|Memory efficient|CuDNN|Flash).*:UserWarning")
def test_pinned_backend_that_cannot_run_keeps_pytorch_reason():
    q = torch.randn(1, 1, 4, 8)  # CPU: the efficient kernel is CUDA-only
    with pytest.raises(RuntimeError, match=r"SDPA backend 'efficient' cannot run .*PyTorch said"):
        attention_core(q, q, q, backend="efficient")


def test_error_mask_wrong_shape_or_dtype():
    attn = Attention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises((ValueError, TypeCheckError), match="key_padding_mask"):
        attn(x, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises((ValueError, TypeCheckError), match="key_padding_mask"):
        attn(x, torch.zeros(2, 3))
    # The ValueError itself (the path taken when runtime type checking is off).
    from jepa_blocks.layers import attention as module

    core = getattr(module.attention_core, "__wrapped__", module.attention_core)
    q = torch.randn(2, 1, 3, 4)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(batch, keys\) = \(2, 3\)"):
        core(q, q, q, key_padding_mask=torch.zeros(2, 3))


def test_error_bad_dropout_and_block_size():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        Attention(8, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"block_size must be a positive int, got 0"):
        Attention(8, 2, block_size=0)
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got -0.1"):
        attention_core(q, q, q, dropout_p=-0.1)


def test_wrong_width_rejected():
    attn = Attention(8, 2)
    with pytest.raises((ValueError, TypeCheckError, RuntimeError)):
        attn(torch.randn(2, 3, 6))
