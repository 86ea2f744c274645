"""Tests for jepa_blocks.eval.features, .contract and .targets.

The fake model of ``_eval_fakes`` has closed-form outputs, so every extracted feature has an
exact oracle.
"""

import math

import numpy as np
import pytest
import torch
from _eval_fakes import (
    DA,
    DEVICES,
    DV,
    C,
    FakeModel,
    H,
    RotationSequences,
    W,
    full,
    loader,
    oracle_z,
)

from jepa_blocks.actions import relative_rotation
from jepa_blocks.eval import (
    SequenceModel,
    absolute_rotation_target,
    additive_path_target,
    eval_mode,
    extract_aggregate_features,
    extract_pair_features,
    extract_path_integration_features,
    extract_sequence_features,
    extract_single_view_features,
    rotation_path_target,
)

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
