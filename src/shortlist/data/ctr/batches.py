"""CTR batches and the batch source the common trainer iterates (``len``, ``iter``, ``set_epoch``).

Notation: B rows per batch.

A :class:`CTRBatch` holds the fields of :meth:`CTRData.features` as tensors, the label (B,) and the
user (B,) of each row. :class:`CTRLoader` shuffles a split's rows with a permutation seeded by
``(seed, epoch)`` (so a resumed run sees the same batches), shards them over DDP ranks, and builds
each batch in NumPy in the main process: a gather per field, well under a millisecond per thousand
rows, so no worker processes are needed.

Example:
    >>> loader = CTRLoader(data, "train", batch_size=2048, shuffle=True, seed=0)
    >>> loader.set_epoch(0)
    >>> batch = next(iter(loader)); batch.num_rows
    2048
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shortlist.data.ctr.dataset import CTRData


@dataclass(frozen=True)
class CTRBatch:
    """Rows to score: ``features`` name -> tensor (shapes of :meth:`CTRData.features`),
    ``label`` (B,) float32 in {0, 1}, ``user`` (B,) int64 (GAUC groups rows by it)."""

    features: dict[str, torch.Tensor]
    label: torch.Tensor
    user: torch.Tensor

    @property
    def num_rows(self) -> int:
        return int(self.label.shape[0])

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.features[name]

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> CTRBatch:
        return CTRBatch(
            {k: v.to(device, non_blocking=non_blocking) for k, v in self.features.items()},
            self.label.to(device, non_blocking=non_blocking),
            self.user.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> CTRBatch:
        return CTRBatch(
            {k: v.pin_memory() for k, v in self.features.items()},
            self.label.pin_memory(),
            self.user.pin_memory(),
        )

    @classmethod
    def from_numpy(cls, arrays: dict[str, np.ndarray], label: str, user: str) -> CTRBatch:
        """Build from :meth:`CTRData.features` output: ``label`` and ``user`` name those columns."""
        feats = {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if k != label
        }
        return cls(
            feats,
            torch.from_numpy(np.ascontiguousarray(arrays[label], dtype=np.float32)),
            feats[user].long()
            if user in feats
            else torch.zeros(len(arrays[label]), dtype=torch.long),
        )


class CTRLoader:
    """Batches of one split of a :class:`CTRData` (a batch source for the common trainer).

    Args:
        data: the prepared dataset.
        part: ``"train"``, ``"valid"`` or ``"test"``.
        batch_size: rows per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: a new permutation each epoch, seeded by ``(seed, epoch)``.
        rank, world_size: DDP shard (default: read from ``torch.distributed`` when initialised).
    """

    def __init__(
        self,
        data: CTRData,
        part: str,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if part not in data.parts:
            raise ValueError(f"CTRLoader: unknown part {part!r}; valid: {sorted(data.parts)}.")
        if batch_size < 1:
            raise ValueError(f"CTRLoader: batch_size must be >= 1. Got {batch_size!r} instead.")
        self.data = data
        self.part = part
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self._rank = rank
        self._world = world_size
        self.epoch = 0

    def _shard(self) -> tuple[int, int]:
        if self._world is not None:
            return self._rank or 0, self._world
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rows(self) -> np.ndarray:
        """This rank's rows of the current epoch, in order."""
        n = len(self.data.parts[self.part])
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        rank, world = self._shard()
        per_rank = n // world if world > 1 else n  # equal shards, so DDP ranks step together
        return order[rank * per_rank : (rank + 1) * per_rank] if world > 1 else order

    def __len__(self) -> int:
        _, world = self._shard()
        n = len(self.data.parts[self.part]) // world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[CTRBatch]:
        rows = self.rows()
        spec = self.data.spec
        for i in range(len(self)):
            chunk = rows[i * self.batch_size : (i + 1) * self.batch_size]
            arrays = self.data.features(self.part, chunk)
            yield CTRBatch.from_numpy(arrays, spec.label, spec.user_field)
