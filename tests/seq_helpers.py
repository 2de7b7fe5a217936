"""Helpers shared by the sequence-batching tests: plain-Python references and strategies."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from shortlist.data.batches import SequenceBatch
from shortlist.data.sequences import Jagged


def jagged_of(rows: list[list[int]], dtype=np.int64) -> Jagged:
    values = np.array([v for r in rows for v in r], dtype=dtype)
    return Jagged.from_lengths(values, np.array([len(r) for r in rows], dtype=np.int64))


def rows_of(j: Jagged) -> list[list[int]]:
    return [j[i].tolist() for i in range(len(j))]


def ref_pad(rows: list[list[int]], max_len: int, side: str, truncate: str) -> list[list[int]]:
    out = []
    for r in rows:
        kept = r[-max_len:] if truncate == "left" else r[:max_len]
        fill = [0] * (max_len - len(kept))
        out.append(fill + kept if side == "left" else kept + fill)
    return out


def assert_batches_equal(a: SequenceBatch, b: SequenceBatch) -> None:
    for name in ("input_ids", "target_ids", "lengths", "user_ids", "negatives", "timestamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert torch.equal(x, y), name


def random_jagged(rng: np.random.Generator, n_rows: int, n_items: int, mean_len: float) -> Jagged:
    lengths = rng.poisson(mean_len, size=n_rows)
    values = rng.integers(1, n_items + 1, size=int(lengths.sum()))
    return Jagged.from_lengths(values, lengths)


item_rows = st.lists(st.lists(st.integers(1, 50), max_size=12), max_size=8)
sides = st.sampled_from(["left", "right"])


def learn_successor(model: torch.nn.Module, length: int, steps: int) -> tuple[float, float, float]:
    """Train ``model`` (a retriever over items 1..12) on rows where item i is always followed by
    i + 1 (mod 12), ``length`` inputs per row, ``steps`` Adam steps; returns (top-1 accuracy on the
    next item after each row, first loss, last loss)."""
    from shortlist.data.batches import EvalBatch

    starts = torch.arange(12)
    seqs = (starts[:, None] + torch.arange(length + 1)[None]) % 12 + 1  # (12, length + 1)
    lengths = torch.full((12,), length)
    batch = SequenceBatch(
        input_ids=seqs[:, :-1], target_ids=seqs[:, 1:], lengths=lengths, user_ids=starts
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        loss = model.compute_loss(batch).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ev = EvalBatch(
        history=seqs[:, 1:], target=(seqs[:, -1] % 12) + 1, user_ids=starts, lengths=lengths
    )
    hit = (model.recommend(ev, 1).ids[:, 0] == ev.target).float().mean().item()
    return hit, losses[0], losses[-1]


def cyclic_sequences(n_users: int = 64, n_items: int = 20, seed: int = 0) -> Jagged:
    """Users walking the item cycle 1..n_items from a random start (3-11 events): learnable."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n_users)
    starts = rng.integers(1, n_items + 1, n_users)
    values = np.concatenate(
        [(s - 1 + np.arange(n)) % n_items + 1 for s, n in zip(starts, lengths, strict=True)]
    )
    return Jagged.from_lengths(values.astype(np.int64), lengths)


def tiny_sasrec():
    """A 16-wide SASRec over 20 items with fixed initial weights (trainer tests)."""
    from shortlist.models import build_model

    torch.manual_seed(0)
    return build_model("sasrec", num_items=20, max_len=10, dim=16, num_heads=2, dropout=0.3)
