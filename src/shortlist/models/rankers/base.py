"""The ranker interface shared by CTR models, their common config fields and the DNN head.

Notation: B rows (candidates) per batch.

A ranker is a config dataclass + an ``nn.Module`` registered by name, like every model. The trainer
and the evaluator see only:

- ``compute_loss(batch: CTRBatch) -> LossOutput``: binary cross-entropy (log loss) on the labels;
- ``predict_proba(batch) -> (B,)``: click probabilities (call ``model.eval()`` first).

``batch`` is a :class:`~shortlist.data.ctr.batches.CTRBatch` or, for ``predict_proba``, any mapping
of field name -> tensor (what a server builds for a request's candidates).

Example:
    >>> model = build_model("deepfm", features=data.spec, embed_dim=16)
    >>> loss = model.compute_loss(batch).loss
    >>> model.eval(); p = model.predict_proba(batch)     # (B,) in (0, 1)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from shortlist.data.ctr.batches import CTRBatch
from shortlist.data.ctr.features import FeatureSpec
from shortlist.models.base import LossOutput, Model

Features = Mapping[str, torch.Tensor]


@dataclass
class RankerConfig:
    """Fields every ranker config has (each model's config adds its own)."""

    features: FeatureSpec | dict[str, Any]  # filled in from the dataset; a dict when read from JSON
    exclude_fields: list[str] = field(default_factory=list)  # fields of the dataset not to use
    embed_dim: int = 16  # D of every field embedding (RecBole's ML-1M benchmark: 16)
    hidden: list[int] = field(default_factory=lambda: [200, 80])  # DNN head widths
    dropout: float = 0.0
    batch_norm: bool = False  # BatchNorm before each hidden layer of the head
    activation: Literal["relu", "prelu", "dice"] = "relu"  # dice: DIN's data-adaptive PReLU
    # dropout before each hidden Linear (the head's input included) instead of after each activation
    dropout_first: bool = False
    # xavier: Xavier-normal Linear weights and zero biases, as RecBole (torch: PyTorch's defaults)
    linear_init: Literal["torch", "xavier"] = "torch"
    # xavier_joint: one Xavier std for all embedding tables, as RecBole's single token table
    embed_init: Literal["xavier", "xavier_joint"] = "xavier"

    def __post_init__(self) -> None:
        spec = FeatureSpec.from_dict(self.features)  # type: ignore[arg-type]
        self.features = spec.without(self.exclude_fields) if self.exclude_fields else spec
        self.exclude_fields = list(self.exclude_fields)
        self.hidden = [int(h) for h in self.hidden]
        name = type(self).__name__
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(
                f"The 'embed_dim' parameter of {name} must be an int >= 1. Got {self.embed_dim!r} instead."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"The 'dropout' parameter of {name} must be in [0, 1). Got {self.dropout!r} instead."
            )
        if self.activation not in ("relu", "prelu", "dice"):
            raise ValueError(
                f"The 'activation' parameter of {name} must be 'relu', 'prelu' or 'dice'. Got {self.activation!r} instead."
            )
        if not isinstance(self.dropout_first, bool):
            raise ValueError(
                f"The 'dropout_first' parameter of {name} must be a bool. Got {self.dropout_first!r} instead."
            )
        if self.linear_init not in ("torch", "xavier"):
            raise ValueError(
                f"The 'linear_init' parameter of {name} must be 'torch' or 'xavier'. Got {self.linear_init!r} instead."
            )
        if self.embed_init not in ("xavier", "xavier_joint"):
            raise ValueError(
                f"The 'embed_init' parameter of {name} must be 'xavier' or 'xavier_joint'. Got {self.embed_init!r} instead."
            )
        if not self.features.fields:
            raise ValueError(f"{name}: the feature spec has no fields left to use.")

    @property
    def spec(self) -> FeatureSpec:
        assert isinstance(self.features, FeatureSpec)
        return self.features


class Dice(nn.Module):
    """Dice, DIN's activation (Zhou et al., KDD 2018, eq. 7): ``f(s) = p(s) s + (1 - p(s)) a s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))``, the mean and variance taken over the batch
    in training and as running averages at inference (a BatchNorm without scale or shift, as the
    official code's ``dice``: epsilon 1e-9), ``a`` learned per unit and started at 0.

    Input (B, H) -> (B, H).
    """

    def __init__(self, width: int, eps: float = 1e-9) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, eps=eps, affine=False)
        self.alpha = nn.Parameter(torch.zeros(width))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.norm(s))
        return p * s + (1.0 - p) * self.alpha * s


def activation_layer(name: str, width: int) -> nn.Module:
    """The head's activation after a Linear of ``width`` units: relu, prelu or dice."""
    if name == "prelu":
        return nn.PReLU(width)
    if name == "dice":
        return Dice(width)
    return nn.ReLU()


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
    activation: str = "relu",
    out_dim: int | None = 1,
    dropout_first: bool = False,
) -> nn.Sequential:
    """The DNN head: [BatchNorm] -> Linear -> act -> Dropout per hidden width, then Linear(out_dim).

    ``dropout_first``: Dropout -> [BatchNorm] -> Linear -> act per hidden width instead, so the
    head's input (the field embeddings) is dropped and the output layer's input is not, the order
    of RecBole's ``MLPLayers`` (its DeepFM, DCNV2, DIN heads)."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        if dropout and dropout_first:
            layers.append(nn.Dropout(dropout))
        if batch_norm:
            layers.append(nn.BatchNorm1d(d))
        layers += [nn.Linear(d, h), activation_layer(activation, h)]
        if dropout and not dropout_first:
            layers.append(nn.Dropout(dropout))
        d = h
    if out_dim is not None:
        layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def features_of(batch: CTRBatch | Features) -> Features:
    return batch.features if isinstance(batch, CTRBatch) else batch


class Ranker(Model):
    """A CTR ranker (CAN, DIN, DeepFM, DCNv2): see the module docstring."""

    config: RankerConfig

    def head_mlp(self, in_dim: int, out_dim: int | None = 1) -> nn.Sequential:
        """The config's DNN (``hidden``, ``dropout``, ``batch_norm``, ``activation``) from ``in_dim``
        to ``out_dim`` (None: the last hidden layer's output)."""
        c = self.config
        return mlp(
            in_dim,
            c.hidden,
            dropout=c.dropout,
            batch_norm=c.batch_norm,
            activation=c.activation,
            out_dim=out_dim,
            dropout_first=c.dropout_first,
        )

    @property
    def embed_std(self) -> Literal["joint"] | None:
        """The ``std`` of the main :class:`FeatureEmbedding`: None (Xavier normal per table) or
        ``"joint"`` (one Xavier std over all tables, as RecBole's single token table), by ``embed_init``."""
        return "joint" if self.config.embed_init == "xavier_joint" else None

    def init_linear(self) -> None:
        """Re-initialise every ``nn.Linear`` as the config says; each ranker calls it last in its
        constructor. ``"xavier"``: Xavier-normal weights and zero biases, what RecBole's context-aware
        models do (their ``_init_weights``); ``"torch"`` keeps PyTorch's defaults."""
        if self.config.linear_init == "xavier":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    @abstractmethod
    def logits(self, features: Features) -> torch.Tensor:
        """(B,) click logits."""

    def compute_loss(self, batch: CTRBatch) -> LossOutput:
        logits = self.logits(batch.features)
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch.label.float())
        return LossOutput(loss=loss, metrics={"rows": float(batch.num_rows)})

    @torch.no_grad()
    def predict_proba(self, batch: CTRBatch | Features) -> torch.Tensor:
        """(B,) click probabilities, float32."""
        return torch.sigmoid(self.logits(features_of(batch)).float())
