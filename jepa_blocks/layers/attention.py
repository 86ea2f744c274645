"""The library's multi-head self-attention: fused QKV projection with a selectable core.

Why it exists: seq-JEPA's aggregator (and any ViT-style block built from these parts) needs
one attention module whose *core* can be swapped without touching weights, so that

* ``naive``  -- explicit ``softmax(Q K^T / sqrt(dh) + mask) V``, is the readable test oracle;
* ``sdpa``   -- :func:`torch.nn.functional.scaled_dot_product_attention`, is the fast default,
  with an optional pinned backend (``"math"``, ``"flash"``, ``"efficient"``, ``"cudnn"``);
* ``online`` -- the library's own tiled online-softmax attention (the FlashAttention-2
  algorithm) in plain PyTorch ops, no Triton and no compiled extension. Its custom autograd
  function saves only ``q, k, v``, the output and the per-row log-sum-exp (plus a per-key
  padding bias when masked), and recomputes the probabilities tile by tile in backward, so the
  state kept for backward grows as O(N), not O(N^2); working memory is one score tile of
  ``block_size`` keys by as many query rows as fit ~16 MiB. It runs on any device in fp64 /
  fp32 / bf16 / fp16 (half types are computed in fp32). ``block_size`` 512-1024 suits CPUs.
  Its dropout draws a seed on the host, so it refuses CUDA-graph capture with dropout > 0
  (every replay would reuse one mask); captured modules should use ``sdpa`` there.

Masks. ``key_padding_mask`` is ``True`` where a key is PADDING (ignored), the convention of
:class:`torch.nn.MultiheadAttention`. The functional form also takes ``causal=True``
(query ``i`` sees keys ``j <= i``, top-left aligned like SDPA's ``is_causal``).

Rows with no key to attend to. When every key a query row may see is padded (for key padding
alone: the whole sequence of that batch element), softmax is undefined. Every core returns
**zeros** for such rows, and their inputs receive zero gradient; no core produces NaN. Nothing
is raised, so the behaviour needs no host-device sync and works under ``torch.compile`` and
CUDA-graph capture.

The default core. One setting every module reads: ``core=None`` (the default of
:class:`Attention` and :func:`attention_core`) means :func:`default_attention_core`, the
environment variable ``JEPA_BLOCKS_ATTN_CORE`` if set (as timm's ``TIMM_FUSED_ATTN``), else
``"sdpa"``. :func:`set_attention_core` switches every :class:`Attention` inside a built model.

Positions. ``Attention(..., rope=RotaryEmbedding(dim // heads, axes=a))`` rotates queries and
keys by per-token coordinates (``forward(x, positions=...)``, ``(b, n, a)`` or ``(n, a)``)
before the core, so every core sees the same rotated inputs (see :mod:`jepa_blocks.positions`).

Axes (see :mod:`jepa_blocks._typing`): ``b`` batch, ``h`` heads, ``n`` query tokens,
``nk`` key tokens (``n`` for self-attention), ``dh`` head width, ``d`` model width, ``a``
coordinate axes of the positions.
"""

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_blocks._typing import Bool, Float, Shaped, typecheck
from jepa_blocks.layers.online_attention import online_attention
from jepa_blocks.positions import RotaryEmbedding

__all__ = [
    "ATTENTION_CORES",
    "ATTENTION_CORE_ENV",
    "SDPA_BACKENDS",
    "Attention",
    "attention_core",
    "default_attention_core",
    "set_attention_core",
]

ATTENTION_CORES = ("naive", "sdpa", "online")
#: The environment variable that sets the default core (read when a module is built).
ATTENTION_CORE_ENV = "JEPA_BLOCKS_ATTN_CORE"
SDPA_BACKENDS = ("math", "flash", "efficient", "cudnn")



def _check_core(core: str) -> str:
    if core not in ATTENTION_CORES:
        raise ValueError(
            f"unknown attention core {core!r}; choose one of {ATTENTION_CORES} "
            "('sdpa' is the fast default, 'naive' the oracle, 'online' the O(N)-memory core)"
        )
    return core


def default_attention_core() -> str:
    """The core used when none is given: ``$JEPA_BLOCKS_ATTN_CORE``, else ``"sdpa"``.

    Raises:
        ValueError: the variable names no core in ``ATTENTION_CORES``.
    """
    value = os.environ.get(ATTENTION_CORE_ENV, "").strip()
    if not value:
        return "sdpa"
    if value not in ATTENTION_CORES:
        raise ValueError(
            f"{ATTENTION_CORE_ENV}={value!r} names no attention core; set it to one of "
            f"{ATTENTION_CORES} or unset it (default 'sdpa')."
        )
    return value


def _resolve_core(core: str | None) -> str:
    return default_attention_core() if core is None else _check_core(core)


def set_attention_core(module: nn.Module, core: str, *, backend: str | None = None) -> int:
    """Switch every :class:`Attention` inside ``module`` to ``core`` (and SDPA ``backend``).

    Weights do not depend on the core, so this works on a trained model, before or after
    loading a checkpoint.

    Returns:
        The number of attention modules switched.

    Raises:
        ValueError: an unknown core or backend, a backend with a core other than ``sdpa``;
            nothing is switched then.
    """
    _check_core(core)
    _check_backend(backend)
    if backend is not None and core != "sdpa":
        raise ValueError(
            f"backend={backend!r} applies only to core='sdpa', got core={core!r}; pass "
            "backend=None or core='sdpa'."
        )
    layers = [m for m in module.modules() if isinstance(m, Attention)]
    for layer in layers:
        layer.core, layer.backend = core, backend
    return len(layers)


def _check_backend(backend: str | None) -> str | None:
    if backend is not None and backend not in SDPA_BACKENDS:
        raise ValueError(
            f"unknown SDPA backend {backend!r}; choose one of {SDPA_BACKENDS}, or None to let "
            "PyTorch pick the fastest kernel that supports the inputs"
        )
    return backend


def _check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(
            f"block_size must be a positive int, got {block_size!r}; use e.g. 128 on GPU or "
            "256-1024 on CPU"
        )
    return block_size


def _sdpa_backend_context(backend: str):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enum = {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[backend]
    return sdpa_kernel(enum)


def _rows_with_keys(
    key_padding_mask: Tensor | None, n: int, nk: int, causal: bool
) -> Tensor | None:
    """``(b, 1, n, 1)`` (or ``(b, 1, 1, 1)``) bool: query rows that see at least one key."""
    if key_padding_mask is None:
        return None  # causal alone never empties a row: key 0 is always visible
    if not causal:
        return ~key_padding_mask.all(dim=-1)[:, None, None, None]
    # Row i sees keys 0..i: it is empty iff that prefix is all padding.
    prefix_padded = key_padding_mask.to(torch.int32).cumprod(dim=-1)
    last_visible = torch.arange(n, device=key_padding_mask.device).clamp_max(nk - 1)
    return (prefix_padded[:, last_visible] == 0)[:, None, :, None]


def _causal_block(n: int, nk: int, device) -> Tensor:
    """``(n, nk)`` bool, True where key j is in the future of query i (j > i)."""
    return torch.ones(n, nk, dtype=torch.bool, device=device).triu(1)


# ----------------------------------------------------------------------------- naive & sdpa


def _naive(q, k, v, key_padding_mask, causal, dropout_p, scale):
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    masked = None
    if key_padding_mask is not None:
        masked = key_padding_mask[:, None, None, :]
    if causal:
        future = _causal_block(q.shape[-2], k.shape[-2], q.device)
        masked = future if masked is None else masked | future
    if masked is not None:
        # A finite minimum (not -inf) keeps fully masked rows finite (uniform weights); those
        # rows are zeroed by the caller.
        scores = scores.masked_fill(masked, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return torch.matmul(weights, v)


def _sdpa(q, k, v, key_padding_mask, causal, dropout_p, scale, backend, rows):
    attn_mask = None
    is_causal = causal
    if key_padding_mask is not None:
        attend = ~key_padding_mask[:, None, None, :]  # SDPA: True = attend
        if causal:
            attend = attend & ~_causal_block(q.shape[-2], k.shape[-2], q.device)
            is_causal = False  # SDPA takes either a mask or is_causal, not both
        # Rows with nothing to attend to attend to everything (finite; zeroed by the caller):
        # backends disagree on what an all-False row gives (NaN or 0), and NaN * 0 is NaN.
        attn_mask = attend | ~rows
    if backend is None:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    try:
        with _sdpa_backend_context(backend):
            return F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=attn_mask,
                dropout_p=dropout_p,
                is_causal=is_causal,
                scale=scale,
            )
    except RuntimeError as err:
        raise RuntimeError(
            f"SDPA backend {backend!r} cannot run q {tuple(q.shape)} {q.dtype} on "
            f"{q.device} (mask={attn_mask is not None}, causal={causal}, "
            f"dropout_p={dropout_p}); pass backend=None to let PyTorch choose, or pick "
            f"another of {SDPA_BACKENDS}. PyTorch said: {err}"
        ) from err


# ----------------------------------------------------------------------------- public API


@typecheck
def attention_core(
    q: Float[Tensor, "b h n dh"],
    k: Float[Tensor, "b h nk dh"],
    v: Float[Tensor, "b h nk dh"],
    *,
    key_padding_mask: Bool[Tensor, "b nk"] | None = None,
    core: str | None = None,
    backend: str | None = None,
    dropout_p: float = 0.0,
    block_size: int = 128,
    causal: bool = False,
    scale: float | None = None,
) -> Float[Tensor, "b h n dh"]:
    """Scaled dot-product attention of per-head queries, keys and values.

    Args:
        q: queries, ``(b, h, n, dh)``.
        k, v: keys and values, ``(b, h, nk, dh)``.
        key_padding_mask: ``(b, nk)``, True where a key is padding and must be ignored.
        core: ``"naive"`` (oracle), ``"sdpa"`` or ``"online"`` (O(N) memory); ``None`` for
            :func:`default_attention_core` (``"sdpa"`` unless the environment says otherwise).
        backend: only with ``core="sdpa"``: pin ``"math"``, ``"flash"``, ``"efficient"`` or
            ``"cudnn"``; ``None`` lets PyTorch choose.
        dropout_p: dropout on the attention weights (pass 0 in eval mode).
        block_size: tile size of the ``online`` core (queries and keys).
        causal: query ``i`` attends to keys ``j <= i`` only.
        scale: score scale, default ``1 / sqrt(dh)``.

    Returns:
        ``(b, h, n, dh)``; zeros for query rows whose every visible key is padding.

    Raises:
        ValueError: unknown core or backend, backend with a core other than sdpa, bad
            ``dropout_p`` / ``block_size``, or a mask that is not a ``(b, nk)`` bool tensor.
        RuntimeError: a pinned SDPA backend cannot run these inputs (PyTorch's reason kept).
    """
    core = _resolve_core(core)
    _check_backend(backend)
    _check_block_size(block_size)
    if backend is not None and core != "sdpa":
        raise ValueError(
            f"backend={backend!r} applies only to core='sdpa', got core={core!r}; "
            "pass backend=None or core='sdpa'"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if q.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"q, k, v must be (b, h, n, dh), (b, h, nk, dh), (b, h, nk, dh); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    _check_mask(key_padding_mask, q.shape[0], k.shape[2])
    return _attend(q, k, v, key_padding_mask, core, backend, dropout_p, block_size, causal, scale)


def _check_mask(key_padding_mask: Tensor | None, b: int, nk: int) -> None:
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (b, nk)
    ):
        raise ValueError(
            f"key_padding_mask must be a bool tensor of shape (batch, keys) = {(b, nk)} with "
            f"True marking padding; got {key_padding_mask.dtype} "
            f"{tuple(key_padding_mask.shape)} (convert with mask.bool(); invert a "
            "True-means-keep mask with ~mask)"
        )


def _attend(q, k, v, key_padding_mask, core, backend, dropout_p, block_size, causal, scale):
    """Dispatch to a core on validated arguments (the module validates its own once)."""
    n, dh = q.shape[2], q.shape[3]
    nk = k.shape[2]
    if scale is None:
        scale = 1.0 / math.sqrt(dh)
    rows = _rows_with_keys(key_padding_mask, n, nk, causal)
    if core == "sdpa":
        out = _sdpa(q, k, v, key_padding_mask, causal, dropout_p, scale, backend, rows)
    elif core == "naive":
        out = _naive(q, k, v, key_padding_mask, causal, dropout_p, scale)
    else:
        out = online_attention(q, k, v, key_padding_mask, causal, dropout_p, scale, block_size)
    if rows is not None:
        out = out * rows
    return out


class Attention(nn.Module):
    """Multi-head self-attention: fused QKV ``Linear``, a selectable core, output ``Linear``.

    Same parameters (and names) as ``timm.layers.Attention`` without q/k norms: ``qkv`` maps
    ``d -> 3d`` laid out as ``(3, heads, head_dim)``, ``proj`` maps ``d -> d``. The ``core``
    and ``backend`` attributes may be changed at any time; weights do not depend on them.

    Args:
        dim: model width ``d``; must be divisible by ``heads``.
        heads: number of heads.
        qkv_bias, proj_bias: biases of the two projections.
        dropout: dropout on the attention weights, active in training mode only.
        core: ``"sdpa"``, ``"naive"`` or ``"online"``; ``None`` (default) reads
            :func:`default_attention_core` when the module is built.
        backend: pins an SDPA backend (used only while ``core == "sdpa"``).
        block_size: tile size of the ``online`` core.
        rope: a :class:`~jepa_blocks.positions.RotaryEmbedding` of width ``dim // heads``;
            queries and keys are rotated by the ``positions`` given to ``forward``, before
            the core. ``None`` (default): no positions inside the attention.

    Raises:
        ValueError: ``dim`` not divisible by ``heads``, unknown core/backend, bad dropout or
            block size, ``rope`` not a RotaryEmbedding of width ``dim // heads``.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        dropout: float = 0.0,
        core: str | None = None,
        backend: str | None = None,
        block_size: int = 128,
        rope: RotaryEmbedding | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if heads < 1 or dim < 1 or dim % heads != 0:
            raise ValueError(
                f"dim {dim} is not divisible by heads {heads}; choose heads dividing dim "
                f"(e.g. heads={math.gcd(dim, max(heads, 1)) or 1}) or change dim"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._core = _resolve_core(core)
        self._backend = _check_backend(backend)
        self.block_size = _check_block_size(block_size)
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        factory = {"device": device, "dtype": dtype}
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, **factory)
        self.proj = nn.Linear(dim, dim, bias=proj_bias, **factory)
        if rope is not None and (
            not isinstance(rope, RotaryEmbedding) or rope.head_dim != self.head_dim
        ):
            raise ValueError(
                f"rope must be a RotaryEmbedding of head width dim // heads = {self.head_dim}, "
                f"got {rope!r}; build it with RotaryEmbedding({self.head_dim}, axes=...)"
            )
        self.rope = rope

    @property
    def core(self) -> str:
        """The attention core; assign a name from ``ATTENTION_CORES`` to switch."""
        return self._core

    @core.setter
    def core(self, value: str) -> None:
        self._core = _check_core(value)

    @property
    def backend(self) -> str | None:
        """The pinned SDPA backend, or None for PyTorch's choice."""
        return self._backend

    @backend.setter
    def backend(self, value: str | None) -> None:
        self._backend = _check_backend(value)

    @typecheck
    def forward(
        self,
        x: Float[Tensor, "b n {self.dim}"],
        key_padding_mask: Bool[Tensor, "b n"] | None = None,
        positions: Shaped[Tensor, "b n a"] | Shaped[Tensor, "n a"] | None = None,
    ) -> Float[Tensor, "b n {self.dim}"]:
        """Attend over the ``n`` tokens of each sequence; padded keys (mask True) are ignored.

        Query rows whose whole sequence is padding come out as ``proj`` of zeros (its bias).
        ``positions``: per-token coordinates, required with ``rope`` and refused without it.
        """
        b, n, _ = x.shape
        _check_mask(key_padding_mask, b, n)
        if (positions is None) != (self.rope is None):
            raise ValueError(
                "positions are given but this Attention has no rope; build it with "
                "rope=RotaryEmbedding(dim // heads, axes=...) or drop positions"
                if self.rope is None
                else "this Attention rotates queries and keys (rope); pass positions=(b, n, "
                f"{self.rope.axes}) or ({n}, {self.rope.axes}) coordinates, e.g. "
                "grid_coordinates(grid)"
            )
        # Plain reshape/permute rather than einops here: this path runs on every call of
        # launch-bound blocks (the aggregator), where microseconds of Python show up.
        # (b, n, 3 * h * dh) -> (3, b, h, n, dh), as timm lays out its fused qkv weight.
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.rope is not None:
            self.rope.check_positions(positions, b, n)
            cos, sin = self.rope.angles(positions, q.dtype)
            q, k = self.rope.rotate(q, cos, sin), self.rope.rotate(k, cos, sin)
        out = _attend(
            q,
            k,
            v,
            key_padding_mask,
            self._core,
            self._backend if self._core == "sdpa" else None,
            self.dropout if self.training else 0.0,
            self.block_size,
            False,
            None,
        )
        # (b, h, n, dh) -> (b, n, h * dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dim))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, heads={self.heads}, core={self._core!r}, "
            f"backend={self._backend!r}, dropout={self.dropout}, block_size={self.block_size}"
        )
