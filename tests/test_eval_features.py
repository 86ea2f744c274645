"""Tests for jepa_blocks.eval.features and the evaluate_sequence_model protocol.

A fake model implements the SequenceModel contract with closed-form outputs (encode: a fixed
linear map of the flattened view; aggregate: sums of z and of the actions with the last one
zeroed, plus the token count), so every extracted feature has an exact oracle.
"""

import json
import math
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jepa_blocks.actions import relative_rotation, relative_rotation_from_euler
from jepa_blocks.data.objects import RenderedObjects
from jepa_blocks.eval.features import (
    PooledPixels,
    SequenceModel,
    absolute_rotation_target,
    additive_path_target,
    eval_mode,
    extract_aggregate_features,
    extract_pair_features,
    extract_path_integration_features,
    extract_sequence_features,
    extract_single_view_features,
    extract_view_features,
    rotation_path_target,
)
from jepa_blocks.eval.probes import evaluate_sequence_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
C, H, W, DV, DA = 1, 3, 3, 5, 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: with the 2 shared cores busy, OpenMP sync makes 2 threads ~30x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class FakeModel(nn.Module):
    """encode = fixed linear map per view; aggregate = [sum z ; sum a (last zeroed) ; m]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(C * H * W, DV, bias=False)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            self.proj.weight.copy_(torch.randn(DV, C * H * W, generator=g))
        self.norm = nn.BatchNorm1d(DV)  # only there to have a mode-dependent submodule
        self.calls: list[dict] = []

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        self.calls.append({"fn": "encode", "shape": tuple(views.shape), "training": self.training,
                           "grad": torch.is_grad_enabled()})
        return self.proj(views.flatten(2))

    def aggregate(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls.append({"fn": "aggregate", "z": z.clone(), "actions": actions.clone(),
                           "training": self.training})
        tokens = actions.clone()
        tokens[:, -1] = 0  # the last token carries no action
        count = torch.full((z.shape[0], 1), float(z.shape[1]), device=z.device)
        return torch.cat((z.sum(1), tokens.sum(1), count), dim=-1)


def oracle_z(views: torch.Tensor, model: FakeModel) -> torch.Tensor:
    return views.flatten(2) @ model.proj.weight.detach().T


class RotationSequences(Dataset):
    """Rotation sequences: label-dependent views, 3DIEBench-like latents and relative actions."""

    def __init__(self, n: int, views: int, seed: int, num_classes: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, num_classes, (n,), generator=g)
        centres = torch.randn(num_classes, C, H, W, generator=torch.Generator().manual_seed(99))
        self.views = centres[self.label][:, None] + 0.1 * torch.randn(
            n, views, C, H, W, generator=g
        )
        euler = (torch.rand(n, views, 3, generator=g) - 0.5) * math.pi
        self.latents = torch.cat((euler, torch.rand(n, views, 4, generator=g)), -1)
        self.actions = relative_rotation_from_euler(euler)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {"views": self.views[i], "actions": self.actions[i], "label": self.label[i],
                "latents": self.latents[i]}


def loader(n: int = 24, views: int = 5, seed: int = 0, batch_size: int = 8, **kw) -> DataLoader:
    return DataLoader(RotationSequences(n, views, seed, **kw), batch_size=batch_size)


def full(data: DataLoader, key: str) -> torch.Tensor:
    return getattr(data.dataset, key)


# ----------------------------------------------------------------------------- contract


def test_fake_model_satisfies_protocol_and_zeroes_last_action():
    model = FakeModel()
    assert isinstance(model, SequenceModel)
    z, a = torch.randn(2, 3, DV), torch.randn(2, 3, DA)
    b = a.clone()
    b[:, -1] = 123.0
    assert torch.equal(model.aggregate(z, a), model.aggregate(z, b))


def test_extraction_runs_in_eval_mode_without_grad_and_restores_modes():
    model = FakeModel().train()
    model.norm.eval()  # a deliberately mixed state must survive
    extract_aggregate_features(model, loader(), m_val=2, progress=False)
    assert model.calls and all(not c["training"] for c in model.calls)
    assert all(not c["grad"] for c in model.calls if c["fn"] == "encode")
    assert model.training and model.proj.training and not model.norm.training


def test_modes_restored_after_an_error():
    model = FakeModel().train()
    with pytest.raises(ValueError, match="M_val 9 is larger than the 5 views available"):
        extract_aggregate_features(model, loader(), m_val=9, progress=False)
    assert model.training and model.norm.training
    with eval_mode(model):
        assert not model.training and not torch.is_grad_enabled()
    assert model.training


# ----------------------------------------------------------------------------- slicing


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m_val", [1, 3, 5])
def test_aggregate_features_slice_views_and_actions(m_val, device):
    model = FakeModel().to(device)
    data = loader(views=5)
    z_agg, labels = extract_aggregate_features(model, data, m_val=m_val, progress=False)
    views, actions = full(data, "views"), full(data, "actions")
    tokens = torch.cat((actions, torch.zeros(len(actions), 1, DA)), 1)[:, : m_val - 1]
    want = torch.cat(
        (oracle_z(views[:, :m_val], model.cpu()).sum(1), tokens.sum(1),
         torch.full((len(views), 1), float(m_val))), -1,
    )
    torch.testing.assert_close(z_agg, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(labels, full(data, "label")) and labels.dtype == torch.long
    aggregate_calls = [c for c in model.calls if c["fn"] == "aggregate"]
    assert all(c["z"].shape[1:] == (m_val, DV) for c in aggregate_calls)
    assert all(c["actions"].shape[1:] == (m_val, DA) for c in aggregate_calls)
    # Only the views needed are encoded.
    assert all(c["shape"][1] == m_val for c in model.calls if c["fn"] == "encode")
    # Actions passed are a_1..a_M (the last a zero placeholder when M = views).
    passed = torch.cat([c["actions"].cpu() for c in aggregate_calls])
    expect = torch.cat((actions, torch.zeros(len(actions), 1, DA)), 1)[:, :m_val]
    torch.testing.assert_close(passed, expect)


def test_sequence_features_one_pass_matches_single_requests():
    model = FakeModel()
    data = loader(views=4)
    feats = extract_sequence_features(
        model, data, m_vals=(1, 2, 4), encoder=True, pairs=True, path_ms="all", progress=False
    )
    for m in (1, 2, 4):
        single, _ = extract_aggregate_features(model, data, m_val=m, progress=False)
        torch.testing.assert_close(feats.z_agg[m], single)
    assert sorted(feats.path_inputs) == [1, 2, 3]
    views = full(data, "views")
    torch.testing.assert_close(feats.z_first, oracle_z(views[:, 0:1], model)[:, 0])
    torch.testing.assert_close(feats.latents_first, full(data, "latents")[:, 0])


def test_pair_and_single_view_features():
    model = FakeModel()
    data = loader()
    pairs, a_1 = extract_pair_features(model, data, progress=False)
    z = oracle_z(full(data, "views")[:, :2], model)
    torch.testing.assert_close(pairs, torch.cat((z[:, 0], z[:, 1]), -1))
    torch.testing.assert_close(a_1, full(data, "actions")[:, 0])
    z_1, latents_1 = extract_single_view_features(model, data, progress=False)
    torch.testing.assert_close(z_1, z[:, 0])
    torch.testing.assert_close(latents_1, full(data, "latents")[:, 0])


# ----------------------------------------------------------------------------- path integration


def test_path_inputs_and_ablations_zero_what_they_claim():
    model = FakeModel()
    data = loader(views=4)
    views, actions = full(data, "views"), full(data, "actions")
    z = oracle_z(views, model)
    plain = extract_path_integration_features(model, data, ms=(1, 3), progress=False)
    for m, (inputs, _) in plain.items():
        tokens = actions[:, : m - 1].sum(1)
        count = torch.full((24, 1), float(m))
        want = torch.cat((z[:, :m].sum(1), tokens, count, actions[:, m - 1]), -1)
        torch.testing.assert_close(inputs, want, rtol=1e-5, atol=1e-5)

    model.calls.clear()
    no_act = extract_path_integration_features(model, data, ms=(1, 3), zero_actions=True,
                                               progress=False)
    ablated = [c for c in model.calls if c["fn"] == "aggregate" and not c["actions"].any()]
    assert ablated and all(c["z"].abs().sum() > 0 for c in ablated)
    for m, (inputs, _) in no_act.items():
        assert not inputs[:, -DA:].any()  # a_M zeroed
        assert not inputs[:, DV : DV + DA].any()  # no action reached the aggregator
        torch.testing.assert_close(inputs[:, :DV], plain[m][0][:, :DV])  # vision untouched

    model.calls.clear()
    no_vis = extract_path_integration_features(model, data, ms=(1, 3), zero_vision=True,
                                               progress=False)
    ablated = [c for c in model.calls if c["fn"] == "aggregate" and not c["z"].any()]
    assert ablated
    for m, (inputs, targets) in no_vis.items():
        assert not inputs[:, :DV].any()
        torch.testing.assert_close(inputs[:, DV:], plain[m][0][:, DV:])  # actions untouched
        torch.testing.assert_close(targets, plain[m][1])

    with pytest.raises(ValueError, match="pick one ablation"):
        extract_path_integration_features(model, data, zero_actions=True, zero_vision=True)


def rotation_matrix_np(euler: np.ndarray) -> np.ndarray:
    """Extrinsic xyz: R = Rz(c) Ry(b) Rx(a), scipy's from_euler('xyz')."""
    a, b, c = euler
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def quaternion_to_matrix_np(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@pytest.mark.parametrize("m", [1, 2, 4])
def test_rotation_path_target_is_r1_inverse_r_m_plus_1(m):
    data = RotationSequences(6, 5, seed=3)
    batch = {"views": data.views, "actions": data.actions, "latents": data.latents}
    target = rotation_path_target(batch, m)
    q = absolute_rotation_target(data.latents)
    torch.testing.assert_close(target, relative_rotation(torch.stack((q[:, 0], q[:, m]), 1))[:, 0])
    for i in range(6):  # independent oracle: rotation matrices R_1^T R_{m+1}
        euler = data.latents[i, :, :3].double().numpy()
        want = rotation_matrix_np(euler[0]).T @ rotation_matrix_np(euler[m])
        got = quaternion_to_matrix_np(target[i].double().numpy())
        np.testing.assert_allclose(got, want, atol=1e-5)
    # Composition: the product a_1 ... a_m of the actions is the same quaternion.
    composed = rotation_path_target({"views": data.views, "actions": data.actions}, m)
    torch.testing.assert_close(composed, target, atol=1e-5, rtol=1e-5)
    if m == 1:
        torch.testing.assert_close(target, data.actions[:, 0])
    canonical = rotation_path_target(batch, m, canonical=True)
    assert (canonical[:, 3] >= 0).all()
    torch.testing.assert_close(canonical.abs(), target.abs())


def test_additive_path_target_is_position_displacement():
    positions = torch.rand(4, 6, 2)
    actions = (positions[:, 1:] - positions[:, :-1]) / 1.0
    batch = {"views": torch.zeros(4, 6, 1, 2, 2), "actions": actions}
    for m in (1, 3, 5):
        want = positions[:, m] - positions[:, 0]
        torch.testing.assert_close(additive_path_target(batch, m), want)
    with pytest.raises(ValueError, match=r"use M in \[1, 5\]"):
        additive_path_target(batch, 6)


def test_absolute_rotation_target_matches_matrices():
    euler = (torch.rand(5, 3) - 0.5) * math.pi
    q = absolute_rotation_target(torch.cat((euler, torch.zeros(5, 4)), -1))
    for i in range(5):
        np.testing.assert_allclose(quaternion_to_matrix_np(q[i].double().numpy()),
                                   rotation_matrix_np(euler[i].double().numpy()), atol=1e-5)
    assert (q[:, 3] >= 0).all()  # in-distribution angles give w >= 0 without canonicalising


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs():
    model = FakeModel()
    with pytest.raises(ValueError, match="M_val 9 is larger than the 8 views available"):
        extract_aggregate_features(model, loader(views=8), m_val=9, progress=False)
    with pytest.raises(ValueError, match="path integration over M 5 needs view M \\+ 1"):
        extract_path_integration_features(model, loader(views=5), ms=(5,), progress=False)
    with pytest.raises(ValueError, match="m_vals must be positive ints"):
        extract_sequence_features(model, loader(), m_vals=(0,))
    with pytest.raises(ValueError, match="batch is missing key 'latents'"):
        extract_single_view_features(model, [{"views": torch.zeros(2, 3, C, H, W)}])
    with pytest.raises(ValueError, match=r"batch\['actions'\] must have shape \(b, m, da\)"):
        extract_pair_features(
            model,
            [{"views": torch.zeros(2, 3, C, H, W), "actions": torch.zeros(2, 3, DA)}],
        )
    with pytest.raises(ValueError, match="loader yielded no batches"):
        extract_aggregate_features(model, [], m_val=1)
    with pytest.raises(ValueError, match="must be an nn.Module with encode"):
        extract_aggregate_features(object(), loader(), m_val=1)  # type: ignore[arg-type]

    class BadEncode(FakeModel):
        def encode(self, views):
            return super().encode(views).flatten(1)

    with pytest.raises(ValueError, match="model.encode returned"):
        extract_aggregate_features(BadEncode(), loader(), m_val=2, progress=False)


# ----------------------------------------------------------------------------- per view


class OrientedObjects:
    """Objects seen from several orientations; each view's 3x3 image holds its orientation
    quaternion in the first 4 pixels and a little noise (nothing about the class).

    ``views()`` is a per-view dataset (items as RenderedObjects': image, latents, object,
    label); ``sequences(k)`` gives sequences of the first k views of each object.
    """

    def __init__(self, objects: int, views: int, seed: int, num_classes: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, num_classes, (objects,), generator=g)
        euler = (torch.rand(objects, views, 3, generator=g) - 0.5) * math.pi
        self.latents = torch.cat((euler, torch.rand(objects, views, 4, generator=g)), -1)
        pixels = 0.01 * torch.randn(objects, views, C * H * W, generator=g)
        pixels[..., :4] += absolute_rotation_target(self.latents)
        self.images = pixels.reshape(objects, views, C, H, W)
        self.actions = relative_rotation_from_euler(euler)

    def views(self) -> Dataset:
        outer = self

        class Views(Dataset):
            def __len__(self) -> int:
                return outer.images.shape[0] * outer.images.shape[1]

            def __getitem__(self, i: int) -> dict:
                obj, view = divmod(i, outer.images.shape[1])
                return {"image": outer.images[obj, view], "latents": outer.latents[obj, view],
                        "object": torch.tensor(obj), "label": outer.label[obj]}

        return Views()

    def sequences(self, k: int, batch_size: int = 16) -> DataLoader:
        outer = self

        class Sequences(Dataset):
            def __len__(self) -> int:
                return outer.images.shape[0]

            def __getitem__(self, i: int) -> dict:
                return {"views": outer.images[i, :k], "actions": outer.actions[i, : k - 1],
                        "latents": outer.latents[i, :k], "label": outer.label[i],
                        "index": torch.tensor(i)}

        return DataLoader(Sequences(), batch_size=batch_size)


class ConstantModel(FakeModel):
    """The same contract with an encoder that ignores its input (a floor that finds nothing)."""

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*views.shape[:2], DV) + 0.0 * self.proj.weight.sum()


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


# ----------------------------------------------------------------------------- protocol


def test_evaluate_sequence_model_end_to_end():
    model = FakeModel()
    results = evaluate_sequence_model(
        model, loader(n=96, views=4, seed=0), loader(n=64, views=4, seed=1),
        m_vals=(1, 3), path_ms=(1, 2), path_head="linear", epochs_linear=30, epochs_mlp=2,
        epochs_linear_regressor=50, batch_size=32, lr=1e-2, hidden=(16,), knn_k=5,
        progress=False,
    )
    assert set(results) == {
        "top1_agg", "top1_encoder", "r2_rel_rotation", "r2_indiv_rotation",
        "path_integration_r2", "path_integration_r2_zero_actions",
        "path_integration_r2_zero_vision", "knn_top1", "rankme",
    }
    json.dumps(results)
    assert set(results["top1_agg"]) == {1, 3}
    assert min(results["top1_agg"].values()) >= 0.9  # views are label-separable
    assert results["top1_encoder"] >= 0.9 and results["knn_top1"] >= 0.9
    assert set(results["path_integration_r2"]) == {1, 2}
    # M = 1: the target is a_1, which the head sees raw -> a linear head recovers it.
    assert results["path_integration_r2"][1] > 0.85
    assert results["path_integration_r2_zero_vision"][1] > 0.85
    # Without actions nothing in the input determines a_1.
    assert results["path_integration_r2_zero_actions"][1] < 0.2
    assert 1.0 <= results["rankme"] <= DV
    for value in (results["r2_rel_rotation"], results["r2_indiv_rotation"]):
        # The views are class-dependent noise: nothing in them determines a rotation.
        assert isinstance(value, float) and value < 0.1
    assert model.training  # restored


def _evaluate_oriented(model: nn.Module, floor_model: nn.Module | None, **kw) -> dict:
    train, test = OrientedObjects(40, 8, seed=0), OrientedObjects(12, 8, seed=1)
    settings = {
        "m_vals": (1,), "path_ms": (1,), "path_head": "linear", "epochs_linear": 2,
        "epochs_mlp": 2, "epochs_linear_regressor": 2, "hidden": (16,), "knn_k": 3,
        "ridge_pairs": 2000, "progress": False, **kw,
    }
    return evaluate_sequence_model(
        model, train.sequences(4), test.sequences(4), view_data=(train.views(), test.views()),
        floor_model=floor_model, **settings,
    )


def test_evaluate_with_floors_tells_learned_from_absent():
    # The images hold the orientation quaternion linearly; FakeModel's encoder is a linear
    # map of the image, so the ridge recovers the orientation (and, with bilinear pair
    # features, the relative rotation) almost exactly. A constant encoder holds nothing:
    # its ridge and MLP floors are ~0. Pixels hold the orientation too (floor ~1 here).
    model = FakeModel()
    results = _evaluate_oriented(
        model, ConstantModel(), epochs_mlp=100, epochs_linear_regressor=100, lr=1e-2,
        batch_size=16,
    )
    json.dumps(results)
    assert results["ridge_r2_indiv_rotation"] > 0.95
    assert results["ridge_r2_rel_rotation"] > 0.9
    assert abs(results["ridge_r2_indiv_rotation_floor"]) < 0.05
    assert abs(results["ridge_r2_rel_rotation_floor"]) < 0.05
    assert results["ridge_r2_indiv_rotation_pixels"] > 0.95
    assert results["ridge_r2_rel_rotation_pixels"] > 0.9
    # The paper's MLP heads (40 training sequences): an MLP on a constant input predicts a
    # constant, R^2 ~0; on the linear encoder it finds the orientation.
    assert results["r2_indiv_rotation"] > 0.9
    assert abs(results["r2_indiv_rotation_floor"]) < 0.1
    assert abs(results["r2_rel_rotation_floor"]) < 0.1
    assert results["r2_rel_rotation"] > results["r2_rel_rotation_floor"] + 0.2
    # Path integration over M = 1 regresses a_1, which the head is given raw: the floor
    # finds it as well, which is exactly what the floor is there to show.
    assert set(results["path_integration_r2_floor"]) == {1}
    assert results["path_integration_r2_floor"][1] > 0.9
    assert model.training


def test_evaluate_floor_keys_follow_the_options():
    results = _evaluate_oriented(ConstantModel(), None, pixel_floor=False)
    assert abs(results["ridge_r2_indiv_rotation"]) < 0.05
    assert not {k for k in results if k.endswith(("_floor", "_pixels"))}
    results = _evaluate_oriented(FakeModel(), ConstantModel(), mlp_floors=False)
    assert "ridge_r2_rel_rotation_floor" in results and "r2_rel_rotation_floor" not in results
    assert "path_integration_r2_floor" not in results


def test_evaluate_view_data_errors():
    train = OrientedObjects(8, 4, seed=0)
    loaders = (train.sequences(3), train.sequences(3))
    no_latents = [{"image": torch.zeros(4, C, H, W), "object": torch.arange(4)}]
    with pytest.raises(ValueError, match="the train view_data carry no latents"):
        evaluate_sequence_model(FakeModel(), *loaders, m_vals=(1,), view_data=(no_latents,
                                no_latents), progress=False)
    with pytest.raises(ValueError, match="view_data feed the ridge rotation probes"):
        evaluate_sequence_model(FakeModel(), *loaders, action_kind="aug",
                                view_data=(train.views(), train.views()))
    with pytest.raises(ValueError, match=r"view_data must be a \(train, test\) pair"):
        evaluate_sequence_model(FakeModel(), *loaders, view_data=train.views())


def test_evaluate_position_kind_and_errors():
    positions = torch.rand(40, 4, 2)
    batches = [
        {"views": torch.randn(8, 4, C, H, W), "actions": positions[i : i + 8].diff(dim=1),
         "label": torch.arange(8) % 2}
        for i in range(0, 40, 8)
    ]
    results = evaluate_sequence_model(
        FakeModel(), batches, batches, m_vals=(2,), action_kind="pos", path_ms=(1, 2),
        epochs_linear=2, epochs_linear_regressor=2, knn_k=3, progress=False,
    )
    assert "r2_rel_position" in results and "r2_indiv_rotation" not in results
    assert set(results["path_integration_r2_zero_vision"]) == {1, 2}
    with pytest.raises(ValueError, match="action_kind must be one of"):
        evaluate_sequence_model(FakeModel(), batches, batches, action_kind="colour")
    with pytest.raises(ValueError, match="M_val 8 is larger than the 4 views available"):
        evaluate_sequence_model(FakeModel(), batches, batches, progress=False)
