"""Plots written to PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shortlist.atomic import atomic_path


def plot_length_histogram(lengths: np.ndarray, path: str | Path, *, title: str) -> Path:
    """Histogram of per-user sequence lengths on log-spaced bins, with the median and p90 marked.

    Written atomically (temporary file + rename). Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    lengths = np.asarray(lengths)
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        raise ValueError(
            f"No non-empty sequences to plot for {title!r} (the dataset has no interactions)."
        )
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    hi = max(int(lengths.max()), 2)
    lo = max(int(lengths.min()), 1)
    bins = np.unique(np.geomspace(lo, hi + 1, num=min(60, hi + 2 - lo)).astype(int))
    ax.hist(lengths, bins=bins, color="#3b6ea5", edgecolor="white", linewidth=0.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for q, style in ((50, "--"), (90, ":")):
        v = float(np.percentile(lengths, q))
        ax.axvline(v, color="#c0392b", linestyle=style, linewidth=1.2, label=f"p{q} = {v:g}")
    ax.set_xlabel("events per user (log scale)")
    ax.set_ylabel("users (log scale)")
    ax.set_title(f"{title}: {lengths.size:,} users, {int(lengths.sum()):,} events")
    ax.legend(frameon=False)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
