"""Tests for jepa_blocks.data.sources.shipped: the photos, ShippedImages, simple_saliency."""

from importlib import resources

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from jepa_blocks.data.augmented import AugmentedSequences
from jepa_blocks.data.saccades import SaccadeSequences
from jepa_blocks.data.sources.shipped import (
    SHIPPED_PHOTOS,
    ShippedImages,
    load_shipped_photos,
    simple_saliency,
)

GRAYSCALE_PHOTOS = {"brick", "camera", "grass"}


@pytest.fixture(scope="module")
def photos():
    return load_shipped_photos()


@pytest.fixture(scope="module")
def train():
    return ShippedImages(image_size=32, split="train", samples_per_class=20)


def test_assets_are_packaged_with_licences():
    folder = resources.files("jepa_blocks.data").joinpath("assets")
    licences = folder.joinpath("LICENSES.md").read_text(encoding="utf-8")
    total = 0
    for name in SHIPPED_PHOTOS:
        entry = folder.joinpath(f"{name}.png")
        assert entry.is_file()
        assert f"`{name}.png`" in licences
        total += len(entry.read_bytes())
    assert total < 2 * 1024 * 1024


def test_shipped_photos_load_offline(photos):
    assert tuple(photos) == SHIPPED_PHOTOS and len(photos) >= 8
    for name, photo in photos.items():
        assert photo.dtype == torch.uint8 and photo.shape[0] == 3
        assert min(photo.shape[1:]) == 192 and max(photo.shape[1:]) <= 256
        assert photo.float().std() > 20  # a real picture, not a constant
        channels_equal = bool((photo[0] == photo[1]).all() and (photo[1] == photo[2]).all())
        assert channels_equal == (name in GRAYSCALE_PHOTOS)


def test_items_shape_range_and_labels(train):
    assert len(train) == 200 and train.num_classes == 10
    assert train.classes == SHIPPED_PHOTOS
    for index in (0, 7, 123, 199, -1):
        image, label = train[index]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert label == index % 10
    assert len(ShippedImages(image_size=8, split="test")) == 250
    with pytest.raises(IndexError, match="out of range"):
        train[200]


def test_full_crop_of_a_square_photo_is_the_resized_photo(photos):
    ds = ShippedImages(image_size=48, crop_scale=(1.0, 1.0), samples_per_class=1)
    image, label = ds[SHIPPED_PHOTOS.index("astronaut")]
    assert SHIPPED_PHOTOS[label] == "astronaut"
    expected = TF.resize(
        photos["astronaut"].float() / 255, [48, 48], InterpolationMode.BILINEAR, antialias=True
    )
    torch.testing.assert_close(image, expected.clamp(0, 1))


def test_deterministic_and_split_dependent(train):
    again = ShippedImages(image_size=32, split="train", samples_per_class=20)
    test = ShippedImages(image_size=32, split="test", samples_per_class=20)
    other_seed = ShippedImages(image_size=32, split="train", samples_per_class=20, seed=1)
    assert torch.equal(train[5][0], again[5][0])
    assert not torch.equal(train[5][0], test[5][0])
    assert not torch.equal(train[5][0], other_seed[5][0])
    assert len(train.mean) == 3 and all(0.2 < s < 0.4 for s in train.std)


def test_labels_are_learnable_by_a_nearest_centroid_probe():
    # Photograph identity must be recoverable from pixels: 8x8 colour thumbnails,
    # nearest class centroid fitted on train crops, scored on test crops (chance = 10 %).
    def features(ds):
        images, labels = zip(*(ds[i] for i in range(len(ds))), strict=True)
        pooled = F.adaptive_avg_pool2d(torch.stack(images), 8).flatten(1)
        return pooled, torch.tensor(labels)

    x_train, y_train = features(ShippedImages(image_size=32, samples_per_class=30))
    x_test, y_test = features(ShippedImages(image_size=32, split="test", samples_per_class=10))
    centroids = torch.stack([x_train[y_train == k].mean(0) for k in range(10)])
    predicted = torch.cdist(x_test, centroids).argmin(dim=1)
    assert (predicted == y_test).float().mean() > 0.5


def test_wraps_into_sequence_datasets(train):
    aug = AugmentedSequences(train, num_views=3, mean=train.mean, std=train.std)[4]
    assert aug["views"].shape == (3, 3, 32, 32) and aug["label"].item() == 4
    big = ShippedImages(image_size=96, samples_per_class=1)
    sacc = SaccadeSequences(big, saliency=simple_saliency, mean=big.mean, std=big.std)[3]
    assert sacc["views"].shape == (5, 3, 32, 32) and sacc["actions"].shape == (4, 2)


# ----------------------------------------------------------------------------- saliency


def test_saliency_is_a_probability_map(photos):
    image = photos["chelsea"][:, :96, :96].float() / 255
    saliency = simple_saliency(image)
    assert saliency.shape == (96, 96)
    assert bool((saliency > 0).all())
    torch.testing.assert_close(saliency.sum(), torch.tensor(1.0))
    batch = torch.stack([image, image.flip(-1)])
    batched = simple_saliency(batch)
    torch.testing.assert_close(batched[0], saliency)
    torch.testing.assert_close(batched[1], simple_saliency(image.flip(-1)))


def test_flat_image_gives_the_uniform_map():
    saliency = simple_saliency(torch.full((3, 20, 30), 0.4))
    torch.testing.assert_close(saliency, torch.full((20, 30), 1 / 600))


def test_saliency_peaks_on_contrast_not_background():
    image = torch.zeros(3, 96, 96)
    image[:, 60:72, 20:32] = 1.0  # a bright square on black
    saliency = simple_saliency(image)
    row, col = divmod(int(saliency.argmax()), 96)
    assert 54 <= row <= 78 and 14 <= col <= 38
    near = saliency[52:80, 12:40].sum()
    assert near > 0.8  # most of the mass is at the square, which covers < 9 % of the image
    gray = simple_saliency(image[:1])
    torch.testing.assert_close(gray, saliency)


def test_center_bias_moves_mass_to_the_centre():
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain = simple_saliency(image)
    biased = simple_saliency(image, center_bias=0.2)
    centre = (slice(16, 48), slice(16, 48))
    assert biased[centre].sum() > plain[centre].sum() + 0.2


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"unknown split 'val'; choose one of"):
        ShippedImages(split="val")
    with pytest.raises(ValueError, match=r"size must be a positive int, got 0"):
        ShippedImages(image_size=0)
    with pytest.raises(ValueError, match=r"crop_scale must satisfy 0 < min <= max <= 1"):
        ShippedImages(crop_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"samples_per_class must be positive"):
        ShippedImages(samples_per_class=0)
    with pytest.raises(ValueError, match=r"image must have 1 or 3 channels, got 2"):
        simple_saliency(torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match=r"each scale must be \(center, surround\)"):
        simple_saliency(torch.rand(3, 16, 16), scales=((4.0, 1.0),))
    with pytest.raises(ValueError, match=r"center_bias must be positive or None"):
        simple_saliency(torch.rand(3, 16, 16), center_bias=0.0)
