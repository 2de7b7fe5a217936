"""Models: registered by name (``MODELS``), built from config dataclasses, saved with
``save_pretrained`` and restored with ``load_model``. Importing this package registers them all."""

from shortlist.models import (
    elastic,  # noqa: F401  (registers "elastic")
    hstu,  # noqa: F401
    ksa,  # noqa: F401  (registers "ksa")
    rankers,  # noqa: F401  (registers "can", "din", "deepfm", "dcnv2")
    sasrec,  # noqa: F401  (registers "sasrec")
)
from shortlist.models.base import (
    MODELS,
    LossOutput,
    Model,
    Retriever,
    TopK,
    build_model,
    build_model_from_section,
    load_model,
    register,
)

__all__ = [
    "MODELS",
    "LossOutput",
    "Model",
    "Retriever",
    "TopK",
    "build_model",
    "build_model_from_section",
    "load_model",
    "register",
]
