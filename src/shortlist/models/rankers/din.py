"""DIN: Deep Interest Network (Zhou et al., KDD 2018), as in the official code (``din_attention``).

Notation: B rows, L behaviour positions, D embedding width, G behaviour fields in the group
(``hist_item``, ``hist_cate``, ...), Q = G * D.

The behaviour sequences that have a ``target`` in the feature spec form one group: keys
k_j = concat_g(e(hist_g[j])) (B, L, Q), query q = concat_g(e(target_g)) (B, Q). The local
activation unit scores each position with an MLP over [q, k_j, q - k_j, q * k_j] (80 -> 40 -> 1,
sigmoid activations as in the official code), masks padding, scales by 1/sqrt(Q) and takes a softmax
(the official ``din_attention``), and returns the weighted sum of the keys (B, Q).

The DNN head sees concat(every field's embedding, multi/sequence fields mean-pooled; the attention
output) and outputs one logit. Without behaviour sequences (ML-1M CTR as RecBole defines it) there
is nothing to attend to and DIN reduces to an embedding + MLP model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from shortlist.data.ctr.features import FeatureSpec, Field
from shortlist.models.base import register
from shortlist.models.rankers.base import Features, Ranker, RankerConfig
from shortlist.models.rankers.features import FeatureEmbedding


@dataclass
class DINConfig(RankerConfig):
    attention_hidden: list[int] = field(default_factory=lambda: [80, 40])
    softmax: bool = True  # the official din_attention normalises with a scaled softmax


def behaviour_group(spec: FeatureSpec) -> list[Field]:
    """The sequence fields with a ``target``, in spec order (they share their length L)."""
    return [f for f in spec.of_kind("sequence") if f.target is not None]


class AttentionUnit(nn.Module):
    """DIN's local activation unit over one behaviour group (see the module docstring)."""

    def __init__(self, width: int, hidden: list[int], softmax: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = 4 * width
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Sigmoid()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.score = nn.Sequential(*layers)
        self.softmax = softmax
        self.width = width

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """query (B, Q), keys (B, L, Q), mask (B, L) bool -> (B, Q) attention-pooled keys."""
        q = query.unsqueeze(1).expand_as(keys)  # (B, L, Q)
        s = self.score(torch.cat([q, keys, q - keys, q * keys], dim=-1)).squeeze(-1)  # (B, L)
        if self.softmax:
            s = s / math.sqrt(self.width)
            s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
            w = torch.softmax(s, dim=-1) * mask  # rows with no history get all-zero weights
        else:
            w = s * mask
        return torch.einsum("bl,blq->bq", w, keys)


class DINTower(nn.Module):
    """Embeds the behaviour group and its targets and applies :class:`AttentionUnit`.

    ``out_dim`` is 0 when the spec has no behaviour sequence (the tower then returns (B, 0)).
    """

    def __init__(
        self, emb: FeatureEmbedding, spec: FeatureSpec, hidden: list[int], softmax: bool
    ) -> None:
        super().__init__()
        self.group = behaviour_group(spec)
        width = len(self.group) * emb.dim
        self.out_dim = width
        self.unit = AttentionUnit(width, hidden, softmax) if self.group else None

    def forward(self, features: Features, emb: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.unit is None:
            return next(iter(emb.values())).new_zeros(next(iter(features.values())).shape[0], 0)
        keys = torch.cat([emb[f.name] for f in self.group], dim=-1)  # (B, L, Q)
        query = torch.cat([emb[f.target] for f in self.group], dim=-1)  # (B, Q)
        mask = features[self.group[0].name] > 0  # (B, L)
        return self.unit(query, keys, mask)


@register("din")
class DIN(Ranker):
    config_class = DINConfig

    def __init__(self, config: DINConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = FeatureEmbedding(c.spec, c.embed_dim, std=self.embed_std)
        self.tower = DINTower(self.embedding, c.spec, c.attention_hidden, c.softmax)
        in_dim = len(c.spec.fields) * c.embed_dim + self.tower.out_dim
        self.head = self.head_mlp(in_dim)
        self.init_linear()

    def logits(self, features: Features) -> torch.Tensor:
        emb = self.embedding(features)
        flat = self.embedding.stack(features, emb).flatten(1)  # (B, F * D)
        x = torch.cat([flat, self.tower(features, emb)], dim=-1)
        return self.head(x).squeeze(-1)
