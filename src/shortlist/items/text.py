"""Item-text cleaning and near-duplicate detection, after CT-LLM's pretraining-data pipeline.

CT-LLM (Du et al., arXiv 2404.04167; PAPERS.md section 9) cleans web documents in this order: format
unification (NFKC, full-width punctuation to half-width, reject when text inside ``【…】`` is over
10%), URL stripping with three regexes, self-defined heuristic rules, then exact and MinHash-LSH
deduplication. This module adapts the parts that make sense for item text (titles, captions):

- :func:`normalize` and :func:`strip_urls`: format unification and in-text link removal;
- :class:`TextFilterConfig`, :func:`filter_reasons`, :func:`clean_texts`: the heuristic rules, with
  thresholds rescaled from documents (50..10,000 characters) to titles (3..2,000);
- :class:`MinHashDeduplicator`: exact duplicates on the normalized text, then character 13-gram
  MinHash (128 permutations) with LSH banding 9 x 13, an optional exact Jaccard check, and connected
  components.

Notation: N texts; k the shingle size; b x r the LSH bands x rows (b * r <= num_perm).

Example:
    >>> from shortlist.items.text import MinHashDeduplicator, clean_texts
    >>> titles = [
    ...     "OPI Nail Lacquer, Big Apple Red, 0.5 oz",
    ...     "ＯＰＩ Nail Lacquer， Big Apple Red, 0.5 oz",  # the same after normalize()
    ...     "OPI Nail Lacquer, Big Apple Red, 0.5 oz.",  # 13-gram Jaccard 28/29
    ...     "ha",
    ... ]
    >>> cleaned = clean_texts(titles)
    >>> cleaned.kept.tolist(), cleaned.reasons[3]
    ([True, True, True, False], ['too_short', 'char_entropy'])
    >>> dedup = MinHashDeduplicator().fit(cleaned.texts)
    >>> [c.tolist() for c in dedup.clusters_], dedup.n_exact_duplicates_
    ([[0, 1, 2]], 1)
"""

from __future__ import annotations

import html
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

log = logging.getLogger(__name__)

__all__ = [
    "REASONS",
    "CleanResult",
    "MinHashDeduplicator",
    "NotFittedError",
    "TextFilterConfig",
    "candidate_probability",
    "clean_texts",
    "filter_reasons",
    "normalize",
    "strip_urls",
    "text_stats",
]


# -- format unification ------------------------------------------------------------------------

# CJK punctuation that NFKC leaves alone, mapped to ASCII. NFKC already folds the Fullwidth Forms
# block (U+FF01..U+FF5E: ，！？：；（）＃ ...) and the ideographic space U+3000, and turns '…' into
# '...'; CT-LLM's table adds 。“”‘’ and we add the enumeration comma 、. The lenticular brackets
# 【】 are deliberately kept: the bracket-content rule looks for them.
_HALFWIDTH = str.maketrans(
    {
        "。": ".",
        "、": ",",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
    }
)
_WHITESPACE = re.compile(r"\s+")


def _require_str(text: Any, where: str = "text") -> str:
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a str, got {type(text).__name__} ({text!r:.60}).")
    return text


def normalize(text: str) -> str:
    """NFKC, full-width/CJK punctuation to half-width, whitespace runs to one space, stripped.

    Idempotent: ``normalize(normalize(t)) == normalize(t)``.

    Example:
        >>> normalize("ＯＰＩ　指甲油，红色。  “新款”")
        'OPI 指甲油,红色. "新款"'
    """
    text = unicodedata.normalize("NFKC", _require_str(text))
    return _WHITESPACE.sub(" ", text.translate(_HALFWIDTH)).strip()


# CT-LLM strips in-text links with three regexes, applied in this order.
# 1. Links with a scheme or a www. prefix, up to whitespace, a comma or a CJK character.
_URL_LINK = re.compile(r"(?:https?://|www\.)[^\s,，\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*", re.I)
# 2. Dotted multi-level host names (m.taobao.com, shop.example.co.uk), optionally with a path.
# 3. Bare domain.tld (example.com/item), not preceded by a CJK character.
# CT-LLM ends both in any [a-zA-Z0-9.-] label (pattern 2) or [a-z]{2,6} (pattern 3), which on
# product titles would eat sizes and abbreviations ("8.5fl.oz", "No.1.Best"); we list the common
# top-level domains instead, so a link to an unlisted TLD survives unless it has http:// or www.
_TLDS = (
    "com|net|org|edu|gov|info|biz|io|co|ai|app|dev|me|tv|cc|top|xyz|shop|store|site|online|"
    "cn|hk|tw|jp|kr|uk|us|de|fr|ru|in|br|au|ca|it|es|nl"
)
_PATH = r"(?:/[^\s,，\u4e00-\u9fff]*)?"
_URL_MULTILEVEL = re.compile(rf"\b(?:[A-Za-z0-9-]+\.){{2,}}(?:{_TLDS})\b{_PATH}", re.I)
_URL_BARE = re.compile(rf"(?<![\u4e00-\u9fff])\b[A-Za-z0-9-]+\.(?:{_TLDS})\b{_PATH}", re.I)


def strip_urls(text: str, *, bare_domains: bool = True) -> str:
    """Remove in-text links (CT-LLM's three kinds: http/www links, dotted multi-level host names,
    bare ``domain.tld`` unless ``bare_domains=False``), then collapse the whitespace they leave.

    Example:
        >>> strip_urls("Serum 30ml see https://x.com/p?id=1 or shop.example.co.uk or foo.com")
        'Serum 30ml see or or'
    """
    text = _URL_LINK.sub("", _require_str(text))
    text = _URL_MULTILEVEL.sub("", text)
    if bare_domains:
        text = _URL_BARE.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


# -- heuristic filters -------------------------------------------------------------------------


@dataclass(frozen=True)
class TextFilterConfig:
    """Thresholds of the heuristic rules, rescaled from CT-LLM's documents to item titles.

    Ratios follow CT-LLM's definitions (counts over characters of the cleaned text) unless noted.
    A text is kept only if every rule holds; ``filter_reasons`` names the rules it breaks.
    """

    # CT-LLM: 50 <= NFKC characters <= 10,000 (documents). A title can be one word ("NOORA", "yyds"),
    # so 3; captions and long product titles stay well under 2,000.
    min_chars: int = 3
    max_chars: int = 2000
    # Runs of '#' per character (CT-LLM rule 4, same definition; CT-LLM's threshold is 0.1).
    # Short-video titles are hashtag-dense: "# Hulk" is 0.17 and Chinese titles with three tags in
    # 30 characters ("霸总谈恋爱居然如此纯情#推荐漫画 #充能计划#快看的漫画") reach 0.12, while runs of
    # empty hashtags ("... # # # # # # #") are 0.2-0.4. So 0.2.
    max_hash_ratio: float = 0.2
    # Runs of '…' or '..' per character (CT-LLM rule 5, same threshold).
    max_ellipsis_ratio: float = 0.1
    # Digits over letters+digits. CT-LLM: <= 0.3 over all non-punctuation characters, spaces
    # included. Titles carry sizes and model numbers: the highest on Amazon Beauty are "Euc-4338"
    # and "Nubar 2010 G188" (a nail polish shade), 0.57 and 0.58. So 0.6: mostly-numeric strings.
    max_digit_fraction: float = 0.6
    # Distinct characters over min(length, unique_char_window). CT-LLM: > 0.1 over the whole text,
    # which is not scale-free: a 300-character English caption has ~28 distinct characters (0.09).
    # Capping the denominator keeps the rule about repetition: at most 10 distinct characters in
    # 100+ ("ha ha ha ..." is 0.06); real titles are >= 0.19 on MicroLens and >= 0.25 on Amazon.
    min_unique_char_fraction: float = 0.1
    unique_char_window: int = 100
    # Character unigram entropy in nats (CT-LLM uses the natural log, threshold 3 nats = 4.3 bits).
    # A text of n distinct characters has at most ln(n) nats, so CT-LLM's 3 needs >= 21 distinct
    # characters and rejects most short titles outright. 1.0 nats keeps every 3-character title
    # without a repeat (ln 3 = 1.10) and "yyds" (1.04), and rejects strings that one or two
    # characters dominate: "hahahaha" (ln 2 = 0.69), "!!!!!!" (0), "lol" (0.64).
    min_char_entropy: float = 1.0
    # Characters inside 【…】 over all characters (CT-LLM: > 0.1 rejects a document). One tag in a
    # 15-character title (【包邮】) is already 0.13, and MicroLens puts series names in them
    # ("【SCUM Survival 49】 Nothing # Games", 0.35). So 0.5: titles that are mostly bracketed tags.
    max_bracket_ratio: float = 0.5
    # Not in CT-LLM: the Amazon 2014 metadata carries HTML entities ("&amp;", "&reg;").
    unescape_html: bool = True
    # CT-LLM's third URL regex (bare domain.tld). Off for item text: there a domain is often the
    # brand or the product ("Acne.org 8 oz. Treatment", OPI's shade "Polka.com"); links with
    # http:// or www. and multi-level host names are always stripped.
    strip_bare_domains: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.min_chars, int) and self.min_chars >= 0):
            raise ValueError(
                f"The 'min_chars' parameter of TextFilterConfig must be an int >= 0. Got {self.min_chars!r} instead."
            )
        if not (isinstance(self.max_chars, int) and self.max_chars >= self.min_chars):
            raise ValueError(
                f"The 'max_chars' parameter of TextFilterConfig must be an int >= min_chars "
                f"({self.min_chars}). Got {self.max_chars!r} instead."
            )
        if not (isinstance(self.unique_char_window, int) and self.unique_char_window >= 1):
            raise ValueError(
                f"The 'unique_char_window' parameter of TextFilterConfig must be an int >= 1. "
                f"Got {self.unique_char_window!r} instead."
            )
        for name in (
            "max_hash_ratio",
            "max_ellipsis_ratio",
            "max_digit_fraction",
            "max_bracket_ratio",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(
                    f"The {name!r} parameter of TextFilterConfig must be a float in [0, 1]. Got {value!r} instead."
                )
        if not (
            isinstance(self.min_unique_char_fraction, int | float)
            and 0 <= self.min_unique_char_fraction <= 1
        ):
            raise ValueError(
                "The 'min_unique_char_fraction' parameter of TextFilterConfig must be a float in [0, 1]. "
                f"Got {self.min_unique_char_fraction!r} instead."
            )
        if not (isinstance(self.min_char_entropy, int | float) and self.min_char_entropy >= 0):
            raise ValueError(
                "The 'min_char_entropy' parameter of TextFilterConfig must be a float >= 0. "
                f"Got {self.min_char_entropy!r} instead."
            )


# The rules, in the order filter_reasons reports them.
REASONS: tuple[str, ...] = (
    "too_short",
    "too_long",
    "hash_ratio",
    "ellipsis_ratio",
    "digit_fraction",
    "unique_char_fraction",
    "char_entropy",
    "bracket_ratio",
)
_HASH_RUN = re.compile(r"#+")
_ELLIPSIS_RUN = re.compile(r"…+|\.{2,}")
_BRACKETED = re.compile(r"【(.*?)】", re.S)


def _clean_one(text: str, config: TextFilterConfig) -> str:
    if config.unescape_html:
        text = html.unescape(text)
    return strip_urls(normalize(text), bare_domains=config.strip_bare_domains)


def _stats_one(text: str, window: int) -> tuple[float, ...]:
    n = len(text)
    if n == 0:
        return (0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)  # nothing repeats; entropy of nothing is 0
    counts = Counter(text)
    entropy = -sum(c / n * math.log(c / n) for c in counts.values())
    alnum = sum(c for ch, c in counts.items() if ch.isalnum())
    digits = sum(c for ch, c in counts.items() if ch.isdigit())
    bracketed = sum(len(m) for m in _BRACKETED.findall(text))
    return (
        n,
        len(_HASH_RUN.findall(text)) / n,
        len(_ELLIPSIS_RUN.findall(text)) / n,
        digits / alnum if alnum else 0.0,
        len(counts) / min(n, window),
        entropy,
        bracketed / n,
    )


_STAT_NAMES = (
    "n_chars",
    "hash_ratio",
    "ellipsis_ratio",
    "digit_fraction",
    "unique_char_fraction",
    "char_entropy",
    "bracket_ratio",
)


def text_stats(
    texts: Sequence[str], config: TextFilterConfig | None = None
) -> dict[str, np.ndarray]:
    """The statistic behind every rule, for already-cleaned texts: name -> (N,) array."""
    config = config or TextFilterConfig()
    rows = np.array(
        [_stats_one(t, config.unique_char_window) for t in texts], dtype=np.float64
    ).reshape(-1, len(_STAT_NAMES))  # (N, 7)
    stats = {name: rows[:, j] for j, name in enumerate(_STAT_NAMES)}
    stats["n_chars"] = stats["n_chars"].astype(np.int64)
    return stats


def _violations(stats: dict[str, np.ndarray], config: TextFilterConfig) -> np.ndarray:
    """(N, len(REASONS)) bool: rule j broken by text i."""
    return np.stack(
        [
            stats["n_chars"] < config.min_chars,
            stats["n_chars"] > config.max_chars,
            stats["hash_ratio"] > config.max_hash_ratio,
            stats["ellipsis_ratio"] > config.max_ellipsis_ratio,
            stats["digit_fraction"] > config.max_digit_fraction,
            stats["unique_char_fraction"] <= config.min_unique_char_fraction,
            stats["char_entropy"] < config.min_char_entropy,
            stats["bracket_ratio"] > config.max_bracket_ratio,
        ],
        axis=1,
    )


@dataclass
class CleanResult:
    """Output of :func:`clean_texts`.

    Attributes:
        texts: the cleaned texts (HTML unescaped, normalized, links stripped), one per input.
        kept: (N,) bool, True where no rule is broken.
        reasons: the broken rules of each text, in ``REASONS`` order; empty = kept.
        stats: the statistic behind every rule, name -> (N,) array (see :func:`text_stats`).
    """

    texts: list[str]
    kept: np.ndarray
    reasons: list[list[str]]
    stats: dict[str, np.ndarray] = field(default_factory=dict)

    def reason_counts(self) -> dict[str, int]:
        """How many texts break each rule (a text may break several)."""
        counts = Counter(r for rs in self.reasons for r in rs)
        return {r: counts.get(r, 0) for r in REASONS}


def _as_texts(texts: Iterable[Any]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of str, got a single str.")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__} ({t!r:.60}).")
    return out


def clean_texts(texts: Iterable[str], config: TextFilterConfig | None = None) -> CleanResult:
    """Clean a batch of item texts and apply the heuristic rules.

    Args:
        texts: N raw texts (a list, a Polars Series of str, ...); None or non-str raises ValueError
            naming the index.
        config: thresholds (default ``TextFilterConfig()``).

    Returns:
        CleanResult with the cleaned texts, a (N,) keep mask and the broken rules of each text.
    """
    config = config or TextFilterConfig()
    raw = _as_texts(texts)
    cleaned = [_clean_one(t, config) for t in raw]
    stats = text_stats(cleaned, config)
    broken = _violations(stats, config)  # (N, R)
    reasons = [[REASONS[j] for j in np.flatnonzero(row)] for row in broken]
    return CleanResult(texts=cleaned, kept=~broken.any(axis=1), reasons=reasons, stats=stats)


def filter_reasons(text: str, config: TextFilterConfig | None = None) -> list[str]:
    """The rules a raw text breaks after cleaning (empty list = keep), in ``REASONS`` order.

    Example:
        >>> filter_reasons("hahahahaha")
        ['char_entropy']
    """
    _require_str(text)
    return clean_texts([text], config).reasons[0]


# -- near-duplicates ---------------------------------------------------------------------------


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``."""


def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> Any:
    """P(two texts of Jaccard ``similarity`` share an LSH bucket) = 1 - (1 - s^r)^b.

    With CT-LLM's 9 x 13: 0.08 at s = 0.7, 0.40 at 0.8, 0.93 at 0.9, 0.998 at 0.95. A one-character
    edit in the middle of a text with n 13-gram shingles replaces 13 of them, s = (n - 13) / (n + 13),
    so near-duplicate titles (n ~ 50) are mostly missed; the setting targets near-verbatim copies.
    """
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return int(root)

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:  # the smaller index becomes the root: roots are first in input order
            self.parent[max(ri, rj)] = min(ri, rj)


class MinHashDeduplicator:
    """Exact and near-duplicate detection for item texts (CT-LLM's deduplication, scikit-learn style).

    ``fit(texts)`` runs, over N texts:

    1. the key of each text: ``normalize(text)``, case-folded when ``casefold``;
    2. exact duplicates: a text whose key was seen earlier joins that text. CT-LLM uses a scalable
       Bloom filter over billions of documents; a Python dict (key -> first index) is exact and
       small enough for item catalogues;
    3. for the first text of every key, character ``shingle_size``-gram shingles (a key shorter than
       ``shingle_size`` is one shingle, the whole key, so it only ever matches itself, which step 2
       already covers), a MinHash of ``num_perm`` permutations (datasketch ``MinHash.bulk``), and
       LSH banding ``bands`` x ``rows`` (datasketch ``MinHashLSH(params=(bands, rows))``): each
       text is queried against the earlier ones, then inserted, so every candidate pair is seen once;
    4. with ``verify``, a candidate pair is kept when the exact Jaccard similarity of the shingle sets
       is >= ``threshold``; without it every LSH candidate is a duplicate (as in CT-LLM);
    5. connected components of exact + near pairs (union-find).

    See :func:`candidate_probability` for what 9 x 13 finds on short texts; a smaller
    ``shingle_size`` (5) raises the similarity of edited titles.

    Args:
        shingle_size: k, characters per shingle (CT-LLM: 13).
        num_perm: MinHash permutations (CT-LLM: 128).
        bands, rows: LSH banding, ``bands * rows <= num_perm`` (CT-LLM: 9 x 13 = 117).
        threshold: minimum exact Jaccard of a verified pair.
        verify: check candidate pairs with the exact Jaccard.
        casefold: compare texts case-insensitively.
        seed: MinHash permutation seed; equal seeds give equal results.
        log_every: log progress every this many texts.
        progress: called as ``progress(done, total)`` every ``log_every`` texts and at the end.

    Attributes (after fit):
        n_texts_: N.
        duplicate_of_: (N,) int64, the representative of each text's cluster: its first member in
            input order (itself for a text without duplicates).
        keep_mask_: (N,) bool, ``duplicate_of_ == arange(N)``: one text per cluster.
        clusters_: list of int64 arrays of size >= 2, each sorted, ordered by first member.
        is_exact_duplicate_: (N,) bool, the key equals an earlier text's key.
        n_exact_duplicates_: ``is_exact_duplicate_.sum()``.
        n_candidate_pairs_: LSH candidate pairs among first-of-key texts.
        pairs_: (M, 2) int64 near-duplicate pairs (i < j) that passed, sorted.
        pair_similarity_: (M,) exact Jaccard with ``verify``, else the MinHash estimate.

    Example:
        >>> dedup = MinHashDeduplicator(shingle_size=5).fit(["Red lipstick 3g", "red lipstick 3g"])
        >>> dedup.clusters_
        [array([0, 1])]
    """

    def __init__(
        self,
        *,
        shingle_size: int = 13,
        num_perm: int = 128,
        bands: int = 9,
        rows: int = 13,
        threshold: float = 0.7,
        verify: bool = True,
        casefold: bool = True,
        seed: int = 1,
        log_every: int = 10_000,
        progress: Callable[[int, int], Any] | None = None,
    ) -> None:
        self.shingle_size = shingle_size
        self.num_perm = num_perm
        self.bands = bands
        self.rows = rows
        self.threshold = threshold
        self.verify = verify
        self.casefold = casefold
        self.seed = seed
        self.log_every = log_every
        self.progress = progress

    # -- parameters -------------------------------------------------------------------------

    def _check_params(self) -> None:
        name = type(self).__name__
        for param in ("shingle_size", "num_perm", "bands", "rows", "log_every"):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {param!r} parameter of {name} must be an int >= 1. Got {value!r} instead."
                )
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"The 'bands' and 'rows' parameters of {name} must have bands * rows <= num_perm "
                f"({self.num_perm}). Got {self.bands} * {self.rows} = {self.bands * self.rows} instead."
            )
        if isinstance(self.threshold, bool) or not (
            isinstance(self.threshold, int | float) and 0.0 <= self.threshold <= 1.0
        ):
            raise ValueError(
                f"The 'threshold' parameter of {name} must be a float in [0, 1]. Got {self.threshold!r} instead."
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(
                f"The 'seed' parameter of {name} must be an int. Got {self.seed!r} instead."
            )
        if self.progress is not None and not callable(self.progress):
            raise ValueError(
                f"The 'progress' parameter of {name} must be a callable or None. Got {self.progress!r} instead."
            )

    def get_params(self) -> dict[str, Any]:
        keys = (
            "shingle_size",
            "num_perm",
            "bands",
            "rows",
            "threshold",
            "verify",
            "casefold",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting ----------------------------------------------------------------------------

    def _key(self, text: str) -> str:
        key = normalize(text)
        return key.casefold() if self.casefold else key

    def shingles(self, text: str) -> set[str]:
        """The shingle set of ``text``'s key: character k-grams, or {key} when shorter than k."""
        return self._shingles_of_key(self._key(_require_str(text)))

    def _shingles_of_key(self, key: str) -> set[str]:
        k = self.shingle_size
        if len(key) < k:
            return {key}
        return {key[i : i + k] for i in range(len(key) - k + 1)}

    def _report(self, done: int, total: int) -> None:
        log.info("minhash-lsh: %d/%d texts", done, total)
        if self.progress is not None:
            self.progress(done, total)

    def fit(self, texts: Iterable[str]) -> Self:
        """Find exact and near-duplicate clusters among ``texts`` (N strings)."""
        self._check_params()
        texts = _as_texts(texts)
        n = len(texts)
        keys = [self._key(t) for t in texts]

        # 1-2: exact duplicates on the key (first occurrence wins)
        first_of: dict[str, int] = {}
        is_exact = np.zeros(n, dtype=bool)
        uf = _UnionFind(n)
        for i, key in enumerate(keys):
            j = first_of.setdefault(key, i)
            if j != i:
                is_exact[i] = True
                uf.union(j, i)
        unique = np.flatnonzero(~is_exact)  # first-of-key texts, input order

        # 3: MinHash + LSH, query-then-insert so each candidate pair (earlier j, later i) is seen once
        lsh = MinHashLSH(num_perm=self.num_perm, params=(self.bands, self.rows))
        sketches: dict[int, LeanMinHash] = {}
        candidates: list[tuple[int, int]] = []
        step = self.log_every
        for start in range(0, len(unique), step):
            chunk = unique[start : start + step]
            shingle_bytes = [
                [s.encode("utf-8") for s in self._shingles_of_key(keys[i])] for i in chunk
            ]
            for i, mh in zip(
                chunk.tolist(),
                MinHash.bulk(shingle_bytes, num_perm=self.num_perm, seed=self.seed),
                strict=True,
            ):
                lean = LeanMinHash(mh)
                candidates.extend((j, i) for j in lsh.query(lean))
                lsh.insert(i, lean, check_duplication=False)
                sketches[i] = lean
            self._report(int(unique[min(start + step, len(unique)) - 1]) + 1, n)
        if len(unique) == 0 or unique[-1] != n - 1:
            self._report(n, n)
        candidates.sort()

        # 4: verify candidates
        pairs: list[tuple[int, int]] = []
        similarity: list[float] = []
        shingle_cache: dict[int, set[str]] = {}

        def shingle_set(i: int) -> set[str]:
            if i not in shingle_cache:
                shingle_cache[i] = self._shingles_of_key(keys[i])
            return shingle_cache[i]

        for j, i in candidates:
            if self.verify:
                a, b = shingle_set(j), shingle_set(i)
                sim = len(a & b) / len(a | b)
                if sim < self.threshold:
                    continue
            else:
                sim = float(sketches[j].jaccard(sketches[i]))
            pairs.append((j, i))
            similarity.append(sim)
            uf.union(j, i)

        # 5: connected components; roots are the smallest index of each component
        roots = np.array([uf.find(i) for i in range(n)], dtype=np.int64)
        order = np.argsort(roots, kind="stable")
        boundaries = np.flatnonzero(np.diff(roots[order])) + 1
        groups = np.split(order, boundaries) if n else []

        self.n_texts_ = n
        self.duplicate_of_ = roots
        self.keep_mask_ = roots == np.arange(n)
        self.clusters_ = [np.sort(g) for g in groups if len(g) >= 2]
        self.is_exact_duplicate_ = is_exact
        self.n_exact_duplicates_ = int(is_exact.sum())
        self.n_candidate_pairs_ = len(candidates)
        self.pairs_ = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        self.pair_similarity_ = np.array(similarity, dtype=np.float64)
        log.info(
            "minhash-lsh: %d texts, %d exact duplicates, %d candidate pairs, %d near pairs, %d clusters",
            n,
            self.n_exact_duplicates_,
            self.n_candidate_pairs_,
            len(pairs),
            len(self.clusters_),
        )
        return self

    def fit_predict(self, texts: Iterable[str]) -> np.ndarray:
        """``fit(texts).duplicate_of_``."""
        return self.fit(texts).duplicate_of_

    # -- fitted helpers ---------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "duplicate_of_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(texts) before using it."
            )

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a learned attribute read before fit.
        if name.endswith("_") and not name.startswith("_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(texts) before reading {name!r}."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def largest_clusters(self, k: int = 5) -> list[np.ndarray]:
        """The k largest clusters, largest first (ties: first member first)."""
        self._check_fitted()
        return sorted(self.clusters_, key=lambda c: (-len(c), int(c[0])))[:k]
