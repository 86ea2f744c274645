"""Tests for jepa_blocks.tokens: u_i = [z_i ; e(a_i)] with the last real token's action zeroed
(spec §1.5), under padding, and the errors."""

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError

from jepa_blocks.tokens import ViewActionConcat, last_token_mask


@pytest.mark.parametrize(("b", "m", "dv", "de"), [(1, 1, 3, 2), (2, 4, 8, 4), (3, 6, 16, 1)])
def test_concat_shape_and_values(b: int, m: int, dv: int, de: int) -> None:
    layer = ViewActionConcat(dv, de)
    assert layer.dim_out == dv + de
    views, actions = torch.randn(b, m, dv), torch.randn(b, m, de)
    tokens = layer(views, actions)
    assert tokens.shape == (b, m, dv + de)
    torch.testing.assert_close(tokens[..., :dv], views, atol=0, rtol=0)
    torch.testing.assert_close(tokens[:, :-1, dv:], actions[:, :-1], atol=0, rtol=0)
    assert (tokens[:, -1, dv:] == 0).all()


def test_zero_last_false_keeps_every_action() -> None:
    views, actions = torch.randn(2, 3, 4), torch.randn(2, 3, 2)
    tokens = ViewActionConcat(4, 2, zero_last=False)(views, actions)
    torch.testing.assert_close(tokens, torch.cat((views, actions), dim=-1), atol=0, rtol=0)


def test_padding_zeroes_last_real_token_and_padding() -> None:
    views, actions = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    lengths = torch.tensor([5, 2, 1])
    padding = torch.arange(5) >= lengths[:, None]
    tokens = ViewActionConcat(4, 2)(views, actions, padding)
    torch.testing.assert_close(tokens[..., :4], views, atol=0, rtol=0)
    for i, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(tokens[i, : length - 1, 4:], actions[i, : length - 1])
        assert (tokens[i, length - 1 :, 4:] == 0).all()  # last real token and the padding
    # zero_last=False still zeroes the padded tokens' actions, only those.
    kept = ViewActionConcat(4, 2, zero_last=False)(views, actions, padding)
    assert (kept[padding][:, 4:] == 0).all()
    torch.testing.assert_close(kept[~padding][:, 4:], actions[~padding], atol=0, rtol=0)


def test_padded_tokens_match_unpadded_tokens() -> None:
    layer = ViewActionConcat(4, 2)
    views, actions = torch.randn(1, 6, 4), torch.randn(1, 6, 2)
    padding = torch.tensor([[False, False, False, True, True, True]])
    padded = layer(views, actions, padding)[:, :3]
    unpadded = layer(views[:, :3], actions[:, :3])
    torch.testing.assert_close(padded, unpadded, atol=0, rtol=0)


def test_last_token_mask() -> None:
    mask = last_token_mask(None, 2, 3, torch.device("cpu"))
    assert mask.tolist() == [[False, False, True]] * 2
    padding = torch.tensor([[False, False, True], [False, True, True], [False, False, False]])
    assert last_token_mask(padding, 3, 3, torch.device("cpu")).tolist() == [
        [False, True, False],
        [True, False, False],
        [False, False, True],
    ]


def test_gradients_flow_to_views_and_real_actions() -> None:
    views = torch.randn(2, 3, 4, requires_grad=True)
    actions = torch.randn(2, 3, 2, requires_grad=True)
    ViewActionConcat(4, 2)(views, actions).sum().backward()
    assert (views.grad == 1).all()
    assert (actions.grad[:, :-1] == 1).all() and (actions.grad[:, -1] == 0).all()


def test_dtype_follows_views() -> None:
    tokens = ViewActionConcat(4, 2)(torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, 2))
    assert tokens.dtype == torch.float64


def test_errors() -> None:
    layer = ViewActionConcat(4, 2)
    with pytest.raises(ValueError, match=r"empty \(m = 0\)"):
        layer(torch.randn(2, 0, 4), torch.randn(2, 0, 2))
    # Under the type checker, disagreeing shapes fail on the annotations...
    with pytest.raises(TypeCheckError):
        layer(torch.randn(2, 3, 4), torch.randn(3, 3, 2))
    with pytest.raises(TypeCheckError):
        layer(torch.randn(2, 3, 4), torch.randn(2, 3, 3))
    # ...and without it on the block's own checks.
    raw_forward = inspect.unwrap(ViewActionConcat.forward)
    with pytest.raises(ValueError, match="must agree on batch and views"):
        raw_forward(layer, torch.randn(2, 3, 4), torch.randn(3, 3, 2))
    with pytest.raises(ValueError, match="must agree on batch and views"):
        raw_forward(layer, torch.randn(2, 3, 4), torch.randn(2, 4, 2))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \(2, 3\)"):
        raw_forward(layer, torch.randn(2, 3, 4), torch.randn(2, 3, 2), torch.zeros(2, 4).bool())
    with pytest.raises(ValueError, match="dim_view must be a positive int"):
        ViewActionConcat(0, 2)
    with pytest.raises(ValueError, match="dim_action must be a positive int"):
        ViewActionConcat(4, -1)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 4),
    m=st.integers(1, 6),
    dv=st.integers(1, 5),
    de=st.integers(1, 5),
    data=st.data(),
)
def test_padding_hypothesis(b: int, m: int, dv: int, de: int, data) -> None:
    lengths = data.draw(st.lists(st.integers(1, m), min_size=b, max_size=b))
    padding = torch.arange(m) >= torch.tensor(lengths)[:, None]
    views, actions = torch.randn(b, m, dv), torch.randn(b, m, de)
    layer = ViewActionConcat(dv, de)
    tokens = layer(views, actions, padding)
    assert tokens.shape == (b, m, dv + de)
    for i, length in enumerate(lengths):
        expected = layer(views[i : i + 1, :length], actions[i : i + 1, :length])
        torch.testing.assert_close(tokens[i : i + 1, :length], expected, atol=0, rtol=0)
        assert (tokens[i, length:, dv:] == 0).all()
