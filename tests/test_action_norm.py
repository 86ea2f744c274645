"""``SeqJEPAConfig.action_norm_calls``: one BatchNorm call for all actions (ours) or the
official code's two (spec §1.4), checked in train mode against a reference written by hand
from the spec with plain torch ops, and in eval mode, where the modes agree.

Spec §1.4: ``action_proj = Sequential(Linear(A, 128, bias=False), BatchNorm1d(128,
affine=False))`` is called twice per forward, "once on the B·M token-slot actions; once on the
B predictor actions a_M", so "the BN running statistics are updated twice per step"; slot M
holds a_M on the 3DIEBench path and a zero vector on the augmentation and saccade paths, and
its embedding is zeroed after projection in both cases.
"""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _contract import assert_every_parameter_gets_a_gradient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from model import ACTION_NORM_CALLS, SeqJEPA, SeqJEPAConfig, build_model  # noqa: E402

# dropout off so that the model and the reference see the same aggregator
TINY = {
    "backbone": "test_resnet",
    "dim_action_embed": 8,
    "depth": 1,
    "pred_hidden": 32,
    "dropout": 0.0,
}
EPS, MOMENTUM = 1e-5, 0.1  # BatchNorm1d's defaults, as the official code's


def _model(mode: str, variant: str = "seq-jepa") -> SeqJEPA:
    torch.manual_seed(0)  # the same weights for every mode
    model = build_model(SeqJEPAConfig(variant=variant, action_norm_calls=mode, **TINY))
    assert isinstance(model, SeqJEPA)
    return model


def _batch(b: int = 4, m: int = 3, da: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    views = torch.randn(b, m + 1, 3, 32, 32, generator=generator)
    # An offset on a_M, so that a batch of a_M alone has other statistics than all actions.
    actions = torch.randn(b, m, da, generator=generator)
    actions[:, -1] += 2.0
    return views, actions


def _batch_norm_train(
    rows: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BatchNorm1d(affine=False) in train mode on ``rows (n, de)``: normalised with the batch
    mean and the biased variance; the running variance is updated with the unbiased one."""
    n = rows.shape[0]
    mean = rows.mean(dim=0)
    biased_var = ((rows - mean) ** 2).mean(dim=0)
    out = (rows - mean) / torch.sqrt(biased_var + EPS)
    running_mean = (1 - MOMENTUM) * running_mean + MOMENTUM * mean
    running_var = (1 - MOMENTUM) * running_var + MOMENTUM * biased_var * n / (n - 1)
    return out, running_mean, running_var


def _reference(
    model: SeqJEPA, views: torch.Tensor, actions: torch.Tensor, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Spec §1.4 by hand: ``z_hat``, the action BN's running mean and variance, and how many
    times they were updated. ``model`` is a fresh copy: only its encoder, aggregator and
    predictor (checked elsewhere against the official code) and its projection weight are
    used."""
    b, m, da = actions.shape
    weight = model.action_encoder.proj.weight  # Linear(da, de, bias=False)
    de = weight.shape[0]
    running_mean, running_var = torch.zeros(de), torch.ones(de)  # a fresh BatchNorm1d
    if mode == "single":
        rows, running_mean, running_var = _batch_norm_train(
            F.linear(actions.reshape(b * m, da), weight), running_mean, running_var
        )
        e_tokens = rows.reshape(b, m, de)
        e_last = e_tokens[:, m - 1]
        updates = 1
    else:
        slots = actions.clone()
        if mode == "separate-zero-slot":
            slots[:, m - 1] = 0.0  # the augmentation / saccade layout
        rows, running_mean, running_var = _batch_norm_train(  # call 1: b * m rows
            F.linear(slots.reshape(b * m, da), weight), running_mean, running_var
        )
        e_tokens = rows.reshape(b, m, de)
        e_last, running_mean, running_var = _batch_norm_train(  # call 2: b rows of a_M
            F.linear(actions[:, m - 1], weight), running_mean, running_var
        )
        updates = 2
    e_tokens = e_tokens.clone()
    e_tokens[:, m - 1] = 0.0  # the last token carries no action (spec §1.5)
    z = model.encode(views[:, :m])
    z_agg = model.aggregator(torch.cat((z, e_tokens), dim=-1))
    z_hat = model.predictor(z_agg, e_last)
    return z_hat, running_mean, running_var, updates


@pytest.mark.parametrize("mode", ACTION_NORM_CALLS)
def test_train_mode_matches_the_spec_reference(mode: str) -> None:
    model = _model(mode).train()
    reference = copy.deepcopy(model)
    views, actions = _batch()
    z_hat = model(views, actions)["z_hat"]
    z_hat_ref, running_mean, running_var, updates = _reference(reference, views, actions, mode)
    torch.testing.assert_close(z_hat, z_hat_ref)
    norm = model.action_encoder.norm
    assert int(norm.num_batches_tracked) == updates
    torch.testing.assert_close(norm.running_mean, running_mean)
    torch.testing.assert_close(norm.running_var, running_var)


def test_the_modes_differ_in_train_mode() -> None:
    views, actions = _batch()
    outputs = {mode: _model(mode).train()(views, actions)["z_hat"] for mode in ACTION_NORM_CALLS}
    for i, first in enumerate(ACTION_NORM_CALLS):
        for second in ACTION_NORM_CALLS[i + 1 :]:
            gap = (outputs[first] - outputs[second]).abs().max()
            assert gap > 1e-3, (first, second, gap)


def test_eval_mode_uses_the_running_statistics_in_every_mode() -> None:
    views, actions = _batch()
    trained = _model("separate").train()
    trained(views, actions)  # running statistics away from their (0, 1) start
    state = trained.state_dict()
    norm = trained.action_encoder.norm
    b, m, da = actions.shape
    embedded = (F.linear(actions, trained.action_encoder.proj.weight) - norm.running_mean) / (
        torch.sqrt(norm.running_var + EPS)
    )
    outputs = []
    for mode in ACTION_NORM_CALLS:
        model = _model(mode)
        model.load_state_dict(state)
        model.eval()
        seen: dict[str, torch.Tensor] = {}
        model.predictor.register_forward_pre_hook(
            lambda mod, args, seen=seen: seen.update(cond=args[1])
        )
        with torch.no_grad():
            outputs.append(model(views, actions)["z_hat"])
            z_agg = model.aggregate(model.encode(views[:, :m]), actions)
        torch.testing.assert_close(seen["cond"], embedded[:, -1])
        # Eval mode changes no statistics, whatever the number of calls.
        torch.testing.assert_close(model.action_encoder.norm.running_mean, norm.running_mean)
        assert z_agg.shape == (b, model.dim_aggregate)
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0])


@pytest.mark.parametrize("variant", ["seq-jepa", "tokens-only", "predictor-only"])
@pytest.mark.parametrize("mode", ACTION_NORM_CALLS)
def test_every_parameter_gets_a_gradient(mode: str, variant: str) -> None:
    model = _model(mode, variant).train()
    views, actions = _batch()
    model(views, actions)["z_hat"].square().sum().backward()
    # Reached, not non-zero: timm zero-initialises each residual branch's last BN scale,
    # so the branch below it gets an all-zero gradient at initialisation.
    assert_every_parameter_gets_a_gradient(model, nonzero=False)
    # In the separate modes each consumer makes its own call; "single" always makes one.
    calls = 2 if mode != "single" and variant == "seq-jepa" else 1
    assert int(model.action_encoder.norm.num_batches_tracked) == calls


def test_unknown_mode_is_rejected_naming_the_choices() -> None:
    with pytest.raises(
        ValueError,
        match=r"action_norm_calls must be one of \('single', 'separate', 'separate-zero-slot'\)"
        r", got 'double'",
    ):
        SeqJEPAConfig(action_norm_calls="double")


# ----------------------------------------------------------------------------- train.py


def test_train_flag_reaches_the_model_and_is_listed_in_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import config as config_module
    import train

    with pytest.raises(SystemExit) as info:
        train.parse_args(["--help"])
    assert info.value.code == 0
    assert "--action-norm-calls" in capsys.readouterr().out
    config = train.resolve_config(train.parse_args(["--action-norm-calls", "separate"]))
    assert config_module.model_config(config, 4).action_norm_calls == (
        "separate"
    )
    default = train.resolve_config(train.parse_args([]))
    assert config_module.model_config(default, 4).action_norm_calls == (
        "single"
    )


def test_checkpoints_written_before_the_option_still_resume(tmp_path: Path) -> None:
    """A run saved before ``action_norm_calls`` existed recorded no such field; it ran with
    one call, so it resumes under the default and is refused under a separate mode."""
    import config as config_module
    import train

    from jepa_blocks.training import CheckpointManager, ConfigMismatchError

    def checked(argv: list[str]) -> dict:
        config = train.resolve_config(train.parse_args(argv))
        return config_module.checked_config(config, config_module.model_config(config, 4))

    old = copy.deepcopy(checked([]))
    for section in old.values():
        section.pop("action_norm_calls", None)  # what a checkpoint from before the option holds
    CheckpointManager(tmp_path, config=old).save({"x": 1}, step=1, epoch=0)
    assert CheckpointManager(tmp_path, config=checked([])).load_latest()["state"] == {"x": 1}
    with pytest.raises(ConfigMismatchError) as info:
        CheckpointManager(
            tmp_path, config=checked(["--action-norm-calls", "separate"])
        ).load_latest()
    message = str(info.value)
    assert "model.action_norm_calls: checkpoint '<missing>', now 'separate'" in message
    # The field lives in the model config only since TrainConfig nests it (no train.* copy).
    assert "train.action_norm_calls" not in message
