"""Evaluate a ranker on one split of a CTR dataset: predicted probabilities -> AUC, GAUC, log loss.

Example:
    >>> result = evaluate_ctr(model, data, "test", batch_size=8192)
    >>> result.metrics          # {"auc": ..., "gauc": ..., "logloss": ...}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shortlist.data.ctr.batches import CTRLoader
from shortlist.data.ctr.dataset import CTRData
from shortlist.eval.ctr_metrics import ctr_metrics
from shortlist.models.rankers.base import Ranker

CTR_EVAL_BATCH = 8192  # rows per batch when a ranker is evaluated, unless a config says otherwise


@dataclass
class CTREvalResult:
    """Metrics of one split, with the per-row probabilities, labels and users they came from."""

    metrics: dict[str, float]
    probs: np.ndarray
    labels: np.ndarray
    users: np.ndarray


@torch.no_grad()
def evaluate_ctr(
    model: Ranker,
    data: CTRData,
    part: str,
    *,
    batch_size: int = CTR_EVAL_BATCH,
    device: torch.device | str = "cpu",
) -> CTREvalResult:
    """AUC, GAUC and log loss of ``model`` on ``part`` (``"valid"`` or ``"test"``), with the
    probabilities of every row of ``data.parts[part]`` in row order."""
    if not isinstance(model, Ranker):
        raise TypeError(
            f"evaluate_ctr needs a Ranker (CAN, DIN, DeepFM, DCNv2); got {type(model).__name__}."
        )
    was_training = model.training
    model.eval()
    probs, labels, users = [], [], []
    loader = CTRLoader(data, part, batch_size=batch_size, shuffle=False, world_size=1)
    for batch in loader:
        probs.append(model.predict_proba(batch.to(device)).cpu().numpy())
        labels.append(batch.label.numpy())
        users.append(batch.user.numpy())
    model.train(was_training)
    p, y, u = np.concatenate(probs), np.concatenate(labels), np.concatenate(users)
    return CTREvalResult(ctr_metrics(y, p, u), p, y, u)
