"""Lengths rounded up to a few values per octave, so that code compiled per shape meets few shapes.

Compiled kernels and compiled training steps are specialised to their tensor shapes; a length that
takes every value (each batch trimmed to its own longest row) means a compilation for nearly
every batch. :func:`round_up_per_octave` maps lengths onto at most ``per_octave`` values per
power-of-two range, for at most ``1 / per_octave`` extra padding above the range where
``min_step`` dominates. Used by KSA's FlexAttention path (``ops/ksa_flex.padded_length``) and the
trainer's compiled step (``train/trainer.compile_width``).
"""

from __future__ import annotations


def round_up_per_octave(length: int, min_step: int, per_octave: int) -> int:
    """``length`` rounded up to a multiple of ``max(min_step, 2**floor(log2 length) / per_octave)``.

    With ``min_step`` and ``per_octave`` powers of two, powers of two from ``min_step`` up are
    kept as they are; 0 stays 0. Example: with
    ``min_step=64, per_octave=4``, 65 -> 128, 300 -> 320, 1100 -> 1280.
    """
    if min_step < 1 or per_octave < 1:  # (no type checks: this runs inside traced attention code)
        raise ValueError(
            f"round_up_per_octave needs min_step >= 1 and per_octave >= 1. Got {min_step!r} and "
            f"{per_octave!r}."
        )
    step = max(min_step, (1 << (max(length, 1).bit_length() - 1)) // per_octave)
    return -(-length // step) * step
