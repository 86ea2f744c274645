"""Tests for examples/seq_jepa/evaluate.py: the seq-JEPA evaluation protocol, with floors."""

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from _eval_fakes import (  # noqa: E402
    DV,
    C,
    ConstantModel,
    FakeModel,
    H,
    OrientedObjects,
    W,
    loader,
)
from evaluate import evaluate_sequence_model  # noqa: E402


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
