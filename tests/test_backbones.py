"""Tests for jepa_blocks.backbones: the paper's ResNet-18 (sizes, stems, gradients), other timm
families at 32 px, custom modules, no downloads by default, and the errors."""

import inspect

import pytest
import timm
import torch
from _contract import assert_every_parameter_gets_a_gradient
from jaxtyping import TypeCheckError
from torch import nn

from jepa_blocks.backbones import Backbone, create_backbone


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("cifar_stem", "expected"), [(False, 11_176_512), (True, 11_168_832)])
def test_resnet18_size_and_output(cifar_stem: bool, expected: int) -> None:
    backbone = create_backbone("resnet18", cifar_stem=cifar_stem)
    assert _params(backbone) == expected
    assert backbone.dim == 512 and backbone.name == "resnet18"
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512)
    assert (out >= 0).all()  # pooled after a ReLU, as spec §1.1 notes


def test_cifar_stem_layout() -> None:
    model = create_backbone("resnet18", cifar_stem=True).model.eval()
    conv = model.conv1
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert conv.bias is None and (conv.in_channels, conv.out_channels) == (3, 64)
    assert isinstance(model.maxpool, nn.Identity)
    # The stem keeps 32 x 32 resolution into layer1 (the ImageNet stem reduces it to 8 x 8).
    features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert features.shape[-2:] == (4, 4)
    imagenet = create_backbone("resnet18").model.eval().forward_features(torch.randn(1, 3, 32, 32))
    assert imagenet.shape[-2:] == (1, 1)


def test_resnet18_every_parameter_gets_a_gradient() -> None:
    # The CIFAR stem: the library's own replacement conv1 must train too.
    backbone = create_backbone("resnet18", cifar_stem=True)
    # timm zero-initialises each residual branch's last BN scale (torchvision's
    # zero_init_residual=True, as the official code), which starves the branch of gradient at
    # initialisation; give those scales a value so that every parameter is reachable.
    last_bns = [m for name, m in backbone.named_modules() if name.endswith(".bn2")]
    assert len(last_bns) == 8 and all((bn.weight == 0).all() for bn in last_bns)
    with torch.no_grad():
        for bn in last_bns:
            bn.weight.fill_(1.0)
    out = backbone(torch.randn(2, 3, 32, 32))
    (out * torch.randn_like(out)).sum().backward()
    assert_every_parameter_gets_a_gradient(backbone)


@pytest.mark.parametrize(
    ("name", "kwargs", "width"),
    [
        ("vit_tiny_patch16_224", {"img_size": 32}, 192),
        ("convnext_atto", {}, 320),
        ("efficientnet_b0", {}, 1280),
        ("regnetx_002", {}, 368),
        # A head convolution after pooling: pre-logits (1024) are wider than num_features (288).
        ("mobilenetv3_small_050", {}, 1024),
    ],
)
def test_other_timm_families_at_32_px(name: str, kwargs: dict, width: int) -> None:
    backbone = create_backbone(name, **kwargs)
    assert backbone.dim == width
    backbone.eval()
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, width)


def test_timm_module_passed_in_uses_its_pre_logits_width() -> None:
    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=0)
    assert model.num_features != model.head_hidden_size
    backbone = create_backbone(model).eval()
    assert backbone.dim == model.head_hidden_size == 1024
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, 1024)


class _Pooled(nn.Module):
    def __init__(self, width: int, *, advertise: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        if advertise:
            self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(-2, -1))


def test_custom_module_with_num_features_or_dim() -> None:
    advertised = create_backbone(_Pooled(7, advertise=True))
    assert isinstance(advertised, Backbone) and advertised.dim == 7 and advertised.name is None
    explicit = create_backbone(_Pooled(5, advertise=False), dim=5)
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    out = explicit(x)
    assert out.shape == (3, 5)
    out.sum().backward()
    assert_every_parameter_gets_a_gradient(explicit)
    torch.testing.assert_close(out, explicit.model(x))  # the adapter adds nothing


def test_pretrained_defaults_to_false(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    real = timm.create_model

    def spy(name: str, **kwargs):
        calls.append(kwargs)
        return real(name, **{**kwargs, "pretrained": False})

    monkeypatch.setattr(timm, "create_model", spy)
    create_backbone("resnet18")
    create_backbone("resnet18", pretrained=True)
    assert calls[0]["pretrained"] is False and calls[0]["num_classes"] == 0
    assert calls[1]["pretrained"] is True
    assert inspect.signature(create_backbone).parameters["pretrained"].default is False


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match=r"unknown timm model 'resnet19'.*Did you mean.*resnet18"):
        create_backbone("resnet19")
    with pytest.raises(ValueError, match=r"unknown timm model 'qwertyuiop'\. See timm"):
        create_backbone("qwertyuiop")


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="cifar_stem=True needs a ResNet.*vit_tiny"):
        create_backbone("vit_tiny_patch16_224", img_size=32, cifar_stem=True)
    with pytest.raises(ValueError, match="dim is derived from the timm model"):
        create_backbone("resnet18", dim=512)
    with pytest.raises(ValueError, match="cannot tell the output width of _Pooled.*dim="):
        create_backbone(_Pooled(4, advertise=False))
    with pytest.raises(ValueError, match="apply to timm names only"):
        create_backbone(_Pooled(4, advertise=True), cifar_stem=True)
    with pytest.raises(ValueError, match="apply to timm names only"):
        create_backbone(_Pooled(4, advertise=True), pretrained=True)
    with pytest.raises(ValueError, match="expected a timm model name or nn.Module"):
        create_backbone(42)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        Backbone(nn.Identity(), 0)


def test_forward_errors() -> None:
    backbone = create_backbone(_Pooled(4, advertise=True))
    with pytest.raises(TypeCheckError):
        backbone(torch.randn(3, 8, 8))  # unbatched image
    raw_forward = inspect.unwrap(Backbone.forward)
    # (b, m, c, h, w) views are embedded (test_views_are_embedded_in_one_call); more is not.
    with pytest.raises(ValueError, match=r"images must be \(b, c, h, w\) or views \(b, m, c, h"):
        raw_forward(backbone, torch.randn(2, 2, 3, 3, 8, 8))
    unpooled = Backbone(nn.Conv2d(3, 4, 3), 4)
    with pytest.raises(ValueError, match=r"backbone returned shape \(2, 4, 6, 6\), expected"):
        unpooled(torch.randn(2, 3, 8, 8))
    wrong_width = create_backbone(_Pooled(4, advertise=False), dim=6)
    with pytest.raises(ValueError, match=r"returned shape \(2, 4\), expected \(b, 6\)"):
        wrong_width(torch.randn(2, 3, 8, 8))


def test_views_are_embedded_in_one_call() -> None:
    backbone = create_backbone("test_resnet").eval()
    calls = []
    backbone.model.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape))
    views = torch.randn(2, 3, 3, 32, 32)
    out = backbone(views)
    assert out.shape == (2, 3, backbone.dim) and calls == [(6, 3, 32, 32)]
    torch.testing.assert_close(out[1, 2], backbone(views[1, 2:3])[0])
    with pytest.raises(TypeCheckError):
        backbone(torch.randn(3, 32, 32))


def test_image_size_reaches_patch_embedding_models_only() -> None:
    vit = create_backbone("test_vit", image_size=32)
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, vit.dim)
    cnn = create_backbone("test_resnet", image_size=32)  # any size: nothing to pass
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, cnn.dim)
    with pytest.raises(ValueError, match="image_size and timm kwargs apply to timm names only"):
        create_backbone(nn.Linear(4, 4), image_size=32)


def test_a_keyword_the_model_does_not_take_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(
        ValueError, match=r"timm model 'test_resnet' \(ResNet\) does not take 'zero_init'; "
        r"it takes: .*zero_init_last"
    ):
        create_backbone("test_resnet", zero_init="yes")
