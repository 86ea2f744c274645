"""Faithfulness of the assembled seq-JEPA example (spec §1, §1.9) and its ablations."""

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _contract import assert_every_parameter_gets_a_gradient

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
    # Reached, not non-zero: timm zero-initialises each residual branch's last BN scale,
    # so the branch below it gets an all-zero gradient at initialisation.
    assert_every_parameter_gets_a_gradient(model, nonzero=False)


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
    from config import model_config

    demo = train.resolve_config(train.parse_args([]))
    assert demo.preset == "demo" and demo.image_size == 32 and not demo.zero_init_residual
    official = replace(demo, zero_init_residual=True)
    assert not _sees_beyond_top_left_corner(build_model(model_config(official, 4)).encoder)
    assert _sees_beyond_top_left_corner(build_model(model_config(demo, 4)).encoder)


# ----------------------------------------------------------------------------- floors


@pytest.fixture()
def smoke_trainer(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch):
    """A smoke-preset Trainer, built in-process, before any step."""
    import train
    from _train_helpers import render_cache

    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(render_cache(tmp_path_factory)))
    config = train.resolve_config(train.parse_args(["--preset", "smoke", "--no-progress"]))
    return train.Trainer(config, tmp_path / "run", resume=False)


def test_floor_model_is_the_runs_initialisation_untrained(smoke_trainer) -> None:
    trainer = smoke_trainer
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():  # stands in for training
        for param in trainer.model.parameters():
            param.add_(0.5)
    rng = torch.get_rng_state()
    floor = trainer.untrained_model()
    assert torch.equal(torch.get_rng_state(), rng)  # the run's RNG stream is untouched
    torch.manual_seed(trainer.config.seed)
    fresh = build_model(trainer.model_cfg)
    for name, value in floor.state_dict().items():
        assert torch.equal(value, initial[name]), name
        assert torch.equal(value, fresh.state_dict()[name]), name
    assert all(
        not torch.equal(a, b)
        for a, b in zip(floor.parameters(), trainer.model.parameters(), strict=True)
    )


def test_evaluate_hands_the_floor_model_and_every_view_to_the_protocol(
    smoke_trainer, monkeypatch
) -> None:
    import trainer as trainer_module

    trainer = smoke_trainer
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():
        for param in trainer.model.parameters():
            param.mul_(-1.0)
    seen: dict = {}

    def spy(model, train_loader, test_loader, **kwargs):
        seen.update(kwargs, model=model)
        return {"r2_rel_rotation": 0.5}

    monkeypatch.setattr(trainer_module, "evaluate_sequence_model", spy)
    metrics = trainer.evaluate()
    assert seen["model"] is trainer.model
    floor = seen["floor_model"]
    assert floor is not trainer.model
    for name, value in floor.state_dict().items():
        assert torch.equal(value, initial[name]), name
    train_views, test_views = seen["view_data"]
    assert train_views.split == "train" and test_views.split == "val"
    assert len(train_views) == train_views.num_objects * train_views.views_per_object
    # One schema: every rotation key is there, None where the protocol gave nothing.
    assert set(trainer_module.ROTATION_KEYS) <= set(metrics)
    assert metrics["r2_rel_rotation"] == 0.5 and metrics["ridge_r2_rel_rotation"] is None


def test_results_table_puts_each_r2_beside_its_floors() -> None:
    from report import format_results_table

    metrics = {
        "r2_rel_rotation": 0.42, "r2_rel_rotation_floor": 0.05,
        "r2_indiv_rotation": 0.3, "r2_indiv_rotation_floor": None,
        "ridge_r2_rel_rotation": 0.61, "ridge_r2_rel_rotation_floor": 0.2,
        "ridge_r2_rel_rotation_pixels": 0.1,
        "ridge_r2_indiv_rotation": 0.7, "ridge_r2_indiv_rotation_floor": 0.25,
        "ridge_r2_indiv_rotation_pixels": 0.15,
        "path_integration_r2": {1: 0.9, 2: 0.5}, "path_integration_r2_floor": {1: 0.8, 2: 0.1},
        "train_seconds": 3.0, "steps": 5,
    }
    config = SimpleNamespace(dataset="objects", image_size=32, seq_len=3)
    table = format_results_table(metrics, config, SimpleNamespace(variant="seq-jepa",
                                 backbone="resnet18"), torch.device("cpu"))
    lines = [" ".join(line.split()) for line in table.splitlines()]
    assert "R^2 (test) trained random init pixels" in lines
    assert "relative rotation, paper head 0.420 0.050" in lines
    assert "individual rotation, paper head 0.300 n/a" in lines
    assert "relative rotation, ridge 0.610 0.200 0.100" in lines
    assert "individual rotation, ridge 0.700 0.250 0.150" in lines
    assert "path R^2 0.900 0.500" in lines and "random init 0.800 0.100" in lines


def test_sigreg_variant_loss_is_the_weighted_sum_without_stop_gradient() -> None:
    """seq-jepa-sigreg: (1 - lam) (1 - cos(z_hat, f(x_{M+1}))) + lam SIGReg(every view), the
    target view encoded by the online encoder with its gradient, no EMA copy."""
    torch.manual_seed(0)
    config = SeqJEPAConfig(**TINY, variant="seq-jepa-sigreg", sigreg_lambda=0.3)
    model = build_model(config)
    assert build_target(model, jb.CosineMomentum(total_steps=10)) is None
    views, actions = _batch()
    views.requires_grad_(True)
    loss, out = compute_loss(model, None, views, actions)
    z_all = torch.cat((out["z"], out["z_target"][:, None]), dim=1)  # (b, m + 1, dv)
    # The target is the online encoder's embedding of the last view (same BN call).
    assert out["z_target"].shape == out["z"][:, 0].shape
    prediction = jb.seq_jepa_loss(out["z_hat"], out["z_target"])
    regulariser = jb.SIGReg(1024, seed=0)(z_all.transpose(0, 1))
    torch.testing.assert_close(loss, 0.7 * prediction + 0.3 * regulariser)
    loss.backward()
    assert views.grad[:, -1].abs().sum() > 0  # no stop-gradient on the target view


def test_sigreg_lambda_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sigreg_lambda must be in \[0, 1\].*got 1.5"):
        SeqJEPAConfig(variant="seq-jepa-sigreg", sigreg_lambda=1.5)


def test_the_trained_encoder_is_exported_for_stock_timm(tmp_path: Path, tmp_path_factory,
                                                         monkeypatch) -> None:
    import safetensors.torch
    import timm
    import train
    from _train_helpers import render_cache

    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(render_cache(tmp_path_factory)))
    config = train.resolve_config(train.parse_args(["--preset", "smoke", "--no-progress"]))
    for name in ("run", "cifar"):
        (tmp_path / name).mkdir()  # as train.py's main does before building the Trainer
    trainer = train.Trainer(config, tmp_path / "run", resume=False)
    loader = trainer.export_encoder()
    assert loader == (
        "timm.create_model('test_resnet', num_classes=0).load_state_dict("
        f"safetensors.torch.load_file({str(tmp_path / 'run' / 'encoder.safetensors')!r}))"
    )
    stock = timm.create_model("test_resnet", num_classes=0).eval()
    stock.load_state_dict(safetensors.torch.load_file(tmp_path / "run" / "encoder.safetensors"))
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(stock(images), trainer.model.encoder.eval()(images))
    # The paper's CIFAR stem is not a timm model: skipped, with the reason logged.
    cifar = train.resolve_config(
        train.parse_args(
            ["--preset", "smoke", "--no-progress", "--backbone", "resnet18", "--cifar-stem"]
        )
    )
    assert train.Trainer(cifar, tmp_path / "cifar", resume=False).export_encoder() is None
    assert not (tmp_path / "cifar" / "encoder.safetensors").exists()
