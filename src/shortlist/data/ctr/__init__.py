"""CTR data: the feature specification, prepared datasets, batches, and the named CTR datasets.

Names (the ``dataset.name`` of a CTR experiment config):

- ``ml-1m-ctr``: ML-1M CTR as RecBole defines it (:mod:`shortlist.data.ctr.movielens`);
- ``amazon-beauty-ctr``: Amazon Beauty behaviour CTR as DIN/CAN define it
  (:mod:`shortlist.data.ctr.amazon`); ``semantic_ids`` (a folder written by ``shortlist tokenize``
  / ``SemanticIds.save``) adds semantic-ID fields.

Only NumPy is imported here; the builders (Polars, raw files) are imported when a dataset is built,
so a prepared ``.npz`` loads where neither exists.

Example:
    >>> data = load_ctr_dataset("ml-1m-ctr")           # finds ml-1m through SHORTLIST_DATA
    >>> data.save(".gpu/ml-1m-ctr.npz"); CTRData.load(".gpu/ml-1m-ctr.npz").summary()
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shortlist.data.ctr.batches import CTRBatch, CTRLoader
from shortlist.data.ctr.dataset import CTRData, CTRPart
from shortlist.data.ctr.features import FeatureSpec, Field, hash_bucket
from shortlist.registry import Registry

CTRBuilder = Callable[..., CTRData]
CTR_DATASETS: Registry[CTRBuilder] = Registry("CTR dataset")


def _ml1m(data_dir: str | Path | None = None, **params: Any) -> CTRData:
    from shortlist.data.ctr.movielens import ml1m_ctr
    from shortlist.data.datasets import load_dataset

    return ml1m_ctr(load_dataset("ml-1m", data_dir=data_dir), **params)


def _beauty(
    data_dir: str | Path | None = None, semantic_ids: str | Path | None = None, **params: Any
) -> CTRData:
    from shortlist.data.ctr.amazon import beauty_ctr
    from shortlist.data.datasets import load_dataset

    codes = None
    if semantic_ids is not None:
        from shortlist.items.semantic_ids import SemanticIds

        sids = SemanticIds.load(semantic_ids)
        codes = sids.codes_[:, : sids.n_levels]
    data = load_dataset("amazon-beauty", data_dir=data_dir)
    if codes is not None and codes.shape[0] != data.num_items + 1:
        raise ValueError(
            f"{semantic_ids}: semantic IDs for {codes.shape[0] - 1} items, but amazon-beauty has "
            f"{data.num_items}; tokenize the same dataset (shortlist tokenize amazon-beauty)."
        )
    return beauty_ctr(data, semantic_ids=codes, **params)


CTR_DATASETS.add("ml-1m-ctr", _ml1m)
CTR_DATASETS.add("amazon-beauty-ctr", _beauty)


def load_ctr_dataset(name: str, *, data_dir: str | Path | None = None, **params: Any) -> CTRData:
    """Build a named CTR dataset (an unknown name lists the valid ones); ``params`` go to its builder.

    A ``prepared`` parameter (a ``.npz`` written by :meth:`CTRData.save`) loads that file instead.
    """
    prepared = params.pop("prepared", None)
    builder = CTR_DATASETS.get(name)
    if prepared is not None:
        data = CTRData.load(prepared)
        if data.name != name:
            raise ValueError(f"{prepared} holds {data.name!r}, not {name!r}.")
        return data
    return builder(data_dir=data_dir, **params)


__all__ = [
    "CTR_DATASETS",
    "CTRBatch",
    "CTRData",
    "CTRLoader",
    "CTRPart",
    "FeatureSpec",
    "Field",
    "hash_bucket",
    "load_ctr_dataset",
]
