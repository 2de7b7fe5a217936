"""Published numbers we measure ourselves against, as data (../shared/reference/ANCHORS.md, sections 1-2).

Each :class:`Anchor` is one method's result on one dataset under one evaluation protocol, with the
source it comes from. Dataset names are ours (:mod:`shortlist.data.datasets`; ``ml-20m``,
``amazon-books``, ``amazon-sports`` and ``amazon-toys`` name datasets not registered yet), protocol
names are those of :mod:`shortlist.eval.protocols` (``hstu``, ``tiger``) and metric keys are ours
(``hr@10``, ``ndcg@10``, ``recall@5``, ...).

A number is only comparable with ours when it was measured under the same protocol, so results
reported under another protocol are kept under their own protocol name (``recbole-ml-1m``,
``tiger-history50``, ``openonerec``) and never appear in an ``hstu`` or ``tiger`` table.

Example:
    >>> [a.method for a in anchors_for("amazon-beauty", "tiger")][:3]
    ['SASRec (as reported by TIGER)', 'S3-Rec (as reported by TIGER)', 'TIGER']
    >>> anchors_for("ml-1m", "hstu")[0].metrics["hr@10"]
    0.2853
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["ANCHORS", "Anchor", "anchors_for"]


@dataclass(frozen=True)
class Anchor:
    """One published (or side-by-side measured) result.

    Attributes:
        dataset: our dataset name (``"ml-1m"``, ``"amazon-beauty"``, ...).
        protocol: our protocol name (``"hstu"``, ``"tiger"``, or a name of its own when the
            source's protocol matches none of ours).
        method: the method as the source names it.
        metrics: metric key -> value; only the metrics the source reports.
        source: where the numbers come from, with a date or version where known.
    """

    dataset: str
    protocol: str
    method: str
    metrics: dict[str, float]
    source: str


_HSTU_KEYS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")
_TIGER_KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")

_GR = "meta-recsys/generative-recommenders README, verified 2024-04-15"
_TIGER = "TIGER paper (Rajput et al., NeurIPS 2023), results table"
_GENREC = "phonism/genrec README (independent reproduction, TIGER protocol)"
_RECBOLE_HERE = (
    "RecBole 1.2.1 SASRec measured here 2026-11-28, history 20, 12 epochs "
    "(stopped by a 40-minute limit, still improving)"
)


def _hstu(dataset: str, method: str, *values: float) -> Anchor:
    return Anchor(dataset, "hstu", method, dict(zip(_HSTU_KEYS, values, strict=False)), _GR)


def _tiger(dataset: str, method: str, values: tuple[float, ...], source: str) -> Anchor:
    assert len(values) == len(_TIGER_KEYS), (method, dataset, values)
    return Anchor(dataset, "tiger", method, dict(zip(_TIGER_KEYS, values, strict=True)), source)


ANCHORS: tuple[Anchor, ...] = (
    # -- section 1: HSTU protocol (leave-one-out, all items, seen items masked) -------------------
    _hstu("ml-1m", "SASRec", 0.2853, 0.1603, 0.5474, 0.2185, 0.7528, 0.2498),
    _hstu("ml-1m", "BERT4Rec", 0.2843, 0.1537),
    _hstu("ml-1m", "GRU4Rec", 0.2811, 0.1648),
    _hstu("ml-1m", "HSTU", 0.3097, 0.1720, 0.5754, 0.2307, 0.7716, 0.2606),
    _hstu("ml-1m", "HSTU-large", 0.3294, 0.1893, 0.5935, 0.2481, 0.7839, 0.2771),
    _hstu("ml-20m", "HSTU-large", 0.3556, 0.2098, 0.6143, 0.2671, 0.8074, 0.2965),
    _hstu("amazon-books", "HSTU-large", 0.0478, 0.0262, 0.1082, 0.0393, 0.1908, 0.0517),
    # RecBole's own ML-1M benchmark: ratings >= 3, 10-core, length 50, full ranking. Not the HSTU protocol.
    Anchor("ml-1m", "recbole-ml-1m", "GRU4Rec", {"hr@10": 0.2776, "ndcg@10": 0.1545},
           "RecBole benchmark/hyper/sequential (its own ML-1M protocol)"),
    Anchor("ml-1m", "recbole-ml-1m", "SASRec", {"hr@10": 0.2468, "ndcg@10": 0.1286},
           "RecBole benchmark/hyper/sequential (its own ML-1M protocol)"),
    # -- section 2: TIGER protocol (leave-one-out, history 20, all items, Recall/NDCG @ 5, 10) ----
    _tiger("amazon-beauty", "SASRec (as reported by TIGER)", (0.0387, 0.0249, 0.0605, 0.0318), _TIGER),
    _tiger("amazon-sports", "SASRec (as reported by TIGER)", (0.0233, 0.0154, 0.0350, 0.0192), _TIGER),
    _tiger("amazon-toys", "SASRec (as reported by TIGER)", (0.0463, 0.0306, 0.0675, 0.0374), _TIGER),
    _tiger("amazon-beauty", "S3-Rec (as reported by TIGER)", (0.0387, 0.0244, 0.0647, 0.0327), _TIGER),
    _tiger("amazon-sports", "S3-Rec (as reported by TIGER)", (0.0251, 0.0161, 0.0385, 0.0204), _TIGER),
    _tiger("amazon-toys", "S3-Rec (as reported by TIGER)", (0.0443, 0.0294, 0.0700, 0.0376), _TIGER),
    _tiger("amazon-beauty", "TIGER", (0.0454, 0.0321, 0.0648, 0.0384), _TIGER),
    _tiger("amazon-sports", "TIGER", (0.0264, 0.0181, 0.0400, 0.0225), _TIGER),
    _tiger("amazon-toys", "TIGER", (0.0521, 0.0371, 0.0712, 0.0432), _TIGER),
    _tiger("amazon-beauty", "SASRec (genrec)", (0.0469, 0.0305, 0.0688, 0.0375), _GENREC),
    _tiger("amazon-beauty", "HSTU (genrec)", (0.0486, 0.0340, 0.0708, 0.0412), _GENREC),
    _tiger("amazon-beauty", "TIGER (genrec)", (0.0465, 0.0297, 0.0721, 0.0378), _GENREC),
    _tiger("amazon-beauty", "LC-Rec (genrec)", (0.0525, 0.0352, 0.0791, 0.0438), _GENREC),
    _tiger("amazon-beauty", "SASRec (RecBole, measured here)", (0.0540, 0.0318, 0.0833, 0.0413), _RECBOLE_HERE),
    # Same split and candidates but history 50, not the protocol's 20.
    Anchor("amazon-beauty", "tiger-history50", "SASRec (RecBole, measured here)",
           {"recall@10": 0.0664, "ndcg@10": 0.0330},
           "RecBole 1.2.1 SASRec measured here 2026-11-28, history 50, 5 epochs"),
    Anchor("amazon-beauty", "openonerec", "OpenOneRec (8B LLM)", {"recall@10": 0.0924},
           "OpenOneRec report (its own protocol)"),
)  # fmt: skip


def anchors_for(dataset: str, protocol: str) -> list[Anchor]:
    """The anchors measured on ``dataset`` under ``protocol``, in ANCHORS.md order.

    An empty list when there are none (a dataset or protocol nobody has published numbers for).
    """
    if not isinstance(dataset, str) or not isinstance(protocol, str):
        raise TypeError(
            f"anchors_for expects two names (str). Got {type(dataset).__name__} and "
            f"{type(protocol).__name__} instead."
        )
    # copies: the caller may edit the metrics without changing the table
    return [
        replace(a, metrics=dict(a.metrics))
        for a in ANCHORS
        if a.dataset == dataset and a.protocol == protocol
    ]
