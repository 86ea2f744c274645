"""Tests for jepa_blocks.losses (sigreg, lejepa): SIGReg against a float64 reference written from
the paper's Algorithm 1, the official package's half-domain quadrature, the statistic on
Gaussian and collapsed embeddings, gradcheck, the direction stream (determinism, resume),
torch.compile, bf16 autocast, DDP gradient equality (2 gloo processes), LeJEPALoss against
Algorithm 2, and bad input rejected without a state change."""

import importlib
import inspect
import io
import math
import os
import tempfile
import types

import pytest
import torch
import torch.multiprocessing as mp
from jaxtyping import TypeCheckError
from torch import nn

import jepa_blocks as jb
from jepa_blocks.losses import LeJEPALoss, SIGReg, sigreg, sigreg_quadrature

# The module (the function ``jepa_blocks.sigreg`` is re-exported under the package).
sigreg_module = importlib.import_module("jepa_blocks.losses.sigreg")

CLEAR = (ValueError, TypeCheckError)


def _unit(d: int, m: int, *, dtype: torch.dtype = torch.float64, seed: int = 1) -> torch.Tensor:
    g = torch.randn(d, m, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return g / g.norm(dim=0, keepdim=True)


def _reference(z: torch.Tensor, directions: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Paper Algorithm 1, plainly, in float64: a complex ECF per slice, trapezoid over knots."""
    z, directions, knots = z.double(), directions.double(), knots.double()
    n = z.shape[0]
    statistics = []
    for j in range(directions.shape[1]):
        x = z @ directions[:, j]  # (n,)
        ecf = torch.exp(1j * knots[:, None] * x[None, :]).mean(dim=1)  # (t,)
        normal_cf = torch.exp(-(knots**2) / 2)
        integrand = (ecf - normal_cf).abs() ** 2 * torch.exp(-(knots**2) / 2)
        statistics.append(n * torch.trapezoid(integrand, knots))
    return torch.stack(statistics).mean()


def _official(z: torch.Tensor, directions: torch.Tensor, t_max: float, k: int) -> torch.Tensor:
    """The official package's rule as the reference doc states it: knots on [0, t_max],
    doubled trapezoid weights times phi, err = (mean cos - phi)^2 + (mean sin)^2."""
    t = torch.linspace(0, t_max, k, dtype=torch.float64)
    dt = t_max / (k - 1)
    weights = torch.full((k,), 2 * dt, dtype=torch.float64)
    weights[[0, -1]] = dt
    phi = torch.exp(-t.square() / 2)
    x = (z.double() @ directions.double()).unsqueeze(-1) * t  # (n, m, t)
    err = (x.cos().mean(0) - phi).square() + x.sin().mean(0).square()
    return ((err @ (weights * phi)) * z.shape[0]).mean()


# ------------------------------------------------------------------------------ the statistic


@pytest.mark.parametrize(("n", "d", "m"), [(2, 1, 1), (16, 5, 7), (128, 32, 64)])
def test_matches_float64_reference(n: int, d: int, m: int) -> None:
    z = torch.randn(n, d, dtype=torch.float64) * 1.3 + 0.2
    directions = _unit(d, m)
    default_knots = torch.linspace(-5, 5, 17, dtype=torch.float64)
    expected = _reference(z, directions, default_knots)
    torch.testing.assert_close(sigreg(z, directions), expected, rtol=1e-6, atol=0)
    # float32 inputs: the same statistic to float32 precision.
    torch.testing.assert_close(
        sigreg(z.float(), directions.float()).double(), expected, rtol=1e-4, atol=1e-5
    )


def test_custom_knots_match_reference() -> None:
    z, directions = torch.randn(40, 6, dtype=torch.float64), _unit(6, 9)
    knots = torch.tensor([-4.0, -2.5, -1.0, 0.0, 0.3, 1.7, 4.0], dtype=torch.float64)
    torch.testing.assert_close(
        sigreg(z, directions, knots=knots), _reference(z, directions, knots), rtol=1e-6, atol=0
    )


def test_leading_axes_give_per_view_statistics() -> None:
    z, directions = torch.randn(3, 20, 4, dtype=torch.float64), _unit(4, 5)
    per_view = sigreg(z, directions)
    assert per_view.shape == (3,)
    for v in range(3):
        torch.testing.assert_close(per_view[v], sigreg(z[v], directions), rtol=1e-12, atol=0)


def test_official_convention_is_reachable_and_agrees() -> None:
    z, directions = torch.randn(64, 8, dtype=torch.float64), _unit(8, 16)
    knots, weights = sigreg_quadrature(17, 3.0, half_domain=True, dtype=torch.float64)
    official = _official(z, directions, 3.0, 17)
    torch.testing.assert_close(
        sigreg(z, directions, knots=knots, weights=weights), official, rtol=1e-10, atol=0
    )
    # Half-domain with k knots on [0, T] is exactly the symmetric rule with 2k - 1 on [-T, T].
    symmetric = sigreg(z, directions, knots=torch.linspace(-3, 3, 33, dtype=torch.float64))
    torch.testing.assert_close(symmetric, official, rtol=1e-10, atol=0)
    # And the paper's default (17 knots on [-5, 5]) is the official rule with 9 on [0, 5].
    torch.testing.assert_close(
        sigreg(z, directions), _official(z, directions, 5.0, 9), rtol=1e-10, atol=0
    )


def test_quadrature_weights() -> None:
    knots, weights = sigreg_quadrature(dtype=torch.float64)
    torch.testing.assert_close(knots, torch.linspace(-5, 5, 17, dtype=torch.float64))
    # The trapezoid rule integrates exp(-t^2/2) * 1 to about sqrt(2 pi).
    assert weights.sum().item() == pytest.approx(math.sqrt(2 * math.pi), rel=1e-3)
    half_knots, half_weights = sigreg_quadrature(9, 5.0, half_domain=True, dtype=torch.float64)
    torch.testing.assert_close(half_knots, knots[8:])
    torch.testing.assert_close(half_weights[1:], 2 * weights[9:])
    torch.testing.assert_close(half_weights[0], weights[8])


def test_small_for_gaussian_large_for_collapse() -> None:
    loss = SIGReg(256)
    gaussian = loss(torch.randn(512, 32))
    constant = loss(torch.full((512, 32), 0.3))
    rank_one = loss(torch.randn(512, 1) * torch.randn(1, 32))
    shrunk = loss(torch.randn(512, 32) * 0.1)
    assert gaussian < 3.0
    for collapsed in (constant, rank_one, shrunk):
        assert collapsed > 20 * gaussian


def test_gradcheck_float64() -> None:
    z = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    directions = _unit(3, 4)
    knots = torch.linspace(-2, 2, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: sigreg(x, directions, knots=knots), (z,))
    assert torch.autograd.gradgradcheck(lambda x: sigreg(x, directions, knots=knots), (z,))
    module = SIGReg(4, 5)
    assert torch.autograd.gradcheck(module, (z.detach().view(2, 3, 3).requires_grad_(),))


def test_gradient_equals_plain_autograd() -> None:
    # The memory-saving custom backward against autograd through the complex reference.
    z = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    directions, knots = _unit(5, 6), torch.linspace(-5, 5, 17, dtype=torch.float64)
    (grad,) = torch.autograd.grad(sigreg(z, directions), z)
    (expected,) = torch.autograd.grad(_reference(z, directions, knots), z)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


def test_memory_is_linear_in_knots() -> None:
    # Autograd through cos(t x) per knot would save O(n m knots); the custom function saves
    # the projections (n, m) once, whatever the number of knots.
    n, d, m = 128, 16, 32
    z = torch.randn(n, d, requires_grad=True)
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel())
        return tensor

    for num_knots in (5, 17, 65):
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            SIGReg(m, num_knots)(z)
        assert sum(saved) < 2 * n * m + n * d + 8 * m * num_knots, (num_knots, saved)


# ------------------------------------------------------------------------ the direction stream


def test_directions_are_unit_gaussian_and_deterministic() -> None:
    a, b = SIGReg(512, seed=3), SIGReg(512, seed=3)
    directions = a.directions(64)
    assert directions.shape == (64, 512) and directions.dtype == torch.float32
    torch.testing.assert_close(directions.norm(dim=0), torch.ones(512))
    assert torch.equal(directions, b.directions(64))
    assert not torch.allclose(directions, SIGReg(512, seed=4).directions(64))
    coordinates = directions.flatten() * 8  # sqrt(d) * a uniform direction: ~ N(0, 1)
    assert abs(coordinates.mean().item()) < 0.02
    assert coordinates.var().item() == pytest.approx(1.0, abs=0.02)
    # Slices are nearly orthogonal in high dimension, never repeated.
    gram = directions.T @ directions
    assert (gram - torch.eye(512)).abs().max() < 0.7
    a.advance()
    assert int(a.step) == 1 and not torch.allclose(a.directions(64), directions)


def test_direction_stream_golden_values() -> None:
    # Pins the stream across library versions: a checkpoint resumed under a newer release
    # must draw the directions the interrupted run would have drawn.
    loss = SIGReg(4, seed=0)
    step_0 = torch.tensor(
        [
            [-0.2081069, -0.8550044, -0.8847358, -0.8759771],
            [0.5872344, -0.0856580, 0.3432330, -0.2253638],
            [0.7822066, -0.5114980, -0.3153310, -0.4264684],
        ]
    )
    step_5 = torch.tensor(
        [
            [-0.0078536, -0.1569141, -0.1187765, 0.0638925],
            [0.6955228, 0.9873200, -0.6348400, -0.7619153],
            [0.7184610, -0.0240250, -0.7634595, -0.6445175],
        ]
    )
    torch.testing.assert_close(loss.directions(3), step_0, rtol=0, atol=1e-6)
    for _ in range(5):
        loss.advance()
    torch.testing.assert_close(loss.directions(3), step_5, rtol=0, atol=1e-6)


def test_forward_never_advances_the_step() -> None:
    loss = SIGReg(8)
    loss(torch.randn(10, 4))
    assert int(loss.step) == 0
    first = loss(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))
    again = loss(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(first, again)


def test_resume_continues_the_direction_stream() -> None:
    uninterrupted = SIGReg(32, seed=7)
    for _ in range(3):
        uninterrupted.advance()
    state = uninterrupted.state_dict()
    assert set(state) == {"step"}  # knots and weights are derived, not saved
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = SIGReg(32, seed=7)
    resumed.load_state_dict(torch.load(buffer))
    z = torch.randn(16, 10)
    for _ in range(3):
        assert torch.equal(resumed.directions(10), uninterrupted.directions(10))
        assert torch.equal(resumed(z), uninterrupted(z))
        resumed.advance()
        uninterrupted.advance()
    assert int(resumed.step) == int(uninterrupted.step) == 6


def test_no_item_call_in_the_module() -> None:
    assert inspect.ismodule(sigreg_module)
    assert ".item()" not in inspect.getsource(sigreg_module)


# --------------------------------------------------------------------- compile and precision


def test_compile_fullgraph_without_recompiles() -> None:
    import torch._dynamo

    torch._dynamo.reset()
    eager = SIGReg(16, seed=5)
    compiled_module = SIGReg(16, seed=5)
    # The tests switch jaxtyping's runtime check on, which dynamo cannot trace; users' default
    # (switch off) is the undecorated forward, which is what is compiled here.
    compiled_module.forward = types.MethodType(inspect.unwrap(SIGReg.forward), compiled_module)
    # aot_eager traces forward and backward through dynamo and AOTAutograd like inductor,
    # without inductor's C++ compile, which takes minutes on a busy 2-core machine.
    compiled = torch.compile(compiled_module, fullgraph=True, backend="aot_eager")
    z = torch.randn(2, 24, 6)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):
            z_eager, z_compiled = z.clone().requires_grad_(), z.clone().requires_grad_()
            expected, actual = eager(z_eager), compiled(z_compiled)
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
            expected.backward()
            actual.backward()
            torch.testing.assert_close(z_compiled.grad, z_eager.grad, rtol=1e-5, atol=1e-7)
            eager.advance()
            compiled_module.advance()
    torch._dynamo.reset()


def test_bf16_autocast_stays_close_to_fp32() -> None:
    model = nn.Linear(16, 32)
    loss_fn = SIGReg(128)
    x = torch.randn(256, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model(x)
        assert z.dtype == torch.bfloat16
        low = loss_fn(z)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    low.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # Against fp32 on the same (bf16-rounded) embeddings: only the matmul's rounding differs.
    torch.testing.assert_close(low, loss_fn(z.detach().float()), rtol=1e-4, atol=1e-5)
    # Against the fp32 model: bf16 rounding of the embeddings moves the statistic a little.
    high = loss_fn(model(x))
    assert abs(low.item() - high.item()) < 0.05 * high.item() + 0.05


# -------------------------------------------------------------------------------- LeJEPALoss


def test_lejepa_loss_matches_algorithm_2() -> None:
    lam = 0.3
    loss_fn = LeJEPALoss(lam, sigreg=SIGReg(32, seed=2))
    global_views = torch.randn(2, 20, 8, dtype=torch.float64)
    local_views = torch.randn(3, 20, 8, dtype=torch.float64)
    out = loss_fn(global_views, local_views)
    views = torch.cat([global_views, local_views])
    centers = global_views.mean(0)
    invariance = ((centers - views) ** 2).mean()
    directions = loss_fn.sigreg.directions(8).double()
    regulariser = torch.stack(
        [_reference(v, directions, torch.linspace(-5, 5, 17, dtype=torch.float64)) for v in views]
    ).mean()
    torch.testing.assert_close(out.invariance, invariance)
    torch.testing.assert_close(out.sigreg, regulariser, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        out.loss, (1 - lam) * invariance + lam * regulariser, rtol=1e-6, atol=0
    )
    # Without local views: only the global ones.
    only_global = loss_fn(global_views)
    torch.testing.assert_close(only_global.invariance, ((centers - global_views) ** 2).mean())


def test_lejepa_every_view_enters_both_terms() -> None:
    # lightly #2023: some views were left out of SIGReg or the invariance term.
    loss_fn = LeJEPALoss(0.5, sigreg=SIGReg(16))
    global_views = torch.randn(2, 12, 6, requires_grad=True)
    local_views = torch.randn(4, 12, 6, requires_grad=True)
    for term in ("invariance", "sigreg"):
        out = loss_fn(global_views, local_views)
        grads = torch.autograd.grad(getattr(out, term), (global_views, local_views))
        for grad in grads:
            per_view = grad.abs().sum(dim=(1, 2))
            assert (per_view > 0).all(), f"a view gets no gradient from {term}"
    # No stop-gradient on the centres (paper Algorithm 2): the global views' gradient differs
    # from the one with detached centres.
    out = loss_fn(global_views, local_views)
    (grad,) = torch.autograd.grad(out.invariance, global_views)
    views = torch.cat([global_views, local_views])
    detached = (global_views.mean(0).detach() - views).square().mean()
    (grad_detached,) = torch.autograd.grad(detached, global_views)
    assert not torch.allclose(grad, grad_detached)
    loss_fn.advance()
    assert int(loss_fn.sigreg.step) == 1


def test_lejepa_default_and_errors() -> None:
    loss_fn = jb.LeJEPALoss()
    assert loss_fn.lam == 0.05 and loss_fn.sigreg.num_slices == 1024
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\], got 1.5"):
        LeJEPALoss(1.5)
    raw = inspect.unwrap(LeJEPALoss.forward)
    with pytest.raises(ValueError, match=r"local_views \(2, 5, 4\) must have shape"):
        raw(LeJEPALoss(), torch.randn(2, 6, 4), torch.randn(2, 5, 4))
    with pytest.raises(CLEAR):
        LeJEPALoss()(torch.randn(2, 6, 4), torch.randn(2, 5, 4))


# -------------------------------------------------------------------------------- bad input

BAD_MODULE_INPUT = [
    ("vector", lambda: torch.randn(8), r"Type-check error|must have shape"),
    ("rank 4", lambda: torch.randn(2, 2, 8, 4), r"must have shape \(n, d\) or \(v, n, d\)"),
    ("one sample", lambda: torch.randn(1, 4), r"at least 2 samples per view, got n=1"),
    ("one sample per view", lambda: torch.randn(3, 1, 4), r"at least 2 samples"),
    ("NaN", lambda: torch.tensor([[0.0, 1.0], [float("nan"), 2.0]]), "NaN or Inf"),
    ("Inf", lambda: torch.full((2, 4, 3), float("inf")), "NaN or Inf"),
    ("int dtype", lambda: torch.ones(4, 3, dtype=torch.long), r"Type-check error|dtype"),
]


@pytest.mark.parametrize(
    ("name", "make", "message"), BAD_MODULE_INPUT, ids=[c[0] for c in BAD_MODULE_INPUT]
)
def test_bad_input_rejected_without_state_change(name: str, make, message: str) -> None:
    loss_fn = SIGReg(8)
    loss_fn.advance()
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    z = make()
    forward = inspect.unwrap(SIGReg.forward)  # our own checks, behind the type checker
    with pytest.raises((*CLEAR, RuntimeError), match=message):
        if message.startswith("Type-check"):
            loss_fn(z)
        else:
            forward(loss_fn, z)
    with pytest.raises((*CLEAR, RuntimeError)):
        loss_fn(z)
    for key, value in loss_fn.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed on a rejected call"


def test_function_bad_input() -> None:
    raw = inspect.unwrap(sigreg)
    z = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"directions must have shape \(d, slices\) = \(4, >= 1\)"):
        raw(z, _unit(5, 3, dtype=torch.float32))
    with pytest.raises(CLEAR):
        sigreg(z, _unit(5, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="directions must have shape"):
        raw(z, torch.randn(4))
    with pytest.raises(ValueError, match="unit-norm columns.*divide by"):
        sigreg(z, torch.randn(4, 3) * 2)
    with pytest.raises(ValueError, match="at least 2 samples, got|at least 2 samples per view"):
        sigreg(torch.randn(1, 4), _unit(4, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        sigreg(torch.full((3, 4), float("nan")), _unit(4, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="strictly increasing"):
        sigreg(z, _unit(4, 3, dtype=torch.float32), knots=torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="weights were given without knots"):
        sigreg(z, _unit(4, 3, dtype=torch.float32), weights=torch.ones(17))
    with pytest.raises(CLEAR, match=r"Type-check error|must match knots"):
        sigreg(z, _unit(4, 3, dtype=torch.float32), knots=torch.arange(3.0), weights=torch.ones(4))


def test_shape_errors_name_the_expected_shape() -> None:
    # The checks behind the type annotations (they guard calls with type checking off).
    raw = inspect.unwrap(sigreg)
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., n, d\), got \(4,\)"):
        raw(torch.randn(4), _unit(4, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"knots must be 1-D with >= 2 entries, got \(1,\)"):
        raw(torch.randn(10, 4), _unit(4, 3, dtype=torch.float32), knots=torch.zeros(1))
    forward = inspect.unwrap(SIGReg.forward)
    module = SIGReg(8)
    with pytest.raises(ValueError, match=r"z has no views \(v = 0\)"):
        forward(module, torch.randn(0, 10, 4))
    with pytest.raises(ValueError, match="z has width d = 0"):
        forward(module, torch.randn(10, 0))
    assert int(module.step) == 0
    loss_forward = inspect.unwrap(LeJEPALoss.forward)
    with pytest.raises(ValueError, match=r"global_views must have shape \(vg >= 1, n, d\)"):
        loss_forward(LeJEPALoss(sigreg=SIGReg(8)), torch.randn(10, 4))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="num_slices must be >= 1, got 0"):
        SIGReg(0)
    with pytest.raises(ValueError, match="num_knots must be >= 2"):
        SIGReg(8, 1)
    with pytest.raises(ValueError, match="t_max must be positive"):
        SIGReg(8, t_max=0.0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        SIGReg(8, seed=-1)


# ----------------------------------------------------------------------------------- DDP

WORLD = 2


def _ddp_worker(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x = torch.randn(16, 2, 8, generator=torch.Generator().manual_seed(0)).double()
        out = {}
        for path in ("functional", "torch.distributed.nn"):
            sigreg_module._PREFER_FUNCTIONAL_COLLECTIVE = path == "functional"
            torch.manual_seed(0)
            model = DistributedDataParallel(nn.Linear(8, 6).double())
            loss_fn = SIGReg(32, seed=1)
            shard = x[rank * 8 : (rank + 1) * 8].transpose(0, 1)  # (v, n / W, d)
            loss = loss_fn(model(shard))
            loss.backward()
            out[path] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        torch.save(out, f"{results}.{rank}")
    finally:
        sigreg_module._PREFER_FUNCTIONAL_COLLECTIVE = True
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradient_equals_single_process() -> None:
    # lightly #1920 (gradient off by 1 / world size), stable-pretraining #413 and eb_jepa
    # (reduced tensor dropped or reduced in place: no gradient across ranks).
    x = torch.randn(16, 2, 8, generator=torch.Generator().manual_seed(0)).double()
    torch.manual_seed(0)
    model = nn.Linear(8, 6).double()
    loss = SIGReg(32, seed=1)(model(x.transpose(0, 1)))
    loss.backward()
    with tempfile.TemporaryDirectory() as tmp:
        init_file, results = os.path.join(tmp, "init"), os.path.join(tmp, "out")
        mp.spawn(_ddp_worker, args=(init_file, results), nprocs=WORLD, join=True)
        outs = [torch.load(f"{results}.{rank}") for rank in range(WORLD)]
    for out in outs:
        for path, (rank_loss, grads) in out.items():
            torch.testing.assert_close(rank_loss, loss.detach(), rtol=1e-6, atol=0, msg=path)
            for grad, param in zip(grads, model.parameters(), strict=True):
                torch.testing.assert_close(grad, param.grad, rtol=1e-6, atol=1e-9, msg=path)
