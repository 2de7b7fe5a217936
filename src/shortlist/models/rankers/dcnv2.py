"""DCN-V2 (Wang et al., WWW 2021): explicit feature crosses with full-rank cross layers beside a DNN.

Notation: B rows, F fields, D embedding width, K = F * D, x_0 (B, K) the concatenated field embeddings
(multi-valued and sequence fields mean-pooled over their non-padding values).

Cross layer l (paper eq. 1): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, with W_l (K, K).
``structure = "stacked"``: logit = w^T DNN(x_L); ``"parallel"``: logit = w^T [x_L ; DNN(x_0)]
(paper Fig. 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from shortlist.models.base import register
from shortlist.models.rankers.base import Features, Ranker, RankerConfig
from shortlist.models.rankers.features import FeatureEmbedding


@dataclass
class DCNv2Config(RankerConfig):
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    cross_layers: int = 3
    structure: Literal["stacked", "parallel"] = "parallel"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.structure not in ("stacked", "parallel"):
            raise ValueError(
                f"The 'structure' parameter of DCNv2Config must be 'stacked' or 'parallel'. Got {self.structure!r} instead."
            )
        if not isinstance(self.cross_layers, int) or self.cross_layers < 0:
            raise ValueError(
                f"The 'cross_layers' parameter of DCNv2Config must be an int >= 0. Got {self.cross_layers!r} instead."
            )


class CrossNetwork(nn.Module):
    """L full-rank cross layers: (B, K) -> (B, K) (module docstring)."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        for lin in self.linears:
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for lin in self.linears:
            x = x0 * lin(x) + x
        return x


@register("dcnv2")
class DCNv2(Ranker):
    config_class = DCNv2Config

    def __init__(self, config: DCNv2Config) -> None:
        super().__init__(config)
        c = config
        self.embedding = FeatureEmbedding(c.spec, c.embed_dim, std=self.embed_std)
        width = len(c.spec.fields) * c.embed_dim
        self.cross = CrossNetwork(width, c.cross_layers)
        self.dnn = self.head_mlp(width, out_dim=None)
        deep_out = c.hidden[-1] if c.hidden else width
        out_in = deep_out if c.structure == "stacked" else width + deep_out
        self.out = nn.Linear(out_in, 1)
        self.init_linear()

    def logits(self, features: Features) -> torch.Tensor:
        x0 = self.embedding.stack(features).flatten(1)  # (B, K)
        if self.config.structure == "stacked":
            h = self.dnn(self.cross(x0))
        else:
            h = torch.cat([self.cross(x0), self.dnn(x0)], dim=-1)
        return self.out(h).squeeze(-1)
