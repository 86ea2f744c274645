"""Tests for jepa_blocks.data.saccades: fixation sampling, IoR, glimpses, sequence dataset."""

import copy

import pytest
import torch
import torchvision.transforms.functional as TF1
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.functional import grid_sample
from torch.utils.data import DataLoader

from jepa_blocks.data.saccades import (
    STL10_MEAN,
    STL10_STD,
    SaccadeSequences,
    extract_glimpses,
    sample_fixations,
)
from jepa_blocks.data.sequences import item_generator


class Images(torch.utils.data.Dataset):
    def __init__(self, n: int = 6, size: int = 96) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.rand(3, self.size, self.size, generator=torch.Generator().manual_seed(i)), i


# ----------------------------------------------------------------------------- official oracles


def _official_fixations(sal_map, num_patches, generator, image_size=96, fovea_size=32):
    """The official STL10_SalMap sampling loop (use_sal=1, ior=1), with an explicit generator."""
    sal_map = sal_map.unsqueeze(0)
    inh_radius = fovea_size // 2
    probs_inh = copy.deepcopy(sal_map).unsqueeze(0)
    sac_positions = []
    for _ in range(num_patches):
        probs_flat = probs_inh.view(probs_inh.size(0), -1)
        sac_position = torch.multinomial(probs_flat, num_samples=1, generator=generator)
        sac_positions.append(sac_position)
        row = sac_position // image_size
        col = sac_position % image_size
        rows = torch.arange(probs_inh.size(2)).view(1, 1, -1, 1)
        cols = torch.arange(probs_inh.size(3)).view(1, 1, 1, -1)
        row_mask = (rows >= (row - inh_radius).unsqueeze(2)) & (
            rows <= (row + inh_radius).unsqueeze(2)
        )
        col_mask = (cols >= (col - inh_radius).unsqueeze(2)) & (
            cols <= (col + inh_radius).unsqueeze(2)
        )
        inh_mask = (row_mask & col_mask).permute(1, 0, 2, 3)
        probs_inh = probs_inh * (1 - inh_mask.float()) + 1e-16
        probs_inh = probs_inh / probs_inh.sum(dim=(2, 3), keepdim=True)
    sac_positions = torch.cat(sac_positions, dim=1)
    return torch.stack((sac_positions // image_size, sac_positions % image_size), dim=2)[0]


def _official_glimpses(image, centers, image_size, crop_size):
    """utils.generate_cropping_grid + grid_sample + rotate(-90) + hflip, as in the official code."""
    ys = torch.linspace(-1, 1, crop_size)
    xs = torch.linspace(-1, 1, crop_size)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="ij")
    centers = centers.float()
    centers = (centers * 2) / torch.tensor([image_size, image_size]) - 1
    grid_x = grid_x.unsqueeze(0) * (crop_size / image_size) + centers[:, 0].view(-1, 1, 1)
    grid_y = grid_y.unsqueeze(0) * (crop_size / image_size) + centers[:, 1].view(-1, 1, 1)
    grid = torch.stack([grid_x, grid_y], -1)
    batch = image.unsqueeze(0).repeat(centers.shape[0], 1, 1, 1)
    out = grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = TF1.rotate(out, -90)
    return TF1.hflip(out)


def test_fixations_match_the_official_sampling_loop():
    for seed in range(6):
        saliency = torch.rand(96, 96, generator=torch.Generator().manual_seed(seed)) ** 4
        expected = _official_fixations(saliency, 5, torch.Generator().manual_seed(seed))
        got = sample_fixations(saliency, 5, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(got, expected)


def test_official_glimpses_are_grid_sample_at_the_transposed_centre():
    image = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0))
    centers = torch.tensor([[48, 48], [5, 90], [0, 0], [95, 17], [30, 61]])
    official = _official_glimpses(image, centers, 96, 32)
    at_swapped = extract_glimpses(image, centers.flip(-1), 32, method="grid_sample")
    torch.testing.assert_close(at_swapped, official, atol=1e-6, rtol=0)
    # Only on the diagonal does the official patch sit at the fixation itself.
    on_diagonal = extract_glimpses(image, centers[:1], 32, method="grid_sample")
    torch.testing.assert_close(on_diagonal, official[:1], atol=1e-6, rtol=0)
    assert not torch.allclose(
        extract_glimpses(image, centers, 32, method="grid_sample")[1], official[1]
    )
    # A single bright pixel: the official glimpse for (row=10, col=70) misses it.
    dot = torch.zeros(1, 96, 96)
    dot[0, 10, 70] = 1.0
    assert _official_glimpses(dot, torch.tensor([[10, 70]]), 96, 32).max() == 0
    assert extract_glimpses(dot, torch.tensor([[10, 70]]), 32)[0, 0, 16, 16] == 1


def test_grid_sample_glimpse_is_close_to_the_plain_crop():
    ramp = torch.linspace(0, 1, 96).view(1, 1, 96).expand(3, 96, 96).contiguous()
    centre = torch.tensor([[48, 40]])
    sliced = extract_glimpses(ramp, centre, 32)
    resampled = extract_glimpses(ramp, centre, 32, method="grid_sample")
    # Same centre; the official grid spans 32 px with 32 samples (spacing 32/31).
    torch.testing.assert_close(sliced.mean(), resampled.mean(), atol=1e-6, rtol=0)
    assert (sliced - resampled).abs().max() < 0.6 / 96


def test_transpose_glimpses_reproduces_the_official_patches():
    data = Images(n=2)
    ds = SaccadeSequences(data, glimpse_method="grid_sample", transpose_glimpses=True, seed=3)
    item = ds[1]
    centres = (item["positions"] * 96).round().long()
    torch.testing.assert_close(
        item["views"], _official_glimpses(data[1][0], centres, 96, 32), atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError, match=r"transpose_glimpses needs square images, got 64x96"):
        SaccadeSequences([(torch.rand(3, 64, 96), 0)], transpose_glimpses=True, image_size=16)[0]


# ----------------------------------------------------------------------------- IoR


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    height=st.integers(48, 96),
    width=st.integers(48, 96),
    fovea=st.integers(4, 24),
    shape=st.sampled_from(["square", "circle"]),
)
def test_no_fixation_inside_an_earlier_suppressed_region(seed, height, width, fovea, shape):
    saliency = torch.rand(height, width, generator=torch.Generator().manual_seed(seed))
    positions = sample_fixations(
        saliency, 5, fovea=fovea, ior_shape=shape, generator=torch.Generator().manual_seed(seed)
    )
    assert positions.shape == (5, 2) and positions.dtype == torch.long
    assert bool((positions[:, 0] < height).all() and (positions[:, 1] < width).all())
    radius = fovea // 2
    for a in range(5):
        for b in range(a + 1, 5):
            dr, dc = (positions[b] - positions[a]).abs().tolist()
            if shape == "square":
                assert max(dr, dc) > radius
            else:
                assert dr**2 + dc**2 > radius**2


@pytest.mark.parametrize("shape", ["square", "circle"])
@pytest.mark.parametrize("fovea", [8, 32, 33])
def test_ior_boundary_is_inclusive_at_fovea_over_two(shape, fovea):
    radius = fovea // 2
    saliency = torch.zeros(80, 80)
    saliency[30, 30] = 1e6  # drawn first
    saliency[30, 30 + radius] = 1.0  # on the boundary: suppressed
    saliency[30 + radius + 1, 30] = 1.0  # just outside: the only salient pixel left
    for seed in range(3):
        positions = sample_fixations(
            saliency, 2, fovea=fovea, ior_shape=shape, generator=torch.Generator().manual_seed(seed)
        )
        assert positions.tolist() == [[30, 30], [30 + radius + 1, 30]]


def test_circle_allows_the_square_corners():
    # Two salient spots 12 px apart in both axes: inside the 33x33 square, outside the r=16 disk.
    saliency = torch.zeros(64, 64)
    saliency[20, 20] = 1.0
    saliency[32, 32] = 1.0
    for seed in range(5):
        circle = sample_fixations(
            saliency, 2, ior_shape="circle", generator=torch.Generator().manual_seed(seed)
        )
        assert {tuple(p) for p in circle.tolist()} == {(20, 20), (32, 32)}
        square = sample_fixations(saliency, 2, generator=torch.Generator().manual_seed(seed))
        assert tuple(square[1].tolist()) not in {(20, 20), (32, 32)}


def test_without_ior_fixations_repeat():
    saliency = torch.zeros(40, 40)
    saliency[7, 9] = 1.0
    positions = sample_fixations(saliency, 4, ior=False, generator=torch.Generator())
    assert positions.tolist() == [[7, 9]] * 4


def test_uniform_map_statistics():
    g = torch.Generator().manual_seed(0)
    # Without IoR every fixation is an independent draw from the uniform map.
    first = sample_fixations(None, 2000, ior=False, image_size=(32, 40), generator=g)
    assert abs(first[:, 0].float().mean().item() - 15.5) < 1.0
    assert abs(first[:, 1].float().mean().item() - 19.5) < 1.2
    quadrant = (first[:, 0] >= 16).long() * 2 + (first[:, 1] >= 20).long()
    counts = torch.bincount(quadrant, minlength=4)
    assert bool(((counts - 500).abs() < 80).all()), counts


def test_sampling_follows_the_saliency_map():
    saliency = torch.zeros(16, 16)
    saliency[2, 3] = 1.0
    saliency[12, 14] = 3.0
    g = torch.Generator().manual_seed(1)
    hits = sample_fixations(saliency, 800, fovea=4, ior=False, generator=g).tolist()
    share = sum(h == [12, 14] for h in hits) / len(hits)
    assert set(map(tuple, hits)) == {(2, 3), (12, 14)}
    assert abs(share - 0.75) < 0.05


# ----------------------------------------------------------------------------- glimpses


@settings(max_examples=20, deadline=None)
@given(size=st.integers(1, 20), row=st.integers(0, 63), col=st.integers(0, 47))
def test_glimpse_is_a_zero_padded_centred_slice(size, row, col):
    image = torch.arange(3 * 64 * 48, dtype=torch.float32).view(3, 64, 48) + 1.0
    glimpse = extract_glimpses(image, torch.tensor([[row, col]]), size)[0]
    top, left = row - size // 2, col - size // 2
    expected = torch.zeros(3, size, size)
    for a in range(size):
        for b in range(size):
            r, c = top + a, left + b
            if 0 <= r < 64 and 0 <= c < 48:
                expected[:, a, b] = image[:, r, c]
    assert torch.equal(glimpse, expected)


def test_glimpse_interior_and_border():
    image = torch.rand(3, 96, 96) + 0.1
    glimpses = extract_glimpses(image, torch.tensor([[50, 40], [0, 0]]), 32)
    assert glimpses.shape == (2, 3, 32, 32)
    assert torch.equal(glimpses[0], image[:, 34:66, 24:56])
    assert bool((glimpses[1][:, :16, :] == 0).all() and (glimpses[1][:, :, :16] == 0).all())
    assert torch.equal(glimpses[1][:, 16:, 16:], image[:, :16, :16])


# ----------------------------------------------------------------------------- dataset


def test_sequence_item_contents():
    data = Images()
    ds = SaccadeSequences(data, num_views=5, mean=STL10_MEAN, std=STL10_STD, seed=4)
    ds.set_epoch(3)
    item = ds[2]
    image, label = data[2]
    positions = sample_fixations(
        None, 5, fovea=32, image_size=(96, 96), generator=item_generator(4, 3, 2)
    )
    mean = torch.tensor(STL10_MEAN).view(3, 1, 1)
    std = torch.tensor(STL10_STD).view(3, 1, 1)
    assert torch.equal(item["positions"], positions.float() / 96)
    normalised = positions.float() / 96
    assert torch.equal(item["actions"], normalised[1:] - normalised[:-1])
    assert item["actions"].shape == (4, 2)
    torch.testing.assert_close(item["views"], (extract_glimpses(image, positions, 32) - mean) / std)
    torch.testing.assert_close(item["image"], (image - mean) / std)
    assert item["label"].item() == label and item["label"].dtype == torch.long
    assert bool((item["positions"] >= 0).all() and (item["positions"] < 1).all())


def test_saliency_sources_agree():
    data = Images(n=3, size=64)
    maps = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(9))
    from_tensor = SaccadeSequences(data, saliency=maps)[1]
    from_4d = SaccadeSequences(data, saliency=maps.unsqueeze(1))[1]
    from_list = SaccadeSequences(data, saliency=list(maps))[1]
    from_call = SaccadeSequences(data, saliency=lambda img: maps[1])[1]
    for other in (from_4d, from_list, from_call):
        assert torch.equal(other["positions"], from_tensor["positions"])
    expected = sample_fixations(maps[1], 5, generator=item_generator(0, 0, 1))
    assert torch.equal(from_tensor["positions"], expected.float() / 64)


def test_determinism_and_epochs():
    ds = SaccadeSequences(Images(), seed=1)
    first = ds[0]["positions"]
    assert torch.equal(ds[0]["positions"], first)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["positions"], first)
    ds.set_epoch(0)
    assert torch.equal(ds[0]["positions"], first)


@pytest.mark.slow
def test_dataloader_workers_match_main_process():
    ds = SaccadeSequences(Images(n=4), seed=2, ior_shape="circle")
    ds.set_epoch(7)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    got = torch.cat([b["views"] for b in batches])
    expected = torch.stack([ds[i]["views"] for i in range(4)])
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    good = torch.rand(32, 32)
    with pytest.raises(ValueError, match=r"saliency has negative probabilities \(min -1"):
        sample_fixations(good - 1.0, 2)
    with pytest.raises(ValueError, match=r"saliency contains NaN or Inf"):
        sample_fixations(torch.full((8, 8), float("nan")), 2, fovea=4)
    with pytest.raises(ValueError, match=r"saliency sums to zero"):
        sample_fixations(torch.zeros(8, 8), 2, fovea=4)
    with pytest.raises(ValueError, match=r"saliency shape mismatch: map is \(32, 32\)"):
        sample_fixations(good, 2, image_size=(32, 40))
    with pytest.raises(ValueError, match=r"fovea 64 is larger than the image 32x32"):
        sample_fixations(good, 2, fovea=64)
    with pytest.raises(ValueError, match=r"pass image_size=\(hh, ww\) when saliency is None"):
        sample_fixations(None, 2)
    with pytest.raises(ValueError, match=r"unknown ior_shape 'hexagon'"):
        sample_fixations(good, 2, ior_shape="hexagon")
    with pytest.raises(ValueError, match=r"num_fixations must be a positive int, got 0"):
        sample_fixations(good, 0)
    with pytest.raises(ValueError, match=r"positions must be \(row, col\) inside the 32x32"):
        extract_glimpses(torch.rand(3, 32, 32), torch.tensor([[32, 0]]), 8)
    with pytest.raises(ValueError, match=r"unknown method 'bicubic'"):
        extract_glimpses(torch.rand(3, 32, 32), torch.tensor([[3, 0]]), 8, method="bicubic")
    with pytest.raises(ValueError, match=r"num_views must be an int >= 2"):
        SaccadeSequences(Images(), num_views=1)
    with pytest.raises(ValueError, match=r"saliency has 2 maps but images has 6 items"):
        SaccadeSequences(Images(), saliency=torch.rand(2, 96, 96))
    with pytest.raises(ValueError, match=r"saliency must be None, a callable"):
        SaccadeSequences(Images(), saliency=3.0)
    with pytest.raises(ValueError, match=r"saliency shape mismatch at index 0: map \(64, 64\)"):
        SaccadeSequences(Images(), saliency=torch.rand(6, 64, 64))[0]
    with pytest.raises(ValueError, match=r"fovea 128 is larger than the image 96x96"):
        SaccadeSequences(Images(), image_size=128)[0]
