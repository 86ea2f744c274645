"""Faithfulness of the assembled seq-JEPA example (spec §1, §1.9) and its ablations."""

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from model import (  # noqa: E402
    VARIANTS,
    SeqJEPA,
    SeqJEPAConfig,
    build_model,
    build_target,
    compute_loss,
)

import jepa_blocks as jb  # noqa: E402

TINY = {"backbone": "test_resnet", "dim_action_embed": 32, "depth": 1, "pred_hidden": 64}


def _batch(b: int = 4, m: int = 3, da: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, m + 1, 3, 32, 32), torch.randn(b, m, da)


def test_paper_configuration_has_27_26_m_trainable_parameters() -> None:
    model = build_model(SeqJEPAConfig())  # 3DIEBench-rot: ResNet-18, da = 4, de = 128
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 11_176_512 + 512 + 14_772_480 + 1_313_280 == 27_262_784
    assert model.dim_view == 512 and model.dim_aggregate == 640


def test_ema_target_copies_only_the_encoder_and_is_frozen() -> None:
    model = build_model(SeqJEPAConfig(**TINY))
    target = build_target(model, jb.CosineMomentum(total_steps=10))
    assert set(dict(target.target.named_parameters())) == set(
        dict(model.encoder.named_parameters())
    )
    assert not any(p.requires_grad for p in target.parameters())


def _capture(model: SeqJEPA, views: torch.Tensor, actions: torch.Tensor) -> dict:
    seen: dict = {}
    model.aggregator.register_forward_pre_hook(lambda mod, args: seen.update(tokens=args[0]))
    model.predictor.register_forward_pre_hook(lambda mod, args: seen.update(cond=args[1]))
    seen["out"] = model(views, actions)
    return seen


def test_last_token_action_embedding_is_zero_and_predictor_gets_e_of_a_m() -> None:
    model = build_model(SeqJEPAConfig(**TINY)).eval()
    views, actions = _batch()
    seen = _capture(model, views, actions)
    dim_view = model.dim_view
    tokens = seen["tokens"]
    assert torch.equal(tokens[:, -1, dim_view:], torch.zeros_like(tokens[:, -1, dim_view:]))
    assert tokens[:, :-1, dim_view:].abs().sum() > 0
    expected = model.action_encoder(actions)[:, -1]  # e(a_M), a_M = the last action
    torch.testing.assert_close(seen["cond"], expected)


def test_inference_length_may_differ_from_training_length() -> None:
    model = build_model(SeqJEPAConfig(**TINY)).eval()
    for m_val in (1, 2, 5, 8):
        views, actions = _batch(m=m_val)
        z = model.encode(views[:, :m_val])
        assert model.aggregate(z, actions).shape == (4, model.dim_aggregate)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_with_a_loss_in_0_2(variant: str) -> None:
    model = build_model(SeqJEPAConfig(variant=variant, **TINY))
    target = build_target(model, 0.99)
    views, actions = _batch()
    loss, out = compute_loss(model, target, views, actions)
    upper = 4.0 if variant == "byol" else 2.0  # BYOL's symmetric loss sums two terms
    assert 0.0 <= loss.detach().item() <= upper
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, missing


def test_ablations_remove_exactly_the_conditioning_they_name() -> None:
    def build(variant: str) -> SeqJEPA:
        return build_model(SeqJEPAConfig(variant=variant, **TINY))

    full, none = build("seq-jepa"), build("no-action")
    tokens_only, predictor_only = build("tokens-only"), build("predictor-only")
    dv, de = full.dim_view, 32
    assert full.aggregator.dim == dv + de and full.predictor.dim_cond == de
    assert none.action_encoder is None and none.aggregator.dim == dv
    assert none.predictor.dim_cond == 0
    assert tokens_only.aggregator.dim == dv + de and tokens_only.predictor.dim_cond == 0
    assert predictor_only.aggregator.dim == dv and predictor_only.predictor.dim_cond == de


def test_action_width_mismatch_is_a_clear_error() -> None:
    model = build_model(SeqJEPAConfig(dim_action=6, **TINY))
    views, actions = _batch(da=4)
    with pytest.raises(ValueError, match="width 4 but the model expects dim_action=6"):
        model(views, actions)


def test_views_and_actions_must_agree() -> None:
    model = build_model(SeqJEPAConfig(**TINY))
    views, actions = _batch(m=3)
    with pytest.raises(ValueError, match="4 views but 2 actions"):
        model(views, actions[:, :2])


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        SeqJEPAConfig(variant="jepa")


def _sees_beyond_top_left_corner(encoder: torch.nn.Module) -> bool:
    """Whether the eval-mode encoder's 32-px output changes when every pixel outside the
    top-left 8x8 corner changes."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 32, 32, generator=generator)
    changed = images.clone()
    changed[:, :, 8:] = torch.randn(2, 3, 24, 32, generator=generator)
    changed[:, :, :8, 8:] = torch.randn(2, 3, 8, 24, generator=generator)
    encoder.eval()
    with torch.no_grad():
        return not torch.equal(encoder(images), encoder(changed))


def test_demo_encoder_sees_the_whole_32_px_view_from_the_first_step() -> None:
    # Why the demo preset turns zero_init_residual off: with the official init (each residual
    # block starts as the identity) and the ImageNet stem, a 32-px view reaches layer 4 through
    # strided 1x1 shortcuts only, which keep the top-left position: the encoder starts blind to
    # the object in the centre, and a CPU-length run never recovers (every probe at chance).
    import train  # the example's module; its directory is on sys.path above

    demo = train.resolve_config(train.parse_args([]))
    assert demo.preset == "demo" and demo.image_size == 32 and not demo.zero_init_residual
    data = SimpleNamespace(dim_action=4)
    official = replace(demo, zero_init_residual=True)
    assert not _sees_beyond_top_left_corner(build_model(train.model_config(official, data)).encoder)
    assert _sees_beyond_top_left_corner(build_model(train.model_config(demo, data)).encoder)
