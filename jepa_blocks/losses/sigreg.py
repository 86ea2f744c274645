"""SIGReg, LeJEPA's regulariser (Balestriero & LeCun, LeJEPA, arXiv 2511.08544).

SIGReg pushes embeddings toward an isotropic Gaussian. It projects the embeddings ``z (n, d)``
on ``m`` random unit directions ``a_j`` (``x_ij = a_j^T z_i``) and, per slice, compares the
empirical characteristic function ``phi_j(t) = mean_i exp(i t x_ij)`` with the standard
normal's ``exp(-t^2 / 2)`` by the Epps-Pulley statistic (paper Algorithm 1)::

    EP_j = N * integral |phi_j(t) - exp(-t^2/2)|^2 w(t) dt,   w(t) = exp(-t^2/2)
    SIGReg = mean_j EP_j

with the integral a trapezoid rule on knots ``linspace(-5, 5, 17)`` and ``N`` the global
batch size (the per-rank ``n`` times the world size under DDP, where the characteristic
function is averaged over ranks with an autograd-aware all-reduce).

The official package (``lejepa/univariate/epps_pulley.py``) integrates over ``[0, t_max]``
with doubled trapezoid weights instead, using that the integrand is even. Both are
:func:`sigreg_quadrature` choices: the half-domain rule with ``k`` knots on ``[0, T]`` equals
the symmetric rule with ``2k - 1`` knots on ``[-T, T]`` exactly.
"""


import torch
import torch.distributed as dist
from torch import Tensor, nn

from jepa_blocks._checks import require_finite
from jepa_blocks._typing import Float, typecheck

__all__ = ["SIGReg", "sigreg", "sigreg_quadrature"]

_MASK31 = 0x7FFFFFFF
# Odd multipliers below 2^31: a product with a 31-bit value stays below 2^62, so the hash is
# exact int64 arithmetic on every backend (no reliance on signed-overflow wrapping).
_MULTIPLIERS = (0x045D9F3B, 0x2C1B3C6D, 0x297A2D39)
# Use the functional collective when it has an autograd kernel; tests flip it to exercise the
# torch.distributed.nn fallback.
_PREFER_FUNCTIONAL_COLLECTIVE = True


def _check_finite(name: str, value: Tensor) -> None:
    require_finite(
        name,
        value,
        "SIGReg needs finite embeddings (check the encoder's output, e.g. lower the learning "
        "rate or the autocast precision).",
    )


# A one-axis shape is written " knots": ruff would read "knots" as a forward reference.
def sigreg_quadrature(
    num_knots: int = 17,
    t_max: float = 5.0,
    *,
    half_domain: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Float[Tensor, " knots"], Float[Tensor, " knots"]]:
    """Knots and weights of the Epps-Pulley integral, the weight ``w(t) = exp(-t^2/2)``
    included.

    Args:
        num_knots: number of knots.
        t_max: the integral runs over ``[-t_max, t_max]`` (or ``[0, t_max]``).
        half_domain: ``False`` (the paper): trapezoid rule on ``linspace(-t_max, t_max,
            num_knots)``. ``True`` (the official package): knots ``linspace(0, t_max,
            num_knots)`` with doubled trapezoid weights; ``num_knots=17, t_max=3.0`` is its
            default. Half-domain with ``k`` knots equals symmetric with ``2k - 1`` knots.

    Returns:
        ``(knots, weights)``, both of shape ``(num_knots,)``.

    Raises:
        ValueError: ``num_knots < 2`` or ``t_max <= 0``.
    """
    if num_knots < 2:
        raise ValueError(f"num_knots must be >= 2 for the trapezoid rule, got {num_knots}.")
    if not t_max > 0:
        raise ValueError(f"t_max must be positive, got {t_max}.")
    low = 0.0 if half_domain else -t_max
    knots = torch.linspace(low, t_max, num_knots, dtype=torch.float64, device=device)
    weights = _trapezoid(knots) * (2.0 if half_domain else 1.0)
    weights = weights * torch.exp(-knots.square() / 2)
    return knots.to(dtype), weights.to(dtype)


def _trapezoid(knots: Tensor) -> Tensor:
    gaps = knots.diff()
    weights = torch.zeros_like(knots)
    weights[:-1] += gaps / 2
    weights[1:] += gaps / 2
    return weights


class _EmpiricalCF(torch.autograd.Function):
    """``(mean_n cos(t x), mean_n sin(t x))`` per slice and knot, accumulated knot by knot.

    Autograd would keep ``t * x`` for every knot (``O(n m T)``); this function keeps ``x``
    only and recomputes the trigonometric terms in backward, so memory stays ``O(n m)``.
    The backward is written in differentiable ops, so double backward works too.
    """

    @staticmethod
    def forward(ctx, x: Tensor, knots: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.save_for_backward(x, knots)
        real, imag = [], []
        for k in range(knots.shape[0]):
            phase = x * knots[k]
            real.append(torch.cos(phase).mean(-2))
            imag.append(torch.sin(phase).mean(-2))
        return torch.stack(real, -1), torch.stack(imag, -1)

    @staticmethod
    def backward(ctx, grad_real: Tensor, grad_imag: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, knots = ctx.saved_tensors
        n = x.shape[-2]
        grad = torch.zeros_like(x)
        for k in range(knots.shape[0]):
            phase = x * knots[k]
            # d/dx cos(t x) = -t sin(t x); d/dx sin(t x) = t cos(t x); the mean brings 1/n.
            g_re = grad_real[..., k].unsqueeze(-2)
            g_im = grad_imag[..., k].unsqueeze(-2)
            grad = grad + (g_im * torch.cos(phase) - g_re * torch.sin(phase)) * (knots[k] / n)
        return grad, None


def _all_reduce_sum(value: Tensor) -> Tensor:
    """Sum over ranks with autograd: the backward all-reduces the gradient as well."""
    import torch.distributed._functional_collectives as funcol

    # The functional collective has an autograd kernel in recent PyTorch and works under
    # torch.compile; torch.distributed.nn.functional.all_reduce (deprecated there, refused
    # under compile) is the fallback for older versions. Either way the result is returned,
    # never reduced in place, so the gradient flows.
    if _PREFER_FUNCTIONAL_COLLECTIVE and torch._C._dispatch_has_kernel_for_dispatch_key(
        "_c10d_functional::all_reduce", "Autograd"
    ):
        return funcol.wait_tensor(funcol.all_reduce(value, "sum", dist.group.WORLD))
    import torch.distributed.nn.functional as dist_fn

    return dist_fn.all_reduce(value, op=dist.ReduceOp.SUM)


def _world_size(distributed: bool) -> int:
    if distributed and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _epps_pulley(
    z: Tensor, directions: Tensor, knots: Tensor, weights: Tensor, *, distributed: bool
) -> Tensor:
    """Per-view statistic averaged over slices; no validation (callers validate)."""
    compute_dtype = torch.promote_types(z.dtype, torch.float32)
    # The characteristic function in fp32 at least: under bf16 autocast cos(t x) for |t x| up
    # to 5 * |x| would lose all precision in the phase.
    with torch.autocast(z.device.type, enabled=False):
        projections = z.to(compute_dtype) @ directions.to(compute_dtype)  # (..., n, m)
        knots = knots.to(device=z.device, dtype=compute_dtype)
        weights = weights.to(device=z.device, dtype=compute_dtype)
        real, imag = _EmpiricalCF.apply(projections, knots)  # (..., m, t) each
        num_samples = z.shape[-2]
        world = _world_size(distributed)
        if world > 1:
            ecf = _all_reduce_sum(torch.stack([real, imag])) / world
            real, imag = ecf.unbind(0)
            num_samples = num_samples * world
        error = (real - torch.exp(-knots.square() / 2)).square() + imag.square()
        per_slice = (error @ weights) * num_samples  # (..., m)
        return per_slice.mean(-1)


@typecheck
def sigreg(
    z: Float[Tensor, "*views n d"],
    directions: Float[Tensor, "d slices"],
    *,
    knots: Float[Tensor, " knots"] | None = None,
    weights: Float[Tensor, " knots"] | None = None,
    distributed: bool = True,
) -> Float[Tensor, "*views"]:
    """The SIGReg statistic of LeJEPA (Balestriero & LeCun, arXiv 2511.08544, Algorithm 1).

    ``mean_j N * trapz_t(|phi_j(t) - exp(-t^2/2)|^2 exp(-t^2/2))`` with ``phi_j`` the
    empirical characteristic function of the embeddings projected on direction ``j``.
    Computed in at least fp32 (autocast is switched off inside), in ``O(n m)`` memory.

    Args:
        z: embeddings, ``n`` samples of width ``d`` (leading axes, e.g. views, are kept).
        directions: ``m`` unit-norm slicing directions, one per column.
        knots: integration knots; ``None`` is the paper's ``linspace(-5, 5, 17)``.
        weights: quadrature weights times ``exp(-t^2/2)`` for ``knots``; ``None`` is the
            trapezoid rule on ``knots``. The official package's convention is
            ``knots, weights = sigreg_quadrature(17, 3.0, half_domain=True)``.
        distributed: under an initialised process group of world size ``W > 1``, average the
            characteristic function over ranks (autograd-aware all-reduce) and use
            ``N = n * W``. Each rank then returns the global statistic, and the gradient it
            sends to its own ``z`` is ``W`` times that rank's share of the global gradient,
            which DDP's gradient averaging turns into the single-process gradient.

    Returns:
        The statistic per leading index (a scalar for ``z`` of shape ``(n, d)``).

    Raises:
        ValueError: fewer than 2 samples, mismatched or non-unit directions, bad knots or
            weights, NaN or Inf in ``z``. The value checks cost a host sync on CUDA and are
            skipped under ``torch.compile``; :class:`SIGReg` makes its own directions and
            knots and checks only ``z`` (optionally).
    """
    if z.ndim < 2:
        raise ValueError(f"z must have shape (..., n, d), got {tuple(z.shape)}.")
    if z.shape[-2] < 2:
        raise ValueError(
            f"SIGReg needs at least 2 samples per view, got n={z.shape[-2]}; use a batch >= 2 "
            "(the paper uses >= 128)."
        )
    if not (z.is_floating_point() and directions.is_floating_point()):
        raise ValueError(
            f"z ({z.dtype}) and directions ({directions.dtype}) must be floating point."
        )
    if directions.ndim != 2 or directions.shape[0] != z.shape[-1] or directions.shape[1] < 1:
        raise ValueError(
            f"directions must have shape (d, slices) = ({z.shape[-1]}, >= 1) for z of width "
            f"{z.shape[-1]}, got {tuple(directions.shape)}; pass one direction per column."
        )
    _check_finite("z", z)
    if not torch.compiler.is_compiling():
        norms = directions.detach().norm(dim=0)
        if not bool(((norms - 1).abs() < 1e-3).all()):
            raise ValueError(
                "directions must have unit-norm columns (got norms from "
                f"{norms.min().tolist():.4g} to {norms.max().tolist():.4g}); divide by "
                "directions.norm(dim=0)."
            )
    if knots is None:
        if weights is not None:
            raise ValueError("weights were given without knots; pass both or neither.")
        knots, weights = sigreg_quadrature(
            dtype=torch.promote_types(z.dtype, torch.float32), device=z.device
        )
    else:
        if knots.ndim != 1 or knots.shape[0] < 2:
            raise ValueError(f"knots must be 1-D with >= 2 entries, got {tuple(knots.shape)}.")
        if not torch.compiler.is_compiling() and not bool((knots.diff() > 0).all()):
            raise ValueError("knots must be strictly increasing; sort them.")
        if weights is None:
            weights = _trapezoid(knots) * torch.exp(-knots.square() / 2)
        elif weights.shape != knots.shape:
            raise ValueError(
                f"weights {tuple(weights.shape)} must match knots {tuple(knots.shape)}."
            )
    return _epps_pulley(z, directions, knots, weights, distributed=distributed)


def _hash31(x):
    """A bijective mix of 31-bit values (xorshift-multiply rounds), exact in int64; works on
    Python ints and int64 tensors alike."""
    for multiplier in _MULTIPLIERS:
        x = x ^ (x >> 15)
        x = (x * multiplier) & _MASK31
    return x ^ (x >> 16)


def _directions(dim: int, num_slices: int, seed: int, step: Tensor) -> Tensor:
    """Unit directions ``(dim, num_slices)``, a pure function of ``(seed, step)``.

    Counter-based: every Gaussian coordinate is Box-Muller applied to a hash of
    ``(seed, step, index)``, computed with tensor ops on ``step``'s device. No generator is
    seeded and no host value is copied to the device, so the step is never read on the host
    and the computation can be captured in a CUDA graph.
    """
    stream = _hash31((step.to(torch.int64) & _MASK31) ^ _hash31(seed & _MASK31))
    index = torch.arange(2 * dim * num_slices, dtype=torch.int64, device=step.device)
    bits = _hash31(_hash31(index) ^ stream)
    # 24 bits per uniform in (0, 1]: the largest, (2^24 - 0.5) * 2^-24, rounds to 1.0 in fp32
    # (a Gaussian coordinate of 0, harmless); log(u) never sees 0.
    uniform = ((bits >> 7).to(torch.float32) + 0.5) * 2.0**-24
    u_radius, u_angle = uniform.view(2, dim, num_slices).unbind(0)
    gaussian = torch.sqrt(-2.0 * torch.log(u_radius)) * torch.cos(2 * torch.pi * u_angle)
    return gaussian / gaussian.norm(dim=0, keepdim=True)


class SIGReg(nn.Module):
    """SIGReg with its direction stream: :func:`sigreg` on directions drawn from
    ``(seed, step)`` (Balestriero & LeCun, arXiv 2511.08544, Algorithm 1).

    The directions are redrawn every optimiser step: call :meth:`advance` once per step, like
    :meth:`EMATarget.update`. ``step`` is an int64 buffer in ``state_dict``, so a resumed run
    draws exactly the directions of an uninterrupted one. The directions are a counter-based
    hash of ``(seed, step, index)`` evaluated on the embeddings' device (Box-Muller, then
    normalised): no ``torch.Generator`` (which needs a Python-int seed, so a host read of the
    step or a host mirror of it), no host sync, no recompilation under ``torch.compile``
    as the step changes, and the same directions on every rank.

    Args:
        num_slices: number of directions ``m`` (1024 in the paper).
        num_knots: number of integration knots (17).
        t_max: integration range ``[-t_max, t_max]`` (5, the paper).
        half_domain: integrate over ``[0, t_max]`` with doubled weights, as the official
            package does (there ``t_max=3.0``); see :func:`sigreg_quadrature`.
        seed: seeds the direction stream; equal seeds give equal streams.
        distributed: average the characteristic function over DDP ranks (see :func:`sigreg`);
            it is a collective, so every rank must call forward. Pass ``False`` to measure
            one rank's batch alone (e.g. as a collapse monitor on rank 0).
        check_finite: raise on NaN/Inf embeddings (one host sync on CUDA; skipped under
            ``torch.compile`` and CUDA-graph capture).

    Raises:
        ValueError: ``num_slices < 1``, ``num_knots < 2``, ``t_max <= 0`` or a negative seed.
    """

    step: Tensor

    def __init__(
        self,
        num_slices: int = 1024,
        num_knots: int = 17,
        *,
        t_max: float = 5.0,
        half_domain: bool = False,
        seed: int = 0,
        distributed: bool = True,
        check_finite: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if num_slices < 1:
            raise ValueError(f"num_slices must be >= 1, got {num_slices}; the paper uses 1024.")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        sigreg_quadrature(num_knots, t_max)  # validates both
        self.num_slices, self.num_knots, self.t_max = num_slices, num_knots, t_max
        self.half_domain, self.seed = half_domain, seed
        self.distributed, self.check_finite = distributed, check_finite
        self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=device))

    def directions(self, dim: int, *, device: torch.device | str | None = None) -> Tensor:
        """The current step's unit directions, shape ``(dim, num_slices)``, fp32."""
        step = self.step if device is None else self.step.to(device)
        return _directions(dim, self.num_slices, self.seed, step)

    @torch.no_grad()
    def advance(self) -> None:
        """Move to the next step's directions; call once per optimiser step."""
        self.step.add_(1)

    @typecheck
    def forward(self, z: Float[Tensor, "*views n d"]) -> Float[Tensor, ""]:
        """SIGReg of embeddings ``(n, d)``, or the mean over views of ``(v, n, d)``.

        Raises:
            ValueError: another rank, fewer than 2 samples, zero views, NaN or Inf.
        """
        if z.ndim not in (2, 3):
            raise ValueError(
                f"z must have shape (n, d) or (v, n, d), got {tuple(z.shape)}; stack views "
                "on the first axis."
            )
        if z.ndim == 3 and z.shape[0] < 1:
            raise ValueError("z has no views (v = 0); pass at least one.")
        if z.shape[-2] < 2:
            raise ValueError(
                f"SIGReg needs at least 2 samples per view, got n={z.shape[-2]}; use a batch "
                ">= 2 (the paper uses >= 128)."
            )
        if z.shape[-1] < 1:
            raise ValueError("z has width d = 0; pass embeddings of width >= 1.")
        if not z.is_floating_point():
            raise ValueError(f"z must be floating point, got dtype {z.dtype}; cast with .float().")
        if self.check_finite:
            _check_finite("z", z)
        directions = self.directions(z.shape[-1], device=z.device)
        # Built per call in the compute dtype on z's device (a few tiny kernels): buffers
        # would be rounded by module.half() or .to(dtype).
        knots, weights = sigreg_quadrature(
            self.num_knots,
            self.t_max,
            half_domain=self.half_domain,
            dtype=torch.promote_types(z.dtype, torch.float32),
            device=z.device,
        )
        per_view = _epps_pulley(z, directions, knots, weights, distributed=self.distributed)
        return per_view.mean()

    def extra_repr(self) -> str:
        domain = f"[0, {self.t_max}] doubled" if self.half_domain else f"[-{self.t_max}, ...]"
        return (
            f"num_slices={self.num_slices}, num_knots={self.num_knots}, domain={domain}, "
            f"seed={self.seed}"
        )
