"""The retriever interface shared by every sequential model, and save/load of any registered model.

Notation: B batch rows, L positions (left-padded, most recent event last), D model width,
N items (1..N; row 0 of an item table is padding), k recommendations per row.

A retriever is a config dataclass + an ``nn.Module`` registered by name. The trainer and the
evaluator see only this interface:

- ``compute_loss(batch: SequenceBatch) -> LossOutput``: next-item loss over every real position;
- ``recommend(batch: EvalBatch, k, exclude=None) -> TopK``: top-k items over the whole catalogue
  for the user state after the last history event, optionally excluding given items.

Example:
    >>> model = build_model("sasrec", num_items=100, max_len=20, dim=32)
    >>> model.save_pretrained("runs/x/model")
    >>> same = load_model("runs/x/model")
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from shortlist.atomic import atomic_path, write_json
from shortlist.data.batches import EvalBatch, SequenceBatch
from shortlist.registry import Registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class LossOutput:
    """A training step's loss and detached scalars to log."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TopK:
    """Top-k recommendations: ``ids`` (B, k) int64 item indices 1..N, ``scores`` (B, k), best first."""

    ids: torch.Tensor
    scores: torch.Tensor


class Model(nn.Module, ABC):
    """Base of every registered model: holds its config and saves/loads itself.

    Subclasses set ``config_class`` and take their config as the only constructor argument.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}."
            )
        self.config = config

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- save / load ------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (with the registered name) and ``model.safetensors``, atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model": self.name, **dataclasses.asdict(self.config)}
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        write_json(directory / CONFIG_FILE, config)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, map_location: str | torch.device = "cpu"
    ) -> Model:
        """Rebuild the model saved in ``directory`` (works on the base class: the name picks the class)."""
        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file():
            raise FileNotFoundError(
                f"{cfg_path}: no saved model here (expected {CONFIG_FILE} and {WEIGHTS_FILE})."
            )
        raw = json.loads(cfg_path.read_text())
        model_cls = MODELS.get(raw.pop("model"))
        if cls is not Model and not issubclass(model_cls, cls):
            raise TypeError(f"{directory} holds a {model_cls.__name__}, not a {cls.__name__}.")
        model = model_cls(model_cls.config_class(**raw))
        state = load_file(directory / WEIGHTS_FILE, device=str(map_location))
        model.load_state_dict(state)
        return model


class Retriever(Model):
    """A sequential retriever (SASRec, HSTU, ELASTIC, KSA): see the module docstring."""

    @abstractmethod
    def compute_loss(self, batch: SequenceBatch) -> LossOutput: ...

    @abstractmethod
    def user_states(self, batch: EvalBatch) -> torch.Tensor:
        """(B, D) user representation after the last history event (the query for retrieval)."""

    @abstractmethod
    def item_table(self) -> torch.Tensor:
        """(N+1, D) item representations scored against user states; row 0 is padding."""

    def score_all(self, batch: EvalBatch) -> torch.Tensor:
        """(B, N+1) scores of every item; column 0 (padding) is -inf."""
        scores = self.user_states(batch) @ self.item_table().T
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def recommend(self, batch: EvalBatch, k: int, exclude: torch.Tensor | None = None) -> TopK:
        """Top-k items over the catalogue.

        Args:
            exclude: (B, X) item indices to exclude per row (0 entries are ignored), e.g. the history.
        """
        scores = self.score_all(batch).float()
        if exclude is not None:
            scores.scatter_(1, exclude.long(), float("-inf"))
            scores[:, 0] = float("-inf")
        k = min(k, scores.shape[1] - 1)
        top = torch.topk(scores, k, dim=1)
        return TopK(ids=top.indices, scores=top.values)


MODELS: Registry[type[Model]] = Registry("model")


def register(name: str):
    """``@register("sasrec")``: add a model class to the registry under ``name``."""

    def decorator(cls: type[Model]) -> type[Model]:
        cls.name = name
        return MODELS.add(name, cls)

    return decorator


def build_model(name: str, **config: Any) -> Model:
    """Build a registered model from keyword config values (unknown keys raise a clear error)."""
    cls = MODELS.get(name)
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {unknown} for model {name!r}. Valid keys: {sorted(known)}."
        )
    return cls(cls.config_class(**config))


def build_model_from_section(section: Mapping[str, Any], **data: Any) -> Model:
    """Build the model a config's ``model:`` section describes (``{"name": ..., **config}``), with
    the values that come from the data (``num_items`` for a retriever, ``features`` for a ranker)."""
    if "name" not in section:
        raise ValueError(f"A model section needs a 'name' key. Got keys {sorted(section)}.")
    config = {k: v for k, v in section.items() if k != "name"}
    both = sorted(set(config) & set(data))
    if both:
        raise ValueError(
            f"The model section of {section['name']!r} sets {both}, which come from the data."
        )
    return build_model(section["name"], **config, **data)


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> Model:
    return Model.from_pretrained(directory, map_location)
