"""Experiment configs: YAML files validated by pydantic, with ``--set key.sub=value`` overrides.

A config names a dataset, a protocol, a registered model with its settings, and training settings::

    name: beauty-sasrec
    dataset: {name: amazon-beauty}
    protocol: tiger
    model: {name: sasrec, max_len: 50, dim: 64, num_layers: 2, dropout: 0.5}
    train: {epochs: 200, batch_size: 256, lr: 0.001, metric: ndcg@10, patience: 10}

Unknown keys are rejected with the list of valid ones; ``num_items`` of the model is filled in from
the dataset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from shortlist.eval.ctr_protocol import CTR_EVAL_BATCH
from shortlist.eval.protocols import EVAL_BATCH
from shortlist.models.base import MODELS
from shortlist.train.trainer import TrainConfig


class ConfigError(ValueError):
    """An experiment config that does not validate; the message names the file and the key."""


class DatasetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(
        default_factory=dict
    )  # loader parameters (synthetic: its config)
    data_dir: str | None = None


class EvalSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # examples per evaluation batch; None: EVAL_BATCH (256) for a retriever (its batches sorted
    # by history length, shortlist.eval.protocols.evaluate), CTR_EVAL_BATCH (8192) rows for a ranker
    batch_size: int | None = Field(default=None, ge=1)
    exclude_history: bool | None = (
        None  # None = the protocol's rule (hstu masks seen items, tiger does not)
    )
    # validation targets per user: k > 1 also validates on each user's last k - 1 training events,
    # which leave training (shortlist.data.validation.widen_validation); the test set is unchanged
    valid_targets: int = Field(default=1, ge=1)

    def retriever_batch(self) -> int:
        """Examples per batch when a retriever is evaluated."""
        return self.batch_size or EVAL_BATCH

    def ranker_batch(self) -> int:
        """Rows per batch when a ranker (``protocol: ctr``) is evaluated."""
        return self.batch_size or CTR_EVAL_BATCH


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dataset: DatasetSection
    # long: tiger's metrics over whole histories (docs/protocols.md); ctr: a ranker (docs/ranking.md)
    protocol: Literal["hstu", "tiger", "long", "ctr"]
    model: dict[str, Any]
    train: dict[str, Any] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=EvalSection)
    output_dir: str | None = None  # default runs/<name>

    @field_validator("model")
    @classmethod
    def _model_has_registered_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "name" not in value:
            raise ValueError(f"the model section needs a 'name' (one of {MODELS.names()})")
        model_cls = MODELS.get(value["name"])
        known = {f.name for f in dataclasses.fields(model_cls.config_class)}
        known -= {"num_items", "features"}  # filled in from the dataset
        unknown = sorted(set(value) - known - {"name"})
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for model {value['name']!r}; valid keys: {sorted(known)}"
            )
        return value

    @field_validator("train")
    @classmethod
    def _train_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; valid keys: {sorted(known)}")
        TypeAdapter(TrainConfig).validate_python(value)
        return value

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.train)

    def run_dir(self) -> Path:
        return Path(self.output_dir or Path("runs") / self.name)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["train.lr=0.01", "seed=3"]`` -> ``{"train.lr": 0.01, "seed": 3}`` (values read as YAML).

    Raises ``ValueError`` naming the pair that is not ``KEY=VALUE``.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE (e.g. train.lr=0.001), got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 0.01}`` sets ``raw["train"]["lr"]``, creating sections as needed."""
    out = dict(raw)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{where}: {msg}")
        raise ConfigError(f"{source}: invalid experiment config: " + "; ".join(problems)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}.")
    return parse_config(apply_overrides(raw, overrides or {}), str(path))
