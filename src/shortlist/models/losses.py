"""Next-item losses shared by the sequential retrievers.

Notation: M scored positions (the real positions of a batch, flattened), D width, N items,
K sampled negatives, S in-batch negatives.

- ``full_softmax_loss``: cross-entropy over all N items (SASRec in RecBole; exact, O(M N D)).
- ``sampled_softmax_loss``: cross-entropy over the positive, K uniform negatives and S in-batch
  negatives (the targets of other positions of the batch), shared by all M positions so that one
  (M, D) x (D, K + S) matmul scores them; a negative equal to a position's positive is masked. With
  ``normalize=True`` the scores are cosine similarities divided by a temperature (HSTU's
  sampled-softmax setting: 128 negatives, temperature 0.05). Uniform sampling needs no logQ
  correction among themselves, but in-batch negatives are drawn popularity-proportionally, so with
  ``logq=True`` every negative's logit is reduced by the log of its expected count among the
  candidates (K/N for a uniform draw, S c_i / M for an in-batch one with c_i its count among the
  targets): the logQ correction of Yi et al., RecSys 2019.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def full_softmax_loss(
    hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean cross-entropy over all items.

    Args:
        hidden: (M, D) states at the scored positions.
        targets: (M,) next items in 1..N.
        items: (N+1, D) item table; row 0 (padding) is never a candidate.
    """
    logits = hidden @ items.T / temperature  # (M, N+1)
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits.float(), targets)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    *,
    num_negatives: int,
    in_batch: int = 0,
    temperature: float = 1.0,
    normalize: bool = False,
    logq: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the positive against shared sampled negatives (see the module docstring).

    Args:
        hidden: (M, D); targets: (M,) in 1..N; items: (N+1, D).
        num_negatives: K uniform negatives from 1..N.
        in_batch: S in-batch negatives (targets of S random positions of the batch; 0 = none).
    """
    num_items = items.shape[0] - 1
    device = hidden.device
    neg = torch.randint(
        1, num_items + 1, (num_negatives,), device=device, generator=generator
    )  # (K,)
    # logQ: log of each negative's expected count among the sampled candidates
    corrections = torch.full(
        (num_negatives,), float(torch.log(torch.tensor(num_negatives / num_items))), device=device
    )
    if in_batch > 0:
        s = min(in_batch, targets.shape[0])
        pick = torch.randint(0, targets.shape[0], (s,), device=device, generator=generator)
        ib = targets[pick]  # (S,)
        counts = torch.bincount(targets, minlength=num_items + 1).float()
        corrections = torch.cat([corrections, (s * counts[ib] / targets.shape[0]).log()])
        neg = torch.cat([neg, ib])
    if not logq:
        corrections = torch.zeros_like(corrections)
    q, table = hidden, items
    if normalize:
        q = F.normalize(q, dim=-1)
        table = F.normalize(table, dim=-1)
    pos = (q * table[targets]).sum(-1, keepdim=True)  # (M, 1)
    negs = q @ table[neg].T  # (M, K+S)
    logits = torch.cat([pos, negs], dim=1).float() / temperature
    logits[:, 1:] -= corrections
    logits[:, 1:] = logits[:, 1:].masked_fill(neg[None, :] == targets[:, None], float("-inf"))
    return F.cross_entropy(logits, torch.zeros_like(targets))
