"""Text encoders: item text -> one dense vector per item.

Notation: N texts (items 1..N in catalogue order), D output dimensions.

Two encoders share one small interface (scikit-learn conventions: ``fit(texts) -> self``,
``encode(texts) -> (N, D) float32`` with rows L2-normalised, learned state ends in ``_``):

- :class:`TfidfSvdEncoder` ("tfidf-svd"), the offline default that needs no downloaded weights:
  TF-IDF over word uni/bigrams and over character 3-5-grams inside word boundaries (``char_wb``,
  which works for languages without spaces such as Chinese as well as for English), the two
  sparse matrices side by side, then a truncated SVD (LSA) to D dimensions.
- :class:`SentenceTransformerEncoder` ("sentence-transformers"): a pretrained sentence-transformers
  or Hugging Face model by name or local path, loaded lazily; needs ``pip install
  sentence-transformers``.

:func:`item_texts` turns a dataset's item table into one text per item.

Example:
    >>> data = load_dataset("amazon-beauty")
    >>> texts = item_texts(data)                        # "title | brand | a > b > c | description"
    >>> X = TfidfSvdEncoder(dim=256).fit(texts).encode(texts)   # (N, 256) float32
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import polars as pl

from shortlist.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_FIELDS = ("title", "brand", "category", "description")
FIELD_SEPARATOR = " | "
CATEGORY_SEPARATOR = " > "


class NotFittedError(ValueError, AttributeError):
    """An estimator used before ``fit`` (subclasses both, like scikit-learn's)."""


class TextEncoder(Protocol):
    """What every registered text encoder offers."""

    def fit(self, texts: Sequence[str]) -> TextEncoder: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


ENCODERS: Registry[type] = Registry("text encoder")


def _check_texts(texts: Sequence[str], owner: str) -> list[str]:
    """A list of non-empty strings, or an error naming the first bad element."""
    if isinstance(texts, str):
        raise TypeError(f"{owner} expects a sequence of strings, got a single string.")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{owner} needs at least one text; got an empty sequence.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{owner}: text {i} is a {type(text).__name__}, not a str: {text!r}.")
        if not text.strip():
            raise ValueError(
                f"{owner}: text {i} is empty or whitespace only; every item needs some text "
                "(drop the item or give it a placeholder such as its id)."
            )
    return texts


def _l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, np.finfo(X.dtype).tiny)


@ENCODERS.register("tfidf-svd")
class TfidfSvdEncoder:
    """TF-IDF (word 1-2-grams + char_wb 3-5-grams) -> truncated SVD -> L2-normalised (N, dim).

    Args:
        dim: output dimensions D (SVD components); must be below both the number of fitted texts
            and the number of TF-IDF features.
        word_ngrams, char_ngrams: n-gram ranges of the word and the character analysers.
        min_df: an n-gram must appear in at least this many texts (int) to be kept.
        max_features: keep at most this many n-grams per analyser (most frequent first), or None.
        sublinear_tf: use 1 + log(tf) instead of raw counts.
        char_weight: scale of the character block relative to the word block before the SVD
            (both blocks are row-normalised TF-IDF, so 1.0 weighs them equally).
        n_iter: randomized SVD power iterations.
        random_state: seed of the randomized SVD (the encoder is deterministic for a given seed).

    Fitted attributes: ``word_vectorizer_``, ``char_vectorizer_``, ``svd_``, ``dim_``,
    ``explained_variance_ratio_`` (sum over the kept components).
    """

    def __init__(
        self,
        dim: int = 256,
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (3, 5),
        min_df: int = 2,
        max_features: int | None = 200_000,
        sublinear_tf: bool = True,
        char_weight: float = 1.0,
        n_iter: int = 5,
        random_state: int = 0,
    ) -> None:
        self.dim = dim
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.char_weight = char_weight
        self.n_iter = n_iter
        self.random_state = random_state

    def _validate_params(self) -> None:
        name = type(self).__name__
        for param, low in (("dim", 1), ("min_df", 1), ("n_iter", 1)):
            value = getattr(self, param)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(
                    f"The {param!r} parameter of {name} must be an int >= {low}. Got {value!r} instead."
                )
        if not (isinstance(self.char_weight, int | float) and self.char_weight >= 0):
            raise ValueError(
                f"The 'char_weight' parameter of {name} must be a float >= 0. "
                f"Got {self.char_weight!r} instead."
            )

    def _vectorizers(self, n_texts: int) -> tuple[Any, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        # With very few texts min_df could remove every n-gram; never ask for more than exists.
        min_df = min(self.min_df, n_texts)
        common = {
            "min_df": min_df,
            "max_features": self.max_features,
            "sublinear_tf": self.sublinear_tf,
            "lowercase": True,
            "dtype": np.float32,
        }
        word = TfidfVectorizer(
            analyzer="word",
            ngram_range=self.word_ngrams,
            # \w+ rather than the default 2+ characters: keeps single CJK characters and "3d"
            token_pattern=r"(?u)\b\w+\b",
            **common,
        )
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common)
        return word, char

    def _tfidf(self, texts: list[str], *, fit: bool) -> Any:
        from scipy import sparse

        if fit:
            word = self.word_vectorizer_.fit_transform(texts)
            char = self.char_vectorizer_.fit_transform(texts)
        else:
            word = self.word_vectorizer_.transform(texts)
            char = self.char_vectorizer_.transform(texts)
        return sparse.hstack([word, char * np.float32(self.char_weight)], format="csr")

    def fit(self, texts: Sequence[str]) -> TfidfSvdEncoder:
        """Learn the vocabularies, IDF weights and the SVD basis from ``texts``."""
        from sklearn.decomposition import TruncatedSVD

        self._validate_params()
        texts = _check_texts(texts, f"{type(self).__name__}.fit")
        self.word_vectorizer_, self.char_vectorizer_ = self._vectorizers(len(texts))
        tfidf = self._tfidf(texts, fit=True)  # (N, V_word + V_char) sparse
        limit = min(tfidf.shape)
        if self.dim >= limit:
            raise ValueError(
                f"TfidfSvdEncoder(dim={self.dim}) needs more texts and n-grams than dimensions: "
                f"got {len(texts)} texts and {tfidf.shape[1]} n-gram features, so dim must be "
                f"below {limit}."
            )
        svd = TruncatedSVD(
            n_components=self.dim,
            algorithm="randomized",
            n_iter=self.n_iter,
            random_state=self.random_state,
        )
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            # sklearn divides by the total variance, which is 0 when every text has the same
            # n-gram profile; that case is reported below instead
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            self.svd_ = svd.fit(tfidf)
        self.dim_ = self.dim
        ratio = float(np.nan_to_num(self.svd_.explained_variance_ratio_).sum())
        if not np.isfinite(self.svd_.explained_variance_ratio_).all():
            log.warning(
                "TfidfSvdEncoder: the %d texts have no variance left after n-gram filtering "
                "(min_df=%d); their embeddings cannot tell them apart.",
                len(texts),
                self.min_df,
            )
        self.explained_variance_ratio_ = ratio
        log.info(
            "TfidfSvdEncoder: %d texts, %d n-grams -> %d dims (%.1f%% of the variance)",
            len(texts),
            tfidf.shape[1],
            self.dim,
            100 * self.explained_variance_ratio_,
        )
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised (a text with no known n-gram maps to zeros)."""
        if not hasattr(self, "svd_"):
            raise NotFittedError(
                "This TfidfSvdEncoder is not fitted yet: call fit(texts) before encode(texts)."
            )
        texts = _check_texts(texts, f"{type(self).__name__}.encode")
        Z = self.svd_.transform(self._tfidf(texts, fit=False)).astype(np.float32)  # (N, D)
        return _l2_normalize(Z)

    def fit_encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.fit(texts).encode(texts)


@ENCODERS.register("sentence-transformers")
class SentenceTransformerEncoder:
    """A pretrained sentence-transformers (or plain Hugging Face) model, by hub name or local path.

    The package is imported, and the model loaded, on first use (``fit`` or ``encode``), so that
    building the object is cheap and does not need the package. Nothing is learned: ``fit`` only
    loads the model.

    Args:
        name_or_path: e.g. ``"sentence-transformers/sentence-t5-base"`` or a local folder.
        batch_size: texts per forward pass.
        device: ``"cpu"``, ``"cuda"``... or None for the library's choice.

    Fitted attributes: ``model_``, ``dim_``.
    """

    def __init__(
        self, name_or_path: str, *, batch_size: int = 64, device: str | None = None
    ) -> None:
        self.name_or_path = name_or_path
        self.batch_size = batch_size
        self.device = device

    def _load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ImportError(
                "SentenceTransformerEncoder needs the sentence-transformers package: "
                "pip install sentence-transformers (or use the offline 'tfidf-svd' encoder)."
            ) from err
        self.model_ = SentenceTransformer(str(self.name_or_path), device=self.device)
        dim = self.model_.get_sentence_embedding_dimension()
        if dim is None:  # some models only know their width after a forward pass
            dim = int(self.model_.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim_ = int(dim)

    def fit(self, texts: Sequence[str] | None = None) -> SentenceTransformerEncoder:
        """Load the model (``texts`` is accepted for interface parity and ignored)."""
        if not hasattr(self, "model_"):
            self._load()
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised."""
        texts = _check_texts(texts, f"{type(self).__name__}.encode")
        self.fit()
        Z = self.model_.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return _l2_normalize(np.asarray(Z, dtype=np.float32))

    def fit_encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.fit(texts).encode(texts)


def build_encoder(name: str, **params: Any) -> TextEncoder:
    """A registered encoder by name: ``build_encoder("tfidf-svd", dim=128)``."""
    return ENCODERS.get(name)(**params)


def _field_strings(items: pl.DataFrame, name: str) -> list[str] | None:
    """One string per row for a requested field, or None when the table lacks it."""
    if name == "category" and "category_path" in items.columns:
        # the full path reads better than the leaf alone: "Beauty > Makeup > Nail Polish"
        paths = items["category_path"].to_list()
        return [
            CATEGORY_SEPARATOR.join(p for p in (path or []) if p and p.strip()) for path in paths
        ]
    if name not in items.columns:
        return None
    col = items[name]
    if col.dtype == pl.List(pl.String):
        return [CATEGORY_SEPARATOR.join(p for p in (v or []) if p and p.strip()) for v in col]
    return ["" if v is None else str(v).strip() for v in col.cast(pl.String).to_list()]


def item_texts(data: Any, fields: Sequence[str] = DEFAULT_FIELDS) -> list[str]:
    """One text per item 1..N: the requested fields that exist, joined by " | ".

    ``data`` is an ``InteractionData`` or its ``items`` Polars frame (column ``item`` = 1..N).
    Missing or empty values are skipped; category lists (``category_path``) read "a > b > c".

    Raises:
        ValueError: none of ``fields`` exists in the item table.
    """
    items = data if isinstance(data, pl.DataFrame) else data.items
    if "item" in items.columns:
        items = items.sort("item")
    columns = [(name, _field_strings(items, name)) for name in fields]
    present = [values for _, values in columns if values is not None]
    if not present:
        raise ValueError(
            f"item_texts: none of the fields {list(fields)} is in the item table "
            f"(columns: {items.columns})."
        )
    return [FIELD_SEPARATOR.join(v for v in row if v) for row in zip(*present, strict=True)]
