"""A leave-one-out split of synthetic 10^4-event users whose test targets are planted long-range
returns, so a model's test Recall/NDCG is its recovery of interests last seen thousands of events
earlier (issue 4, ``longseq_quality``).

Every user gets planted interests (``LongHistoryConfig``: a burst of B events of a topic the user
otherwise never visits, then G events without it, then R events that re-consume the burst's own
items, ``planted_repeat``): the first one is the one evaluated, and ``--extra`` more (20 by
default, ``planted_extra``) give training rows enough such returns to learn copying from.
Users are split three ways:

- train users: their whole histories (every event a training target with ``train.windows=all``);
- valid / test users: the history up to and including the first ``--cue`` return events, and the
  next return event as the target.

Why a cue and repeated items: the first return event comes without warning (nothing in the events
before it says that the interest is back), so no model can predict it, whatever it sees; and if
returns were fresh draws from the planted topic, the cue alone would tell a short-context model
everything the burst can. With the cue in view and the target one of the burst's items, full
attention truncated after the burst knows the topic from the cue but must guess among its ~200
items; a model that still sees the burst can copy from its B items. Training rows hold returns too,
so the copying can be learnt: with one planted interest a training history has 4 such targets in
10^4, which a first GPU run (2026-11-29) did not learn from (every model's validation NDCG@10 fell
after the first epoch); with 20 extra interests it has about 80. Two return events as the cue
(``--cue 2``, R = 8): one off-topic event looks like the ordinary exploration events (10% of
all), after which the user goes back to their own topics, so one alone says little that a return
has begun; two of one topic in a row rarely happen by exploration. In a CPU trial at 2,000
events (2026-11-29) KSA's validation NDCG@10 rose past SASRec's at 256 in the second epoch with
this cue and fell with a cue of 1. The split is saved with ``SequenceSplit.save`` (protocol "long":
Recall/NDCG@5/10, full ranking, seen items not masked, since returns repeat burst items, and the
whole history fed to the model up to its ``max_len``), and trained on like any dataset by
``benchmarks/seqrec.py run``. Until 2026-11-30 (eighteenth session) the split was saved as "tiger",
whose evaluation keeps only the 20 most recent events of a history: every model was ranked from
its last 20 events, so the burst thousands of events back was out of every model's sight at
validation and test (docs/long_sequences.md, "Long-history data").

    python benchmarks/longseq_synthetic.py --out .gpu/synthetic-long.npz --rules

``--rules`` also writes ``longseq_synthetic_rules.json``: two rules without training that bracket
the task (the cue's topic by popularity; the burst's items copied), so that the models' numbers
can be read against what the cue alone and what the burst can tell.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit, segment_indices
from shortlist.data.synthetic import LongHistoryConfig, LongHistoryData, generate_long_histories

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result

log = logging.getLogger("benchmarks.longseq_synthetic")


def _examples(data: LongHistoryData, users: np.ndarray, cue: int) -> EvalExamples:
    """History = events up to and including the first ``cue`` returns; target = the next return."""
    seq = data.sequences
    cut = data.return_at[users] + cue  # (E,) position of the target in each user's sequence
    start = seq.offsets[users]
    history = Jagged.from_lengths(seq.values[segment_indices(start, start + cut)], cut)
    targets = seq.values[start + cut].astype(np.int32)
    return EvalExamples(users=users.astype(np.int32), history=history, targets=targets)


def build_split(cfg: LongHistoryConfig, n_valid: int, n_test: int, cue: int = 1) -> SequenceSplit:
    """Train on the other users' whole histories; valid / test examples as in the module doc."""
    return split_of(generate_long_histories(cfg), n_valid, n_test, cue)


def split_of(data: LongHistoryData, n_valid: int, n_test: int, cue: int = 1) -> SequenceSplit:
    """:func:`build_split` on data already generated (``data.config`` is its config)."""
    cfg = data.config
    if isinstance(cue, bool) or not isinstance(cue, int) or not 0 <= cue < cfg.planted_return:
        raise ValueError(
            f"cue must be an int in [0, planted_return - 1] = [0, {cfg.planted_return - 1}] (the "
            f"target is return event cue + 1 of {cfg.planted_return}); got {cue!r}"
        )
    planted = np.flatnonzero(data.return_at >= 0)
    if len(planted) <= n_valid + n_test:
        raise ValueError(
            f"only {len(planted)} users have a planted return; need more than n_valid + n_test = "
            f"{n_valid + n_test} (raise --users or planted_fraction)"
        )
    rng = np.random.default_rng(cfg.seed)
    held = rng.permutation(planted)[: n_valid + n_test]
    valid_users, test_users = np.sort(held[:n_valid]), np.sort(held[n_valid:])
    train_users = np.setdiff1d(np.arange(len(data.sequences)), held)
    seq = data.sequences
    start, end = seq.offsets[train_users], seq.offsets[train_users + 1]
    train = Jagged.from_lengths(seq.values[segment_indices(start, end)], end - start)
    return SequenceSplit(
        protocol="long",
        num_items=cfg.n_items,
        train_users=train_users.astype(np.int32),
        train=train,
        train_timestamps=None,
        valid=_examples(data, valid_users, cue),
        test=_examples(data, test_users, cue),
        max_history=None,
    )


def rule_baselines(
    split: SequenceSplit, item_topic: np.ndarray, k: int = 10
) -> dict[str, dict[str, float]]:
    """Recall@k and NDCG@k of two rules that bracket the task, on the valid and test examples
    (whose last history event is a return event, the cue):

    - ``cue_topic_popularity``: the k most popular training items of the cue's topic, what the cue
      alone says (a model that no longer sees the burst can know the topic, not the user's items);
    - ``burst_copy``: the items of the cue's topic anywhere in the history, most frequent first, then
      by popularity: the burst's items, what a model that still sees the burst can copy.

    item_topic: (N + 1,) topic of each item id (index 0 is padding). Ranks count the candidates
    ranked strictly before the target (a list shorter than k is padded with misses).
    """
    pop = np.bincount(split.train.values, minlength=split.num_items + 1).astype(np.float64)
    ranked = np.argsort(-pop, kind="stable")  # items by popularity, once
    top_of_topic = {int(t): ranked[item_topic[ranked] == t][:k] for t in np.unique(item_topic)}
    out: dict[str, dict[str, float]] = {}
    for part, ex in (("valid", split.valid), ("test", split.test)):
        gains = {"cue_topic_popularity": [], "burst_copy": []}
        for i in range(len(ex.users)):
            history, target = ex.history[i], int(ex.targets[i])
            topic = item_topic[history[-1]]
            lists = {"cue_topic_popularity": top_of_topic[int(topic)]}
            items, counts = np.unique(history[item_topic[history] == topic], return_counts=True)
            lists["burst_copy"] = items[np.lexsort((-pop[items], -counts))][:k]
            for rule, top in lists.items():
                hit = np.flatnonzero(top == target)
                gains[rule].append(1.0 / np.log2(hit[0] + 2) if len(hit) else 0.0)
        for rule, g in gains.items():
            g = np.asarray(g)
            out.setdefault(rule, {})[f"{part}_recall@{k}"] = float((g > 0).mean())
            out[rule][f"{part}_ndcg@{k}"] = float(g.mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=1400)
    p.add_argument("--length", type=int, default=10_000, help="events per user")
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--gap", type=int, default=5_000, help="G: events between burst and return")
    p.add_argument("--burst", type=int, default=20, help="B: events of the planted burst")
    p.add_argument("--returns", type=int, default=8, help="R: return events")
    p.add_argument(
        "--cue",
        type=int,
        default=2,
        help="return events shown before the target (2: two events of a topic outside the user's "
        "slots in a row tell a return from an exploration event, which one alone does not)",
    )
    p.add_argument(
        "--extra",
        type=int,
        default=20,
        help="more planted interests per user (LongHistoryConfig.planted_extra): training rows "
        "where copying from a burst G events back pays; 0 gives one per user, too few to learn from",
    )
    p.add_argument(
        "--repeat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="returns re-consume burst items (--no-repeat: fresh draws from the planted topic)",
    )
    p.add_argument("--valid", type=int, default=200)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rules",
        action="store_true",
        help="also write benchmarks/results/longseq_synthetic_rules.json: Recall/NDCG@10 of the "
        "two rules that bracket the task (needs --cue >= 1)",
    )
    args = p.parse_args()
    if args.rules and args.cue < 1:
        p.error("--rules needs --cue >= 1: the rules start from the cue's topic")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = LongHistoryConfig(
        n_users=args.users,
        n_items=args.items,
        min_length=args.length,
        max_length=args.length,
        planted_fraction=1.0,
        planted_gap=args.gap,
        planted_burst=args.burst,
        planted_return=args.returns,
        planted_repeat=args.repeat,
        planted_extra=args.extra,
        seed=args.seed,
    )
    data = generate_long_histories(cfg)
    split = split_of(data, args.valid, args.test, args.cue)
    split.save(args.out)
    h = split.test.history.lengths
    log.info(
        "%s; test history length min/median/max %d/%d/%d -> %s",
        split.summary(),
        h.min(),
        np.median(h),
        h.max(),
        args.out,
    )

    if args.rules:
        rows = [
            Row(
                dataset="synthetic-long",
                protocol="long",
                model=f"rule: {rule}",
                variant=f"G={args.gap}, B={args.burst}, {args.users} users x {args.length} events",
                metrics=metrics,
            )
            for rule, metrics in rule_baselines(split, data.item_topic).items()
        ]
        write_result(
            "longseq_synthetic_rules",
            rows,
            notes="Two rules on the planted long-range split that bracket the task: "
            "cue_topic_popularity (what the cue alone tells: no model that has lost the burst "
            "can know more than the topic) and burst_copy (the burst's items, what a model that "
            "still sees the burst can copy). Rule-based, no training; valid and test examples.",
        )


if __name__ == "__main__":
    main()
