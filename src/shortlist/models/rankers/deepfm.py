"""DeepFM (Guo et al., IJCAI 2017): a factorization machine and a DNN over shared field embeddings.

Notation: B rows, F fields, D embedding width, e_f (B, D) the embedding of field f (multi-valued and
sequence fields mean-pooled over their non-padding values).

    logit = w_0 + sum_f w(x_f)                                   first order (1-wide embeddings)
          + 1/2 * sum_d [(sum_f e_f,d)^2 - sum_f e_f,d^2]        FM second order (paper eq. 2)
          + DNN(concat_f e_f)                                    deep part (paper eq. 3-5)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from shortlist.models.base import register
from shortlist.models.rankers.base import Features, Ranker, RankerConfig
from shortlist.models.rankers.features import FeatureEmbedding


@dataclass
class DeepFMConfig(RankerConfig):
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])


def fm_interaction(e: torch.Tensor) -> torch.Tensor:
    """(B, F, D) field embeddings -> (B,) sum of all pairwise dot products <e_i, e_j>, i < j."""
    square_of_sum = e.sum(1).pow(2)  # (B, D)
    sum_of_square = e.pow(2).sum(1)  # (B, D)
    return 0.5 * (square_of_sum - sum_of_square).sum(-1)


def fm_terms(first_order: FeatureEmbedding, features: Features, e: torch.Tensor) -> torch.Tensor:
    """(B,) DeepFM's first-order terms (1-wide embeddings ``first_order``) plus the FM second-order
    term over the (B, F, D) field embeddings ``e`` (module docstring, without w_0)."""
    return first_order.stack(features).sum((1, 2)) + fm_interaction(e)


@register("deepfm")
class DeepFM(Ranker):
    config_class = DeepFMConfig

    def __init__(self, config: DeepFMConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = FeatureEmbedding(c.spec, c.embed_dim, std=self.embed_std)
        self.first_order = FeatureEmbedding(c.spec, 1, std=1e-4)
        self.bias = nn.Parameter(torch.zeros(1))
        self.dnn = self.head_mlp(len(c.spec.fields) * c.embed_dim)
        self.init_linear()

    def logits(self, features: Features) -> torch.Tensor:
        e = self.embedding.stack(features)  # (B, F, D)
        deep = self.dnn(e.flatten(1)).squeeze(-1)
        return self.bias + fm_terms(self.first_order, features, e) + deep
