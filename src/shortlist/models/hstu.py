"""HSTU: hierarchical sequential transduction units (Zhai et al., ICML 2024, "Actions Speak Louder
than Words: Trillion-Parameter Sequential Transducers for Generative Recommendations"), as a retriever.

Notation: B batch, L positions (left-padded: the most recent event is at L-1), D width (``dim``),
H heads, dqk attention dim per head, dv linear dim per head, N items, T time buckets.

Follows the research model of meta-recsys/generative-recommenders
(``research/modeling/sequential/hstu.py`` and its ML-1M setup):

- Input: ``E[id] * sqrt(D) + P[pos]``, dropout, zeroed at padding. ``P`` is a learned absolute
  position embedding counted from the oldest kept event (position 0), as the official code does
  with its right-padded rows; here it is computed from the padding mask, so left and right
  padding give the same states. ``position_from="newest"`` counts from the most recent event
  instead (it always has position ``max_len - 1``), as SASRec does: an option, not the official
  model (on Amazon Beauty, where 81% of test histories have fewer than 10 events, most of HSTU's
  Recall@10 gap to SASRec is at those lengths, and this option narrows it: docs/protocols.md).
- Each layer (pre-norm, residual; the norms have no learned scale, eps 1e-6)::

      U, V, Q, K = split(SiLU(LayerNorm(X) @ W1))                 # pointwise projection, no bias
      A[h, i, j] = SiLU(Q_i . K_j + rab_p(i - j) + rab_t(i, j)) / n    for j <= i, j real; else 0
      X = X + W2(dropout(LayerNorm(A V) * U))                      # W2: Linear with bias

  with ``n = max_len``: the official code divides by the padded length of its batches, which is
  a constant (max sequence length + output slots), not by each row's number of events. The
  relative attention bias is one learned scalar per distance ``i - j`` (a table over
  ``0..max_len-1``) plus one per time bucket ``floor(ln(max(|t_i - t_j|, 1)) / 0.301)`` clamped
  to ``0..T``; each layer has its own tables, shared by its heads. Dropout sits before W2, as in
  the official code (not after it).
- Output: L2-normalized states (the official ``l2_norm`` user embedding), scored against the
  L2-normalized item embeddings (cosine); ``normalize=False`` gives the official ``layer_norm``
  alternative and plain dot products with the raw item embeddings.
- Loss: sampled softmax (HSTU's ML-1M setting: 128 uniform negatives, temperature 0.05, on cosine
  similarities, no logQ correction) or full softmax cross-entropy over all items.

Differences from the official code, where our batches force them:

- Time bias: the official code buckets ``t_{i+1} - t_j``, the time of the *next* event (the
  query's request time, which it appends to the history) minus the key's; our batches carry only
  the input events' times, so the bias uses ``t_i - t_j``. Without timestamps (or with
  ``use_time_bias=False``) only the position bias is used (the official code then drops both).
- Sampled softmax shares one set of negatives across the batch (``models/losses.py``) where the
  official code samples 128 per position.
- The position-bias table covers ``i - j >= 0`` only (the official table also holds ``j > i``
  entries, which its causal mask never uses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from shortlist.data.batches import EvalBatch, SequenceBatch
from shortlist.models.base import LossOutput, Retriever, register
from shortlist.models.losses import full_softmax_loss, sampled_softmax_loss
from shortlist.models.next_item import absolute_positions

TIME_BUCKET_WIDTH = 0.301  # official bucketization: floor(ln(max(|dt|, 1)) / 0.301)
NORM_EPS = 1e-6  # layer norms and L2 norms, as in the official code

LOSSES = ("softmax", "sampled_softmax")
# where HSTUConfig.position_from counts absolute positions from
POSITION_FROM = ("oldest", "newest")


@dataclass
class HSTUConfig:
    """HSTU retriever configuration.

    Defaults follow meta-recsys/generative-recommenders ``configs/ml-1m/hstu-sampled-softmax-n128-final.gin``
    (HSTU on ML-1M: item_embedding_dim 50, num_blocks 2, num_heads 1, dqk 50, dv 50, dropout_rate
    0.2, linear_dropout_rate 0.2, max_sequence_length 200, SampledSoftmaxLoss with 128 negatives,
    temperature 0.05, item_l2_norm, user_embedding_norm l2_norm). That run trains with AdamW,
    lr 1e-3, betas (0.9, 0.98), weight decay 0, batch 128. Its HSTU-large variant: num_layers 8,
    num_heads 2, dqk 25, dv 25.
    """

    num_items: int  # N: items are 1..N
    max_len: int = 200  # positions per sequence; also the attention normalizer n
    dim: int = 50  # D: item embedding and residual width
    num_layers: int = 2
    num_heads: int = 1
    dqk: int = 50  # per-head width of Q and K (official attention_dim)
    dv: int = 50  # per-head width of U and V (official linear_dim)
    dropout: float = 0.2  # on the input embeddings
    linear_dropout: float = 0.2  # on LayerNorm(AV) * U, before the output projection
    use_time_bias: bool = True  # add the time-gap bias when the batch has timestamps
    num_time_buckets: int = 128  # T: gaps are bucketed into 0..T (T + 1 learned scalars per layer)
    loss: Literal["softmax", "sampled_softmax"] = "sampled_softmax"
    num_negatives: int = 128  # sampled softmax: uniform negatives shared by the batch
    in_batch_negatives: int = 0  # sampled softmax: targets of other positions used as negatives
    temperature: float = 0.05  # logits divided by this
    normalize: bool = True  # cosine scores (L2-normalized states and items); else LayerNorm + dot
    logq: bool = False  # logQ correction of sampled negatives (the official HSTU loss has none)
    position_from: Literal["oldest", "newest"] = "oldest"  # absolute positions counted from

    def __post_init__(self) -> None:
        ints = (
            ("num_items", 1),
            ("max_len", 1),
            ("dim", 1),
            ("num_layers", 0),
            ("num_heads", 1),
            ("dqk", 1),
            ("dv", 1),
            ("num_time_buckets", 1),
            ("num_negatives", 0),
            ("in_batch_negatives", 0),
        )
        for name, low in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(
                    f"The {name!r} parameter of HSTUConfig must be an int >= {low}. Got {value!r} instead."
                )
        for name in ("dropout", "linear_dropout"):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value < 1.0:
                raise ValueError(
                    f"The {name!r} parameter of HSTUConfig must be a float in [0, 1). Got {value!r} instead."
                )
        if not _is_real(self.temperature) or not self.temperature > 0:
            raise ValueError(
                f"The 'temperature' parameter of HSTUConfig must be a float > 0. Got {self.temperature!r} instead."
            )
        for name in ("use_time_bias", "normalize", "logq"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(
                    f"The {name!r} parameter of HSTUConfig must be a bool. Got {value!r} instead."
                )
        if self.loss not in LOSSES:
            raise ValueError(
                f"The 'loss' parameter of HSTUConfig must be one of {list(LOSSES)}. Got {self.loss!r} instead."
            )
        if self.position_from not in POSITION_FROM:
            raise ValueError(
                f"The 'position_from' parameter of HSTUConfig must be one of {list(POSITION_FROM)}. "
                f"Got {self.position_from!r} instead."
            )
        if self.loss == "sampled_softmax" and self.num_negatives + self.in_batch_negatives < 1:
            raise ValueError(
                "The 'num_negatives' and 'in_batch_negatives' parameters of HSTUConfig must give at "
                "least one negative with loss='sampled_softmax'. Got num_negatives="
                f"{self.num_negatives} and in_batch_negatives={self.in_batch_negatives} instead."
            )


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / max(||x||, 1e-6)`` over the last dim (the official L2 norm; zero rows stay zero)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=NORM_EPS)


def bucketize_time_gaps(timestamps: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """(B, L) event times -> (B, L, L) int64 buckets of |t_i - t_j|.

    ``floor(ln(max(|dt|, 1)) / 0.301)`` clamped to ``0..num_buckets`` (the official
    bucketization; with times in seconds, 1 minute -> 13, 1 day -> 37, 1 year -> 57).
    """
    dt = (timestamps[:, :, None] - timestamps[:, None, :]).abs().clamp(min=1)  # (B, L, L)
    return (torch.log(dt.double()) / TIME_BUCKET_WIDTH).long().clamp(0, num_buckets)


def relative_positions(
    length: int, max_len: int, device: torch.device | None = None
) -> torch.Tensor:
    """(L, L) int64 distance ``i - j`` clamped to ``0..max_len-1`` (0 above the diagonal)."""
    idx = torch.arange(length, device=device)
    return (idx[:, None] - idx[None, :]).clamp(0, max_len - 1)


class _TableLookup(torch.autograd.Function):
    """``table[index]`` for a small 1-D table and a large index, with a histogram backward.

    Autograd's backward of ``table[index]`` (``index_put_`` with accumulate) sorts the index; for
    a (B, L, L) index into ~100 buckets that took 99% of an HSTU training step on an H200 (420 ms
    vs 0.5 ms for ``torch.bincount`` with weights). Under ``torch.use_deterministic_algorithms``
    the backward keeps the deterministic ``index_put_``.
    """

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.size = table.shape[0]
        return table[index]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        index, grad = index.reshape(-1), grad.reshape(-1)
        if torch.are_deterministic_algorithms_enabled():
            table_grad = grad.new_zeros(ctx.size).index_put_((index,), grad, accumulate=True)
        else:
            table_grad = torch.bincount(index, weights=grad.float(), minlength=ctx.size)
        return table_grad.to(grad.dtype), None


def table_lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (table (T,), any index shape) with a fast backward (see ``_TableLookup``)."""
    return _TableLookup.apply(table, index)


def hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    norm: float,
) -> torch.Tensor:
    """Pointwise aggregated attention: ``sum_j SiLU(q_i . k_j + bias_ij) / norm * v_j`` over allowed j.

    Args:
        q, k: (B, L, H, dqk).
        v: (B, L, H, dv).
        bias: relative attention bias broadcastable to (B, L, L), shared by the heads; or None.
        mask: (B, L, L) bool, True where query i may attend to key j.
        norm: the constant n that divides the weights (no softmax: weights need not sum to 1).

    Returns:
        (B, L, H * dv).
    """
    B, L, H, dv = v.shape
    scores = torch.einsum("bihd,bjhd->bhij", q, k)  # (B, H, L, L)
    if bias is not None:
        scores = scores + bias.unsqueeze(-3)
    weights = torch.where(mask.unsqueeze(1), F.silu(scores) / norm, 0.0)  # (B, H, L, L)
    out = torch.einsum("bhij,bjhd->bihd", weights.to(v.dtype), v)  # (B, L, H, dv)
    return out.reshape(B, L, H * dv)


class HSTULayer(nn.Module):
    """One sequential transduction unit: pointwise projection, pointwise attention with a
    relative position/time bias, gated output projection, residual (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        dqk: int,
        dv: int,
        max_len: int,
        num_time_buckets: int,
        linear_dropout: float,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads, self.dqk, self.dv = dim, num_heads, dqk, dv
        # f1 (official "uvqk"): one (D, 2 H dv + 2 H dqk) matrix, no bias, N(0, 0.02)
        self.uvqk = nn.Parameter(torch.empty(dim, 2 * num_heads * (dv + dqk)).normal_(0.0, 0.02))
        self.out = nn.Linear(num_heads * dv, dim)  # f2
        nn.init.xavier_uniform_(self.out.weight)
        self.pos_bias = nn.Parameter(torch.empty(max_len).normal_(0.0, 0.02))  # by distance i - j
        self.time_bias = nn.Parameter(torch.empty(num_time_buckets + 1).normal_(0.0, 0.02))
        self.drop = nn.Dropout(linear_dropout)

    def relative_bias(
        self, rel_pos: torch.Tensor, time_buckets: torch.Tensor | None
    ) -> torch.Tensor:
        """rab^{p,t}: (L, L) distances and optional (B, L, L) time buckets -> (1 or B, L, L)."""
        bias = table_lookup(self.pos_bias, rel_pos).unsqueeze(0)  # (1, L, L)
        if time_buckets is not None:
            bias = bias + table_lookup(self.time_bias, time_buckets)  # (B, L, L)
        return bias

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rel_pos: torch.Tensor,
        time_buckets: torch.Tensor | None,
        norm: float,
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``mask`` (B, L, L) bool, ``rel_pos`` (L, L), ``time_buckets`` (B, L, L)."""
        B, L, D = x.shape
        H, dqk, dv = self.num_heads, self.dqk, self.dv
        uvqk = F.silu(F.layer_norm(x, (D,), eps=NORM_EPS) @ self.uvqk)  # (B, L, 2H(dv+dqk))
        u, v, q, k = uvqk.split([H * dv, H * dv, H * dqk, H * dqk], dim=-1)
        a = hstu_attention(
            q.reshape(B, L, H, dqk),
            k.reshape(B, L, H, dqk),
            v.reshape(B, L, H, dv),
            self.relative_bias(rel_pos, time_buckets),
            mask,
            norm,
        )  # (B, L, H dv)
        gated = u * F.layer_norm(a, (H * dv,), eps=NORM_EPS)  # norm over all heads together
        return x + self.out(self.drop(gated))


@register("hstu")
class HSTU(Retriever):
    """HSTU retriever: see the module docstring.

    Example:
        >>> model = build_model("hstu", num_items=100, max_len=20, dim=32, dqk=16, dv=16)
        >>> loss = model.compute_loss(batch).loss        # batch: SequenceBatch
        >>> top = model.recommend(eval_batch, k=10)      # eval_batch: EvalBatch
    """

    config_class = HSTUConfig

    def __init__(self, config: HSTUConfig) -> None:
        super().__init__(config)
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            HSTULayer(
                c.dim, c.num_heads, c.dqk, c.dv, c.max_len, c.num_time_buckets, c.linear_dropout
            )
            for _ in range(c.num_layers)
        )
        with torch.no_grad():
            # official: items truncated N(0, 0.02) within 2 std; positions xavier-normal
            nn.init.trunc_normal_(self.item_emb.weight, std=0.02, a=-0.04, b=0.04)
            self.item_emb.weight[0].zero_()
            nn.init.xavier_normal_(self.pos_emb.weight)

    def encode(self, ids: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) padded item ids (+ optional (B, L) event times) -> (B, L, D) states, 0 at padding.

        States are L2-normalized with ``normalize=True``, layer-normalized otherwise; L <= max_len.
        """
        c = self.config
        L = ids.shape[1]
        if ids.shape[1] > c.max_len:
            raise ValueError(
                f"Sequences of length {L} exceed HSTU's max_len={c.max_len}; pad/truncate to max_len."
            )
        valid = ids > 0  # (B, L)
        pos = absolute_positions(valid, c.max_len, c.position_from)  # padding zeroed below
        x = self.item_emb(ids) * math.sqrt(c.dim) + self.pos_emb(pos)  # (B, L, D)
        x = self.drop(x) * valid[..., None]
        idx = torch.arange(L, device=ids.device)
        mask = (idx[:, None] >= idx[None, :])[None] & valid[
            :, None, :
        ]  # (B, L, L): causal, real keys
        rel_pos = relative_positions(L, c.max_len, ids.device)  # (L, L)
        buckets = None
        if c.use_time_bias and timestamps is not None:
            if timestamps.shape != ids.shape:
                raise ValueError(
                    f"timestamps must have the shape of the item ids {tuple(ids.shape)}. "
                    f"Got {tuple(timestamps.shape)} instead."
                )
            buckets = bucketize_time_gaps(timestamps, c.num_time_buckets)  # (B, L, L)
        for layer in self.layers:
            x = layer(x, mask, rel_pos, buckets, float(c.max_len)) * valid[..., None]
        if c.normalize:
            return l2_normalize(x)
        return F.layer_norm(x, (c.dim,), eps=NORM_EPS) * valid[..., None]

    def item_table(self) -> torch.Tensor:
        """(N+1, D): L2-normalized item embeddings with ``normalize=True``; row 0 is zero."""
        table = self.item_emb.weight
        return l2_normalize(table) if self.config.normalize else table

    def compute_loss(self, batch: SequenceBatch) -> LossOutput:
        h = self.encode(batch.input_ids, batch.timestamps)  # (B, L, D)
        keep = batch.target_ids > 0
        hidden, targets = h[keep], batch.target_ids[keep]  # (M, D), (M,)
        c = self.config
        table = self.item_table()
        if c.loss == "softmax":
            loss = full_softmax_loss(hidden, targets, table, c.temperature)
        else:
            # states and items are already normalized (normalize=True) or meant raw (False)
            loss = sampled_softmax_loss(
                hidden,
                targets,
                table,
                num_negatives=c.num_negatives,
                in_batch=c.in_batch_negatives,
                temperature=c.temperature,
                normalize=False,
                logq=c.logq,
            )
        return LossOutput(loss=loss, metrics={"positions": float(targets.numel())})

    def user_states(self, batch: EvalBatch) -> torch.Tensor:
        h = self.encode(batch.history, batch.timestamps)  # (B, L, D)
        L = h.shape[1]
        # the last real event: index L-1 with left padding (a row without events gives zeros)
        last = ((batch.history > 0).long() * torch.arange(L, device=h.device)).argmax(1)  # (B,)
        return h[torch.arange(h.shape[0], device=h.device), last]  # (B, D)
