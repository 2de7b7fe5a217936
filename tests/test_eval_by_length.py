"""evaluate's length-sorted batches (``by_length``, the default) against batches padded to
max_len in input order: every registered retriever ranks every example the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shortlist.data.sequences import EvalExamples, Jagged
from shortlist.eval.protocols import evaluate
from shortlist.models import MODELS, build_model
from shortlist.models.rankers import Ranker

RETRIEVERS = [n for n in MODELS.names() if not issubclass(MODELS.get(n), Ranker)]


def _examples(n: int, num_items: int, max_len: int) -> EvalExamples:
    rng = np.random.default_rng(0)
    # empty, short and longer-than-max_len histories, in no particular order
    lengths = rng.integers(0, 2 * max_len + 1, n)
    total = int(lengths.sum())
    return EvalExamples(
        users=np.arange(n, dtype=np.int32),
        history=Jagged.from_lengths(rng.integers(1, num_items + 1, total), lengths),
        targets=rng.integers(1, num_items + 1, n).astype(np.int32),
        history_timestamps=Jagged.from_lengths(np.sort(rng.integers(0, 10**6, total)), lengths),
        target_timestamps=rng.integers(10**6, 2 * 10**6, n),
    )


@pytest.mark.parametrize("name", RETRIEVERS)
def test_length_sorted_batches_rank_like_fixed_ones(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_items=40, max_len=16, dim=16)
    examples = _examples(37, 40, 16)
    fixed = evaluate(model, examples, "hstu", batch_size=8, by_length=False)
    for batch_size in (1, 5, 64):
        sorted_ = evaluate(model, examples, "hstu", batch_size=batch_size)
        np.testing.assert_array_equal(sorted_.per_example_rank, fixed.per_example_rank)
        assert sorted_.metrics == fixed.metrics
        np.testing.assert_array_equal(sorted_.history_lengths, fixed.history_lengths)
