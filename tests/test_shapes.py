"""shortlist.ops.shapes: lengths rounded up to a few values per octave (hand-computed cases)."""

from __future__ import annotations

import pytest

from shortlist.ops.shapes import round_up_per_octave


def test_round_up_per_octave_by_hand() -> None:
    # min_step 64, 4 per octave: steps of 64 up to 511, then 128 (512-1023), 256 (1024-2047)
    cases = {0: 0, 1: 64, 64: 64, 65: 128, 255: 256, 300: 320, 513: 640, 1100: 1280, 2048: 2048}
    assert {n: round_up_per_octave(n, 64, 4) for n in cases} == cases
    # 8 per octave with steps of at least 128 (KSA's FlexAttention padding)
    assert [round_up_per_octave(n, 128, 8) for n in (1, 129, 1100, 5085)] == [128, 256, 1152, 5120]
    values = {round_up_per_octave(n, 16, 4) for n in range(1024, 2048)}
    assert values == {1024, 1280, 1536, 1792, 2048}  # at most 4 per octave (+ the next power)
    assert all(round_up_per_octave(n, 64, 4) <= 1.25 * n for n in range(256, 5000))


@pytest.mark.parametrize(("min_step", "per_octave"), [(0, 4), (64, 0)])
def test_round_up_per_octave_rejects_a_zero_step(min_step: int, per_octave: int) -> None:
    with pytest.raises(ValueError, match="min_step >= 1 and per_octave >= 1"):
        round_up_per_octave(100, min_step, per_octave)
