"""SASRec: shapes, causality, padding invariance, losses, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seq_helpers import learn_successor
from shortlist.data.batches import EvalBatch, SequenceBatch
from shortlist.models import build_model, load_model
from shortlist.models.losses import full_softmax_loss, sampled_softmax_loss


def _model(**kw: object):
    torch.manual_seed(0)
    m = build_model("sasrec", num_items=30, max_len=8, dim=16, num_heads=2, dropout=0.0, **kw)
    return m.eval()


def test_shapes_and_zero_padding() -> None:
    m = _model()
    ids = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0, 7, 8]])
    h = m.encode(ids)
    assert h.shape == (2, 8, 16)
    assert torch.all(h[ids == 0] == 0) and torch.all(h[ids > 0].abs().sum(-1) > 0)


def test_causality() -> None:
    m = _model()
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = ids.clone()
    changed[0, 5] = 20
    a, b = m.encode(ids), m.encode(changed)
    torch.testing.assert_close(a[0, :5], b[0, :5])
    assert not torch.allclose(a[0, 5:], b[0, 5:])


def test_padding_invariance() -> None:
    m = _model()
    short = torch.tensor([[0, 3, 4, 5]])  # L = 4 < max_len
    long = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    torch.testing.assert_close(m.encode(short)[0, -3:], m.encode(long)[0, -3:])


def test_batch_rows_are_independent() -> None:
    m = _model()
    a = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5]])
    b = torch.tensor([[0, 0, 0, 0, 0, 9, 7, 8]])
    both = m.encode(torch.cat([a, b]))
    torch.testing.assert_close(both[0], m.encode(a)[0])
    torch.testing.assert_close(both[1], m.encode(b)[0])


def test_full_softmax_matches_hand_computed() -> None:
    hidden = torch.tensor([[1.0, 0.0]])
    items = torch.tensor(
        [[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    )  # row 0 = padding, ignored
    loss = full_softmax_loss(hidden, torch.tensor([1]), items)
    expected = -torch.log(
        torch.exp(torch.tensor(1.0))
        / (torch.exp(torch.tensor(1.0)) + 1 + torch.exp(torch.tensor(2.0)))
    )
    torch.testing.assert_close(loss, expected)


def test_sampled_softmax_masks_the_positive() -> None:
    hidden = torch.randn(5, 4)
    items = torch.randn(4, 4)  # N = 3: every negative collides with someone's positive
    targets = torch.tensor([1, 2, 3, 1, 2])
    gen = torch.Generator().manual_seed(0)
    loss = sampled_softmax_loss(
        hidden, targets, items, num_negatives=50, in_batch=5, generator=gen, logq=False
    )
    assert torch.isfinite(loss)
    # with N = 1 every negative equals the positive: only the positive remains, loss 0
    one = sampled_softmax_loss(
        hidden[:2], torch.tensor([1, 1]), items[:2], num_negatives=8, logq=False
    )
    torch.testing.assert_close(one, torch.tensor(0.0))


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_training_learns_a_pattern(loss: str) -> None:
    torch.manual_seed(0)
    m = build_model(
        "sasrec",
        num_items=12,
        max_len=6,
        dim=32,
        num_heads=2,
        dropout=0.0,
        loss=loss,
        num_negatives=6,
    )
    hit, first, last = learn_successor(m, length=6, steps=150)
    assert hit > 0.9 and last < first / 3


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = _model(loss="sampled_softmax", normalize=True, temperature=0.1)
    m.save_pretrained(tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert type(again) is type(m) and again.config == m.config
    ev = EvalBatch(
        history=torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6]]),
        target=torch.tensor([7]),
        user_ids=torch.tensor([0]),
        lengths=torch.tensor([6]),
    )
    torch.testing.assert_close(again.score_all(ev), m.score_all(ev))


def test_recommend_excludes_and_skips_padding() -> None:
    m = _model()
    ev = EvalBatch(
        history=torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6]]),
        target=torch.tensor([7]),
        user_ids=torch.tensor([0]),
        lengths=torch.tensor([6]),
    )
    top = m.recommend(ev, 24, exclude=ev.history)  # 30 items, 6 excluded: exactly 24 candidates
    ids = set(top.ids[0].tolist())
    assert 0 not in ids and not ids & {1, 2, 3, 4, 5, 6} and len(ids) == 24
    assert torch.isfinite(top.scores).all()
    assert m.recommend(ev, 100).ids.shape == (1, 30)  # k is clipped to N


def test_config_errors() -> None:
    with pytest.raises(
        ValueError, match=r"The 'dim' parameter of SASRecConfig .* divisible by num_heads"
    ):
        build_model("sasrec", num_items=5, dim=10, num_heads=3)
    with pytest.raises(
        ValueError, match=r"Unknown config key\(s\) \['layers'\] for model 'sasrec'"
    ):
        build_model("sasrec", num_items=5, layers=2)
    with pytest.raises(ValueError, match="exceed SASRec's max_len=8"):
        _model().encode(torch.ones(1, 9, dtype=torch.long))


@pytest.mark.parametrize("name", ["sasrec", "ksa", "elastic"])
def test_normalize_gives_cosine_scores_under_the_full_softmax(name: str) -> None:
    """``normalize`` acts under the full softmax too: the loss is the cross-entropy of cosine / T
    and ``score_all`` ranks by cosine (before 2026-11-29 it silently used dot products)."""
    torch.manual_seed(0)
    kw = {"num_items": 30, "max_len": 8, "dim": 16, "num_heads": 2, "dropout": 0.0}
    m = build_model(name, **kw, loss="softmax", normalize=True, temperature=0.1).eval()
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    targets = torch.tensor([[0, 0, 4, 5, 6, 7, 8, 9]])
    batch = SequenceBatch(
        input_ids=ids, target_ids=targets, lengths=torch.tensor([6]), user_ids=torch.tensor([0])
    )
    h = F.normalize(m.encode(ids)[0, 2:], dim=-1)  # (6, D)
    table = F.normalize(m.item_emb.weight, dim=-1)
    torch.testing.assert_close(m.item_table(), table)
    logits = h @ table.T / 0.1
    logits[:, 0] = float("-inf")
    expected = F.cross_entropy(logits, targets[0, 2:])
    torch.testing.assert_close(m.compute_loss(batch).loss, expected)
    ev = EvalBatch(
        history=ids, target=torch.tensor([9]), user_ids=torch.tensor([0]), lengths=torch.tensor([6])
    )
    scores = m.score_all(ev)
    cos = F.normalize(m.encode(ids)[:, -1], dim=-1) @ table.T
    torch.testing.assert_close(scores[:, 1:], cos[:, 1:])
    assert scores[0, 1:].abs().max() <= 1.0 + 1e-5


def test_build_from_a_config_section() -> None:
    from shortlist.models import build_model_from_section

    section = {"name": "sasrec", "max_len": 7, "dim": 8, "num_heads": 2}
    model = build_model_from_section(section, num_items=11)
    assert model.config.num_items == 11 and model.config.max_len == 7 and model.config.dim == 8
    assert section == {"name": "sasrec", "max_len": 7, "dim": 8, "num_heads": 2}  # not consumed
    with pytest.raises(ValueError, match=r"needs a 'name' key\. Got keys \['dim'\]"):
        build_model_from_section({"dim": 8}, num_items=11)
    with pytest.raises(
        ValueError, match=r"'sasrec' sets \['num_items'\], which come from the data"
    ):
        build_model_from_section({"name": "sasrec", "num_items": 3}, num_items=11)
