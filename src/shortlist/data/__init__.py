"""Data layer: datasets, validation, caching, splits, batches, behaviour pairs, synthetic data."""
