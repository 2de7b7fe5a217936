"""CTR rankers: CAN and the baselines it must beat (DIN, DeepFM, DCNv2), registered in the model
registry; importing this package registers them. See docs/ranking.md."""

from shortlist.models.rankers import (
    can,  # noqa: F401  (registers "can")
    dcnv2,  # noqa: F401  (registers "dcnv2")
    deepfm,  # noqa: F401  (registers "deepfm")
    din,  # noqa: F401  (registers "din")
)
from shortlist.models.rankers.base import Ranker, RankerConfig
from shortlist.models.rankers.can import CAN, CANConfig, coaction
from shortlist.models.rankers.dcnv2 import DCNv2, DCNv2Config
from shortlist.models.rankers.deepfm import DeepFM, DeepFMConfig
from shortlist.models.rankers.din import DIN, DINConfig
from shortlist.models.rankers.features import FeatureEmbedding, FeatureSpec, Field, hash_bucket

__all__ = [
    "CAN",
    "DIN",
    "CANConfig",
    "DCNv2",
    "DCNv2Config",
    "DINConfig",
    "DeepFM",
    "DeepFMConfig",
    "FeatureEmbedding",
    "FeatureSpec",
    "Field",
    "Ranker",
    "RankerConfig",
    "coaction",
    "hash_bucket",
]
