"""CAN: Co-Action Network (Bian, Zhou et al., WSDM 2022, arXiv 2011.05625), as in the official code.

Notation: B rows, T feed positions (L for a behaviour sequence, M for a multi-valued field, 1 for a
sparse field), d = d_in of the first micro-MLP layer (16), P = the induction width, C orders.

Co-action unit (official ``script/model.py::gen_coaction``, ``weight_emb_w = [[16, 8], [8, 4]]``,
no bias, ``orders = 3``, ``order_indep = False``):

- induction side: the candidate's field (``item_id``, ``cate_id``) has its own embedding of width
  P = sum_l d_in,l * d_out,l (+ d_out,l with biases) = 16*8 + 8*4 = 160, sliced in the order
  W1, b1, W2, b2 and reshaped into W1 (16, 8), W2 (8, 4);
- feed side: each behaviour / user feature p (d = 16) has its own co-action embedding too
  (parameter independence: neither table is the main model's);
- for each order c = 1..C: h0 = p ** c (element-wise), h1 = tanh(h0 W1 [+ b1]), h2 = h1 W2 [+ b2]
  (no activation after the last layer), the unit keeps every layer's output: concat(h1, h2) (12);
- outputs of all orders are concatenated (C * 12 = 36), multiplied by the padding mask and summed
  over the T positions -> (B, 36) per (induction, feed) pair.

Each (induction field, feed field) pair has its own induction table (combination independence, the
official ``INDEP_NUM`` crossing); the same micro-MLP serves every order (``order_independent=False``;
True gives each order its own slice, P * C wide). The pairs' outputs are concatenated and appended to
the input of the DIN-style model (:mod:`shortlist.models.rankers.din`: embeddings + attention tower)
before the DNN head (official: 200 -> 80 -> 1).

Choice of pairs (``coaction_pairs``): by default every behaviour sequence with a ``target`` is paired
with that target (Amazon: ``item_id`` x ``hist_item``, ``cate_id`` x ``hist_cate``, the same-type pairs
the paper deploys). On a small catalogue (Amazon Beauty: 16 reviews per item on average) the
``item_id`` induction memorises within an epoch; the frozen Beauty configs keep the coarse pairs
(``cate_id``, ``sid0``), see docs/ranking.md. ML-1M CTR as RecBole defines it has no behaviour sequence, so the natural feed
side there is the user's own fields (T = 1 each, so the sum is a no-op). The candidate is still the
induction side, as in the paper: few candidates, their micro-MLPs reused across users, and the
user-side values pass through them. ``item_id`` x ``user_id`` (or x ``zip``, nearly one zip per
user) is a per-item non-linear user model of 160 + 16 parameters per (item, user) pair that
memorises ML-1M's training rows within two epochs, even with ``coaction_l2``; the frozen config
therefore pairs ``item_id`` with ``gender``, ``age`` and ``occupation`` (per-item demographic
preferences, each estimated from many rows). ``coaction_l2`` adds lambda * mean_rows(||induction||^2
+ ||feed||^2) over the co-action rows a batch uses, a frequency-aware L2 (not in the official code).

Base model (``fm``). The paper presents the co-action unit as a plug-in beside a base model's
feature-interaction modelling. ``fm=True`` makes that base DeepFM instead of DIN alone: the
logit gains DeepFM's bias, first-order terms and FM second-order term over the same main
embeddings (:func:`shortlist.models.rankers.deepfm.fm_terms`), so CAN is then DeepFM +
attention tower + co-action features in the DNN head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from shortlist.data.ctr.batches import CTRBatch
from shortlist.data.ctr.features import FeatureSpec
from shortlist.models.base import LossOutput, register
from shortlist.models.rankers.base import Features, Ranker
from shortlist.models.rankers.deepfm import fm_terms
from shortlist.models.rankers.din import DINConfig, DINTower, behaviour_group
from shortlist.models.rankers.features import FeatureEmbedding


@dataclass
class CANConfig(DINConfig):
    coaction_pairs: list[list[str]] = field(default_factory=list)  # [induction, feed]; [] = default
    layers: list[list[int]] = field(default_factory=lambda: [[16, 8], [8, 4]])  # micro-MLP shapes
    orders: int = 3  # feed p, p**2, ..., p**orders
    bias: bool = False  # micro-MLP biases (the official config has none)
    order_independent: bool = False  # a separate micro-MLP per order
    coaction_std: float = 0.1  # initial std of the co-action (induction and feed) embeddings
    use_attention: bool = True  # the DIN-style attention tower beside the co-action
    coaction_l2: float = 0.0  # L2 penalty on the co-action embedding rows a batch uses (per row)
    fm: bool = False  # DeepFM's first-order and FM terms over the main embeddings (DeepFM base)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layers = [[int(a), int(b)] for a, b in self.layers]
        for (_, out), (nxt, _) in zip(self.layers, self.layers[1:], strict=False):
            if out != nxt:
                raise ValueError(
                    f"The 'layers' parameter of CANConfig must chain (d_out of one = d_in of the next). Got {self.layers}."
                )
        if not isinstance(self.orders, int) or self.orders < 1:
            raise ValueError(
                f"The 'orders' parameter of CANConfig must be an int >= 1. Got {self.orders!r} instead."
            )
        spec = self.spec
        self.coaction_pairs = [list(p) for p in self.coaction_pairs] or default_pairs(spec)
        names = set(spec.names())
        for pair in self.coaction_pairs:
            if len(pair) != 2 or not set(pair) <= names:
                raise ValueError(
                    f"CANConfig: each co-action pair is [induction field, feed field] of the spec "
                    f"{sorted(names)}. Got {pair!r}."
                )
            if spec.field(pair[0]).kind != "sparse":
                raise ValueError(
                    f"CANConfig: the induction side {pair[0]!r} must be a sparse field (a candidate ID), "
                    f"not {spec.field(pair[0]).kind}."
                )
            if spec.field(pair[1]).kind == "dense":
                raise ValueError(
                    f"CANConfig: the feed side {pair[1]!r} must be categorical, not dense."
                )

    @property
    def induction_width(self) -> int:
        """P: micro-MLP parameters per order block (weights and biases)."""
        return sum(a * b + (b if self.bias else 0) for a, b in self.layers)


def default_pairs(spec: FeatureSpec) -> list[list[str]]:
    """[target, sequence] for every behaviour sequence with a target (the paper's same-type pairs)."""
    return [[f.target, f.name] for f in behaviour_group(spec)]  # type: ignore[list-item]


def coaction(
    induction: torch.Tensor,
    feed: torch.Tensor,
    mask: torch.Tensor | None,
    layers: list[list[int]],
    *,
    orders: int,
    bias: bool = False,
    order_independent: bool = False,
) -> torch.Tensor:
    """The co-action unit (module docstring).

    Args:
        induction: (B, P) or (B, C * P) with ``order_independent``: the micro-MLP parameters,
            sliced per layer as W (d_in * d_out) then b (d_out).
        feed: (B, T, d_in) feed-side embeddings.
        mask: (B, T) bool, True at real positions (None = all real).
    Returns:
        (B, C * sum_l d_out,l) co-action output, summed over the T positions.
    """
    B = feed.shape[0]
    per_order = sum(a * b + (b if bias else 0) for a, b in layers)
    outs = []
    for c in range(orders):
        base = c * per_order if order_independent else 0
        h = feed ** (c + 1)  # (B, T, d_in)
        idx = base
        for j, (d_in, d_out) in enumerate(layers):
            w = induction[:, idx : idx + d_in * d_out].view(B, d_in, d_out)
            idx += d_in * d_out
            h = torch.bmm(h, w)  # (B, T, d_out)
            if bias:
                h = h + induction[:, idx : idx + d_out].unsqueeze(1)
                idx += d_out
            if j != len(layers) - 1:
                h = torch.tanh(h)
            outs.append(h)
    out = torch.cat(outs, dim=-1)  # (B, T, C * sum d_out)
    if mask is not None:
        out = out * mask.unsqueeze(-1).to(out.dtype)
    return out.sum(1)


@register("can")
class CAN(Ranker):
    config_class = CANConfig

    def __init__(self, config: CANConfig) -> None:
        super().__init__(config)
        c = config
        spec = c.spec
        self.embedding = FeatureEmbedding(spec, c.embed_dim, std=self.embed_std)
        self.tower = (
            DINTower(self.embedding, spec, c.attention_hidden, c.softmax)
            if c.use_attention
            else None
        )
        width = c.induction_width * (c.orders if c.order_independent else 1)
        d_in = c.layers[0][0]
        # parameter independence: co-action tables apart from the main embeddings
        self.induction = nn.ModuleList(
            nn.Embedding(spec.field(ind).vocab_size, width) for ind, _ in c.coaction_pairs
        )
        feeds = list(dict.fromkeys(feed for _, feed in c.coaction_pairs))
        self.feed = nn.ModuleDict(
            {f: nn.Embedding(spec.field(f).vocab_size, d_in, padding_idx=0) for f in feeds}
        )
        for table in [*self.induction, *self.feed.values()]:
            nn.init.normal_(table.weight, std=c.coaction_std)
        for table in self.feed.values():
            with torch.no_grad():
                table.weight[0].zero_()
        self.coaction_dim = len(c.coaction_pairs) * c.orders * sum(b for _, b in c.layers)
        in_dim = len(spec.fields) * c.embed_dim + self.coaction_dim
        in_dim += self.tower.out_dim if self.tower is not None else 0
        self.head = self.head_mlp(in_dim)
        if c.fm:  # DeepFM's wide part over the same main embeddings (models/rankers/deepfm.py)
            self.first_order = FeatureEmbedding(spec, 1, std=1e-4)
            self.fm_bias = nn.Parameter(torch.zeros(1))
        self.init_linear()

    def coaction_outputs(self, features: Features) -> torch.Tensor:
        """(B, pairs * C * sum d_out): every pair's co-action unit output, concatenated.

        Also sets ``self._penalty``: the mean over rows of the squared norms of the co-action
        embeddings the batch used (the frequency-aware L2 of ``coaction_l2``).
        """
        c = self.config
        outs = []
        penalty = 0.0
        for table, (ind, feed) in zip(self.induction, c.coaction_pairs, strict=True):
            ids = features[feed].long()
            if ids.dim() == 1:
                ids = ids.unsqueeze(1)  # a sparse feed field: T = 1
            induction, fed = table(features[ind].long()), self.feed[feed](ids)
            if c.coaction_l2 and self.training:
                penalty = penalty + induction.pow(2).sum(-1).mean() + fed.pow(2).sum((1, 2)).mean()
            outs.append(
                coaction(
                    induction,
                    fed,
                    ids > 0,
                    c.layers,
                    orders=c.orders,
                    bias=c.bias,
                    order_independent=c.order_independent,
                )
            )
        self._penalty = penalty
        return torch.cat(outs, dim=-1)

    def compute_loss(self, batch: CTRBatch) -> LossOutput:
        out = super().compute_loss(batch)  # sets self._penalty through logits()
        if self.config.coaction_l2 and self.training:
            out.loss = out.loss + self.config.coaction_l2 * self._penalty
        return out

    def logits(self, features: Features) -> torch.Tensor:
        emb = self.embedding(features)
        e = self.embedding.stack(features, emb)  # (B, F, D)
        parts = [e.flatten(1)]
        if self.tower is not None:
            parts.append(self.tower(features, emb))
        parts.append(self.coaction_outputs(features))
        out = self.head(torch.cat(parts, dim=-1)).squeeze(-1)
        if self.config.fm:
            out = out + self.fm_bias + fm_terms(self.first_order, features, e)
        return out
