"""Tests of shortlist.eval.protocols: the registered anchor protocols and `evaluate` on a fake
retriever whose ranks are known, plus a small SASRec for batch-size invariance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from shortlist.data.batches import EvalBatch
from shortlist.data.sequences import EvalExamples, Jagged
from shortlist.eval.metrics import ndcg_at_k
from shortlist.eval.protocols import (
    PROTOCOLS,
    EvalProtocol,
    cap_history,
    evaluate,
    get_protocol,
    history_lengths,
)
from shortlist.models import build_model
from shortlist.models.base import LossOutput, Retriever
from shortlist.registry import UnknownNameError

N = 300  # items of the fake catalogue


@dataclass
class FakeConfig:
    num_items: int = N
    max_len: int = 50


class FakeRetriever(Retriever):
    """Scores item i as N + 1 - i for every user, so item i has rank i - 1 before any masking.

    ``tie_with`` makes an item's score equal to another's; it records what each score_all call saw.
    """

    config_class = FakeConfig

    def __init__(self, config: FakeConfig, tie_with: dict[int, int] | None = None) -> None:
        super().__init__(config)
        self.weight = torch.nn.Parameter(
            torch.zeros(1)
        )  # a module with parameters, like a real model
        base = torch.arange(
            config.num_items + 1, 0, -1, dtype=torch.float32
        )  # (N+1,): item i -> N+1-i
        for item, other in (tie_with or {}).items():
            base[item] = base[other]
        base[0] = -math.inf
        self.register_buffer("base", base)
        self.seen: list[EvalBatch] = []
        self.modes: list[bool] = []

    def compute_loss(self, batch) -> LossOutput:  # pragma: no cover - not used here
        raise NotImplementedError

    def user_states(self, batch: EvalBatch) -> torch.Tensor:  # pragma: no cover - not used here
        raise NotImplementedError

    def item_table(self) -> torch.Tensor:  # pragma: no cover - not used here
        raise NotImplementedError

    def score_all(self, batch: EvalBatch) -> torch.Tensor:
        self.seen.append(batch)
        self.modes.append(self.training)
        return self.base.expand(
            len(batch.target), -1
        )  # a view of a buffer: evaluate must not write into it


def examples_of(
    histories: list[list[int]], targets: list[int], *, times: bool = False
) -> EvalExamples:
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    values = np.array([i for h in histories for i in h], dtype=np.int32)
    ts = None
    if times:
        ts = Jagged.from_lengths(np.arange(len(values), dtype=np.int64) + 1000, lengths)
    return EvalExamples(
        users=np.arange(len(targets), dtype=np.int32),
        history=Jagged.from_lengths(values, lengths),
        targets=np.array(targets, dtype=np.int32),
        history_timestamps=ts,
    )


# ranks [0, 1, 4, 12, 60, 250] with histories of items the fake model ranks below every target
TARGETS = [1, 2, 5, 13, 61, 251]
HISTORIES = [[290], [291, 292], [], [293, 294, 295], [296], [297, 298, 299, 300]]


# -- protocols ---------------------------------------------------------------------------------
def test_registered_protocols():
    assert PROTOCOLS.names() == ["hstu", "long", "tiger"]
    hstu, tiger = get_protocol("hstu"), get_protocol("tiger")
    assert hstu.metric_keys == ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200", "mrr")
    assert (hstu.max_history, hstu.exclude_history, hstu.candidates, hstu.ties) == (
        None,
        True,
        "all",
        "optimistic",
    )
    assert tiger.metric_keys == ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")
    assert (tiger.max_history, tiger.exclude_history, tiger.candidates, tiger.ties) == (
        20,
        False,
        "all",
        "optimistic",
    )


def test_unknown_protocol_lists_the_valid_ones():
    model = FakeRetriever(FakeConfig())
    with pytest.raises(
        UnknownNameError,
        match=r"Unknown evaluation protocol 'sasrec'\. Valid names: hstu, long, tiger\.",
    ):
        evaluate(model, examples_of(HISTORIES, TARGETS), "sasrec")


def test_protocol_definition_errors():
    with pytest.raises(UnknownNameError, match="Unknown metric 'prec'"):
        EvalProtocol(name="x", metric_names=("prec",), cutoffs=(10,))
    with pytest.raises(ValueError, match="'cutoffs'"):
        EvalProtocol(name="x", metric_names=("hr",), cutoffs=(0,))
    with pytest.raises(ValueError, match="'candidates'"):
        EvalProtocol(name="x", metric_names=("hr",), cutoffs=(10,), candidates="sampled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'max_history'"):
        EvalProtocol(name="x", metric_names=("hr",), cutoffs=(10,), max_history=0)


# -- evaluate on known ranks -------------------------------------------------------------------
def test_evaluate_tiger_gives_the_hand_computed_metrics():
    result = evaluate(FakeRetriever(FakeConfig()), examples_of(HISTORIES, TARGETS), "tiger")
    assert result.per_example_rank.tolist() == [0, 1, 4, 12, 60, 250]
    assert result.num_examples == 6
    assert result.metrics["recall@5"] == 3 / 6
    assert result.metrics["recall@10"] == 3 / 6
    assert result.metrics["ndcg@5"] == pytest.approx(
        (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 6, abs=1e-15
    )
    assert result.metrics["ndcg@10"] == result.metrics["ndcg@5"]
    assert result.metrics["mrr"] == pytest.approx(
        (1 + 1 / 2 + 1 / 5 + 1 / 13 + 1 / 61 + 1 / 251) / 6, abs=1e-15
    )
    assert list(result.metrics) == list(get_protocol("tiger").metric_keys)
    assert result.history_lengths.tolist() == [1, 2, 0, 3, 1, 4]


def test_evaluate_hstu_gives_the_hand_computed_metrics():
    # history items all rank below the targets, so masking them changes nothing here
    result = evaluate(FakeRetriever(FakeConfig()), examples_of(HISTORIES, TARGETS), "hstu")
    assert result.exclude_history is True
    assert result.per_example_rank.tolist() == [0, 1, 4, 12, 60, 250]
    expected = {
        "hr@10": 3 / 6, "hr@50": 4 / 6, "hr@200": 5 / 6,
        "ndcg@10": (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 6,
        "ndcg@50": (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14)) / 6,
        "ndcg@200": (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14) + 1 / math.log2(62)) / 6,
    }  # fmt: skip
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-15), key


def test_exclusion_masks_seen_items():
    targets = [13, 13, 5, 7]
    histories = [
        [1, 2, 3],  # three items above the target are seen: rank 12 -> 9
        [20, 30],  # seen items below the target: rank stays 12
        [
            5,
            1,
        ],  # the target was seen: a miss at every cut-off (rank N), as generative-recommenders does
        [1],  # one item above: rank 6 -> 5
    ]
    model = FakeRetriever(FakeConfig())
    masked = evaluate(model, examples_of(histories, targets), "hstu")
    assert masked.per_example_rank.tolist() == [9, 12, N, 5]
    assert masked.metrics["hr@10"] == 2 / 4
    plain = evaluate(model, examples_of(histories, targets), "hstu", exclude_history=False)
    assert plain.per_example_rank.tolist() == [12, 12, 4, 6]
    on_tiger = evaluate(model, examples_of(histories, targets), "tiger", exclude_history=True)
    assert on_tiger.per_example_rank.tolist() == [9, 12, N, 5]
    assert model.base[1:].tolist() == list(
        range(N, 0, -1)
    )  # the model's own tensor was not written


def test_exclusion_masks_only_the_history_the_model_sees():
    # 30 history items 1..30, target 31 (rank 30): tiger keeps the 20 most recent (11..30)
    model = FakeRetriever(FakeConfig())
    ex = examples_of([list(range(1, 31))], [31])
    assert evaluate(model, ex, "tiger", exclude_history=True).per_example_rank.tolist() == [10]
    # hstu keeps the model's window: max_len=50 sees all 30; max_len=5 sees 26..30
    assert evaluate(model, ex, "hstu").per_example_rank.tolist() == [0]
    assert evaluate(model, ex, "hstu", max_len=5).per_example_rank.tolist() == [25]


def test_tiger_caps_history_at_20():
    model = FakeRetriever(FakeConfig(max_len=50))
    histories = [list(range(100, 135)), list(range(200, 210)), list(range(1, 21))]
    result = evaluate(
        model, examples_of(histories, [1, 2, 3], times=True), "tiger", batch_size=2, by_length=False
    )
    assert result.history_lengths.tolist() == [20, 10, 20]
    hist = torch.cat([b.history for b in model.seen])  # (3, 50): left-padded to the model's max_len
    assert hist.shape == (3, 50)
    assert torch.cat([b.lengths for b in model.seen]).tolist() == [20, 10, 20]
    assert hist[0, -20:].tolist() == list(range(115, 135))  # the 20 most recent items
    assert hist[0, :-20].eq(0).all()
    ts = torch.cat([b.timestamps for b in model.seen])
    assert ts[0, -20:].tolist() == list(range(1000 + 15, 1000 + 35))  # timestamps capped alike
    # hstu does not cap: the model window (max_len) decides
    model.seen.clear()
    result = evaluate(model, examples_of(histories, [1, 2, 3]), "hstu", by_length=False)
    assert result.history_lengths.tolist() == [35, 10, 20]
    assert torch.cat([b.lengths for b in model.seen]).tolist() == [35, 10, 20]


def test_long_is_tiger_without_the_cap():
    """The ``long`` protocol ranks from the model's whole window (35 events here, where tiger keeps
    20), with tiger's metrics and no masking of seen items."""
    model = FakeRetriever(FakeConfig(max_len=50))
    histories = [list(range(100, 135)), list(range(200, 210))]
    result = evaluate(model, examples_of(histories, [134, 2]), "long", by_length=False)
    assert result.history_lengths.tolist() == [35, 10]
    assert torch.cat([b.lengths for b in model.seen]).tolist() == [35, 10]
    assert set(result.metrics) == set(get_protocol("tiger").metric_keys)
    # target 134 is in its history: not masked, so it ranks by score, as under tiger
    tiger = evaluate(
        FakeRetriever(FakeConfig(max_len=50)), examples_of(histories, [134, 2]), "tiger"
    )
    assert result.per_example_rank[0] == tiger.per_example_rank[0]
    assert get_protocol("long").max_history is None and not get_protocol("long").exclude_history


def test_history_padded_to_model_max_len_unless_given():
    model = FakeRetriever(FakeConfig(max_len=7))
    fixed = evaluate(model, examples_of(HISTORIES, TARGETS), "hstu", by_length=False)
    assert {tuple(b.history.shape) for b in model.seen} == {(6, 7)}
    model.seen.clear()
    evaluate(
        model, examples_of(HISTORIES, TARGETS), "hstu", max_len=3, batch_size=4, by_length=False
    )
    assert [tuple(b.history.shape) for b in model.seen] == [(4, 3), (2, 3)]
    assert model.seen[1].history[1].tolist() == [298, 299, 300]
    # by length (the default): sorted by the kept history, each batch as wide as its longest
    model.seen.clear()
    assert evaluate(model, examples_of(HISTORIES, TARGETS), "hstu").metrics == fixed.metrics
    assert [tuple(b.history.shape) for b in model.seen] == [(6, 4)]
    model.seen.clear()
    evaluate(model, examples_of(HISTORIES, TARGETS), "hstu", max_len=3, batch_size=4)
    assert [tuple(b.history.shape) for b in model.seen] == [(4, 2), (2, 3)]
    assert [b.lengths.tolist() for b in model.seen] == [[0, 1, 1, 2], [3, 3]]
    assert model.seen[1].history[1].tolist() == [298, 299, 300]


def test_ties_rule_of_protocol_and_override():
    model = FakeRetriever(
        FakeConfig(), tie_with={13: 12, 11: 12}
    )  # items 11, 12, 13 share one score
    ex = examples_of([[], []], [13, 14])
    assert evaluate(model, ex, "tiger").per_example_rank.tolist() == [10, 13]
    assert evaluate(model, ex, "tiger", ties="pessimistic").per_example_rank.tolist() == [12, 13]
    pessimistic = EvalProtocol(name="p", metric_names=("hr",), cutoffs=(11,), ties="pessimistic")
    result = evaluate(model, ex, pessimistic)
    assert result.ties == "pessimistic" and result.metrics == {
        "hr@11": 0.0,
        "mrr": (1 / 13 + 1 / 14) / 2,
    }


def test_training_mode_is_restored():
    model = FakeRetriever(FakeConfig())
    model.train()
    evaluate(model, examples_of(HISTORIES, TARGETS), "tiger", batch_size=4)
    assert model.training is True
    assert model.modes == [False, False]  # scored in eval mode
    model.eval()
    evaluate(model, examples_of(HISTORIES, TARGETS), "tiger")
    assert model.training is False


def test_training_mode_is_restored_after_an_error():
    model = FakeRetriever(FakeConfig())
    model.train()

    def boom(batch):
        raise RuntimeError("boom")

    model.score_all = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        evaluate(model, examples_of(HISTORIES, TARGETS), "tiger")
    assert model.training is True


def test_no_grad_during_scoring():
    model = FakeRetriever(FakeConfig())
    grad_enabled = []
    original = model.score_all

    def spy(batch):
        grad_enabled.append(torch.is_grad_enabled())
        return original(batch)

    model.score_all = spy  # type: ignore[method-assign]
    evaluate(model, examples_of(HISTORIES, TARGETS), "hstu")
    assert grad_enabled == [False]


def test_targets_outside_the_catalogue_are_refused():
    model = FakeRetriever(FakeConfig(num_items=20))
    with pytest.raises(ValueError, match=r"catalogue 1\.\.20\. Got target 61"):
        evaluate(model, examples_of(HISTORIES, TARGETS), "hstu")
    with pytest.raises(ValueError, match=r"catalogue 1\.\.20\. Got target 0"):
        evaluate(model, examples_of([[1]], [0]), "hstu")


def test_wrong_score_shape_is_refused():
    model = FakeRetriever(FakeConfig())
    model.score_all = lambda batch: torch.zeros(len(batch.target), N)  # type: ignore[method-assign]
    with pytest.raises(
        ValueError, match=r"returned shape \(6, 300\); expected \(B, N\+1\) = \(6, 301\)"
    ):
        evaluate(model, examples_of(HISTORIES, TARGETS), "hstu")


def test_argument_errors():
    model = FakeRetriever(FakeConfig())
    ex = examples_of(HISTORIES, TARGETS)
    with pytest.raises(ValueError, match="'batch_size' parameter of evaluate"):
        evaluate(model, ex, "hstu", batch_size=0)
    with pytest.raises(ValueError, match="'max_len' parameter of evaluate"):
        evaluate(model, ex, "hstu", max_len=0)
    with pytest.raises(ValueError, match="'ties' parameter of evaluate"):
        evaluate(model, ex, "hstu", ties="middle")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EvalExamples"):
        evaluate(model, (ex.users, ex.history, ex.targets), "hstu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Retriever"):
        evaluate(torch.nn.Linear(2, 2), ex, "hstu")  # type: ignore[arg-type]


def test_no_examples():
    result = evaluate(FakeRetriever(FakeConfig()), examples_of([], []), "tiger")
    assert result.num_examples == 0 and result.per_example_rank.shape == (0,)
    assert all(math.isnan(v) for v in result.metrics.values())


# -- buckets -----------------------------------------------------------------------------------
def test_history_lengths_are_the_capped_rows_lengths():
    lengths = np.array([0, 3, 20, 21, 50])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ex = EvalExamples(np.arange(5), Jagged(np.arange(1, offsets[-1] + 1), offsets), np.ones(5))
    for name in ("tiger", "hstu"):  # capped at 20, and not capped
        capped = cap_history(ex.history, get_protocol(name).max_history)
        assert history_lengths(ex, name).tolist() == np.diff(capped.offsets).tolist()
    assert history_lengths(ex, "tiger").tolist() == [0, 3, 20, 20, 20]


def test_by_length_bucket():
    result = evaluate(FakeRetriever(FakeConfig()), examples_of(HISTORIES, TARGETS), "hstu")
    # lengths [1, 2, 0, 3, 1, 4], ranks [0, 1, 4, 12, 60, 250]
    rows = result.by_length_bucket([0, 1, 3])
    assert [(r["min_length"], r["max_length"], r["num_examples"]) for r in rows] == [
        (0, 0, 1),
        (1, 2, 3),
        (3, None, 2),
    ]
    assert [r["share"] for r in rows] == [1 / 6, 3 / 6, 2 / 6]
    assert rows[0]["hr@10"] == 1.0 and rows[0]["ndcg@10"] == 1 / math.log2(6)
    assert rows[1]["hr@10"] == 2 / 3 and rows[1]["hr@50"] == 2 / 3 and rows[1]["hr@200"] == 1.0
    assert rows[1]["ndcg@10"] == pytest.approx(ndcg_at_k([0, 1, 60], 10), abs=1e-15)
    assert (
        rows[2]["hr@10"] == 0.0
        and rows[2]["hr@200"] == 0.5
        and rows[2]["mrr"] == pytest.approx((1 / 13 + 1 / 251) / 2, abs=1e-15)
    )
    empty = result.by_length_bucket([10, 20])
    assert [r["num_examples"] for r in empty] == [0, 0] and math.isnan(empty[0]["hr@10"])
    with pytest.raises(ValueError, match="increasing ints"):
        result.by_length_bucket([5, 5])
    assert result.to_dict()["metrics"] == result.metrics


def test_cap_history():
    h = Jagged.from_lengths(np.arange(1, 11), np.array([0, 3, 7]))
    capped = cap_history(h, 2)
    assert capped.lengths.tolist() == [0, 2, 2]
    assert capped.values.tolist() == [2, 3, 9, 10]
    assert cap_history(h, None) is h and cap_history(h, 7) is h


# -- a real model ------------------------------------------------------------------------------
def random_examples(n_users: int, n_items: int, seed: int) -> EvalExamples:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 40, n_users)
    return EvalExamples(
        users=np.arange(n_users, dtype=np.int32),
        history=Jagged.from_lengths(
            rng.integers(1, n_items + 1, lengths.sum()).astype(np.int32), lengths
        ),
        targets=rng.integers(1, n_items + 1, n_users).astype(np.int32),
    )


@pytest.mark.parametrize("protocol", ["hstu", "tiger"])
def test_batch_size_invariance_with_sasrec(protocol):
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=60, max_len=32, dim=16, num_layers=2, num_heads=2)
    ex = random_examples(23, 60, seed=1)
    results = [evaluate(model, ex, protocol, batch_size=b) for b in (1, 7, 23, 1024)]
    for r in results[1:]:
        np.testing.assert_array_equal(r.per_example_rank, results[0].per_example_rank)
        assert r.metrics == results[0].metrics
    assert results[0].per_example_rank.max() > 10  # a random model: the ranks spread out


def test_a_split_whose_protocol_would_cut_its_histories_is_refused():
    """run_on_split refuses a split saved as tiger with whole histories (ranked from its last 20
    events whatever the model reads); a split cut to the cap or tighter, and long, pass."""
    from shortlist.data.sequences import SequenceSplit
    from shortlist.train.experiment import check_history_cap

    ex = examples_of([list(range(1, 40))], [40])

    def split_of(protocol: str, cap: int | None) -> SequenceSplit:
        return SequenceSplit(
            protocol=protocol, num_items=50, train_users=np.array([0], dtype=np.int32),
            train=ex.history, train_timestamps=None, valid=ex, test=ex, max_history=cap,
        )  # fmt: skip

    with pytest.raises(
        ValueError, match=r"keeps whole evaluation histories, but its protocol 'tiger'"
    ):
        check_history_cap(split_of("tiger", None))
    with pytest.raises(ValueError, match=r"up to 50 events of .* Save it under .*'long'"):
        check_history_cap(split_of("tiger", 50))
    for protocol, cap in (("tiger", 20), ("tiger", 3), ("long", None), ("hstu", None)):
        check_history_cap(split_of(protocol, cap))
