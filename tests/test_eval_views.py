"""Tests for jepa_blocks.eval.views: every view embedded once, and the raw-pixel floor."""

import re

import pytest
import torch
from _eval_fakes import DV, C, FakeModel, H, OrientedObjects, W, oracle_z
from torch import nn

from jepa_blocks.data.objects import RenderedObjects
from jepa_blocks.eval import PooledPixels, extract_view_features


def test_extract_view_features_from_a_per_view_dataset():
    data = OrientedObjects(objects=5, views=4, seed=0)
    model = FakeModel().train()
    feats = extract_view_features(model, data.views(), batch_size=6, progress=False)
    images = data.images.reshape(20, C, H, W)
    torch.testing.assert_close(feats.z, oracle_z(images[:, None], model)[:, 0])
    torch.testing.assert_close(feats.latents, data.latents.reshape(20, 7))
    assert torch.equal(feats.objects, torch.arange(5).repeat_interleave(4))
    assert torch.equal(feats.labels, data.label.repeat_interleave(4))
    assert model.training and all(not c["training"] and not c["grad"] for c in model.calls)
    assert [c["shape"][0] for c in model.calls] == [6, 6, 6, 2]  # batched, in order


def test_extract_view_features_from_images_and_a_plain_encoder():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 3), nn.Dropout(0.5)).train()
    images = torch.randn(10, C, H, W)
    feats = extract_view_features(encoder, images, batch_size=4, progress=False)
    with torch.no_grad():
        expected = encoder[1](images.flatten(1))  # eval mode: dropout is the identity
    torch.testing.assert_close(feats.z, expected)
    assert feats.latents is None and feats.objects is None and feats.labels is None
    assert encoder.training


def test_extract_view_features_from_sequences_gives_every_view():
    data = OrientedObjects(objects=6, views=4, seed=1)
    model = FakeModel()
    feats = extract_view_features(model, data.sequences(3, batch_size=4), progress=False)
    assert feats.z.shape == (18, DV)
    torch.testing.assert_close(feats.z, oracle_z(data.images[:, :3], model).reshape(18, DV))
    torch.testing.assert_close(feats.latents, data.latents[:, :3].reshape(18, 7))
    assert torch.equal(feats.objects, torch.arange(6).repeat_interleave(3))


def test_extract_view_features_from_rendered_objects():
    objects = RenderedObjects(split="val", size="small", image_size=16, num_classes=2,
                              cache=False)
    encoder = PooledPixels(size=4)
    feats = extract_view_features(encoder, objects, batch_size=10, progress=False)
    views = objects.views_per_object
    assert feats.z.shape == (objects.num_objects * views, 3 * 4 * 4)
    torch.testing.assert_close(feats.latents, objects.latents.reshape(-1, 7))
    assert torch.equal(feats.objects, torch.arange(objects.num_objects).repeat_interleave(views))
    assert torch.equal(feats.labels, objects.labels.repeat_interleave(views))
    # Rows are the dataset's normalised items, pooled.
    torch.testing.assert_close(feats.z[5], encoder(objects[5]["image"][None])[0])


def test_pooled_pixels():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    pooled = PooledPixels(size=2)(images)
    assert pooled.shape == (2, 3 * 2 * 2)
    assert pooled[0, 0] == images[0, 0, :2, :2].mean()
    torch.testing.assert_close(PooledPixels(size=16)(images), images.flatten(1))
    assert not list(PooledPixels().parameters())
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        PooledPixels(size=0)


def test_extract_view_features_errors():
    model = FakeModel()
    with pytest.raises(ValueError, match=r"images must have shape \(N, c, hh, ww\)"):
        extract_view_features(model, torch.zeros(4, H, W))
    with pytest.raises(ValueError, match="batch has neither 'image'"):
        extract_view_features(model, [{"pixels": torch.zeros(2, C, H, W)}])
    image_message = re.escape("batch['image'] must have shape (b, c, hh, ww), got (2, 1, 1, 3, 3)")
    with pytest.raises(ValueError, match=image_message):
        extract_view_features(model, [{"image": torch.zeros(2, 1, C, H, W)}])
    views_message = re.escape("batch['views'] must have shape (b, k, c, hh, ww), got (2, 1, 3, 3)")
    with pytest.raises(ValueError, match=views_message):
        extract_view_features(model, [{"views": torch.zeros(2, C, H, W)}])
    with pytest.raises(ValueError, match=r"batch\['latents'\] must have shape \(2, 3, L\)"):
        extract_view_features(
            model, [{"views": torch.zeros(2, 3, C, H, W), "latents": torch.zeros(2, 7)}]
        )
    with pytest.raises(ValueError, match=r"batch\['object'\] must have shape \(b,\) = \(2,\)"):
        extract_view_features(
            model, [{"image": torch.zeros(2, C, H, W), "object": torch.zeros(3)}]
        )
    with pytest.raises(ValueError, match="only some batches carry latents"):
        extract_view_features(model, [
            {"image": torch.zeros(2, C, H, W), "latents": torch.zeros(2, 7)},
            {"image": torch.zeros(2, C, H, W)},
        ])
    with pytest.raises(ValueError, match="the data yielded no views"):
        extract_view_features(model, [])
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        extract_view_features(model, torch.zeros(2, C, H, W), batch_size=0)
    with pytest.raises(ValueError, match=r"the encoder returned \(2, 3, 1, 1\) for images"):
        extract_view_features(nn.Identity(), torch.zeros(2, 3, 1, 1))
    with pytest.raises(ValueError, match="encoder must be an nn.Module"):
        extract_view_features(lambda x: x, torch.zeros(2, C, H, W))  # type: ignore[arg-type]
