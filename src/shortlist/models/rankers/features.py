"""Embedding of a feature specification: one table per vocabulary, shapes per field kind.

Notation: B rows, F fields, D embedding width, M values of a multi-valued field, L sequence
positions, d values of a dense field.

The specification itself (:class:`FeatureSpec`, :class:`Field`, :func:`hash_bucket`) lives in the
data layer (:mod:`shortlist.data.ctr.features`), so that data pipelines, rankers and the server read
the same declaration; it is re-exported here. :class:`FeatureEmbedding` turns a batch into
embeddings:

- sparse (B,) -> (B, D); multi (B, M) -> (B, M, D); sequence (B, L) -> (B, L, D); index 0 embeds to
  zeros (padding / missing);
- dense (B, d) -> (B, D) through a per-field linear map;

and :meth:`FeatureEmbedding.stack` gives the (B, F, D) field matrix that DeepFM and DCNv2 interact
(multi-valued and sequence fields mean-pooled over their non-padding values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from shortlist.data.ctr.features import FeatureSpec, Field, hash_bucket

__all__ = ["FeatureEmbedding", "FeatureSpec", "Field", "hash_bucket", "masked_mean"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) values, (B, L) bool mask -> (B, D) mean over the masked-in positions (0 if none)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class FeatureEmbedding(nn.Module):
    """Embedding tables for every vocabulary of ``spec`` (shared by fields with the same ``vocab``).

    Args:
        spec: the feature specification.
        dim: D, the width of every embedding.
        fields: the fields to embed (default: all of ``spec``).
        std: initial standard deviation of the tables: None = Xavier normal per table; ``"joint"``
            = Xavier normal as if all tables were one (std sqrt(2 / (sum of sizes + D))), which is
            what RecBole's context-aware models do: they keep every token field in one table.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        dim: int,
        fields: list[Field] | None = None,
        std: float | Literal["joint"] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.fields = list(fields if fields is not None else spec.fields)
        self.dim = dim
        tables: dict[str, int] = {}
        for f in self.fields:
            if f.categorical:
                tables.setdefault(f.table, f.vocab_size)
        self.tables = nn.ModuleDict(
            {name: nn.Embedding(size, dim, padding_idx=0) for name, size in tables.items()}
        )
        self.dense = nn.ModuleDict(
            {f.name: nn.Linear(f.vocab_size, dim) for f in self.fields if f.kind == "dense"}
        )
        if std == "joint":
            std = math.sqrt(2.0 / (sum(tables.values()) + dim))
        elif std is not None and not (isinstance(std, int | float) and std > 0):
            raise ValueError(f"FeatureEmbedding: std must be None, 'joint' or > 0. Got {std!r}.")
        for table in self.tables.values():
            if std is None:
                nn.init.xavier_normal_(table.weight)
            else:
                nn.init.normal_(table.weight, std=float(std))
            with torch.no_grad():
                table.weight[0].zero_()

    def field(self, name: str, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One field's embedding: (B, D), (B, M, D) or (B, L, D) by kind (see the module docstring)."""
        f = self.spec.field(name)
        x = features[name]
        if f.kind == "dense":
            return self.dense[name](x.float())
        return self.tables[f.table](x.long())

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every field's embedding, by name."""
        return {f.name: self.field(f.name, features) for f in self.fields}

    def stack(
        self, features: Mapping[str, torch.Tensor], emb: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(B, F, D): one vector per field; multi and sequence fields mean-pooled over non-padding."""
        emb = emb if emb is not None else self(features)
        cols = []
        for f in self.fields:
            e = emb[f.name]
            if f.kind in ("multi", "sequence"):
                e = masked_mean(e, features[f.name] > 0)
            cols.append(e)
        return torch.stack(cols, dim=1)
