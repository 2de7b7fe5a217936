"""Image embeddings from a CLIP-style vision model loaded through Hugging Face ``transformers``.

The model is named by a Hub id (``"openai/clip-vit-base-patch32"``) or a local folder written by
``save_pretrained`` (config.json + weights + preprocessor_config.json). ``transformers`` is an
optional dependency, imported only when the model is first needed.

Which embedding is returned:

- a vision-only CLIP checkpoint (``model_type == "clip_vision_model"``):
  ``CLIPVisionModelWithProjection(...).image_embeds``;
- a model with ``get_image_features`` (CLIP, SigLIP ...): its projected image features;
- any other vision model: its ``pooler_output``.

Notation: N images, D the embedding size.

Example:
    >>> encoder = ImageEncoder("openai/clip-vit-base-patch32")        # doctest: +SKIP
    >>> emb = encoder.encode(["cover1.jpg", np.zeros((64, 64, 3), np.uint8)])  # (2, 512)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

Image = np.ndarray | str | os.PathLike[str]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            "ImageEncoder needs the 'transformers' package, which is not installed. "
            "Install it with: pip install transformers"
        ) from err
    return transformers


def _as_array(image: Image, index: int) -> np.ndarray:
    """One image as an (H, W, 3) uint8 array."""
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"ImageEncoder.encode: image {index} not found: {path}.")
        from PIL import Image as PILImage

        with PILImage.open(path) as img:
            return np.asarray(img.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"ImageEncoder.encode: image {index} must be an (H, W, 3) uint8 array or a path; "
            f"got {type(image).__name__}."
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(
            f"ImageEncoder.encode: image {index} must have shape (H, W, 3); got {image.shape}."
        )
    if image.dtype != np.uint8:
        raise TypeError(f"ImageEncoder.encode: image {index} must be uint8; got {image.dtype}.")
    return image


class ImageEncoder:
    """Batched image embeddings from a CLIP-style vision model (see the module docstring).

    Args:
        name_or_path: a Hugging Face Hub id or a local folder.
        batch_size: images per forward pass.
        device: torch device for the model (``"cpu"``, ``"cuda"``).
        normalize: L2-normalise the output rows.
        local_files_only: never download (only the local folder or the Hub cache).

    Attributes (after the first :meth:`encode`, or :meth:`load`):
        model_: the vision model, in eval mode.
        processor_: the image processor (resize, crop, normalise).
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        device: str = "cpu",
        normalize: bool = True,
        local_files_only: bool = False,
    ) -> None:
        self.name_or_path = name_or_path
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize
        self.local_files_only = local_files_only

    def load(self) -> ImageEncoder:
        """Load the model and its image processor (done by the first :meth:`encode`)."""
        if hasattr(self, "model_"):
            return self
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(
                f"The 'batch_size' parameter of ImageEncoder must be an int >= 1. Got {self.batch_size!r} instead."
            )
        tf = _transformers()
        source = str(self.name_or_path)
        kwargs = {"local_files_only": self.local_files_only}
        config = tf.AutoConfig.from_pretrained(source, **kwargs)
        if config.model_type == "clip_vision_model":
            model = tf.CLIPVisionModelWithProjection.from_pretrained(source, **kwargs)
        else:
            model = tf.AutoModel.from_pretrained(source, **kwargs)
        self.processor_ = tf.AutoImageProcessor.from_pretrained(source, **kwargs)
        self.model_ = model.to(self.device).eval()
        log.info("ImageEncoder: loaded %s (%s)", source, type(model).__name__)
        return self

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        model = self.model_
        if hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=pixel_values)
        else:
            out = model(pixel_values=pixel_values)
        if isinstance(out, torch.Tensor):
            return out
        for key in ("image_embeds", "pooler_output"):
            value = getattr(out, key, None)
            if value is not None:
                return value
        raise TypeError(
            f"ImageEncoder: {type(model).__name__} returns neither image_embeds nor pooler_output; "
            "use a CLIP-style vision model."
        )

    def encode(self, images: Sequence[Image]) -> np.ndarray:
        """Embed ``images`` ((H, W, 3) uint8 arrays or file paths): (N, D) float32."""
        self.load()
        arrays = [_as_array(img, i) for i, img in enumerate(images)]
        chunks: list[np.ndarray] = []
        n_batches = -(-len(arrays) // self.batch_size)
        start = time.perf_counter()
        with torch.inference_mode():
            for b in range(n_batches):
                batch = arrays[b * self.batch_size : (b + 1) * self.batch_size]
                inputs = self.processor_(images=batch, return_tensors="pt")
                pixels = inputs["pixel_values"].to(self.device, self.model_.dtype)  # (B, 3, H', W')
                emb = self._forward(pixels).float()  # (B, D)
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                chunks.append(emb.cpu().numpy())
                if (b + 1) % max(1, n_batches // 10) == 0 or b + 1 == n_batches:
                    log.info(
                        "ImageEncoder: %d/%d images (%.1fs)",
                        min((b + 1) * self.batch_size, len(arrays)),
                        len(arrays),
                        time.perf_counter() - start,
                    )
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    @property
    def dim(self) -> int:
        """D, the embedding size (loads the model and embeds one blank image)."""
        self.load()
        if not hasattr(self, "dim_"):
            blank = np.zeros((8, 8, 3), dtype=np.uint8)
            with torch.inference_mode():
                inputs = self.processor_(images=[blank], return_tensors="pt")
                pixels = inputs["pixel_values"].to(self.device, self.model_.dtype)
                self.dim_ = int(self._forward(pixels).shape[-1])
        return self.dim_
