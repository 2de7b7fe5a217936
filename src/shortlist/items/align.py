"""QARM item alignment: a projection head on frozen content embeddings, trained on behaviour pairs.

QARM (Luo et al., arXiv 2411.11739; reference/PAPERS.md section 3) fixes the "representation
unmatching" of multimodal item embeddings: embeddings pretrained on NLP/CV tasks do not place items
that users treat alike close together. It fine-tunes the encoder with an in-batch contrastive loss on
(trigger, target) pairs of business-similar items (Swing item-to-item pairs and user-to-item pairs,
see :mod:`shortlist.data.pairs`). Here the content encoder stays frozen and only a small projection
head on top of its embeddings is trained, which is cheap and works with any encoder.

Notation: N items (1..N, row 0 = padding), D content size, D' = ``dim_out``, B pairs per batch,
tau the temperature, ``f`` the projection head, ``z = f(x) / ||f(x)||``.

Loss (in-batch InfoNCE, each trigger's positive is its target, the other targets are negatives)::

    logits[i, j] = <z_trigger_i, z_target_j> / tau                      # (B, B)
    loss_t2g     = mean_i  -log softmax_j(logits[i, :])[i]
    loss         = (loss_t2g + loss_g2t) / 2    (symmetric; loss_g2t uses logits.T)

Columns that are not true negatives are masked out of the softmax (set to -inf): a column j != i
whose target is the same item as row i's target (in-batch duplicate), or is row i's trigger itself
(pair (a, b) next to (b, a)). The reverse direction masks the same way with the roles swapped.

What QARM does not state (PAPERS.md: [UNVERIFIED]) and is chosen here: the temperature (0.07, the
CLIP/SimCLR default), the embedding size, and that only a projection head is trained.

Example:
    >>> aligner = QARMAligner(AlignConfig(dim_out=64, epochs=5)).fit(content, train_pairs)  # doctest: +SKIP
    >>> aligned = aligner.transform(content)                        # (N+1, 64), unit rows  # doctest: +SKIP
    >>> recall_at_k(aligned, test_pairs, k=50)                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shortlist.data._checks import _bad, _is_int
from shortlist.data.pairs import Pairs

log = logging.getLogger(__name__)

_RERANK_MARGIN = 16  # extra faiss candidates re-scored exactly by recall_at_k


def _is_pos_real(x: object) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool)
        and math.isfinite(x)
        and x > 0
    )


@dataclass(frozen=True)
class AlignConfig:
    """Parameters of :class:`QARMAligner`."""

    dim_out: int = 128  # D', size of the aligned embeddings
    hidden: int = 0  # 0: linear head; > 0: residual MLP head with this hidden width
    temperature: float = 0.07  # tau; UNVERIFIED: QARM does not state it (CLIP/SimCLR default)
    epochs: int = 10  # passes over the training pairs
    batch_size: int = 1024  # B; larger batches give more in-batch negatives
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    seed: int = 0  # seeds the head's initialisation and the pair shuffling
    symmetric: bool = True  # average trigger->target and target->trigger InfoNCE
    normalize_input: bool = True  # L2-normalise content rows before the head

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, low in (("dim_out", 1), ("hidden", 0), ("epochs", 1), ("batch_size", 2)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise _bad(name, owner, f"an int >= {low}", value)
        for name in ("temperature", "lr"):
            if not _is_pos_real(getattr(self, name)):
                raise _bad(name, owner, "a finite float > 0", getattr(self, name))
        wd = self.weight_decay
        if not (
            _is_pos_real(wd)
            or (isinstance(wd, int | float) and not isinstance(wd, bool) and wd == 0)
        ):
            raise _bad("weight_decay", owner, "a finite float >= 0", wd)
        if not _is_int(self.seed) or self.seed < 0:
            raise _bad("seed", owner, "an int >= 0", self.seed)
        for name in ("symmetric", "normalize_input"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, owner, "a bool", getattr(self, name))


class ProjectionHead(nn.Module):
    """``f(x) = W x`` (``hidden == 0``) or ``W x + W2 gelu(W1 x + b1) + b2`` (residual MLP).

    ``W`` (D -> D', no bias) starts (semi-)orthogonal, so at initialisation the head preserves the
    content geometry exactly when D' >= D and approximately otherwise; the MLP branch starts at
    zero (``W2 = 0``), so training begins from that linear map.
    """

    def __init__(self, dim_in: int, dim_out: int, hidden: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out, bias=False)
        nn.init.orthogonal_(self.linear.weight)
        self.mlp: nn.Sequential | None = None
        if hidden > 0:
            self.mlp = nn.Sequential(
                nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out)
            )
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, D')
        out = self.linear(x)
        if self.mlp is not None:
            out = out + self.mlp(x)
        return out


def info_nce(
    z_trigger: torch.Tensor,
    z_target: torch.Tensor,
    trigger_ids: torch.Tensor,
    target_ids: torch.Tensor,
    temperature: float,
    symmetric: bool = True,
) -> torch.Tensor:
    """In-batch InfoNCE of unit-norm (B, D') rows; see the module docstring for the masking.

    Args:
        z_trigger, z_target: (B, D') L2-normalised embeddings of the pairs' triggers and targets.
        trigger_ids, target_ids: (B,) item indices, used to mask columns that hold the positive's
            item again (or the anchor's own item) from the negatives.
        temperature: tau.
        symmetric: also score target -> trigger and average the two directions.

    Returns:
        The scalar mean loss.
    """
    logits = z_trigger @ z_target.T / temperature  # (B, B)
    eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    labels = torch.arange(len(logits), device=logits.device)
    # trigger i -> column j (target j): drop j != i whose item is target i or trigger i
    same = (target_ids[None, :] == target_ids[:, None]) | (
        target_ids[None, :] == trigger_ids[:, None]
    )
    loss = F.cross_entropy(logits.masked_fill(same & ~eye, float("-inf")), labels)
    if symmetric:
        # target i -> row j (trigger j): drop j != i whose item is trigger i or target i
        same_r = (trigger_ids[None, :] == trigger_ids[:, None]) | (
            trigger_ids[None, :] == target_ids[:, None]
        )
        loss_r = F.cross_entropy(logits.T.masked_fill(same_r & ~eye, float("-inf")), labels)
        loss = (loss + loss_r) / 2
    return loss


def _check_embeddings(embeddings: object, owner: str, dim: int | None = None) -> np.ndarray:
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] < 2 or emb.shape[1] < 1:
        raise ValueError(
            f"{owner} needs embeddings of shape (N+1, D) with N >= 1 (row 0 = padding); got shape {emb.shape}."
        )
    if not np.issubdtype(emb.dtype, np.number) or np.issubdtype(emb.dtype, np.complexfloating):
        raise TypeError(f"{owner} needs real-valued embeddings; got dtype {emb.dtype}.")
    if dim is not None and emb.shape[1] != dim:
        raise ValueError(f"{owner}: the aligner was fitted on D={dim} but got D={emb.shape[1]}.")
    emb = emb.astype(np.float32, copy=False)
    if not np.isfinite(emb).all():
        row = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise ValueError(f"{owner}: embeddings hold NaN or infinite values (first at row {row}).")
    return emb


def _check_pairs(pairs: object, n_items: int, owner: str) -> Pairs:
    if not isinstance(pairs, Pairs):
        raise TypeError(f"{owner} needs a shortlist.data.pairs.Pairs; got {type(pairs).__name__}.")
    if len(pairs) == 0:
        raise ValueError(f"{owner} needs at least one pair; got an empty Pairs.")
    top = int(max(pairs.trigger.max(), pairs.target.max()))
    if top > n_items:
        raise ValueError(
            f"{owner}: pairs name item {top} but the embeddings cover items 1..{n_items}."
        )
    return pairs


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class QARMAligner:
    """Behaviour alignment of item content embeddings (QARM item alignment, projection-head variant).

    Args:
        config: an :class:`AlignConfig` (default: ``AlignConfig()``).

    Attributes (after :meth:`fit`):
        projection_: the trained :class:`ProjectionHead` (D -> D'), in eval mode.
        loss_history_: mean training loss of each epoch.
        n_features_in_: D.
        fit_time_s_: wall time of :meth:`fit`.
    """

    def __init__(self, config: AlignConfig | None = None) -> None:
        self.config = config

    def _config(self) -> AlignConfig:
        config = self.config if self.config is not None else AlignConfig()
        if not isinstance(config, AlignConfig):
            raise TypeError(
                f"QARMAligner needs an AlignConfig; got {type(config).__name__} instead."
            )
        return config

    def _prepare(self, emb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(_unit_rows(emb) if self._config().normalize_input else emb)

    def fit(self, embeddings: np.ndarray, pairs: Pairs) -> QARMAligner:
        """Train the projection head on ``pairs`` over frozen ``embeddings``.

        Args:
            embeddings: (N+1, D) content embeddings, row i for item i (row 0 unused).
            pairs: training (trigger, target) pairs over items 1..N. Each row is one example per
                epoch (pair weights are not used); call ``Pairs.deduplicate`` first to count a
                repeated pair once.

        Returns:
            self.
        """
        cfg = self._config()
        emb = _check_embeddings(embeddings, "QARMAligner.fit")
        pairs = _check_pairs(pairs, emb.shape[0] - 1, "QARMAligner.fit")
        start = time.perf_counter()
        x = self._prepare(emb)  # (N+1, D)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            head = ProjectionHead(emb.shape[1], cfg.dim_out, cfg.hidden)
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        trig_all = torch.from_numpy(pairs.trigger.astype(np.int64))
        targ_all = torch.from_numpy(pairs.target.astype(np.int64))
        rng = np.random.default_rng(cfg.seed)
        n, bs = len(pairs), min(cfg.batch_size, len(pairs))
        n_batches = max(1, n // bs)  # the last partial batch is dropped (fewer negatives)
        history: list[float] = []
        head.train()
        for epoch in range(cfg.epochs):
            perm = torch.from_numpy(rng.permutation(n))
            total = 0.0
            for b in range(n_batches):
                idx = perm[b * bs : (b + 1) * bs]
                t_ids, g_ids = trig_all[idx], targ_all[idx]  # (B,), (B,)
                z_t = F.normalize(head(x[t_ids]), dim=-1)  # (B, D')
                z_g = F.normalize(head(x[g_ids]), dim=-1)  # (B, D')
                loss = info_nce(z_t, z_g, t_ids, g_ids, cfg.temperature, cfg.symmetric)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
            history.append(total / n_batches)
            log.info(
                "QARMAligner epoch %d/%d: loss %.4f (%d batches of %d pairs, %.1fs)",
                epoch + 1,
                cfg.epochs,
                history[-1],
                n_batches,
                bs,
                time.perf_counter() - start,
            )
        self.projection_ = head.eval()
        self.loss_history_ = history
        self.n_features_in_ = emb.shape[1]
        self.fit_time_s_ = time.perf_counter() - start
        return self

    def transform(self, embeddings: np.ndarray, *, batch_rows: int = 65536) -> np.ndarray:
        """Aligned embeddings: (N+1, D) -> (N+1, D') float32 with unit rows.

        All-zero input rows (padding, items without content) stay zero.
        """
        if not hasattr(self, "projection_"):
            raise RuntimeError(
                "This QARMAligner instance is not fitted yet. Call 'fit' with embeddings and pairs "
                "before using 'transform'."
            )
        emb = _check_embeddings(embeddings, "QARMAligner.transform", self.n_features_in_)
        x = self._prepare(emb)
        out = np.empty((len(emb), self.projection_.linear.out_features), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(emb), batch_rows):
                out[s : s + batch_rows] = F.normalize(
                    self.projection_(x[s : s + batch_rows]), dim=-1
                ).numpy()
        out[~emb.any(axis=1)] = 0.0
        return out

    def fit_transform(self, embeddings: np.ndarray, pairs: Pairs) -> np.ndarray:
        return self.fit(embeddings, pairs).transform(embeddings)


def recall_at_k(
    embeddings: np.ndarray,
    pairs: Pairs,
    k: int = 50,
    exclude_self: bool = True,
    *,
    block: int = 1024,
) -> float:
    """Fraction of (trigger, target) pairs whose target is among the trigger's k nearest items.

    Neighbours are the k items of 1..N with the largest inner product with the trigger's row (pass
    unit rows for cosine); with ``exclude_self`` the trigger itself is not a candidate. Row 0
    (padding) is never a candidate. Search is exact: faiss ``IndexFlatIP`` proposes the top
    ``k + 1 + 16`` items, which are re-scored in float64 and ordered by (score desc, item id asc),
    so exact ties (items with identical content) and float32 rounding cannot make the result
    depend on BLAS threading or memory alignment.

    Args:
        embeddings: (N+1, D) item embeddings.
        pairs: the (trigger, target) pairs to score, e.g. held-out pairs.
        k: the cut-off.
        exclude_self: drop the trigger from its own neighbour list.
        block: triggers re-scored at a time (memory: block * (k + 17) * D float64).
    """
    if not _is_int(k) or k < 1:
        raise _bad("k", "recall_at_k", "an int >= 1", k)
    emb = _check_embeddings(embeddings, "recall_at_k")
    pairs = _check_pairs(pairs, emb.shape[0] - 1, "recall_at_k")
    n_items = emb.shape[0] - 1
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(np.ascontiguousarray(emb[1:]))  # faiss id j is item j + 1
    triggers, inverse = np.unique(pairs.trigger, return_inverse=True)  # (T,), (P,)
    n_cand = min(k + int(exclude_self) + _RERANK_MARGIN, n_items)
    _, ids = index.search(np.ascontiguousarray(emb[triggers]), n_cand)  # (T, C)
    cand_all = ids.astype(np.int64) + 1  # faiss pads with -1 -> 0, never a real item
    emb64 = emb.astype(np.float64)
    top = np.zeros((len(triggers), min(k, n_cand)), dtype=np.int64)  # (T, k), 0 = empty slot
    for s in range(0, len(triggers), block):
        trig, cand = triggers[s : s + block], cand_all[s : s + block]  # (b,), (b, C)
        score = np.einsum("bd,bcd->bc", emb64[trig], emb64[cand])  # (b, C) exact re-score
        valid = cand > 0
        if exclude_self:
            valid &= cand != trig[:, None]
        score = np.where(valid, score, -np.inf)
        order = np.lexsort((cand, -score))[:, : top.shape[1]]  # score desc, then item id asc
        best = np.take_along_axis(cand, order, axis=1)
        top[s : s + block] = np.where(np.take_along_axis(valid, order, axis=1), best, 0)
    hit = (top[inverse] == pairs.target[:, None]).any(axis=1)
    return float(hit.mean())
