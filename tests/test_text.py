"""Tests of item-text cleaning and MinHash-LSH near-duplicate detection (shortlist.items.text)."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.items.text import (
    REASONS,
    MinHashDeduplicator,
    NotFittedError,
    TextFilterConfig,
    candidate_probability,
    clean_texts,
    filter_reasons,
    normalize,
    strip_urls,
)

# -- normalization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "口红，红色！真的？是：的；（新）",
            "口红,红色!真的?是:的;(新)",
        ),  # Fullwidth Forms via NFKC
        ("好看。便宜、实惠", "好看.便宜,实惠"),  # CJK punctuation NFKC leaves alone
        ("“新款” ‘热卖’", "\"新款\" '热卖'"),
        (
            "ＯＰＩ　Ｎａｉｌ　＃１２",
            "OPI Nail #12",
        ),  # full-width letters, digits, ideographic space
        ("ﬁne ①　㎏ Ⅻ", "fine 1 kg XII"),  # ligature, circled digit, squared unit, roman numeral
        ("wait…", "wait..."),
        ("  a \t\n b\u00a0\u2003c  ", "a b c"),  # whitespace runs, NBSP, em space, strip
        ("【包邮】口红", "【包邮】口红"),  # lenticular brackets are kept for the bracket rule
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip() and "  " not in once


def test_normalize_rejects_non_str() -> None:
    with pytest.raises(ValueError, match="must be a str, got int"):
        normalize(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("see https://example.com/p?id=1&x=2 now", "see now"),
        ("HTTP://EXAMPLE.COM/A and www.taobao.com/item/9", "and"),
        ("访问www.baidu.com了解更多", "访问了解更多"),  # a link ends at a CJK character
        ("mirror at shop.example.co.uk today", "mirror at today"),  # multi-level host
        ("buy at m.tb.cn/h.5x now", "buy at now"),
        ("visit example.com or foo.org/path", "visit or"),  # bare domain.tld
        (
            "Shampoo 8.5fl.oz v1.5.2 No.7 e.l.f. 3.4 oz.",
            "Shampoo 8.5fl.oz v1.5.2 No.7 e.l.f. 3.4 oz.",
        ),
    ],
)
def test_strip_urls(raw: str, expected: str) -> None:
    assert strip_urls(raw) == expected


def test_strip_urls_can_keep_bare_domains() -> None:
    text = "Acne.org 8 oz. Treatment from https://acne.org/shop"
    assert strip_urls(text, bare_domains=False) == "Acne.org 8 oz. Treatment from"
    assert strip_urls(text) == "8 oz. Treatment from"


# -- heuristic filters -------------------------------------------------------------------------

LONG_OK = (
    "Maybelline New York Instant Age Rewind Eraser Dark Circles Treatment Concealer, "
    "Light 120, 0.2 Fluid Ounce"
)


@pytest.mark.parametrize(
    ("reason", "tripped", "kept"),
    [
        ("hash_ratio", "# # # # sale", "Lipstick # beauty # makeup tutorial"),
        ("ellipsis_ratio", "wow... ok...", "Master... of the house"),
        ("digit_fraction", "12345 678 X", "Nubar 2010 G188"),
        ("unique_char_fraction", "abcdefghij" * 12, LONG_OK),
        ("char_entropy", "aaab", "yyds"),
        ("bracket_ratio", "【包邮特价新款】口红", "【新款】口红套装 正品保证"),
    ],
)
def test_each_rule(reason: str, tripped: str, kept: str) -> None:
    assert filter_reasons(tripped) == [reason]
    assert filter_reasons(kept) == []


def test_too_short() -> None:
    assert filter_reasons("ab") == ["too_short", "char_entropy"]  # 2 characters: at most ln 2 nats
    assert filter_reasons("ab", TextFilterConfig(min_char_entropy=0.5)) == ["too_short"]
    assert filter_reasons("abc") == []


def test_too_long() -> None:
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list(string.ascii_letters), size=2001))
    assert filter_reasons(text) == ["too_long"]
    assert filter_reasons(text[:2000]) == []


def test_several_reasons_in_order() -> None:
    assert filter_reasons("..") == ["too_short", "ellipsis_ratio", "char_entropy"]
    assert filter_reasons("") == ["too_short", "char_entropy"]


def test_config_changes_decisions() -> None:
    assert filter_reasons("hahahaha") == ["char_entropy"]
    assert filter_reasons("hahahaha", TextFilterConfig(min_char_entropy=0.5)) == []
    assert filter_reasons("ok", TextFilterConfig(min_chars=2, min_char_entropy=0)) == []


def test_entropy_is_in_nats() -> None:
    result = clean_texts(["abcd", "aabb"])
    np.testing.assert_allclose(result.stats["char_entropy"], [math.log(4), math.log(2)])


@pytest.mark.parametrize(
    "kwargs",
    [{"max_hash_ratio": 1.5}, {"min_chars": -1}, {"max_chars": 2}, {"unique_char_window": 0}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="parameter of TextFilterConfig"):
        TextFilterConfig(**kwargs)


def test_clean_texts_batch() -> None:
    raw = [
        "Nubian Heritage - Body Wash Honey &amp; Black Seed - 13 oz.",
        "ＯＰＩ  Nail Lacquer，Red",
        "ha",
        "visit www.shop.com for 【包邮特价新款】口红",
        "Acne.org 8 oz. Treatment",
    ]
    result = clean_texts(raw)
    assert result.texts == [
        "Nubian Heritage - Body Wash Honey & Black Seed - 13 oz.",
        "OPI Nail Lacquer,Red",
        "ha",
        "visit for 【包邮特价新款】口红",
        "Acne.org 8 oz. Treatment",  # bare domains are kept for item text (a brand here)
    ]
    assert result.kept.dtype == bool and result.kept.tolist() == [True, True, False, True, True]
    assert result.reasons[2] == ["too_short", "char_entropy"]
    assert result.reasons[3] == []  # 6 of 20 characters bracketed: under 0.5
    assert all(len(v) == len(raw) for v in result.stats.values())
    counts = result.reason_counts()
    assert list(counts) == list(REASONS) and counts["too_short"] == 1 and counts["hash_ratio"] == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab #.【】1 ", max_size=30), max_size=20))
def test_kept_iff_no_reason(texts: list[str]) -> None:
    result = clean_texts(texts)
    assert result.kept.shape == (len(texts),)
    assert result.kept.tolist() == [not r for r in result.reasons]
    assert [filter_reasons(t) for t in texts] == result.reasons


def test_clean_texts_bad_input_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"texts\[2\] must be a str, got NoneType"):
        clean_texts(["a", "b", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="single str"):
        clean_texts("a title")


# -- MinHash-LSH ---------------------------------------------------------------------------------

# A title-scale setting: 5-grams and 32 bands x 4 rows. P(candidate) is 1 - 5e-6 at Jaccard 0.75
# and 0.23 at 0.3, and the exact check at 0.7 removes the chance candidates.
TITLE_SCALE = {"shingle_size": 5, "bands": 32, "rows": 4}


def _random_words(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    return ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(n)]


def _random_titles(rng: np.random.Generator, n: int, words: tuple[int, int]) -> list[str]:
    vocab = _random_words(rng, 3000)
    return [" ".join(rng.choice(vocab, size=rng.integers(*words))) for _ in range(n)]


def _edit(rng: np.random.Generator, text: str, n_edits: int) -> str:
    chars = list(text)
    for pos in rng.choice(len(chars), size=n_edits, replace=False):
        chars[pos] = next(c for c in rng.permutation(list("xyzq")) if c != chars[pos])
    return "".join(chars)


def _planted(
    seed: int, n_base: int, n_copies: int, words: tuple[int, int]
) -> tuple[list[str], list[list[int]]]:
    """n_base random titles, then copies of the first n_copies with 1-2 substituted characters."""
    rng = np.random.default_rng(seed)
    base = _random_titles(rng, n_base, words)
    copies = [_edit(rng, base[i], int(rng.integers(1, 3))) for i in range(n_copies)]
    assert all(c != base[i] for i, c in enumerate(copies))
    return base + copies, [[i, n_base + i] for i in range(n_copies)]


def test_finds_planted_near_duplicate_titles() -> None:
    texts, expected = _planted(seed=0, n_base=200, n_copies=20, words=(12, 18))
    dedup = MinHashDeduplicator(**TITLE_SCALE).fit(texts)
    assert [c.tolist() for c in dedup.clusters_] == expected  # all found, no false cluster
    assert dedup.n_exact_duplicates_ == 0
    assert dedup.n_candidate_pairs_ >= 20 and len(dedup.pairs_) == 20
    assert (dedup.pair_similarity_ >= 0.7).all()
    expected_of = np.arange(220)
    expected_of[200:] = np.arange(20)
    np.testing.assert_array_equal(dedup.duplicate_of_, expected_of)
    np.testing.assert_array_equal(dedup.keep_mask_, np.arange(220) < 200)


def test_ct_llm_defaults_on_long_texts() -> None:
    # 13-grams and 9 x 13 bands need long texts for 1-2 edits: ~1,500 characters give Jaccard
    # >= 0.966 and P(candidate) >= 0.9999 per pair.
    texts, expected = _planted(seed=1, n_base=60, n_copies=10, words=(250, 300))
    assert min(len(t) for t in texts) > 1300
    dedup = MinHashDeduplicator().fit(texts)
    assert [c.tolist() for c in dedup.clusters_] == expected


def test_ct_llm_defaults_miss_edited_short_titles() -> None:
    # What 9 x 13 does to titles: one edit in a 100-character title leaves 13-gram Jaccard
    # ~0.77, P(candidate) 0.2 (over 30 seeds, 0-6 of the 20 copies are found; title scale: 20).
    texts, _ = _planted(seed=2, n_base=100, n_copies=20, words=(12, 18))
    found = len(MinHashDeduplicator().fit(texts).clusters_)
    found_title_scale = len(MinHashDeduplicator(**TITLE_SCALE).fit(texts).clusters_)
    assert found < 10 and found_title_scale == 20


def test_candidate_probability() -> None:
    # 1 - (1 - 0.7^13)^9, by hand: 0.7^13 = 0.0096889, 0.9903111^9 = 0.9161040
    assert candidate_probability(0.7, 9, 13) == pytest.approx(0.083896, abs=1e-5)
    np.testing.assert_allclose(candidate_probability(np.array([0.0, 1.0]), 9, 13), [0.0, 1.0])
    assert candidate_probability(0.95, 9, 13) > 0.998


def test_exact_duplicates_on_normalized_text() -> None:
    texts = ["Red Lipstick", "Blue pen", "red  lipstick", "ＲＥＤ　ＬＩＰＳＴＩＣＫ", "Blue pen"]
    dedup = MinHashDeduplicator().fit(texts)
    assert [c.tolist() for c in dedup.clusters_] == [[0, 2, 3], [1, 4]]
    assert dedup.is_exact_duplicate_.tolist() == [False, False, True, True, True]
    assert dedup.n_exact_duplicates_ == 3
    assert dedup.duplicate_of_.tolist() == [0, 1, 0, 0, 1]
    assert dedup.keep_mask_.tolist() == [True, True, False, False, False]
    assert len(dedup.pairs_) == 0  # every duplicate was exact: nothing reached MinHash twice

    case_sensitive = MinHashDeduplicator(casefold=False).fit(texts)
    assert [c.tolist() for c in case_sensitive.clusters_] == [[1, 4]]


def test_short_texts_are_one_shingle() -> None:
    dedup = MinHashDeduplicator()
    assert dedup.shingles("Lipstick  Red") == {"lipstick red"}  # 12 characters < 13
    assert dedup.shingles("Lipstick Reds") == {"lipstick reds"}
    assert dedup.shingles("Lipstick Reds!") == {"lipstick reds", "ipstick reds!"}
    # one edit in a text shorter than k changes its only shingle: never a near-duplicate,
    # even without the exact check; equal short texts are caught by the exact pass
    fitted = MinHashDeduplicator(verify=False).fit(["lipstick red", "lipstick rad", "Lipstick red"])
    assert [c.tolist() for c in fitted.clusters_] == [[0, 2]]
    assert fitted.n_candidate_pairs_ == 0


def test_components_are_transitive() -> None:
    # a ~ b and b ~ c but a !~ c: one cluster through b, represented by the first text
    a = "konad stamping nail art image plate number m sixty three with free scraper"
    b = "konad stamping nail art image plate number m sixty three with free scrapes"
    c = "konad stamping nail art image plate number m sixty three zith free scrapes"
    dedup = MinHashDeduplicator(**TITLE_SCALE, threshold=0.85)

    def jaccard(x: str, y: str) -> float:
        sx, sy = dedup.shingles(x), dedup.shingles(y)
        return len(sx & sy) / len(sx | sy)

    assert jaccard(a, b) >= 0.85 and jaccard(b, c) >= 0.85 > jaccard(a, c)
    dedup.fit([c, "unrelated words here ok", b, a])
    assert [x.tolist() for x in dedup.clusters_] == [[0, 2, 3]]
    assert dedup.duplicate_of_.tolist() == [0, 1, 0, 0]
    assert dedup.pairs_.tolist() == [[0, 2], [2, 3]]


def test_verify_false_keeps_every_candidate() -> None:
    texts, expected = _planted(seed=0, n_base=200, n_copies=20, words=(12, 18))
    dedup = MinHashDeduplicator(**TITLE_SCALE, verify=False).fit(texts)
    assert len(dedup.pairs_) == dedup.n_candidate_pairs_
    assert all(c in [x.tolist() for x in dedup.clusters_] for c in expected)


def test_deterministic_with_a_seed() -> None:
    texts, _ = _planted(seed=3, n_base=100, n_copies=20, words=(12, 18))
    runs = [MinHashDeduplicator(**TITLE_SCALE, verify=False, seed=s).fit(texts) for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0].pairs_, runs[1].pairs_)
    np.testing.assert_array_equal(runs[0].pair_similarity_, runs[1].pair_similarity_)
    np.testing.assert_array_equal(runs[0].duplicate_of_, runs[1].duplicate_of_)
    # another seed, other permutations: other MinHash estimates of the same pairs
    seven, eight = (
        dict(zip(map(tuple, r.pairs_.tolist()), r.pair_similarity_, strict=True))
        for r in (runs[0], runs[2])
    )
    common = seven.keys() & eight.keys()
    assert len(common) >= 20 and any(seven[p] != eight[p] for p in common)


def test_progress_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    texts, _ = _planted(seed=0, n_base=200, n_copies=20, words=(4, 6))
    calls: list[tuple[int, int]] = []
    with caplog.at_level("INFO", logger="shortlist.items.text"):
        MinHashDeduplicator(log_every=50, progress=lambda d, t: calls.append((d, t))).fit(texts)
    assert len(calls) == 5 and calls[-1] == (220, 220)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert sum("minhash-lsh:" in r.message for r in caplog.records) == 6  # 5 progress + summary


def test_empty_input() -> None:
    dedup = MinHashDeduplicator().fit([])
    assert dedup.clusters_ == [] and dedup.duplicate_of_.shape == (0,)
    assert dedup.pairs_.shape == (0, 2)


def test_unfitted_errors() -> None:
    dedup = MinHashDeduplicator()
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(texts\).*'clusters_'"):
        _ = dedup.clusters_
    with pytest.raises(NotFittedError, match="not fitted yet"):
        dedup.largest_clusters()
    assert not hasattr(dedup, "keep_mask_")
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = dedup.nonsense  # type: ignore[attr-defined]


def test_init_only_stores_arguments() -> None:
    dedup = MinHashDeduplicator(shingle_size=0, bands=50)  # invalid, but only fit checks
    assert dedup.get_params()["shingle_size"] == 0
    assert "shingle_size=0" in repr(dedup)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"shingle_size": 0},
            "The 'shingle_size' parameter of MinHashDeduplicator must be an int >= 1. Got 0 instead.",
        ),
        ({"bands": 10}, "bands \\* rows <= num_perm \\(128\\). Got 10 \\* 13 = 130 instead."),
        ({"threshold": 1.5}, "The 'threshold' parameter .* must be a float in \\[0, 1\\]. Got 1.5"),
        ({"progress": 3}, "The 'progress' parameter .* callable or None"),
    ],
)
def test_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinHashDeduplicator(**kwargs).fit(["a title", "another title"])


def test_fit_bad_input_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] must be a str, got int"):
        MinHashDeduplicator().fit(["a title", 3])  # type: ignore[list-item]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["red lipstick 3g", "Red Lipstick 3g", "red lipstick 4g", "pen"])
        | st.text(max_size=20),
        max_size=25,
    )
)
def test_cluster_invariants(texts: list[str]) -> None:
    dedup = MinHashDeduplicator(**TITLE_SCALE).fit(texts)
    n = len(texts)
    of = dedup.duplicate_of_
    assert of.shape == (n,) and (of <= np.arange(n)).all() and (of[of] == of).all()
    np.testing.assert_array_equal(dedup.keep_mask_, of == np.arange(n))
    members = sorted(i for c in dedup.clusters_ for i in c.tolist())
    assert members == sorted(set(members)) == [i for i in range(n) if (of == of[i]).sum() >= 2]
    for c in dedup.clusters_:
        assert len(c) >= 2 and (of[c] == c[0]).all()
    keys = [normalize(t).casefold() for t in texts]
    for i in range(n):  # equal keys always share a cluster
        assert of[i] == of[keys.index(keys[i])]
