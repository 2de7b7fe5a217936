"""Incremental inference for the KSA retriever: a KV cache updated per new event, O(W*k + n/k) per
KSA layer (KSA technical report, arXiv 2604.24432: decode cache ``[current chunk | sliding chunks
(ring) | summary buffer]``; ../shared/reference/PAPERS.md, section 2).

Notation: B users (rows, all with the same number of events n), H heads, dh head width, k chunk
size, W window in chunks, R = (W + 1) * k ring slots.

Per layer:
    - KSA layer (:class:`SummaryLayerCache`): a ring of R event K/V slots holding the current chunk
      and the W previous ones (event t goes to slot t mod R, overwriting the oldest chunk in
      place), and a contiguous, growing buffer of summary K/V, one per completed chunk.
      Entries: R + floor(n / k).
    - full layer (:class:`FullLayerCache`): all n event K/V (a growing buffer). Full layers never
      read summaries, so they store none. Entries: n.

An event is processed through every layer against the cache (its keys are written first, then it
attends). When it completes chunk c, the summary token of chunk c runs through every layer,
attending to the chunk's k event K/V (still in the ring) and to itself, and its K/V join each
KSA layer's summary buffer; event queries of chunk c + W + 1 onwards read it. The result equals a
full recompute of ``KSA.encode`` on the whole history (tests/test_ksa_model.py).

Example:
    >>> cache = KSACache(model.eval(), batch_size=1)
    >>> states = cache.prefill(history)          # (1, n, D), same as model.encode(history)
    >>> state = cache.append(new_events)[:, -1]  # (1, D) user state after the newest event
"""

from __future__ import annotations

import math

import torch

from shortlist.models.ksa import KSA, KSABlock
from shortlist.ops.ksa import num_chunks


def _grow(buf: torch.Tensor, needed: int) -> torch.Tensor:
    """(B, H, cap, dh) -> a buffer with capacity >= needed (doubling), contents kept."""
    cap = buf.shape[2]
    if needed <= cap:
        return buf
    new = buf.new_zeros(*buf.shape[:2], max(needed, 2 * cap), buf.shape[3])
    new[:, :, :cap] = buf
    return new


def _attend(
    q: torch.Tensor,
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    scale: float,
) -> torch.Tensor:
    """Softmax attention of q (B, H, 1, dh) over several key/value parts without concatenating them.

    Each part is (keys (B, H, n_i, dh), values (B, H, n_i, dh), mask (n_i,) bool or None).
    """
    scores = []
    for keys, _, mask in parts:
        s = (q @ keys.transpose(-1, -2)) * scale  # (B, H, 1, n_i)
        scores.append(s if mask is None else s.masked_fill(~mask, float("-inf")))
    p = torch.cat(scores, -1).softmax(-1)  # (B, H, 1, sum n_i)
    out, start = 0, 0
    for keys, values, _ in parts:
        n = keys.shape[2]
        out = out + p[..., start : start + n] @ values
        start += n
    assert isinstance(out, torch.Tensor)
    return out


class SummaryLayerCache:
    """A KSA layer's cache: ring of the last W + 1 chunks' event K/V + contiguous summary K/V."""

    def __init__(
        self, like: torch.Tensor, batch: int, heads: int, head_dim: int, chunk: int, window: int
    ) -> None:
        self.chunk, self.window = chunk, window
        self.slots = (window + 1) * chunk  # R
        self.ring_k = like.new_zeros(batch, heads, self.slots, head_dim)
        self.ring_v = torch.zeros_like(self.ring_k)
        self.ring_pos = torch.full((self.slots,), -1, dtype=torch.long, device=like.device)
        self.summary_k = like.new_zeros(batch, heads, 16, head_dim)
        self.summary_v = torch.zeros_like(self.summary_k)
        self.num_summaries = 0

    def add_events(self, t0: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write K/V (B, H, T, dh) of events t0..t0+T-1 into their ring slots (T <= R)."""
        pos = torch.arange(t0, t0 + k.shape[2], device=k.device)
        slot = pos % self.slots
        self.ring_k[:, :, slot], self.ring_v[:, :, slot], self.ring_pos[slot] = k, v, pos

    def event_parts(self, t: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Keys/values event t sees: the ring (own chunk up to t, W previous chunks) + old summaries."""
        c = t // self.chunk
        lo = max(0, (c - self.window) * self.chunk)
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = [
            (self.ring_k, self.ring_v, (self.ring_pos >= lo) & (self.ring_pos <= t))
        ]
        visible = max(0, c - self.window)  # summaries of chunks older than the window
        if visible:
            assert visible <= self.num_summaries, (visible, self.num_summaries)
            parts.append((self.summary_k[:, :, :visible], self.summary_v[:, :, :visible], None))
        return parts

    def chunk_kv(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, k, dh) event K/V of chunk c (in the ring while c is among the last W + 1)."""
        s0 = (c % (self.window + 1)) * self.chunk
        return self.ring_k[:, :, s0 : s0 + self.chunk], self.ring_v[:, :, s0 : s0 + self.chunk]

    def add_summaries(self, c0: int, sk: torch.Tensor, sv: torch.Tensor) -> None:
        """Append summary K/V (B, H, T, dh) of chunks c0..c0+T-1 to the contiguous buffer."""
        assert c0 == self.num_summaries, (c0, self.num_summaries)
        end = c0 + sk.shape[2]
        self.summary_k, self.summary_v = _grow(self.summary_k, end), _grow(self.summary_v, end)
        self.summary_k[:, :, c0:end], self.summary_v[:, :, c0:end] = sk, sv
        self.num_summaries = end

    @property
    def entries(self) -> int:
        """Cached tokens (each one key and one value per head): R + completed chunks."""
        return self.slots + self.num_summaries


class FullLayerCache:
    """A full-attention layer's cache: every event's K/V in a growing contiguous buffer."""

    def __init__(
        self, like: torch.Tensor, batch: int, heads: int, head_dim: int, chunk: int
    ) -> None:
        self.chunk = chunk
        self.k = like.new_zeros(batch, heads, 16, head_dim)
        self.v = torch.zeros_like(self.k)
        self.n = 0

    def add_events(self, t0: int, k: torch.Tensor, v: torch.Tensor) -> None:
        assert t0 == self.n, (t0, self.n)
        end = t0 + k.shape[2]
        self.k, self.v = _grow(self.k, end), _grow(self.v, end)
        self.k[:, :, t0:end], self.v[:, :, t0:end] = k, v
        self.n = end

    def event_parts(self, t: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        return [(self.k[:, :, : t + 1], self.v[:, :, : t + 1], None)]

    def chunk_kv(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo = c * self.chunk
        return self.k[:, :, lo : lo + self.chunk], self.v[:, :, lo : lo + self.chunk]

    def add_summaries(self, c0: int, sk: torch.Tensor, sv: torch.Tensor) -> None:
        """Full layers never read summary K/V: nothing to store."""

    @property
    def entries(self) -> int:
        return self.n


LayerCache = SummaryLayerCache | FullLayerCache


class KSACache:
    """The incremental state of B users under a KSA model (see the module docstring).

    Args:
        model: a :class:`~shortlist.models.ksa.KSA` in eval mode (dropout would break parity).
        batch_size: B users; they advance together, one event each per step.
    """

    def __init__(self, model: KSA, batch_size: int = 1) -> None:
        if not isinstance(model, KSA):
            raise TypeError(f"KSACache needs a KSA model. Got {type(model).__name__} instead.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"The 'batch_size' parameter of KSACache must be an int >= 1. Got {batch_size!r} instead."
            )
        c = model.config
        self.model, self.batch_size = model, batch_size
        self.chunk, self.window = c.chunk_size, c.window
        heads, head_dim = c.num_heads, c.dim // c.num_heads
        self.scale = 1.0 / math.sqrt(head_dim)
        like = model.summary_emb.detach()
        self.layers: list[LayerCache] = [
            FullLayerCache(like, batch_size, heads, head_dim, c.chunk_size)
            if block.full
            else SummaryLayerCache(like, batch_size, heads, head_dim, c.chunk_size, c.window)
            for block in model.blocks
        ]
        self.num_events = 0

    # -- sizes ---------------------------------------------------------------------------------
    def entries_per_layer(self) -> list[int]:
        """Cached tokens per layer (a token = one key and one value of every head)."""
        return [layer.entries for layer in self.layers]

    def entries(self) -> int:
        """Cached tokens summed over layers."""
        return sum(self.entries_per_layer())

    def nbytes(self) -> int:
        """Bytes of the cached keys and values (used entries, not buffer capacity)."""
        c = self.model.config
        itemsize = self.model.summary_emb.element_size()
        return self.entries() * 2 * self.batch_size * c.dim * itemsize

    # -- updates -------------------------------------------------------------------------------
    def _check_ids(self, ids: torch.Tensor) -> None:
        if self.model.training:
            raise ValueError(
                "KSACache needs the model in eval mode (call model.eval()): dropout breaks parity."
            )
        if ids.dim() != 2 or ids.shape[0] != self.batch_size or not bool((ids > 0).all()):
            raise ValueError(
                f"KSACache expects item ids of shape ({self.batch_size}, T) without padding (all > 0). "
                f"Got shape {tuple(ids.shape)} with {int((ids <= 0).sum())} ids <= 0 instead."
            )

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        """Fill an empty cache from whole histories in one parallel pass.

        Args:
            ids: (B, n) item ids, oldest first, no padding.

        Returns:
            (B, n, D) final states, equal to ``model.encode(ids)``.
        """
        self._check_ids(ids)
        if self.num_events:
            raise ValueError(
                f"KSACache.prefill needs an empty cache. It holds {self.num_events} events; use append."
            )
        m, (B, n) = self.model, ids.shape
        complete = n // self.chunk
        x = m.embed(ids)
        s = m.summary_tokens(B, num_chunks(n, self.chunk))
        for block, layer in zip(m.blocks, self.layers, strict=True):
            _, k, v = block.attn.project_events(block.ln1(x), torch.arange(n, device=ids.device))
            S = s.shape[1]
            _, sk, sv = block.attn.project_summaries(
                block.ln1(s), block.attn.summary_positions(S, s.device)
            )
            keep = n if isinstance(layer, FullLayerCache) else min(n, layer.slots)
            layer.add_events(n - keep, k[:, :, n - keep :], v[:, :, n - keep :])
            layer.add_summaries(0, sk[:, :, :complete], sv[:, :, :complete])
            x, s = block(x, s)
        self.num_events = n
        return m.ln(x)

    @torch.no_grad()
    def append(self, ids: torch.Tensor) -> torch.Tensor:
        """Process new events one at a time against the cache.

        Args:
            ids: (B, T) item ids of each user's next T events, oldest first, no padding.

        Returns:
            (B, T, D) final states of the new events; ``[:, -1]`` is the user state after the last.
        """
        self._check_ids(ids)
        m = self.model
        out = []
        for j in range(ids.shape[1]):
            t = self.num_events
            x = m.embed(ids[:, j : j + 1])  # (B, 1, D)
            for block, layer in zip(m.blocks, self.layers, strict=True):
                x = self._event_step(block, layer, x, t)
            out.append(m.ln(x))
            self.num_events = t + 1
            if (t + 1) % self.chunk == 0:
                self._summarise(t // self.chunk)
        return torch.cat(out, 1)

    def _event_step(
        self, block: KSABlock, layer: LayerCache, x: torch.Tensor, t: int
    ) -> torch.Tensor:
        """One event (B, 1, D) at position t through one block: write its K/V, attend, FFN."""
        pos = torch.tensor([t], device=x.device)
        q, k, v = block.attn.project_events(block.ln1(x), pos)  # (B, H, 1, dh) each
        layer.add_events(t, k, v)
        x = x + block.attn.output(_attend(q, layer.event_parts(t), self.scale))
        return x + block.ffn(block.ln2(x))

    def _summarise(self, c: int) -> None:
        """Run the summary token of the just-completed chunk c through every layer; cache its K/V."""
        m = self.model
        s = m.summary_tokens(self.batch_size, 1)  # (B, 1, D)
        pos = torch.tensor([c * self.chunk + self.chunk - 1], device=s.device)
        for block, layer in zip(m.blocks, self.layers, strict=True):
            sq, sk, sv = block.attn.project_summaries(block.ln1(s), pos)
            ek, ev = layer.chunk_kv(c)
            a = _attend(sq, [(ek, ev, None), (sk, sv, None)], self.scale)
            layer.add_summaries(c, sk, sv)
            s = s + block.attn.output(a)
            s = s + block.ffn(block.ln2(s))

    @torch.no_grad()
    def fill_random_(self, num_events: int, generator: torch.Generator | None = None) -> None:
        """Put an empty cache in the state of ``num_events`` events with random keys and values.

        For benchmarks of cache size and update cost only (neither depends on the values); the
        states it leads to are meaningless.
        """
        if self.num_events:
            raise ValueError(
                f"KSACache.fill_random_ needs an empty cache. It holds {self.num_events} events."
            )
        B, c = self.batch_size, self.model.config
        H, dh = c.num_heads, c.dim // c.num_heads
        like = self.model.summary_emb
        for layer in self.layers:
            keep = num_events if isinstance(layer, FullLayerCache) else min(num_events, layer.slots)
            for start in range(num_events - keep, num_events, 65_536):  # bounded temporaries
                T = min(65_536, num_events - start)
                kv = torch.randn(2, B, H, T, dh, generator=generator, dtype=like.dtype).to(
                    like.device
                )
                layer.add_events(start, kv[0], kv[1])
            if isinstance(layer, SummaryLayerCache):
                S = num_events // self.chunk
                kv = torch.randn(2, B, H, S, dh, generator=generator, dtype=like.dtype).to(
                    like.device
                )
                layer.add_summaries(0, kv[0], kv[1])
        self.num_events = num_events
