"""The quickstart experiment: SASRec on the bundled synthetic short-video dataset.

Sized to train and evaluate in a couple of minutes on 2 CPU cores; ``configs/synthetic/sasrec.yaml``
holds the same settings (a test keeps them equal).
"""

from __future__ import annotations

from typing import Any

QUICKSTART: dict[str, Any] = {
    "name": "synthetic-sasrec",
    "dataset": {"name": "synthetic", "params": {"n_users": 3000, "n_items": 1500}},
    "protocol": "hstu",
    "model": {
        "name": "sasrec",
        "max_len": 50,
        "dim": 64,
        "num_layers": 2,
        "num_heads": 2,
        "dropout": 0.2,
        "loss": "softmax",
    },
    "train": {
        "epochs": 12,
        "batch_size": 128,
        "lr": 0.002,
        "metric": "ndcg@10",
        "patience": 3,
        "num_workers": 0,
        "threads": 2,
    },
}
