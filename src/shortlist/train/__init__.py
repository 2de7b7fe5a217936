"""Training: one loop for every model (``Trainer``), checkpoints, distributed data parallelism."""
