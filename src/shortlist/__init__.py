"""shortlist: an open recommendation system, from an interaction log and item content to a trained,
evaluated and served recommender."""

from __future__ import annotations

__version__ = "0.1.0"
