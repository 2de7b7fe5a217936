"""Image embeddings with a tiny randomly initialised CLIP (no download), and multimodal fusion."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np
import pytest

from shortlist.items.fusion import fuse, orthogonal_projection
from shortlist.items.image import ImageEncoder

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def _transformers():
    return pytest.importorskip(
        "transformers",
        reason="transformers is not installed (pip install transformers); the image encoder needs it",
    )


def _processor(tf):
    return tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="module")
def tiny_clip_vision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vision-only CLIP (CLIPVisionModelWithProjection) with random weights, saved locally."""
    tf = _transformers()
    import torch

    folder = tmp_path_factory.mktemp("tiny-clip-vision")
    torch.manual_seed(0)
    config = tf.CLIPVisionConfig(projection_dim=16, **TINY_VISION)
    tf.CLIPVisionModelWithProjection(config).save_pretrained(folder)
    _processor(tf).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full CLIP (text + vision towers), as Hub checkpoints such as openai/clip-vit-* are."""
    tf = _transformers()
    import torch

    folder = tmp_path_factory.mktemp("tiny-clip-full")
    torch.manual_seed(0)
    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": 64,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 2,
    }
    config = tf.CLIPConfig(text_config=text, vision_config=TINY_VISION, projection_dim=12)
    tf.CLIPModel(config).save_pretrained(folder)
    _processor(tf).save_pretrained(folder)
    return folder


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 50), (32, 32), (64, 20), (33, 47), (48, 48)]
    return [
        rng.integers(0, 256, size=(*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)
    ]


# -- ImageEncoder ---------------------------------------------------------------------------------
def test_image_encoder_shapes_determinism_and_batching(tiny_clip_vision: Path) -> None:
    images = _images(5)
    enc = ImageEncoder(tiny_clip_vision, batch_size=2, local_files_only=True)
    out = enc.encode(images)
    assert out.shape == (5, 16) and out.dtype == np.float32 and enc.dim == 16
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(enc.encode(images), out)  # same object, same result
    again = ImageEncoder(tiny_clip_vision, batch_size=5, local_files_only=True).encode(images)
    np.testing.assert_allclose(again, out, atol=1e-5)  # batch size does not change embeddings
    assert not np.allclose(out[0], out[1])  # different images, different embeddings
    assert enc.encode([]).shape == (0, 16)


def test_image_encoder_matches_the_model_and_reads_paths(
    tiny_clip_vision: Path, tmp_path: Path
) -> None:
    tf = _transformers()
    import torch
    from PIL import Image

    images = _images(3, seed=1)
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    enc = ImageEncoder(tiny_clip_vision, normalize=False, local_files_only=True)
    from_paths = enc.encode([str(p) for p in paths[:2]] + [paths[2]])
    np.testing.assert_allclose(from_paths, enc.encode(images), atol=1e-6)  # PNG is lossless
    # reference: the model's own image_embeds on the processor's pixels
    model = tf.CLIPVisionModelWithProjection.from_pretrained(tiny_clip_vision).eval()
    pixels = _processor(tf)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pixels).image_embeds.numpy()
    np.testing.assert_allclose(from_paths, expected, atol=1e-5)


def test_image_encoder_full_clip_uses_projected_image_features(tiny_clip_full: Path) -> None:
    tf = _transformers()
    import torch

    images = _images(3)
    out = ImageEncoder(tiny_clip_full, normalize=False, local_files_only=True).encode(images)
    assert out.shape == (3, 12)
    model = tf.CLIPModel.from_pretrained(tiny_clip_full).eval()
    pixels = _processor(tf)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        pooled = model.vision_model(pixel_values=pixels).pooler_output
        expected = model.visual_projection(pooled).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_image_encoder_bad_inputs(tiny_clip_vision: Path, tmp_path: Path) -> None:
    enc = ImageEncoder(tiny_clip_vision, local_files_only=True)
    good = _images(1)[0]
    with pytest.raises(ValueError, match=r"image 1 must have shape \(H, W, 3\)"):
        enc.encode([good, good[:, :, 0]])
    with pytest.raises(TypeError, match="image 0 must be uint8"):
        enc.encode([good.astype(np.float32)])
    with pytest.raises(TypeError, match="image 0 must be an"):
        enc.encode([[1, 2, 3]])  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError, match="image 0 not found"):
        enc.encode([tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="The 'batch_size' parameter of ImageEncoder"):
        ImageEncoder(tiny_clip_vision, batch_size=0).encode([good])


def test_image_encoder_without_transformers_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "transformers", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    enc = ImageEncoder("any/model")  # constructing needs nothing
    with pytest.raises(ImportError, match="pip install transformers"):
        enc.encode(_images(1))


# -- fusion -------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_fuse_concatenates_weighted_unit_blocks() -> None:
    rng = np.random.default_rng(0)
    text, image = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    out = fuse({"text": text, "image": image}, {"text": 2.0, "image": 1.0})
    expected = _unit(np.concatenate([2 * _unit(text), _unit(image)], axis=1))
    assert out.shape == (5, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # equal weights by default; scaling a modality's rows changes nothing (each block is normalised)
    np.testing.assert_allclose(
        fuse({"text": 10 * text, "image": image}), fuse({"text": text, "image": image}), rtol=1e-6
    )


def test_fuse_missing_modality_rows_are_zero_blocks() -> None:
    rng = np.random.default_rng(1)
    text, image = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    image[2] = np.nan  # item 2 has no image
    out = fuse({"text": text, "image": image})
    np.testing.assert_allclose(out[2], np.r_[_unit(text[2:3])[0], 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    # padding: an all-zero row stays zero
    text[0], image[0] = 0.0, 0.0
    assert not fuse({"text": text, "image": image})[0].any()


def test_fuse_projection_is_seeded_and_preserves_geometry() -> None:
    rng = np.random.default_rng(2)
    text, image = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
    cat = fuse({"text": text, "image": image})
    wide = fuse({"text": text, "image": image}, dim=16, seed=7)
    assert wide.shape == (6, 16)
    np.testing.assert_allclose(wide @ wide.T, cat @ cat.T, atol=1e-5)  # isometry when dim >= D_cat
    np.testing.assert_array_equal(wide, fuse({"text": text, "image": image}, dim=16, seed=7))
    assert not np.allclose(wide, fuse({"text": text, "image": image}, dim=16, seed=8))
    narrow = fuse({"text": text, "image": image}, dim=3)
    assert narrow.shape == (6, 3)
    np.testing.assert_allclose(np.linalg.norm(narrow, axis=1), 1.0, rtol=1e-5)
    q = orthogonal_projection(9, 3, seed=0)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)


def test_fuse_errors_name_the_modality() -> None:
    text, image = np.ones((4, 3)), np.ones((5, 2))
    with pytest.raises(ValueError, match="modality 'image' has 5 rows but 'text' has 4"):
        fuse({"text": text, "image": image})
    with pytest.raises(ValueError, match=r"modality 'image' must be an \(N, D\) array with D >= 1"):
        fuse({"text": text, "image": np.ones(4)})
    partial = np.ones((4, 2))
    partial[1, 0] = np.nan
    with pytest.raises(ValueError, match="modality 'image' row 1 is partly NaN"):
        fuse({"text": text, "image": partial})
    with pytest.raises(ValueError, match="modality 'image' is NaN for every row"):
        fuse({"text": text, "image": np.full((4, 2), np.nan)})
    t, i = np.ones((4, 3)), np.ones((4, 2))
    t[3], i[3] = np.nan, np.nan
    with pytest.raises(
        ValueError, match=r"NaN in every modality \['text', 'image'\] \(first: row 3\)"
    ):
        fuse({"text": t, "image": i})
    inf = np.ones((4, 2))
    inf[2, 1] = np.inf
    with pytest.raises(ValueError, match="modality 'image' row 2 holds infinite"):
        fuse({"text": text, "image": inf})
    with pytest.raises(ValueError, match="the weight of modality 'text'"):
        fuse({"text": text}, {"text": -1.0})
    with pytest.raises(ValueError, match="The 'weights' parameter of fuse"):
        fuse({"text": text}, {"txt": 1.0})
    with pytest.raises(ValueError, match="The 'dim' parameter of fuse"):
        fuse({"text": text}, dim=0)
    with pytest.raises(ValueError, match="non-empty mapping"):
        fuse({})
