"""The ``online`` attention core: the FlashAttention-2 algorithm (tiled online softmax) in plain
PyTorch ops, no Triton and no compiled extension.

Its custom autograd function saves only ``q, k, v``, the output and the per-row log-sum-exp
(plus a per-key padding bias when masked) and recomputes the probabilities tile by tile in
backward, so the state kept for backward grows as O(N), not O(N^2); working memory is one
score tile of ``block_size`` keys by as many query rows as fit ~16 MiB. Half types are
computed in fp32. Reached through :class:`~jepa_blocks.layers.attention.Attention` with
``core="online"`` or :func:`~jepa_blocks.layers.attention.attention_core`, which validate the
arguments; this module trusts them.
"""


import torch
from einops import rearrange
from torch import Tensor

__all__ = ["online_attention"]

# A finite stand-in for -inf in the online core: a block whose keys are all masked then gives
# exp(0) = 1 "garbage" that the next real block's rescaling factor exp(NEG - m) = 0 wipes out,
# instead of exp(-inf - -inf) = NaN.
_NEG = -1.0e30




def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _keep_mask(shape, dropout_p, seed, tile, device) -> Tensor:
    # One generator per tile, seeded from (call seed, tile index): backward regenerates the
    # exact forward mask whatever order it visits the tiles in.
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + tile)
    return torch.rand(shape, generator=gen, device=device) >= dropout_p


# Query rows per tile are chosen so that one (bh, rows, block) score tile holds about this many
# bytes: tall tiles mean few, large PyTorch ops (per-op overhead, and on a CPU shared with other
# processes every op is a thread barrier), while a tile stays O(N * block), never O(N^2).
_TILE_BYTES = 16 * 2**20


def _query_block(n: int, bh: int, block: int, element_size: int) -> int:
    rows = _TILE_BYTES // max(1, bh * block * element_size)
    rows = max(block, rows // block * block)  # a multiple of the key block
    return min(rows, max(n, 1))


def _tiles(n: int, nk: int, block: int, q_block: int, causal: bool):
    """``(tile, i0, i1, j0, j1, causal_cut, last)`` for every tile with a visible key.

    Key blocks hold ``block`` keys, query blocks ``q_block`` rows. ``causal_cut`` marks tiles
    in which some key lies after some query (they need the triangular mask); tiles entirely
    in the future of their queries are skipped.
    """
    n_kblocks = -(-nk // block)
    for bi, i0 in enumerate(range(0, n, q_block)):
        i1 = min(i0 + q_block, n)
        k_end = min(nk, i1) if causal else nk
        for bj, j0 in enumerate(range(0, k_end, block)):
            j1 = min(j0 + block, k_end)
            yield bi * n_kblocks + bj, i0, i1, j0, j1, causal and j1 - 1 > i0, j1 == k_end


def _tile(scratch: Tensor, bh: int, rows: int, cols: int) -> Tensor:
    """A contiguous ``(bh, rows, cols)`` view at the start of a reused flat buffer.

    Tiles are written into one buffer allocated per call rather than freshly allocated per
    tile: a tile is megabytes, and a fresh allocation of that size is a fresh mapping whose
    page faults (expensive in VMs) can cost as much as the GEMM filling it.
    """
    return scratch[: bh * rows * cols].view(bh, rows, cols)


def _scores(q_scaled, k_t, bias, i0, i1, j0, j1, causal_cut, scratch) -> Tensor:
    """One tile of ``q k^T / sqrt(dh) + padding bias``: ``(bh, bq, bk)``, in ``scratch``."""
    s = _tile(scratch, q_scaled.shape[0], i1 - i0, j1 - j0)
    if bias is None:
        torch.bmm(q_scaled[:, i0:i1], k_t[:, :, j0:j1], out=s)
    else:  # the bias rides in the GEMM's C operand
        torch.baddbmm(bias[:, :, j0:j1], q_scaled[:, i0:i1], k_t[:, :, j0:j1], out=s)
    if causal_cut:
        rows = torch.arange(i0, i1, device=s.device)[:, None]
        cols = torch.arange(j0, j1, device=s.device)[None, :]
        s.masked_fill_(cols > rows, _NEG)
    return s


class _OnlineAttention(torch.autograd.Function):
    """FlashAttention-2 forward/backward in PyTorch ops over ``(bh, n, dh)`` tensors.

    Saved for backward: ``q, k, v``, the output and the log-sum-exp ``(bh, n, 1)`` (plus the
    ``(bh, 1, nk)`` padding bias when masked) -- all O(N). Probabilities are recomputed tile
    by tile in backward, into scratch tiles reused across the loop and updated in place.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, causal, scale, block, dropout_p, seed):
        bh, n, _ = q.shape
        nk, dv = k.shape[1], v.shape[-1]
        q_scaled = q * scale
        k_t = k.transpose(1, 2)
        out = torch.empty(bh, n, dv, dtype=q.dtype, device=q.device)
        lse = torch.empty(bh, n, 1, dtype=q.dtype, device=q.device)
        q_block = _query_block(n, bh, block, q.element_size())
        scratch = q.new_empty(bh * min(q_block, n) * min(block, nk))
        row_max = row_sum = acc = None
        for tile, i0, i1, j0, j1, cut, last in _tiles(n, nk, block, q_block, causal):
            p = _scores(q_scaled, k_t, bias, i0, i1, j0, j1, cut, scratch)
            tile_max = p.amax(dim=-1, keepdim=True)
            if j0 == 0:  # first key block of this query block: nothing to rescale yet
                row_max = tile_max
                p.sub_(row_max).exp_()
                row_sum = p.sum(dim=-1, keepdim=True)
            else:
                new_max = torch.maximum(row_max, tile_max)
                correction = row_max.sub_(new_max).exp_()
                row_max = new_max
                p.sub_(row_max).exp_()
                row_sum.mul_(correction).add_(p.sum(dim=-1, keepdim=True))
                acc.mul_(correction)
            if dropout_p > 0.0:  # 1 / (1 - p) of inverted dropout is applied once, below
                p.mul_(_keep_mask(p.shape, dropout_p, seed, tile, q.device))
            if j0 == 0:
                acc = torch.bmm(p, v[:, j0:j1])
            else:
                acc.baddbmm_(p, v[:, j0:j1])
            if last:
                torch.div(acc, row_sum * (1.0 - dropout_p), out=out[:, i0:i1])
                torch.add(row_max, row_sum.log_(), out=lse[:, i0:i1])
        ctx.save_for_backward(q, k, v, out, lse, bias)
        ctx.config = (causal, scale, block, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, bias = ctx.saved_tensors
        causal, scale, block, dropout_p, seed = ctx.config
        bh, n, dh = q.shape
        nk = k.shape[1]
        # Contiguous: autograd often hands over an expanded (stride-0) gradient, and strided
        # GEMM operands make bmm fall back to one copied matrix per batch entry.
        grad_out = grad_out.to(q.dtype).contiguous()
        # D = rowsum(dO * O) = rowsum(P * dP): the softmax-Jacobian term of FA2.
        delta = (grad_out * out).sum(dim=-1, keepdim=True)
        q_scaled = q * scale
        k_t, v_t = k.transpose(1, 2), v.transpose(1, 2)
        q_block = _query_block(n, bh, block, q.element_size())
        tile_numel = bh * min(q_block, n) * min(block, nk)
        scratch_p, scratch_ds = q.new_empty(tile_numel), q.new_empty(tile_numel)
        # Contiguous per-block accumulators: in-place GEMMs into strided slices of one big
        # gradient fall back to one small GEMM per batch entry.
        starts = range(0, nk, block)
        dk_blocks = [k.new_zeros(bh, min(block, nk - j0), dh) for j0 in starts]
        dv_blocks = [v.new_zeros(bh, min(block, nk - j0), v.shape[-1]) for j0 in starts]
        dq_blocks = []
        dq_i = None
        for tile, i0, i1, j0, j1, cut, last in _tiles(n, nk, block, q_block, causal):
            if j0 == 0:
                dq_i = q.new_zeros(bh, i1 - i0, dh)
            dout_i, dk_j, dv_j = grad_out[:, i0:i1], dk_blocks[j0 // block], dv_blocks[j0 // block]
            p = _scores(q_scaled, k_t, bias, i0, i1, j0, j1, cut, scratch_p)
            p.sub_(lse[:, i0:i1]).exp_()
            ds = torch.bmm(dout_i, v_t[:, :, j0:j1], out=_tile(scratch_ds, bh, i1 - i0, j1 - j0))
            if dropout_p > 0.0:
                keep = _keep_mask(p.shape, dropout_p, seed, tile, q.device)
                dv_j.baddbmm_((p * keep).transpose(1, 2), dout_i, alpha=1.0 / (1.0 - dropout_p))
                ds.mul_(keep).div_(1.0 - dropout_p)
            else:
                dv_j.baddbmm_(p.transpose(1, 2), dout_i)
            ds.sub_(delta[:, i0:i1]).mul_(p)  # dS = P * (dP - D)
            dq_i.baddbmm_(ds, k[:, j0:j1])
            dk_j.baddbmm_(ds.transpose(1, 2), q_scaled[:, i0:i1])
            if last:
                dq_blocks.append(dq_i)
        dq = torch.cat(dq_blocks, dim=1).mul_(scale)
        dk = torch.cat(dk_blocks, dim=1)
        dv = torch.cat(dv_blocks, dim=1)
        return dq, dk, dv, None, None, None, None, None, None


def online_attention(q, k, v, key_padding_mask, causal, dropout_p, scale, block_size):
    """``(b, h, n, dh)`` queries against ``(b, h, nk, dh)`` keys and values; see the module."""
    b, h, n, _ = q.shape
    nk = k.shape[-2]
    compute = _compute_dtype(q.dtype)
    q2 = rearrange(q, "b h n dh -> (b h) n dh").to(compute)
    k2 = rearrange(k, "b h n dh -> (b h) n dh").to(compute)
    v2 = rearrange(v, "b h n dh -> (b h) n dh").to(compute)
    bias = None
    if key_padding_mask is not None:
        # Additive key bias, ((b h), 1, nk): 0 for keys, _NEG for padding. O(N) memory.
        bias = torch.zeros(b, 1, 1, nk, dtype=compute, device=q.device)
        bias = bias.masked_fill(key_padding_mask[:, None, None, :], _NEG)
        bias = rearrange(bias.expand(b, h, 1, nk), "b h one nk -> (b h) one nk").contiguous()
    seed = 0
    if dropout_p > 0.0:
        if q.is_cuda and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                "the online core's dropout cannot be captured in a CUDA graph: its seed is "
                "drawn on the host, so every replay would reuse one dropout mask; use "
                "core='sdpa' (whose RNG make_graphed_callables handles) or dropout=0"
            )
        # Drawn from the global RNG so torch.manual_seed makes runs reproducible.
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    # The core picks its own precision (half types in fp32, above): under autocast its GEMMs
    # would be re-cast to bf16/fp16 and clash with its fp32 in-place accumulators.
    with torch.autocast(q.device.type, enabled=False):
        out = _OnlineAttention.apply(q2, k2, v2, bias, causal, scale, block_size, dropout_p, seed)
    return rearrange(out, "(b h) n dh -> b h n dh", b=b).to(q.dtype)
