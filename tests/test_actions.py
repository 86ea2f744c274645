"""Tests for jepa_blocks.actions: quaternion maths against a numpy rotation-matrix oracle,
relative actions against the spec §1.3 formulas, and the ActionEncoder (shapes, gradients,
BatchNorm statistics under padding, errors before any state changes)."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _contract import assert_every_parameter_gets_a_gradient
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError
from torch import nn

from jepa_blocks.actions import (
    ActionEncoder,
    canonicalize_quaternion,
    euler_to_quaternion,
    parameter_deltas,
    position_deltas,
    quaternion_conjugate,
    quaternion_multiply,
    relative_rotation,
    relative_rotation_from_euler,
)

# ----------------------------------------------------------------------------- numpy oracle


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(b: float) -> np.ndarray:
    c, s = np.cos(b), np.sin(b)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(c_: float) -> np.ndarray:
    c, s = np.cos(c_), np.sin(c_)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _euler_matrix(euler: np.ndarray) -> np.ndarray:
    """scipy ``from_euler("xyz", (a, b, c)).as_matrix()``: extrinsic, R = Rz(c) Ry(b) Rx(a)."""
    a, b, c = euler
    return _rz(c) @ _ry(b) @ _rx(a)


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit scalar-last quaternion (x, y, z, w)."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _matrix_quat(r: np.ndarray) -> np.ndarray:
    """Shepperd's method: rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    trace = np.trace(r)
    candidates = [trace, r[0, 0], r[1, 1], r[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        w = 0.5 * np.sqrt(1.0 + trace)
        q = np.array(
            [
                (r[2, 1] - r[1, 2]) / (4 * w),
                (r[0, 2] - r[2, 0]) / (4 * w),
                (r[1, 0] - r[0, 1]) / (4 * w),
                w,
            ]
        )
    else:
        i = k - 1
        j, l_ = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[l_, l_])
        q = np.empty(4)
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[l_] = (r[l_, i] + r[i, l_]) / s
        q[3] = (r[l_, j] - r[j, l_]) / s
    return q if q[3] >= 0 else -q


def _np_hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    pv, pw = p[:3], p[3]
    qv, qw = q[:3], q[3]
    return np.concatenate([pw * qv + qw * pv + np.cross(pv, qv), [pw * qw - pv @ qv]])


def _scipy_from_euler_xyz(euler: np.ndarray) -> np.ndarray:
    """scipy's sign convention: extrinsic sequences compose elementary quaternions as
    ``q = q_z (q_y q_x)`` (``_elementary_quat_compose`` with ``intrinsic=False``)."""
    result = None
    for axis, angle in enumerate(euler):
        elem = np.zeros(4)
        elem[axis] = np.sin(angle / 2)
        elem[3] = np.cos(angle / 2)
        result = elem if result is None else _np_hamilton(elem, result)
    return result


def _random_euler(*shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
    # a, c in (-pi, pi), b in (-pi/2, pi/2), as 3DIEBench latents.
    u = torch.rand(*shape, 3, dtype=torch.float64, generator=generator) * 2 - 1
    return u * torch.tensor([torch.pi, torch.pi / 2, torch.pi], dtype=torch.float64)


# ----------------------------------------------------------------------------- quaternions


def test_euler_to_quaternion_matches_rotation_matrix_oracle() -> None:
    euler = _random_euler(64)
    quats = euler_to_quaternion(euler)
    assert quats.shape == (64, 4)
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    for e, q in zip(euler.numpy(), quats.numpy(), strict=True):
        np.testing.assert_allclose(_quat_matrix(q), _euler_matrix(e), atol=1e-12)
        canonical = q if q[3] >= 0 else -q
        np.testing.assert_allclose(canonical, _matrix_quat(_euler_matrix(e)), atol=1e-12)


def test_euler_to_quaternion_matches_scipy_sign_convention() -> None:
    # Not canonicalised (spec §1.3): the sign is scipy's, so -q cases must occur and match.
    euler = _random_euler(256)
    quats = euler_to_quaternion(euler).numpy()
    expected = np.stack([_scipy_from_euler_xyz(e) for e in euler.numpy()])
    np.testing.assert_allclose(quats, expected, atol=1e-12)
    assert (quats[:, 3] < 0).any(), "test data should exercise the negative-w representative"


@pytest.mark.parametrize(
    ("euler", "expected"),
    [
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),
        ((np.pi / 2, 0.0, 0.0), (np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5))),
        ((0.0, np.pi / 2, 0.0), (0.0, np.sqrt(0.5), 0.0, np.sqrt(0.5))),
        ((0.0, 0.0, -np.pi / 2), (0.0, 0.0, -np.sqrt(0.5), np.sqrt(0.5))),
        ((np.pi, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)),
    ],
)
def test_euler_to_quaternion_golden(euler: tuple, expected: tuple) -> None:
    got = euler_to_quaternion(torch.tensor(euler, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4)])
def test_quaternion_functions_keep_batch_shape(shape: tuple) -> None:
    q = euler_to_quaternion(_random_euler(*shape))
    assert q.shape == (*shape, 4)
    assert quaternion_multiply(q, q).shape == (*shape, 4)
    assert quaternion_conjugate(q).shape == (*shape, 4)
    assert canonicalize_quaternion(q).shape == (*shape, 4)


def test_quaternion_rotates_vectors_like_the_matrix() -> None:
    euler = _random_euler(32)
    q = euler_to_quaternion(euler)
    v = torch.randn(32, 3, dtype=torch.float64)
    pure = torch.cat((v, torch.zeros(32, 1, dtype=torch.float64)), dim=-1)
    rotated = quaternion_multiply(quaternion_multiply(q, pure), quaternion_conjugate(q))
    expected = torch.stack(
        [torch.from_numpy(_euler_matrix(e)) @ x for e, x in zip(euler.numpy(), v, strict=True)]
    )
    torch.testing.assert_close(rotated[:, :3], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        rotated[:, 3], torch.zeros(32, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_quaternion_multiply_composes_rotations() -> None:
    q = euler_to_quaternion(_random_euler(16))
    r = euler_to_quaternion(_random_euler(16))
    qr = quaternion_multiply(q, r).numpy()
    for a, b, ab in zip(q.numpy(), r.numpy(), qr, strict=True):
        np.testing.assert_allclose(_quat_matrix(ab), _quat_matrix(a) @ _quat_matrix(b), atol=1e-12)
        np.testing.assert_allclose(ab, _np_hamilton(a, b), atol=1e-12)


def test_conjugate_is_inverse() -> None:
    q = euler_to_quaternion(_random_euler(16))
    identity = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(16, 4)
    torch.testing.assert_close(quaternion_multiply(quaternion_conjugate(q), q), identity)
    torch.testing.assert_close(quaternion_multiply(q, quaternion_conjugate(q)), identity)


def test_canonicalize_quaternion() -> None:
    q = euler_to_quaternion(_random_euler(128))
    canonical = canonicalize_quaternion(q)
    assert (canonical[:, 3] >= 0).all()
    flipped = q[:, 3] < 0
    assert flipped.any() and (~flipped).any()
    torch.testing.assert_close(canonical[flipped], -q[flipped], atol=0, rtol=0)
    torch.testing.assert_close(canonical[~flipped], q[~flipped], atol=0, rtol=0)
    # Idempotent, and -q maps to the same representative.
    torch.testing.assert_close(canonicalize_quaternion(canonical), canonical, atol=0, rtol=0)
    torch.testing.assert_close(canonicalize_quaternion(-q), canonical, atol=0, rtol=0)


# ----------------------------------------------------------------------------- relative rotation


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("views", [2, 5])
def test_relative_rotation_composes_back_to_the_last_view(batch_shape: tuple, views: int) -> None:
    q = euler_to_quaternion(_random_euler(*batch_shape, views))
    rel = relative_rotation(q)
    assert rel.shape == (*batch_shape, views - 1, 4)
    # q_1 a_1 ... a_i == q_{i+1} for every i: the action takes view i to view i + 1.
    composed = q[..., 0, :]
    for i in range(views - 1):
        composed = quaternion_multiply(composed, rel[..., i, :])
        torch.testing.assert_close(composed, q[..., i + 1, :], atol=1e-12, rtol=0)


def test_relative_rotation_matches_matrix_oracle() -> None:
    euler = _random_euler(4, 6)
    rel = relative_rotation_from_euler(euler).numpy()
    for e_seq, r_seq in zip(euler.numpy(), rel, strict=True):
        for i in range(5):
            expected = _euler_matrix(e_seq[i]).T @ _euler_matrix(e_seq[i + 1])
            np.testing.assert_allclose(_quat_matrix(r_seq[i]), expected, atol=1e-12)


def test_relative_rotation_canonical_option() -> None:
    euler = _random_euler(64, 4)
    plain = relative_rotation_from_euler(euler)
    canonical = relative_rotation_from_euler(euler, canonical=True)
    assert (plain[..., 3] < 0).any(), "test data should exercise the sign flip"
    assert (canonical[..., 3] >= 0).all()
    torch.testing.assert_close(canonical, canonicalize_quaternion(plain), atol=0, rtol=0)
    torch.testing.assert_close(plain, relative_rotation(euler_to_quaternion(euler)), atol=0, rtol=0)


def test_relative_rotation_needs_two_views() -> None:
    q = euler_to_quaternion(_random_euler(3, 1))
    with pytest.raises(ValueError, match="at least 2 views"):
        relative_rotation(q)


def test_quaternion_functions_gradcheck() -> None:
    euler = _random_euler(2, 3).requires_grad_(True)
    q = euler_to_quaternion(_random_euler(2, 3)).requires_grad_(True)
    r = euler_to_quaternion(_random_euler(2, 3)).requires_grad_(True)
    assert torch.autograd.gradcheck(euler_to_quaternion, (euler,))
    assert torch.autograd.gradcheck(quaternion_multiply, (q, r))
    assert torch.autograd.gradcheck(quaternion_conjugate, (q,))
    assert torch.autograd.gradcheck(relative_rotation, (q,))
    assert torch.autograd.gradcheck(relative_rotation_from_euler, (euler,))
    assert torch.autograd.gradcheck(lambda x: relative_rotation(x, canonical=True), (q,))
    # Away from w = 0 the sign choice is locally constant, so the gradient is exact there.
    away = q.detach().clone()
    away[..., 3] = away[..., 3] + torch.where(away[..., 3] >= 0, 0.5, -0.5)
    assert torch.autograd.gradcheck(canonicalize_quaternion, (away.requires_grad_(True),))


# ----------------------------------------------------------------------------- parameter deltas


def test_parameter_deltas_are_consecutive_differences() -> None:
    params = torch.randn(4, 6, 9, dtype=torch.float64)
    deltas = parameter_deltas(params)
    assert deltas.shape == (4, 5, 9)
    for i in range(5):
        torch.testing.assert_close(deltas[:, i], params[:, i + 1] - params[:, i], atol=0, rtol=0)


def test_parameter_deltas_normalize_over_views_matches_official_code() -> None:
    # Spec §1.3: F.normalize(aug_params, p=2, dim=1) on (B, M+1, P), then p_{i+1} - p_i.
    params = torch.rand(5, 4, 9, dtype=torch.float64) * 10
    normalized = F.normalize(params, p=2, dim=1)
    expected = normalized[:, 1:] - normalized[:, :-1]
    got = parameter_deltas(params, normalize_over_views=True)
    torch.testing.assert_close(got, expected, atol=1e-14, rtol=0)
    # The quirk the spec warns about: each parameter has unit norm across views...
    torch.testing.assert_close(normalized.norm(dim=1), torch.ones(5, 9, dtype=torch.float64))
    # ...so an action depends on the sequence length, unlike the plain difference.
    shorter = parameter_deltas(params[:, :3], normalize_over_views=True)
    assert not torch.allclose(shorter, got[:, :2])
    torch.testing.assert_close(parameter_deltas(params[:, :3]), parameter_deltas(params)[:, :2])


def test_parameter_deltas_leading_batch_axes() -> None:
    params = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    got = parameter_deltas(params, normalize_over_views=True)
    flat = parameter_deltas(params.reshape(6, 5, 4), normalize_over_views=True)
    torch.testing.assert_close(got, flat.reshape(2, 3, 4, 4))


def test_parameter_deltas_gradcheck_and_errors() -> None:
    params = torch.rand(3, 4, 5, dtype=torch.float64).add_(0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: parameter_deltas(p, normalize_over_views=True), (params,)
    )
    assert torch.autograd.gradcheck(parameter_deltas, (params,))
    with pytest.raises(ValueError, match="at least 2 views"):
        parameter_deltas(torch.randn(3, 1, 5))


# ----------------------------------------------------------------------------- position deltas


def test_position_deltas() -> None:
    pos = torch.randint(0, 96, (3, 5, 2)).double()
    torch.testing.assert_close(position_deltas(pos), pos[:, 1:] - pos[:, :-1])
    torch.testing.assert_close(position_deltas(pos, size=96.0), (pos[:, 1:] - pos[:, :-1]) / 96)
    got = position_deltas(pos, size=(96.0, 48.0))
    torch.testing.assert_close(got[..., 0], (pos[:, 1:, 0] - pos[:, :-1, 0]) / 96)
    torch.testing.assert_close(got[..., 1], (pos[:, 1:, 1] - pos[:, :-1, 1]) / 48)
    assert got.shape == (3, 4, 2)
    assert torch.autograd.gradcheck(
        lambda p: position_deltas(p, size=96.0), (pos.clone().requires_grad_(True),)
    )


def test_position_deltas_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 positions"):
        position_deltas(torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match="size must be positive"):
        position_deltas(torch.zeros(3, 4, 2), size=0.0)
    with pytest.raises(ValueError, match="size must be positive"):
        position_deltas(torch.zeros(3, 4, 2), size=(96.0, -1.0))


# ----------------------------------------------------------------------------- ActionEncoder


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_action_encoder_default_is_the_papers() -> None:
    enc = ActionEncoder(4, 128)
    assert isinstance(enc.proj, nn.Linear) and enc.proj.bias is None
    assert isinstance(enc.norm, nn.BatchNorm1d) and not enc.norm.affine
    assert enc.norm.num_features == 128
    assert _params(enc) == 512


@pytest.mark.parametrize("norm", ["batch", "layer", None])
@pytest.mark.parametrize("hidden", [None, 16])
@pytest.mark.parametrize("batch_shape", [(5,), (3, 4)])
def test_action_encoder_shapes_and_gradients(norm, hidden, batch_shape) -> None:
    enc = ActionEncoder(4, 8, hidden=hidden, norm=norm)
    actions = torch.randn(*batch_shape, 4)
    out = enc(actions)
    assert out.shape == (*batch_shape, 8)
    (out * torch.randn_like(out)).sum().backward()
    assert_every_parameter_gets_a_gradient(enc)


def test_action_encoder_matches_manual_computation() -> None:
    enc = ActionEncoder(4, 8)
    actions = torch.randn(3, 5, 4)
    out = enc(actions)
    rows = actions.reshape(15, 4) @ enc.proj.weight.T  # every (sequence, token) row in one BN
    expected = (rows - rows.mean(0)) / torch.sqrt(rows.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(out, expected.reshape(3, 5, 8), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.norm.running_mean, 0.1 * rows.mean(0).detach())
    enc.eval()
    rm, rv = enc.norm.running_mean, enc.norm.running_var
    expected_eval = (actions @ enc.proj.weight.T - rm) / torch.sqrt(rv + 1e-5)
    torch.testing.assert_close(enc(actions), expected_eval, atol=1e-5, rtol=1e-5)


def test_action_encoder_layer_norm_normalises_each_row() -> None:
    out = ActionEncoder(4, 16, norm="layer")(torch.randn(6, 4))
    torch.testing.assert_close(out.mean(-1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)


def test_action_encoder_padding_excluded_from_batchnorm() -> None:
    enc = ActionEncoder(4, 8)
    reference = ActionEncoder(4, 8)
    reference.load_state_dict(enc.state_dict())
    actions = torch.randn(4, 5, 4)
    lengths = torch.tensor([5, 3, 1, 4])
    padding = torch.arange(5) >= lengths[:, None]
    actions[padding] = 1e3  # garbage that would swamp the statistics if it leaked in
    out = enc(actions, padding)
    expected_real = reference(actions[~padding])
    assert (out[padding] == 0).all()
    torch.testing.assert_close(out[~padding], expected_real)
    torch.testing.assert_close(enc.norm.running_mean, reference.norm.running_mean)
    torch.testing.assert_close(enc.norm.running_var, reference.norm.running_var)
    assert enc.norm.num_batches_tracked == reference.norm.num_batches_tracked == 1
    # Eval mode: padded rows are still zero.
    enc.eval()
    assert (enc(actions, padding)[padding] == 0).all()


@pytest.mark.parametrize("norm", ["layer", None])
def test_action_encoder_padding_other_norms(norm: str | None) -> None:
    enc = ActionEncoder(4, 8, norm=norm, hidden=6)
    actions = torch.randn(2, 3, 4)
    padding = torch.tensor([[False, True, True], [False, False, True]])
    out = enc(actions, padding)
    assert (out[padding] == 0).all()
    torch.testing.assert_close(out[~padding], enc(actions[~padding]))


def test_action_encoder_rejects_non_finite_without_touching_statistics() -> None:
    enc = ActionEncoder(4, 8)
    enc(torch.randn(6, 4))  # non-trivial running statistics
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    for bad in (float("nan"), float("inf"), float("-inf")):
        actions = torch.randn(3, 5, 4)
        actions[1, 2, 3] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            enc(actions)
    for key, value in enc.state_dict().items():
        assert torch.equal(value, before[key]), key
    # check_finite=False lets them through (for compiled/graph-captured code paths).
    unchecked = ActionEncoder(4, 8, check_finite=False)
    assert torch.isnan(unchecked(torch.full((3, 4), float("nan")))).all()


def test_action_encoder_wrong_width_is_a_typecheck_error() -> None:
    enc = ActionEncoder(4, 8)
    with pytest.raises(TypeCheckError):
        enc(torch.randn(3, 5))
    with pytest.raises(TypeCheckError):
        enc(torch.randint(0, 3, (3, 4)))  # integer actions
    with pytest.raises(TypeCheckError):
        enc(torch.randn(3, 5, 4), torch.zeros(3, dtype=torch.bool))  # mask without m


def test_action_encoder_value_errors() -> None:
    enc = ActionEncoder(4, 8)
    raw_forward = inspect.unwrap(ActionEncoder.forward)  # the checks behind the type checker
    with pytest.raises(ValueError, match="empty"):
        enc(torch.randn(0, 4))
    with pytest.raises(ValueError, match=r"shape \(b, 4\) or \(b, m, 4\)"):
        enc(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(b, 4\) or \(b, m, 4\)"):
        raw_forward(enc, torch.randn(3, 5))
    with pytest.raises(ValueError, match="floating point"):
        raw_forward(enc, torch.randint(0, 3, (3, 4)))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \(3, 5\)"):
        raw_forward(enc, torch.randn(3, 5, 4), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 2 action rows"):
        enc(torch.randn(1, 4))
    enc.eval()
    assert enc(torch.randn(1, 4)).shape == (1, 8)  # eval mode uses running statistics
    assert enc.norm.num_batches_tracked == 0  # no rejected call touched the statistics


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim_action": 0}, "dim_action must be a positive int"),
        ({"dim_embed": -1}, "dim_embed must be a positive int"),
        ({"hidden": 0}, "hidden must be a positive int or None"),
        ({"norm": "group"}, "norm must be 'batch', 'layer' or None"),
    ],
)
def test_action_encoder_config_errors(kwargs: dict, match: str) -> None:
    config = {"dim_action": 4, "dim_embed": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        ActionEncoder(config.pop("dim_action"), config.pop("dim_embed"), **config)


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 4),
    m=st.integers(1, 5),
    da=st.integers(1, 6),
    de=st.integers(1, 8),
    data=st.data(),
)
def test_action_encoder_padding_hypothesis(b: int, m: int, da: int, de: int, data) -> None:
    lengths = data.draw(st.lists(st.integers(1, m), min_size=b, max_size=b))
    padding = torch.arange(m) >= torch.tensor(lengths)[:, None]
    if int((~padding).sum()) < 2:
        padding[...] = False
        if b * m < 2:
            return
    enc = ActionEncoder(da, de)
    reference = ActionEncoder(da, de)
    reference.load_state_dict(enc.state_dict())
    actions = torch.randn(b, m, da)
    out = enc(actions, padding)
    assert out.shape == (b, m, de)
    assert (out[padding] == 0).all()
    torch.testing.assert_close(out[~padding], reference(actions[~padding]))
    torch.testing.assert_close(enc.norm.running_var, reference.norm.running_var)


def test_hidden_mlp_checkpoints_from_the_sequential_layout_load() -> None:
    """The hidden option was nn.Sequential(Linear, GELU, Linear) (keys proj.0 / proj.2)
    before the one Mlp (proj.fc1 / proj.fc2); such state dicts load strictly."""
    enc = ActionEncoder(4, 8, hidden=6)
    old = {
        k.replace("proj.fc1.", "proj.0.").replace("proj.fc2.", "proj.2."): torch.randn_like(v)
        if v.is_floating_point() else v
        for k, v in enc.state_dict().items()
    }
    assert "proj.2.weight" in old
    fresh = ActionEncoder(4, 8, hidden=6)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.proj.fc2.weight, old["proj.2.weight"])
    assert isinstance(fresh.proj.act, torch.nn.GELU)
