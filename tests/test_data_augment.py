"""Tests for jepa_blocks.data.{functional,transforms,augmented}: parameters, replay, sequences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode

from jepa_blocks.data.augmented import (
    CIFAR100_MEAN,
    CIFAR100_STD,
    AugmentationRecipe,
    AugmentedSequences,
    observation_recipe,
    target_recipe,
)
from jepa_blocks.data.functional import (
    adjust_hue,
    blur_kernel_size,
    sample_crop_box,
    sample_jitter,
)
from jepa_blocks.data.sequences import item_generator
from jepa_blocks.data.transforms import (
    ACTION_PARAM_NAMES,
    ColorJitter,
    GaussianBlur,
    ParamCompose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarize,
)

BICUBIC = InterpolationMode.BICUBIC


def _image(seed: int, height: int = 40, width: int = 48) -> torch.Tensor:
    """A smooth-ish random RGB image in [0, 1] (so colour ops have something to act on)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 4, width // 4, generator=g)
    return F.interpolate(coarse, size=(height, width), mode="bilinear")[0].clamp(0, 1)


class Images(torch.utils.data.Dataset):
    """A tiny deterministic (image, label) dataset."""

    def __init__(self, n: int = 6, size: int = 32) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return _image(100 + i, self.size, self.size), i % 3


# ----------------------------------------------------------------------------- sampling parity


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(32, 32, (0.2, 1.0)), (40, 50, (0.2, 1.0)), (64, 20, (0.08, 1.0)), (100, 10, (0.9, 1.0))],
)
def test_crop_box_matches_torchvision_get_params(height, width, scale):
    ratio = (3 / 4, 4 / 3)
    for seed in range(25):
        torch.manual_seed(seed)
        expected = T.RandomResizedCrop.get_params(torch.empty(3, height, width), scale, ratio)
        got = sample_crop_box(
            height, width, scale=scale, ratio=ratio, generator=torch.Generator().manual_seed(seed)
        )
        assert got == tuple(expected)
        i, j, h, w = got
        assert 0 <= i and i + h <= height and 0 <= j and j + w <= width


def test_crop_box_fallback_is_central():
    # 100 x 10 with area >= 0.9 cannot satisfy the aspect ratio: torchvision's central fallback.
    box = sample_crop_box(100, 10, scale=(0.9, 1.0), generator=torch.Generator().manual_seed(0))
    assert box == ((100 - 13) // 2, 0, 13, 10)


def test_jitter_sampling_matches_torchvision_get_params():
    ranges = ([0.6, 1.4], [0.6, 1.4], [0.8, 1.2], [-0.1, 0.1])
    for seed in range(25):
        torch.manual_seed(seed)
        order, *factors = T.ColorJitter.get_params(*ranges)
        got_order, *got = sample_jitter(*ranges, generator=torch.Generator().manual_seed(seed))
        assert got_order == tuple(order.tolist())
        assert got == pytest.approx(factors, abs=0)


# ----------------------------------------------------------------------------- parameter semantics


def _replay_with_torchvision(image, named, size, kernel, threshold=128 / 255):
    """Rebuild a view from its recorded parameters with torchvision's own kernels."""
    i, j, h, w = (int(named[k]) for k in ("crop_i", "crop_j", "crop_h", "crop_w"))
    out = TF.resized_crop(image, i, j, h, w, [size, size], BICUBIC, antialias=True).clamp(0, 1)
    if named["flip"]:
        out = TF.horizontal_flip(out)
    import itertools

    order = list(itertools.permutations(range(4)))[int(named["jitter_order"])]
    ops = {
        0: (TF.adjust_brightness, named["brightness"], 1.0),
        1: (TF.adjust_contrast, named["contrast"], 1.0),
        2: (TF.adjust_saturation, named["saturation"], 1.0),
        3: (TF.adjust_hue, named["hue"], 0.0),
    }
    for op in order:
        fn, factor, identity = ops[op]
        if factor != identity:
            out = fn(out, factor)
    if named["grayscale"]:
        out = TF.rgb_to_grayscale(out, num_output_channels=3)
    if named.get("sigma", 0.0) > 0:
        out = TF.gaussian_blur(out, [kernel, kernel], [named["sigma"], named["sigma"]])
    if named["solarize"]:
        out = TF.solarize(out, threshold)
    return out


@pytest.mark.parametrize("recipe_fn", [observation_recipe, target_recipe])
@pytest.mark.parametrize("size", [32, 64])
def test_views_replay_from_parameters_with_torchvision(recipe_fn, size):
    recipe = recipe_fn(size)
    image = _image(1, 72, 80)
    for seed in range(8):
        view, full = recipe.full(image, generator=torch.Generator().manual_seed(seed))
        named = recipe.named(full)
        expected = _replay_with_torchvision(image, named, size, blur_kernel_size(size))
        torch.testing.assert_close(view, expected, atol=2e-5, rtol=0)
        # The library's own replay is exact.
        assert torch.equal(recipe.apply(image, full), view)


def test_crop_params_reproduce_the_view_before_jitter():
    recipe = AugmentationRecipe(32, blur_p=0.0, solarize_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    image = _image(2, 50, 40)
    for seed in range(10):
        view, params = recipe(image, generator=torch.Generator().manual_seed(seed))
        _, full = recipe.full(image, generator=torch.Generator().manual_seed(seed))
        i, j, h, w = (int(v) for v in params[:4])
        expected = TF.resized_crop(image, i, j, h, w, [32, 32], BICUBIC, antialias=True).clamp(0, 1)
        if recipe.named(full)["flip"]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(view, expected)
        assert params[4:8].tolist() == [1.0, 1.0, 1.0, 0.0]
        assert params[8] == 0.0


def test_action_vector_layout():
    assert observation_recipe(32).action_names == ACTION_PARAM_NAMES
    assert observation_recipe(32, blur=False).action_names == ACTION_PARAM_NAMES[:8]
    assert observation_recipe(32).num_params == 9
    assert "flip" in observation_recipe(32).param_names  # recorded, not an action


def test_sampled_parameter_distributions():
    observe, target = observation_recipe(32), target_recipe(32)
    g = torch.Generator().manual_seed(0)
    obs = torch.stack([observe.sample((32, 32), g) for _ in range(1000)])
    tgt = torch.stack([target.sample((32, 32), g) for _ in range(1000)])
    col = {name: k for k, name in enumerate(observe.param_names)}
    jitter = obs[:, [col[n] for n in ("brightness", "contrast", "saturation", "hue")]]
    skipped = (jitter == torch.tensor([1.0, 1.0, 1.0, 0.0])).all(dim=1)
    assert abs(skipped.float().mean().item() - 0.2) < 0.04  # jitter p = 0.8
    applied = jitter[~skipped]
    assert applied[:, 0].min() >= 0.6 and applied[:, 0].max() <= 1.4
    assert applied[:, 1].min() >= 0.6 and applied[:, 1].max() <= 1.4
    assert applied[:, 2].min() >= 0.8 and applied[:, 2].max() <= 1.2
    assert applied[:, 3].abs().max() <= 0.1
    assert bool((obs[skipped][:, col["jitter_order"]] == 0).all())
    # Observation: blur always (sigma in [0.1, 2]), never solarised; target: blur p=0.1.
    assert obs[:, col["sigma"]].min() >= 0.1 and obs[:, col["sigma"]].max() <= 2.0
    assert obs[:, col["solarize"]].sum() == 0
    assert abs((tgt[:, col["sigma"]] == 0).float().mean().item() - 0.9) < 0.03
    assert abs(tgt[:, col["solarize"]].mean().item() - 0.2) < 0.04
    assert abs(obs[:, col["flip"]].mean().item() - 0.5) < 0.05
    assert abs(obs[:, col["grayscale"]].mean().item() - 0.2) < 0.04
    # Crop area fraction within the scale range (up to pixel rounding).
    area = obs[:, col["crop_h"]] * obs[:, col["crop_w"]] / (32 * 32)
    assert area.min() >= 0.15 and area.max() <= 1.0


def test_blur_kernel_sizes_and_skipped_blur_is_identity():
    assert blur_kernel_size(32) == 3
    assert blur_kernel_size(64) == 7
    assert blur_kernel_size(96) == 9
    assert blur_kernel_size(5) == 1
    recipe = observation_recipe(64)
    blur = next(t for t in recipe.transforms if isinstance(t, GaussianBlur))
    assert blur.kernel_size == 7
    image = _image(3)
    assert torch.equal(blur.apply(image, torch.zeros(1)), image)
    blurred = blur.apply(image, torch.tensor([1.5]))
    assert not torch.equal(blurred, image)


@settings(max_examples=20, deadline=None)
@given(factor=st.floats(-0.5, 0.5), seed=st.integers(0, 10_000))
def test_adjust_hue_matches_torchvision(factor, seed):
    image = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(seed))
    image[0, :, 0, :] = image[0, :1, 0, :]  # gray pixels (undefined hue)
    image[1, :, 1, :] = torch.tensor([1.0, 0.0, 0.5]).view(3, 1)  # saturated, ties
    torch.testing.assert_close(
        adjust_hue(image, factor), TF.adjust_hue(image, factor), atol=1e-5, rtol=0
    )


def test_transform_call_returns_params_and_replays():
    image = _image(4)
    for transform in (
        RandomResizedCrop(16),
        RandomHorizontalFlip(1.0),
        ColorJitter(p=1.0),
        RandomSolarize(p=1.0),
    ):
        view, params = transform(image, generator=torch.Generator().manual_seed(0))
        assert params.shape == (len(transform.param_names),)
        assert torch.equal(transform.apply(image, params), view)
    flipped, flag = RandomHorizontalFlip(1.0)(image)
    assert flag.item() == 1.0 and torch.equal(flipped, image.flip(-1))
    solarised, _ = RandomSolarize(p=1.0)(image)
    expected = torch.where(image >= 128 / 255, 1 - image, image)
    assert torch.equal(solarised, expected)


def test_apply_accepts_batched_images():
    recipe = observation_recipe(16)
    images = torch.stack([_image(5), _image(6)])
    full = recipe.sample((40, 48), torch.Generator().manual_seed(0))
    batched = recipe.apply(images, full)
    assert batched.shape == (2, 3, 16, 16)
    torch.testing.assert_close(batched[1], recipe.apply(images[1], full), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- sequence dataset


def _normalise(x, mean, std):
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_sequence_item_is_the_recipes_replayed_from_its_generator():
    data = Images()
    ds = AugmentedSequences(data, num_views=4, mean=CIFAR100_MEAN, std=CIFAR100_STD, seed=7)
    ds.set_epoch(2)
    item = ds[3]
    image, label = data[3]
    g = item_generator(7, 2, 3)
    observe, target = observation_recipe(32), target_recipe(32)
    views, params = [], []
    for k in range(4):
        view, p = (target if k == 3 else observe)(image, generator=g)
        views.append(_normalise(view, CIFAR100_MEAN, CIFAR100_STD))
        params.append(p)
    assert torch.equal(item["views"], torch.stack(views))
    assert torch.equal(item["params"], torch.stack(params))
    assert item["label"].dtype == torch.long and item["label"].item() == label
    torch.testing.assert_close(item["plain"], _normalise(image, CIFAR100_MEAN, CIFAR100_STD))


@pytest.mark.parametrize(("action", "cols"), [("all", 9), ("crop", 4), ("jitter", 4), ("blur", 1)])
def test_actions_are_parameter_deltas(action, cols):
    ds = AugmentedSequences(Images(), num_views=5, action=action)
    item = ds[1]
    start = {"all": 0, "crop": 0, "jitter": 4, "blur": 8}[action]
    params = item["params"][:, start : start + cols]
    assert item["views"].shape == (5, 3, 32, 32)
    assert item["params"].shape == (5, 9)
    assert item["actions"].shape == (4, cols) and ds.dim_action == cols
    assert torch.equal(item["actions"], params[1:] - params[:-1])


def test_normalize_over_views_matches_the_official_formula():
    ds = AugmentedSequences(Images(), num_views=4, normalize_over_views=True)
    item = ds[2]
    normalised = F.normalize(item["params"][None], p=2, dim=1)[0]  # official: dim=1 of (b,m+1,p)
    expected = normalised[1:] - normalised[:-1]
    torch.testing.assert_close(item["actions"], expected, atol=1e-6, rtol=0)
    # Each parameter column has unit norm over the views before differencing.
    torch.testing.assert_close(normalised[:, :4].norm(dim=0), torch.ones(4))


def test_no_blur_gives_eight_parameters():
    ds = AugmentedSequences(Images(), num_views=3, blur=False)
    item = ds[0]
    assert item["params"].shape == (3, 8) and item["actions"].shape == (2, 8)


def test_size_option_resizes_views_and_plain():
    ds = AugmentedSequences(Images(size=40), num_views=2, image_size=24)
    item = ds[0]
    assert item["views"].shape == (2, 3, 24, 24) and item["plain"].shape == (3, 24, 24)


def test_determinism_epochs_and_seeds():
    ds = AugmentedSequences(Images(), num_views=3, seed=1)
    first = ds[4]
    assert torch.equal(ds[4]["views"], first["views"])
    assert torch.equal(ds[-2]["views"], first["views"])
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["params"], first["params"])
    ds.set_epoch(0)
    assert torch.equal(ds[4]["params"], first["params"])
    other = AugmentedSequences(Images(), num_views=3, seed=2)
    assert not torch.equal(other[4]["params"], first["params"])


def test_image_input_types_agree():
    image = (_image(9, 32, 32) * 255).round().to(torch.uint8)

    class Typed(torch.utils.data.Dataset):
        def __init__(self, kind):
            self.kind = kind

        def __len__(self):
            return 1

        def __getitem__(self, i):
            if self.kind == "uint8":
                return image, 0
            if self.kind == "float":
                return image.float() / 255, 0
            if self.kind == "numpy":
                return image.permute(1, 2, 0).numpy(), 0
            return Image.fromarray(image.permute(1, 2, 0).numpy()), 0

    items = [
        AugmentedSequences(Typed(k), num_views=2)[0]["views"]
        for k in ("uint8", "float", "numpy", "pil")
    ]
    for other in items[1:]:
        assert torch.equal(items[0], other)


@pytest.mark.slow
def test_dataloader_workers_match_main_process():
    ds = AugmentedSequences(Images(n=6), num_views=3, seed=3)
    ds.set_epoch(5)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    views = torch.cat([b["views"] for b in batches])
    actions = torch.cat([b["actions"] for b in batches])
    expected = [ds[i] for i in range(len(ds))]
    assert torch.equal(views, torch.stack([e["views"] for e in expected]))
    assert torch.equal(actions, torch.stack([e["actions"] for e in expected]))


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"num_views must be an int >= 2 .* got 1"):
        AugmentedSequences(Images(), num_views=1)
    with pytest.raises(ValueError, match=r"unknown action 'rotation'; choose one of"):
        AugmentedSequences(Images(), num_views=2, action="rotation")
    with pytest.raises(ValueError, match=r"action='blur' needs blur=True"):
        AugmentedSequences(Images(), num_views=2, action="blur", blur=False)
    with pytest.raises(ValueError, match=r"pass both mean and std"):
        AugmentedSequences(Images(), num_views=2, mean=CIFAR100_MEAN)
    with pytest.raises(ValueError, match=r"std must be positive"):
        AugmentedSequences(Images(), num_views=2, mean=(0, 0, 0), std=(1, 0, 1))
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match=r"kernel_size must be a positive odd int, got 4"):
        GaussianBlur(4)
    with pytest.raises(ValueError, match=r"hue must be in \[0, 0.5\], got 0.7"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match=r"brightness must be non-negative"):
        ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError, match=r"action_names \['zoom'\] are not parameters"):
        ParamCompose([RandomResizedCrop(8)], action_names=["zoom"])
    with pytest.raises(ValueError, match=r"parameter names must be unique"):
        ParamCompose([RandomHorizontalFlip(), RandomHorizontalFlip()])
    with pytest.raises(ValueError, match=r"RandomResizedCrop takes 4 parameters"):
        RandomResizedCrop(8).apply(_image(0), torch.zeros(3))
    with pytest.raises(ValueError, match=r"params has 3 entries, expected 13"):
        observation_recipe(8).apply(_image(0), torch.zeros(3))
    with pytest.raises(ValueError, match=r"seed and keys must be non-negative"):
        item_generator(-1, 0, 0)
    with pytest.raises(ValueError, match=r"hue_factor must be in \[-0.5, 0.5\]"):
        adjust_hue(_image(0), 0.6)

    class Gray(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return torch.rand(1, 8, 8), 0

    with pytest.raises(ValueError, match=r"augmentations need RGB images \(3, hh, ww\)"):
        AugmentedSequences(Gray(), num_views=2)[0]
    with pytest.raises(IndexError, match="out of range"):
        AugmentedSequences(Images(n=2), num_views=2)[2]


def test_item_generator_streams_differ_and_repeat():
    a = torch.rand(4, generator=item_generator(0, 0, 1))
    b = torch.rand(4, generator=item_generator(0, 0, 1))
    c = torch.rand(4, generator=item_generator(0, 1, 0))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert np.isfinite(a.numpy()).all()
