"""The one Mlp: its arithmetic against the formula, its options, and the key remapping that
lets checkpoints written before it load."""

import pytest
import torch
from torch import nn

import jepa_blocks as jb
from jepa_blocks.layers import remap_state_dict_keys


def test_equals_the_formula_with_every_part() -> None:
    torch.manual_seed(0)
    mlp = jb.Mlp(6, 10, 4, act_layer=nn.GELU, norm_layer=nn.LayerNorm, hidden_bias=False).eval()
    x = torch.randn(3, 5, 6)
    h = nn.functional.layer_norm(x @ mlp.fc1.weight.T, (10,), mlp.norm.weight, mlp.norm.bias)
    expected = nn.functional.gelu(h) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), expected)
    assert mlp.fc1.bias is None and mlp.fc2.bias is not None
    assert jb.Mlp(6, 10).dim_out == 6  # dim_out defaults to dim_in


def test_dropout_acts_after_the_activation_in_training_only() -> None:
    mlp = jb.Mlp(4, 64, 4, dropout=0.5)
    assert isinstance(mlp.drop, nn.Dropout) and isinstance(jb.Mlp(4, 8).drop, nn.Identity)
    x = torch.randn(8, 4)
    hidden = mlp.act(mlp.fc1(x))
    torch.manual_seed(1)
    out = mlp(x)
    torch.manual_seed(1)
    torch.testing.assert_close(out, mlp.fc2(nn.functional.dropout(hidden, 0.5)))
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp.fc2(hidden))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim_in": 0, "hidden": 4}, "dim_in must be a positive int, got 0"),
        ({"dim_in": 4, "hidden": 4, "dim_out": -1}, "dim_out must be a positive int, got -1"),
        ({"dim_in": 4, "hidden": 4, "dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_configuration(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        jb.Mlp(**kwargs)


def test_remap_loads_old_keys_and_new_ones() -> None:
    model = nn.Module()
    model.head = jb.Mlp(3, 5, 2)
    remap_state_dict_keys(model, {"head.0.": "head.fc1.", "head.2.": "head.fc2."})
    new = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    old = {k.replace("fc1.", "0.").replace("fc2.", "2."): v for k, v in new.items()}
    model.load_state_dict(old)  # strict
    assert torch.equal(model.head.fc2.weight, old["head.2.weight"])
    model.load_state_dict(new)
    assert torch.equal(model.head.fc1.bias, new["head.fc1.bias"])
