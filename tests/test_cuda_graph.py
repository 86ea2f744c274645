"""Tests for jepa_blocks.cuda_graph: the eager fallback off CUDA and the argument checks."""

import pytest
import torch
from torch import nn

from jepa_blocks.layers.attention import Attention
from jepa_blocks.layers.cuda_graph import cuda_graph_supported, graph_module


def _block():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Dropout(0.0), nn.Linear(32, 16))


@pytest.mark.parametrize("enabled", [None, False])
def test_cpu_falls_back_to_the_same_eager_module(enabled):
    module = _block()
    reference = _block()  # identical weights, never passed through graph_module
    forward_before = module.forward
    sample = torch.randn(4, 16)
    graphed = graph_module(module, (sample,), enabled=enabled)
    assert graphed is module
    assert graphed.forward == forward_before  # not replaced: eager
    x = torch.randn(4, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = graphed(x), reference(x_ref)
    assert torch.equal(out, out_ref)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    assert torch.equal(x.grad, x_ref.grad)
    for p, p_ref in zip(module.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p.grad, p_ref.grad)


def test_cpu_fallback_keeps_shape_freedom_and_masks():
    # Eager fallback: unlike a captured graph, other shapes and optional arguments still work.
    attn = Attention(16, 2)
    graphed = graph_module(attn, torch.randn(2, 5, 16))
    x = torch.randn(3, 7, 16)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, -1] = True
    assert torch.equal(graphed(x, mask), attn(x, mask))


def test_plain_function_falls_back_unchanged():
    def fn(a, b):
        return a * b + 1

    sample = (torch.randn(3), torch.randn(3))
    assert graph_module(fn, sample) is fn
    assert graph_module(fn, sample[0] * 0 + 1, enabled=False) is fn


def test_auto_mode_is_off_for_cpu_samples():
    assert not cuda_graph_supported((torch.randn(2),))
    assert not cuda_graph_supported(torch.randn(2))
    assert not cuda_graph_supported(())


def test_enabled_true_on_cpu_raises_with_fix():
    with pytest.raises(ValueError, match=r"enabled=True needs CUDA .*\['cpu'\].*enabled=None"):
        graph_module(_block(), (torch.randn(4, 16),), enabled=True)


def test_non_tensor_sample_rejected():
    with pytest.raises(ValueError, match=r"sample_args\[1\] is NoneType.*tensors only"):
        graph_module(Attention(16, 2), (torch.randn(2, 5, 16), None))


def test_bad_warmup_rejected():
    with pytest.raises(ValueError, match=r"num_warmup_iters must be >= 1, got 0"):
        graph_module(_block(), torch.randn(4, 16), num_warmup_iters=0)
