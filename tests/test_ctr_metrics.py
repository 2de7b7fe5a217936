"""CTR metrics against hand-computed values: AUC (with ties), GAUC (single-class users skipped), log loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from shortlist.eval.ctr_metrics import auc, ctr_metrics, gauc, logloss


def test_auc_hand_computed() -> None:
    # positives 0.9, 0.7; negatives 0.8, 0.1: pairs (0.9>0.8) (0.9>0.1) (0.7<0.8) (0.7>0.1) -> 3/4
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(0.75)


def test_auc_counts_ties_as_half() -> None:
    # positive 0.5 vs negatives 0.5 (tie: 1/2) and 0.2 (win: 1) -> 1.5 / 2
    assert auc(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.2])) == pytest.approx(0.75)


def test_auc_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500), 2)  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_gauc_weights_users_by_impressions_and_skips_single_class_users() -> None:
    labels = np.array([1, 0, 0, 1, 0, 1, 1, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.2, 0.6, 0.7, 0.5])
    users = np.array([7, 7, 3, 3, 3, 5, 5, 9])
    # user 7: 1 pos > 1 neg -> AUC 1, 2 rows
    # user 3: pos 0.3 vs negs 0.8 (lose), 0.2 (win) -> 0.5, 3 rows
    # user 5: only positives -> skipped; user 9: only a negative -> skipped
    expected = (1.0 * 2 + 0.5 * 3) / 5
    assert gauc(labels, scores, users) == pytest.approx(expected)


def test_gauc_with_ties_inside_a_user_and_no_valid_user() -> None:
    # user 1: pos 0.4 ties neg 0.4 -> 0.5; user 2: AUC 0 (pos below neg)
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.4, 0.4, 0.1, 0.9])
    assert gauc(labels, scores, np.array([1, 1, 2, 2])) == pytest.approx((0.5 * 2 + 0.0 * 2) / 4)
    assert math.isnan(gauc(np.array([1, 1]), np.array([0.2, 0.3]), np.array([1, 2])))


def test_logloss_hand_computed_and_clipped() -> None:
    y = np.array([1, 0])
    p = np.array([0.8, 0.4])
    assert logloss(y, p) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert np.isfinite(logloss(np.array([1]), np.array([0.0])))


def test_ctr_metrics_keys_and_errors() -> None:
    m = ctr_metrics(np.array([1, 0]), np.array([0.6, 0.3]), np.array([0, 0]))
    assert set(m) == {"auc", "gauc", "logloss"} and m["auc"] == 1.0 and m["gauc"] == 1.0
    with pytest.raises(ValueError, match="both positive and negative"):
        auc(np.array([1, 1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"labels must be 0 or 1; got 2\.0"):
        auc(np.array([1, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="differ in length"):
        logloss(np.array([1, 0]), np.array([0.1]))
