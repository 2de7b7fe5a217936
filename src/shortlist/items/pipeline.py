"""Item tokenization end to end: item text -> content embeddings -> (optional) fusion with behaviour
embeddings -> (optional) behaviour alignment -> quantizer -> semantic IDs, with a report
(``shortlist tokenize``).

``TokenizeConfig(behaviour=BehaviourConfig())`` fuses each item's content embedding with a
co-occurrence embedding learned from the *training* part of the interaction log only (the
leave-one-out split: every user's last two events are left out), see
:mod:`shortlist.items.behaviour`; it separates near-duplicate texts bought by different users.

Example:
    >>> result = tokenize(load_dataset("amazon-beauty"), TokenizeConfig(align="swing"))
    >>> result.semantic_ids.metrics().collision_rate
    >>> tokenize(data, TokenizeConfig(behaviour=BehaviourConfig(), quantizer_params={"balanced": True}))
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shortlist.atomic import atomic_path, write_json
from shortlist.data.schema import InteractionData
from shortlist.items.behaviour import BehaviourConfig
from shortlist.items.encoders import ENCODERS, build_encoder, item_texts
from shortlist.items.quantizers import QUANTIZERS
from shortlist.items.semantic_ids import SemanticIds

log = logging.getLogger(__name__)

Align = Literal["none", "swing", "u2i", "both"]
ALIGNS = ("none", "swing", "u2i", "both")


@dataclass
class TokenizeConfig:
    encoder: str = "tfidf-svd"  # a registered text encoder (ENCODERS)
    encoder_params: dict[str, Any] = field(default_factory=dict)
    behaviour: BehaviourConfig | None = None  # fuse content with train co-occurrence embeddings
    align: Align = "none"  # QARM alignment on behaviour pairs: Swing item-item, user-to-item, both
    align_epochs: int = 10
    quantizer: str = "rq-kmeans"  # a registered quantizer (QUANTIZERS)
    levels: int = 3
    codebook_size: int = 256
    quantizer_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.quantizer == "nearest-items":
            raise ValueError(
                "The 'nearest-items' quantizer gives a set of k pool-item ids per item (QARM's VQ code), "
                "not a hierarchical semantic ID: use it through shortlist.items.quantizers directly."
            )
        QUANTIZERS.get(self.quantizer)  # an unknown name fails here, listing the valid ones
        ENCODERS.get(self.encoder)
        if self.behaviour is not None and not isinstance(self.behaviour, BehaviourConfig):
            raise TypeError(
                "The 'behaviour' parameter of TokenizeConfig must be None or a BehaviourConfig. "
                f"Got {type(self.behaviour).__name__} instead."
            )
        if self.align not in ALIGNS:
            raise ValueError(
                f"The 'align' parameter of TokenizeConfig must be one of {ALIGNS}. Got {self.align!r} instead."
            )


@dataclass
class TokenizeResult:
    semantic_ids: SemanticIds
    embeddings: np.ndarray  # (N+1, D) the vectors that were quantized (row 0 = padding, zeros)
    report: dict[str, Any]


def _behaviour_pairs(data: InteractionData, kind: Align, seed: int) -> Any:
    from shortlist.data.pairs import (
        Pairs,
        SwingConfig,
        item_to_item_pairs,
        swing,
        user_to_item_pairs,
    )

    neighbours = swing(data, SwingConfig(seed=seed))
    parts = []
    if kind in ("swing", "both"):
        parts.append(item_to_item_pairs(neighbours))
    if kind in ("u2i", "both"):
        parts.append(user_to_item_pairs(data, neighbours=neighbours))
    return parts[0] if len(parts) == 1 else Pairs.concatenate(parts)


def tokenize(data: InteractionData, config: TokenizeConfig | None = None) -> TokenizeResult:
    """Semantic IDs for every item of ``data`` (see the module docstring)."""
    config = config or TokenizeConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    texts = item_texts(data)
    encoder = build_encoder(config.encoder, **config.encoder_params)
    content = encoder.fit(texts).encode(texts)  # (N, D)
    timings["encode_s"] = time.perf_counter() - t0
    vectors = np.vstack([np.zeros((1, content.shape[1]), dtype=content.dtype), content])  # (N+1, D)
    if config.behaviour is not None:
        from shortlist.data.splits import leave_one_out
        from shortlist.items.behaviour import CooccurrenceSVD, fuse_with_behaviour

        t1 = time.perf_counter()
        train = leave_one_out(data).train  # no validation or test event shapes the codes
        behaviour = CooccurrenceSVD(config.behaviour).fit(train, data.num_items)
        vectors = fuse_with_behaviour(
            vectors, behaviour.embeddings_, config.behaviour.weight
        )  # (N+1, D + D_behaviour), row 0 stays zero
        timings["behaviour_s"] = time.perf_counter() - t1
    if config.align != "none":
        from shortlist.items.align import AlignConfig, QARMAligner

        t1 = time.perf_counter()
        from shortlist.data.splits import training_interactions

        # pairs from the training events only: no validation or test event shapes the codes
        pairs = _behaviour_pairs(training_interactions(data), config.align, config.seed)
        aligner = QARMAligner(AlignConfig(epochs=config.align_epochs, seed=config.seed))
        vectors = aligner.fit(vectors, pairs).transform(vectors)
        vectors[0] = 0.0
        timings["align_s"] = time.perf_counter() - t1
        log.info(
            "aligned on %d %s pairs in %.1fs", len(pairs.trigger), pairs.source, timings["align_s"]
        )
    t2 = time.perf_counter()
    quantizer_cls = QUANTIZERS.get(config.quantizer)
    quantizer = quantizer_cls(
        n_levels=config.levels,
        codebook_size=config.codebook_size,
        seed=config.seed,
        **config.quantizer_params,
    )
    X = np.ascontiguousarray(vectors[1:], dtype=np.float32)
    ids = SemanticIds.from_quantizer(quantizer.fit(X), X)
    timings["quantize_s"] = time.perf_counter() - t2
    metrics = ids.metrics(quantizer, X)
    report = {
        "dataset": data.name,
        "items": data.num_items,
        "config": asdict(config),
        "timings": timings,
        "metrics": metrics.to_dict(),
    }
    return TokenizeResult(semantic_ids=ids, embeddings=vectors, report=report)


def write_outputs(result: TokenizeResult, out_dir: str | Path) -> Path:
    """``semantic_ids`` (SemanticIds.save), ``report.json`` and ``code_usage.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.semantic_ids.save(out / "semantic_ids")
    write_json(out / "report.json", result.report)
    plot_code_usage(
        result.semantic_ids, out / "code_usage.png", title=str(result.report.get("dataset", ""))
    )
    return out


def plot_code_usage(ids: SemanticIds, path: Path, *, title: str) -> Path:
    """Items per code at every level, sorted (a flat curve = balanced codebooks)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    codes = ids.codes_[1:]
    levels = codes.shape[1]
    fig = Figure(figsize=(3.2 * levels, 3.0), dpi=110)
    for level in range(levels):
        ax = fig.add_subplot(1, levels, level + 1)
        counts = np.sort(np.bincount(codes[:, level]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="#3b6ea5")
        used = int((counts > 0).sum())
        name = "dedup" if level == levels - 1 and levels > 1 else f"level {level + 1}"
        ax.set_title(f"{name}: {used} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by use)", fontsize=8)
        ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: items per code", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
