"""Tests of shortlist.items.encoders: the offline TF-IDF + SVD encoder (shapes, normalisation,
determinism, similarity, Chinese text, errors), item_texts on item tables, and the lazy
sentence-transformers loader."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest

from shortlist.items.encoders import (
    ENCODERS,
    NotFittedError,
    SentenceTransformerEncoder,
    TfidfSvdEncoder,
    build_encoder,
    item_texts,
)

COLOURS = ["red", "blue", "green", "pink", "black", "gold", "silver", "purple"]
TEXTS = (
    [f"{c} nail polish lacquer shimmer" for c in COLOURS]
    + [f"stainless steel staples {n} count heavy duty" for n in (100, 500, 1000, 5000)]
    + [f"{c} cotton t-shirt size {s}" for c in COLOURS[:4] for s in ("small", "large")]
    + ["红色指甲油 闪亮", "蓝色指甲油 闪亮", "金色指甲油", "粉色指甲油 持久"]
    + ["不锈钢订书钉 一千枚", "不锈钢订书钉 五百枚", "纯棉短袖T恤 红色", "纯棉短袖T恤 蓝色"]
)


def fitted(dim: int = 8) -> TfidfSvdEncoder:
    return TfidfSvdEncoder(dim=dim, min_df=1).fit(TEXTS)


def test_registry_lists_both_encoders() -> None:
    assert ENCODERS.names() == ["sentence-transformers", "tfidf-svd"]
    enc = build_encoder("tfidf-svd", dim=4)
    assert isinstance(enc, TfidfSvdEncoder) and enc.dim == 4


def test_shapes_dtype_and_unit_norm() -> None:
    X = fitted().encode(TEXTS)
    assert X.shape == (len(TEXTS), 8) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(X).all()


def test_fit_is_deterministic() -> None:
    np.testing.assert_array_equal(fitted().encode(TEXTS), fitted().encode(TEXTS))
    other_seed = TfidfSvdEncoder(dim=8, min_df=1, random_state=1).fit(TEXTS).encode(TEXTS)
    # another SVD seed gives another basis, but the same geometry (cosine similarities)
    np.testing.assert_allclose(
        other_seed @ other_seed.T, fitted().encode(TEXTS) @ fitted().encode(TEXTS).T, atol=0.05
    )


def test_similar_texts_are_closer_in_english_and_chinese() -> None:
    enc = fitted(dim=8)
    a, b, c = enc.encode(["red nail polish", "pink nail polish shimmer", "steel staples 500 count"])
    assert a @ b > a @ c + 0.3
    zh = enc.encode(["红色指甲油", "蓝色指甲油 闪亮", "不锈钢订书钉"])
    assert np.linalg.norm(zh, axis=1).min() > 0.99  # char n-grams reach text without spaces
    assert zh[0] @ zh[1] > zh[0] @ zh[2] + 0.3


def test_empty_and_malformed_texts_are_refused_with_clear_messages() -> None:
    enc = fitted()
    with pytest.raises(ValueError, match="text 1 is empty or whitespace only"):
        enc.encode(["red nail polish", "   "])
    with pytest.raises(ValueError, match="at least one text; got an empty sequence"):
        TfidfSvdEncoder(dim=2).fit([])
    with pytest.raises(TypeError, match="text 0 is a NoneType, not a str"):
        enc.encode([None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got a single string"):
        enc.encode("red nail polish")


def test_unfitted_and_bad_parameters() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        TfidfSvdEncoder(dim=4).encode(["x"])
    with pytest.raises(ValueError, match=r"'dim' parameter of TfidfSvdEncoder must be an int >= 1"):
        TfidfSvdEncoder(dim=0).fit(TEXTS)
    with pytest.raises(ValueError, match="dim must be below 28"):
        TfidfSvdEncoder(dim=64, min_df=1).fit(TEXTS)


def test_text_with_no_known_ngram_maps_to_zeros() -> None:
    X = fitted().encode(["qqqq"])
    assert X.shape == (1, 8) and not np.isnan(X).any()


def test_item_texts_joins_existing_fields_in_item_order() -> None:
    items = pl.DataFrame(
        {
            "item": [2, 1, 3],
            "title": ["Staples", "Nail polish", "T-shirt"],
            "brand": ["Stanley", None, ""],
            "category_path": [["Tools", "Fasteners"], ["Beauty", "Nails"], []],
            "category": ["Fasteners", "Nails", None],
        }
    )
    assert item_texts(items) == [
        "Nail polish | Beauty > Nails",
        "Staples | Stanley | Tools > Fasteners",
        "T-shirt",
    ]
    assert item_texts(items.drop("category_path"), fields=("category", "title")) == [
        "Nails | Nail polish",
        "Fasteners | Staples",
        "T-shirt",
    ]
    with pytest.raises(ValueError, match=r"none of the fields \['description'\]"):
        item_texts(items, fields=("description",))


def test_sentence_transformer_encoder_is_lazy_and_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enc = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")  # imports nothing
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        enc.encode(["red nail polish"])
    with pytest.raises(ValueError, match="text 0 is empty"):
        enc.encode([""])  # input is checked before the model is needed
