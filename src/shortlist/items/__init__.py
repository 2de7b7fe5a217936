"""Item understanding: content encoders, text cleaning and near-duplicates, Slow-Fast video frames,
behaviour alignment (QARM), quantizers and semantic IDs."""
