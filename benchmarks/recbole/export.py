"""Export one of our sequential splits to RecBole's atomic files, pre-split, so RecBole trains and
evaluates on exactly our split and candidate set.

RecBole's ``benchmark_filename: [train, valid, test]`` loads ``<token>.train.inter``,
``<token>.valid.inter`` and ``<token>.test.inter`` as they are (recbole/data/dataset/dataset.py,
``_load_inter_feat``; ``build`` slices them back apart in file order) and, for sequential models,
skips its own data augmentation (sequential_dataset.py, ``_change_feat_format``). Each row is one
example: ``user_id:token``, ``item_id_list:token_seq`` (the history, oldest first, space-separated,
no padding tokens) and ``item_id:token`` (the target). Items are written as our indices 1..N, users
as our indices 0..U-1. ``<token>.item`` lists all N items, so RecBole's vocabulary (and so the
full-sort candidate set) is exactly our items 1..N even when an item occurs in no exported row.

Training examples (``--train-examples``), one row per (history, target) pair:
- ``window`` (default): exactly the pairs our trainer optimizes. It trains each user's training
  sequence ``s`` (length n) on inputs ``s[:-1]`` / targets ``s[1:]`` cut to the most recent
  ``max_len`` positions (shortlist/data/batches.py, ``_training_window``); with causal attention the
  target ``s[t]`` sees ``s[w:t]``, w = max(0, n - 1 - max_len). So: targets t = max(1, n - max_len)
  .. n-1, each with history ``s[w:t]``.
- ``all``: RecBole's own augmentation (``SequentialDataset.data_augmentation``): every target
  t = 1 .. n-1 with the sliding history ``s[max(0, t - max_len):t]``.
Both are the same set when no training sequence is longer than ``max_len + 1`` events.

Validation / test: our split's examples (``leave_one_out`` / ``tiger_split``), histories cut to the
``max_len`` most recent items (the model's input length; our evaluation batches cut the same way).

Usage (from the project's environment)::

    python benchmarks/recbole/export.py --dataset amazon-beauty --protocol tiger
    python benchmarks/recbole/export.py --dataset ml-100k --protocol hstu --max-len 200

writes ``runs/recbole/data/<token>/`` with the three ``.inter`` files, ``<token>.item`` and
``manifest.json`` (counts, the exact configuration and sha256 fingerprints of the valid/test
examples that ``run_sasrec.py`` checks against what RecBole loaded).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shortlist.data.datasets import load_dataset
from shortlist.data.schema import ITEM, InteractionData, Jagged
from shortlist.data.splits import (
    EvalExamples,
    SequenceSplit,
    leave_one_out,
    segment_indices,
    tiger_split,
)

log = logging.getLogger("recbole.export")

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_FILES = ("train", "valid", "test")
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"
PROTOCOLS = {"hstu": leave_one_out, "tiger": tiger_split}
DEFAULT_MAX_LEN = {
    "hstu": 200,
    "tiger": 20,
}  # HSTU: max_sequence_length 200 (ML-1M); TIGER: 20 items
TRAIN_EXAMPLES = ("window", "all")


@dataclass(frozen=True)
class Examples:
    """Next-item examples, one per row of a RecBole ``.inter`` file.

    Attributes:
        users: (E,) int64 user indices.
        history: jagged item indices before each target, oldest first: values (sum_e L_e,), offsets (E+1,).
        targets: (E,) int64 item indices.
    """

    users: np.ndarray
    history: Jagged
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def training_examples(split: SequenceSplit, max_len: int, mode: str) -> Examples:
    """The training (history, target) pairs of ``split`` (see the module docstring for ``mode``)."""
    if mode not in TRAIN_EXAMPLES:
        raise ValueError(
            f"The 'mode' parameter of training_examples must be one of {TRAIN_EXAMPLES}. Got {mode!r} instead."
        )
    seqs = split.train
    n = seqs.lengths  # (U,)
    begin = seqs.offsets[:-1]  # (U,) absolute start of each training sequence
    first_target = np.maximum(1, n - max_len) if mode == "window" else np.ones_like(n)  # (U,)
    tgt_pos = segment_indices(begin + first_target, begin + n)  # (E,) absolute positions of targets
    counts = np.maximum(n - first_target, 0)  # (U,) targets per user
    row = np.repeat(np.arange(len(n)), counts)  # (E,) training row of each target
    if mode == "window":
        hist_start = (
            begin[row] + first_target[row] - 1
        )  # the window's first input, shared by the row
    else:
        hist_start = np.maximum(begin[row], tgt_pos - max_len)
    lengths = tgt_pos - hist_start
    assert lengths.min(initial=1) >= 1 and lengths.max(initial=0) <= max_len, (
        lengths.min(),
        lengths.max(),
        max_len,
    )
    values = seqs.values[segment_indices(hist_start, tgt_pos)]
    return Examples(
        users=split.train_users.astype(np.int64)[row],
        history=Jagged.from_lengths(values.astype(np.int64), lengths),
        targets=seqs.values[tgt_pos].astype(np.int64),
    )


def evaluation_examples(examples: EvalExamples, max_len: int) -> Examples:
    """``examples`` with each history cut to its ``max_len`` most recent items."""
    h = examples.history
    end = h.offsets[1:]
    start = np.maximum(h.offsets[:-1], end - max_len)
    return Examples(
        users=examples.users.astype(np.int64),
        history=Jagged.from_lengths(
            h.values[segment_indices(start, end)].astype(np.int64), end - start
        ),
        targets=examples.targets.astype(np.int64),
    )


def fingerprint(ex: Examples) -> str:
    """sha256 of (users, history lengths, history values, targets) as little-endian int64."""
    digest = hashlib.sha256()
    for part in (ex.users, ex.history.lengths, ex.history.values, ex.targets):
        digest.update(np.ascontiguousarray(part, dtype="<i8").tobytes())
    return digest.hexdigest()


def write_inter(path: Path, ex: Examples) -> None:
    """One ``.inter`` file: a header, then ``user \\t h1 h2 ... \\t target`` per example."""
    values = ex.history.values.astype(str)
    offsets = ex.history.offsets
    lines = [HEADER]
    lines.extend(
        f"{u}\t{' '.join(values[offsets[i] : offsets[i + 1]])}\t{t}"
        for i, (u, t) in enumerate(zip(ex.users.tolist(), ex.targets.tolist(), strict=True))
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def read_inter(path: Path) -> Examples:
    """Parse a file written by :func:`write_inter` back (the round-trip check)."""
    lines = path.read_text().splitlines()
    if lines[0] != HEADER:
        raise ValueError(f"{path}: expected the header {HEADER!r}, got {lines[0]!r}")
    users, targets, lengths, values = [], [], [], []
    for line in lines[1:]:
        u, hist, t = line.split("\t")
        items = [int(x) for x in hist.split(" ") if x]
        users.append(int(u))
        targets.append(int(t))
        lengths.append(len(items))
        values.extend(items)
    return Examples(
        np.array(users, np.int64),
        Jagged.from_lengths(np.array(values, np.int64), np.array(lengths, np.int64)),
        np.array(targets, np.int64),
    )


def same(a: Examples, b: Examples) -> bool:
    return (
        np.array_equal(a.users, b.users)
        and np.array_equal(a.targets, b.targets)
        and np.array_equal(a.history.offsets, b.history.offsets)
        and np.array_equal(a.history.values, b.history.values)
    )


def check_against_data(
    data: InteractionData, split: SequenceSplit, valid: Examples, test: Examples, max_len: int
) -> dict[str, Any]:
    """Independent checks of the exported evaluation rows against the raw per-user sequences.

    Test target = each evaluated user's last event, valid target = the second-to-last, histories =
    the events just before them (at most ``max_len`` and the protocol's cap), training sequence =
    all events but the last two. Raises AssertionError naming the first mismatch.
    """
    offsets = data.offsets()
    items = data.interactions[ITEM].to_numpy().astype(np.int64)
    n = np.diff(offsets)
    evaluated = np.flatnonzero(n >= 3)
    assert np.array_equal(test.users, evaluated) and np.array_equal(valid.users, evaluated), (
        "evaluated users differ"
    )
    end = offsets[evaluated + 1]
    assert np.array_equal(test.targets, items[end - 1]), (
        "test targets are not the users' last events"
    )
    assert np.array_equal(valid.targets, items[end - 2]), (
        "valid targets are not the users' second-to-last events"
    )
    cap = max_len if split.max_history is None else min(max_len, split.max_history)
    for name, ex, stop in (("valid", valid, end - 2), ("test", test, end - 1)):
        start = np.maximum(offsets[evaluated], stop - cap)
        expected = Jagged.from_lengths(items[segment_indices(start, stop)], stop - start)
        assert np.array_equal(ex.history.offsets, expected.offsets) and np.array_equal(
            ex.history.values, expected.values
        ), f"{name} histories are not the {cap} events before the target"
    train_len = np.where(n >= 3, n - 2, n)[split.train_users]
    assert np.array_equal(split.train.lengths, train_len), (
        "training sequences are not all events but the last two"
    )
    return {
        "evaluated_users": len(evaluated),
        "history_cap": cap,
        "checks": [
            "test target = last event",
            "valid target = second-to-last event",
            f"histories = the {cap} events before the target",
            "training = all events but the last two",
        ],
    }


def export(
    dataset: str,
    protocol: str,
    out_dir: Path,
    *,
    max_len: int | None = None,
    train_examples: str = "window",
    token: str | None = None,
    data_dir: str | None = None,
    max_users: int | None = None,
    speed_only: bool = False,
) -> Path:
    """Write the RecBole files of ``dataset`` under ``protocol`` into ``out_dir/<token>/``; return that folder."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"The 'protocol' parameter must be one of {sorted(PROTOCOLS)}. Got {protocol!r} instead."
        )
    max_len = max_len or DEFAULT_MAX_LEN[protocol]
    if max_len < 1:
        raise ValueError(f"The 'max_len' parameter must be an int >= 1. Got {max_len} instead.")
    # Not a RecBole built-in name: RecBole would merge recbole/properties/dataset/<name>.yaml (ml-100k has one).
    token = token or f"{dataset}-{protocol}-L{max_len}" + (
        "" if train_examples == "window" else f"-{train_examples}"
    )
    t0 = time.perf_counter()
    data = load_dataset(dataset, data_dir=data_dir)
    if speed_only and data.order == "none":
        # Throughput does not depend on the order of events: take file order (ML-1M here has no
        # timestamps). Such an export is for speed runs only, never for quality.
        data = dataclasses.replace(data, order="sequence")
    # the first users only (speed runs: RecBole writes one row per target)
    if max_users is not None:
        inter = data.interactions.filter(pl.col("user") < max_users)
        data = dataclasses.replace(data, interactions=inter, users=data.users.head(max_users))
    split = PROTOCOLS[protocol](data)
    parts = {
        "train": training_examples(split, max_len, train_examples),
        "valid": evaluation_examples(split.valid, max_len),
        "test": evaluation_examples(split.test, max_len),
    }
    checks = check_against_data(data, split, parts["valid"], parts["test"], max_len)
    folder = out_dir / token
    folder.mkdir(parents=True, exist_ok=True)
    for name in BENCHMARK_FILES:
        write_inter(folder / f"{token}.{name}.inter", parts[name])
        back = read_inter(folder / f"{token}.{name}.inter")
        assert same(back, parts[name]), (
            f"{name}: the written file does not read back to the same examples"
        )
    (folder / f"{token}.item").write_text(
        "item_id:token\n" + "\n".join(map(str, range(1, data.num_items + 1))) + "\n"
    )
    manifest = {
        "token": token,
        "dataset": dataset,
        "protocol": protocol,
        "max_len": max_len,
        "max_history": split.max_history,
        "train_examples": train_examples,
        "num_items": data.num_items,
        "num_users": data.num_users,
        "split": split.summary(),
        "rows": {name: len(parts[name]) for name in BENCHMARK_FILES},
        "history_tokens": {name: len(parts[name].history.values) for name in BENCHMARK_FILES},
        "fingerprints": {name: fingerprint(parts[name]) for name in BENCHMARK_FILES},
        "verified": checks | {"round_trip": "each file parsed back equals the examples written"},
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", required=True, help="a registered dataset (shortlist data list)")
    p.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    p.add_argument(
        "--max-len", type=int, default=None, help="model input length (default: hstu 200, tiger 20)"
    )
    p.add_argument(
        "--train-examples",
        choices=TRAIN_EXAMPLES,
        default="window",
        help="window = exactly our trainer's pairs; all = RecBole's augmentation (every prefix)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "recbole" / "data")
    p.add_argument(
        "--token",
        default=None,
        help="RecBole dataset name (default <dataset>-<protocol>-L<max_len>)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the dataset (default: SHORTLIST_DATA, ../shared/data)",
    )
    p.add_argument("--max-users", type=int, default=None, help="export the first N users only")
    p.add_argument(
        "--speed-only",
        action="store_true",
        help="allow a dataset without time order (file order is used): for speed runs only",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    folder = export(
        args.dataset,
        args.protocol,
        args.out,
        max_len=args.max_len,
        train_examples=args.train_examples,
        token=args.token,
        data_dir=args.data_dir,
        max_users=args.max_users,
        speed_only=args.speed_only,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    log.info("wrote %s: rows %s, %d items", folder, manifest["rows"], manifest["num_items"])
    print(folder)


if __name__ == "__main__":
    main()
