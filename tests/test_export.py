"""Tests for jepa_blocks.training.export: timm-compatible safetensors round trips and refused
stems."""

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from jepa_blocks.backbones import Backbone, create_backbone
from jepa_blocks.training.export import (
    export_timm_encoder,
    load_timm_encoder,
    timm_encoder_state_dict,
)


def _perturb(model: nn.Module, size: int) -> nn.Module:
    # Non-default weights and BN running statistics: a dropped buffer or a mis-mapped key
    # then changes the features.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, size, size))
    return model


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def vit() -> Backbone:
    torch.manual_seed(1)
    return _perturb(create_backbone("vit_tiny_patch16_224", img_size=32), 32)


def test_resnet18_adapter_with_classifier_round_trips(tmp_path):
    torch.manual_seed(2)
    model = _perturb(timm.create_model("resnet18", pretrained=False, num_classes=10), 32)
    backbone = Backbone(model, model.num_features, name="resnet18")  # fc present: stripped
    backbone.train()
    model.bn1.eval()  # a frozen BN must stay frozen after export
    path = export_timm_encoder(backbone, tmp_path / "enc.safetensors", input_size=(3, 32, 32))
    assert backbone.training and model.layer1.training and not model.bn1.training

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval().forward_head(model.forward_features(x), pre_logits=True)
    state = load_file(path)
    assert not any(key.startswith("fc.") for key in state)
    assert set(state) == set(timm_encoder_state_dict(model))
    stock = timm.create_model("resnet18", pretrained=False, num_classes=0)
    stock.load_state_dict(state)  # strict: the documented recipe works as is
    torch.testing.assert_close(_features(stock, x), expected, rtol=1e-5, atol=1e-6)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["model_name"] == "resnet18"  # taken from the adapter's .name


def test_vit_round_trips_with_recorded_kwargs(tmp_path, vit):
    path = export_timm_encoder(
        vit, tmp_path / "vit.safetensors", model_name="vit_tiny_patch16_224", img_size=32
    )
    x = torch.randn(2, 3, 32, 32)
    loaded = load_timm_encoder(path)  # name and img_size=32 come from the file's metadata
    assert isinstance(loaded, timm.models.VisionTransformer) and not loaded.training
    assert loaded.num_classes == 0
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded(x), _features(vit, x), rtol=1e-5, atol=1e-6)


def test_model_with_non_persistent_buffers_round_trips(tmp_path):
    # Relative-position indices are not in the state dict: the fast meta-device build cannot
    # fill them, so the model is rebuilt on CPU.
    torch.manual_seed(3)
    model = timm.create_model("test_vit_relpos", pretrained=False, num_classes=0, img_size=64)
    _perturb(model, 64)
    path = export_timm_encoder(model, tmp_path / "relpos.safetensors", img_size=64)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(
        load_timm_encoder(path)(x), _features(model, x), rtol=1e-5, atol=1e-6
    )


def test_wrong_timm_kwargs_name_the_mismatch(tmp_path, vit):
    with pytest.raises(
        ValueError,
        match=r"shape mismatches \[pos_embed: exported \(1, 5, 192\) "
        r"vs timm \(1, 197, 192\)\].*img_size=32",
    ):
        export_timm_encoder(vit, tmp_path / "v.safetensors", verify=False)
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=0)
    with pytest.raises(ValueError, match=r"missing keys \[layer1.2.bn1.bias; .*\] and 90 more"):
        export_timm_encoder(resnet, tmp_path / "r.safetensors", model_name="resnet34", verify=False)
    assert list(tmp_path.iterdir()) == []


def test_cifar_stem_is_refused_naming_the_key(tmp_path):
    backbone = create_backbone("resnet18", cifar_stem=True)
    target = tmp_path / "enc.safetensors"
    with pytest.raises(
        ValueError,
        match=r"shape mismatches \[conv1.weight: exported "
        r"\(64, 3, 3, 3\) vs timm \(64, 3, 7, 7\)\].*CIFAR stem",
    ):
        export_timm_encoder(backbone, target, model_name="resnet18", verify=False)
    assert not target.exists()


def test_removed_maxpool_is_caught_by_feature_check(tmp_path):
    backbone = create_backbone("resnet18")
    backbone.model.maxpool = nn.Identity()  # same keys and shapes, different function
    with pytest.raises(
        ValueError, match="load into timm 'resnet18' but give different features.*max-pool removed"
    ):
        export_timm_encoder(backbone, tmp_path / "enc.safetensors", input_size=(3, 32, 32))
    assert list(tmp_path.iterdir()) == []


def test_meta_check_export_and_bad_inputs(tmp_path):
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = export_timm_encoder(model, tmp_path / "a.safetensors", verify=False)  # meta only
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(
        _features(load_timm_encoder(path, "resnet18"), x), _features(model, x), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="call model.reset_classifier"):
        load_timm_encoder(path, num_classes=10)
    with pytest.raises(ValueError, match="expected a timm model or a backbone adapter"):
        export_timm_encoder(nn.Linear(2, 2), tmp_path / "b.safetensors", model_name="resnet18")
    with pytest.raises(ValueError, match="num_classes and pretrained are fixed"):
        export_timm_encoder(model, tmp_path / "b.safetensors", num_classes=0)
    with pytest.raises(ValueError, match="does not exist; create it"):
        export_timm_encoder(model, tmp_path / "no" / "b.safetensors")
    with pytest.raises(ValueError, match=r"timm.create_model\('not_a_model'.*pass a timm"):
        export_timm_encoder(model, tmp_path / "b.safetensors", model_name="not_a_model")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]
