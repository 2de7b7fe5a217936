"""Frame decoding (PyAV) and Keye-VL 1.5 Slow-Fast selection: synthetic frames with known cuts and
gradual change, the token-budget search against brute force, and a tiny video written here."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dataset_dir
from shortlist.items.video import (
    SlowFastConfig,
    fast_token_count,
    patch_similarity,
    read_frames,
    select_slow_fast,
    slow_token_count,
    token_grid,
)

CONFIG = SlowFastConfig()


def noisy_scene(colour: tuple[int, int, int], n: int, rng: np.random.Generator) -> np.ndarray:
    """n frames (n, 96, 160, 3) of one constant colour plus noise in [-3, 3]: two frames differ by at
    most 6 < pixel_delta (8) per pixel, so every patch counts as unchanged."""
    base = np.broadcast_to(np.array(colour, dtype=np.int16), (n, 96, 160, 3))
    noise = rng.integers(-3, 4, size=base.shape, dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# -- patch similarity ---------------------------------------------------------------------------


def test_similarity_counts_unchanged_patches() -> None:
    a = np.zeros((224, 224, 3), dtype=np.uint8)  # 16 x 16 patches of 14 px, no resampling
    b = a.copy()
    b[:112] = 255  # top half changed
    assert patch_similarity(a, a) == 1.0
    assert patch_similarity(a, b) == 0.5
    c = a.copy()
    c[:14, :28] = 255  # two patches
    assert patch_similarity(a, c) == pytest.approx(1 - 2 / 256)


def test_similarity_is_measured_after_area_downsampling() -> None:
    # at twice the comparison size a change aligned to 28-px blocks is exactly one 14-px patch after
    # downsampling, so the similarity equals that of the same change drawn at 224 px
    big = np.zeros((448, 448, 3), dtype=np.uint8)
    big_changed = big.copy()
    big_changed[28:84, 56:84] = 200  # 2 x 1 patches at 224 px
    small = np.zeros((224, 224, 3), dtype=np.uint8)
    small_changed = small.copy()
    small_changed[14:42, 28:42] = 200
    assert patch_similarity(big, big_changed) == patch_similarity(small, small_changed)
    assert patch_similarity(big, big_changed) == pytest.approx(1 - 2 / 256)


def test_similarity_threshold_is_pixel_delta() -> None:
    a = np.full((224, 224, 3), 100, dtype=np.uint8)
    assert patch_similarity(a, a + 7) == 1.0  # MAD 7 < 8
    assert patch_similarity(a, a + 8) == 0.0  # MAD 8 is not below 8
    assert patch_similarity(a, a + 8, SlowFastConfig(pixel_delta=9)) == 1.0


def test_similarity_rejects_bad_frames() -> None:
    a = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        patch_similarity(a, np.zeros((32, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        patch_similarity(a, a.astype(np.float32))


# -- slow / fast selection ----------------------------------------------------------------------


def test_hard_cuts_give_exactly_one_slow_frame_per_scene() -> None:
    rng = np.random.default_rng(0)
    frames = np.concatenate(
        [
            noisy_scene((40, 40, 40), 5, rng),
            noisy_scene((200, 60, 60), 4, rng),
            noisy_scene((60, 60, 200), 6, rng),
        ]
    )
    plan = select_slow_fast(frames, CONFIG)
    assert plan.slow_indices.tolist() == [0, 5, 9]
    assert plan.n_slow == 3 and plan.n_fast == 12
    assert plan.reference.tolist() == [0] * 6 + [5] * 4 + [9] * 5
    assert np.all(plan.similarity[~plan.is_slow] == 1.0)
    assert plan.similarity[[5, 9]].tolist() == [0.0, 0.0]


def gradual_frames(n: int, step: int) -> np.ndarray:
    """224 x 224 frames (16 x 16 patches); frame t has its first step * t patches (raster order) white."""
    frames = np.zeros((n, 224, 224, 3), dtype=np.uint8)
    for t in range(n):
        for patch in range(step * t):
            r, c = divmod(patch, 16)
            frames[t, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = 255
    return frames


def test_gradual_change_is_measured_against_the_latest_slow_frame() -> None:
    frames = gradual_frames(10, step=5)  # 5 / 256 = 2% more patches change every frame
    # consecutive frames stay above the threshold: comparing with the previous frame would never cut
    consecutive = [patch_similarity(frames[t - 1], frames[t]) for t in range(1, 10)]
    assert min(consecutive) == pytest.approx(1 - 5 / 256) and min(consecutive) > 0.95
    plan = select_slow_fast(frames, CONFIG)
    # against the latest slow frame: 2%, 4%, then 6% changed -> 94% <= 95%, a new slow frame
    assert plan.slow_indices.tolist() == [0, 3, 6, 9]
    assert plan.reference.tolist() == [0, 0, 0, 0, 3, 3, 3, 6, 6, 6]
    assert plan.similarity[1:4] == pytest.approx([1 - 5 / 256, 1 - 10 / 256, 1 - 15 / 256])


def test_threshold_is_strict() -> None:
    # 1 - 13/256 = 0.9492 (slow) and a custom threshold equal to a similarity keeps that frame slow
    frames = gradual_frames(2, step=13)
    assert select_slow_fast(frames, CONFIG).slow_indices.tolist() == [0, 1]
    sim = 1 - 4 / 256
    at = SlowFastConfig(similarity_threshold=sim)
    assert select_slow_fast(gradual_frames(2, step=4), at).slow_indices.tolist() == [0, 1]


def test_plan_tokens_respect_budget_and_native_cap() -> None:
    rng = np.random.default_rng(1)
    scenes = [noisy_scene(c, 4, rng) for c in ((10, 10, 10), (250, 250, 250), (10, 200, 10))]
    frames = np.concatenate(scenes)  # 3 slow, 9 fast; 96 x 160 px -> native 3 x 6 = 18 tokens
    small = SlowFastConfig(min_tokens_per_frame=4, max_tokens_per_frame=768)
    plan = select_slow_fast(frames, small)
    assert plan.slow_tokens == 18  # capped at the native resolution, the budget is not binding
    assert plan.fast_tokens == 6  # ceil(0.3 * 18) = ceil(5.4)
    assert plan.total_tokens == 3 * 18 + 9 * 6
    assert plan.all_slow_tokens == 12 * 18
    assert plan.tokens_saved_ratio == pytest.approx(1 - (54 + 54) / 216)
    assert plan.slow_grid == (3, 5) and plan.slow_size == (84, 140)  # 15 tokens at aspect 0.6

    tight = SlowFastConfig(min_tokens_per_frame=2, total_token_budget=60)
    plan = select_slow_fast(frames, tight)
    # largest T with 3 T + 9 ceil(0.3 T) <= 60: T = 10 costs 30 + 27 = 57, T = 11 costs 33 + 36 = 69
    assert (plan.slow_tokens, plan.fast_tokens, plan.total_tokens) == (10, 3, 57)
    assert plan.uniform_tokens_per_frame == 5 and plan.uniform_tokens == 60  # 60 // 12 frames


def test_frames_over_budget_at_the_minimum_raise() -> None:
    frames = gradual_frames(3, step=100)  # all slow
    with pytest.raises(ValueError, match="sample fewer frames"):
        select_slow_fast(frames, SlowFastConfig(total_token_budget=300))  # 3 * 128 > 300


def test_select_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        select_slow_fast(np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        select_slow_fast(np.zeros((2, 8, 8), dtype=np.uint8))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("similarity_threshold", 1.5),
        ("fast_token_ratio", 0.0),
        ("pixel_delta", -1.0),
        ("patch_size", 0),
        ("total_token_budget", 2.5),
        ("max_tokens_per_frame", 64),  # below min_tokens_per_frame=128
    ],
)
def test_config_rejects_bad_values(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"The '{name}' parameter of SlowFastConfig"):
        SlowFastConfig(**{name: value})


# -- token budget --------------------------------------------------------------------------------


def test_fast_tokens_are_exact_ceil_of_thirty_percent() -> None:
    slow = np.arange(1, 5001)
    expected = (3 * slow + 9) // 10  # integer ceil(3 s / 10)
    assert [fast_token_count(int(s), CONFIG) for s in slow] == expected.tolist()
    assert fast_token_count(10, CONFIG) == 3 and fast_token_count(11, CONFIG) == 4
    assert fast_token_count(7, SlowFastConfig(fast_token_ratio=1.0)) == 7


def brute_force_slow_tokens(n_slow: int, n_fast: int, budget: int, lo: int, hi: int) -> int | None:
    best = None
    for t in range(lo, hi + 1):
        if n_slow * t + n_fast * ((3 * t + 9) // 10) <= budget:
            best = t
    return best


@settings(max_examples=300, deadline=None)
@given(
    n_slow=st.integers(0, 300),
    n_fast=st.integers(0, 300),
    budget=st.integers(1, 120_000),
    lo=st.integers(1, 256),
    span=st.integers(0, 1500),
)
def test_binary_search_matches_brute_force(
    n_slow: int, n_fast: int, budget: int, lo: int, span: int
) -> None:
    if n_slow + n_fast == 0:
        n_slow = 1
    config = SlowFastConfig(
        total_token_budget=budget, min_tokens_per_frame=lo, max_tokens_per_frame=lo + span
    )
    expected = brute_force_slow_tokens(n_slow, n_fast, budget, lo, lo + span)
    if expected is None:
        with pytest.raises(ValueError, match="sample fewer frames"):
            slow_token_count(n_slow, n_fast, config)
        return
    t = slow_token_count(n_slow, n_fast, config)
    assert t == expected

    def cost(x: int) -> int:
        return n_slow * x + n_fast * fast_token_count(x, config)

    assert cost(t) <= budget
    assert t == lo + span or cost(t + 1) > budget  # maximal


def test_slow_token_count_max_override() -> None:
    assert slow_token_count(1, 0, CONFIG) == 768
    assert slow_token_count(1, 0, CONFIG, max_tokens=200) == 200
    with pytest.raises(ValueError, match="max_tokens"):
        slow_token_count(1, 0, CONFIG, max_tokens=10)
    with pytest.raises(ValueError, match="at least 1"):
        slow_token_count(0, 0, CONFIG)


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.integers(1, 4096),
    height=st.integers(16, 2000),
    width=st.integers(16, 2000),
)
def test_token_grid_fits_and_keeps_aspect(tokens: int, height: int, width: int) -> None:
    gh, gw = token_grid(tokens, height, width, CONFIG)
    assert gh >= 1 and gw >= 1 and gh * gw <= tokens
    if height != width:
        assert token_grid(tokens, width, height, CONFIG) == (gw, gh)  # transpose symmetry
    if min(gh, gw) >= 8:  # aspect within a grid row / column of the frame's
        aspect = (gh / gw) / (height / width)
        assert 1 / (1 + 2 / min(gh, gw)) <= aspect <= 1 + 2 / min(gh, gw)


def test_token_grid_for_720p() -> None:
    assert token_grid(768, 720, 1280, CONFIG) == (21, 36)  # 756 tokens, aspect 0.583 vs 0.5625
    assert token_grid(768, 1280, 720, CONFIG) == (36, 21)


# -- decoding ------------------------------------------------------------------------------------

PALETTE = np.array(
    [
        (220, 30, 30),
        (30, 200, 30),
        (30, 30, 220),
        (230, 230, 40),
        (40, 220, 220),
        (220, 40, 220),
        (128, 128, 128),
        (240, 240, 240),
        (20, 20, 20),
        (240, 140, 20),
    ],
    dtype=np.uint8,
)


def write_video(
    path: Path, colours: np.ndarray, fps: int = 5, height: int = 48, width: int = 64
) -> Path:
    """An H.264 mp4 (MPEG-4 Part 2 if libx264 is missing) with one constant colour per frame."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for colour in colours:
            image = np.broadcast_to(colour, (height, width, 3)).copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def palette_index(frames: np.ndarray) -> list[int]:
    """The nearest palette colour of each frame's mean colour."""
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)  # (T, 3)
    dist = np.abs(means[:, None, :] - PALETTE[None].astype(np.float64)).sum(axis=2)
    return dist.argmin(axis=1).tolist()


@pytest.fixture
def ten_colours(tmp_path: Path) -> Path:
    return write_video(tmp_path / "colours.mp4", PALETTE)  # 10 frames at 5 fps: t = 0.0 .. 1.8


def test_decode_every_frame_round_trips(ten_colours: Path) -> None:
    video = read_frames(ten_colours, fps=None)
    assert video.frames.shape == (10, 48, 64, 3) and video.frames.dtype == np.uint8
    assert video.timestamps == pytest.approx(np.arange(10) / 5, abs=1e-3)
    assert palette_index(video.frames) == list(range(10))
    error = np.abs(video.frames.astype(np.int16) - PALETTE[:, None, None, :].astype(np.int16))
    assert error.mean() < 8
    assert video.source_fps == pytest.approx(5.0)
    assert video.duration_s == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("fps", "indices"),
    [
        (2.5, [0, 2, 4, 6, 8]),
        (1.0, [0, 5]),
        # nearest in time to 0, 1/3, 2/3, 1, 4/3, 5/3 s; index stepping by 5/3 would give 0,1,3,5,6,8
        (3.0, [0, 2, 3, 5, 7, 8]),
        (10.0, list(range(10))),  # more than the source's 5 fps: each frame once
    ],
)
def test_decode_samples_by_timestamp(ten_colours: Path, fps: float, indices: list[int]) -> None:
    video = read_frames(ten_colours, fps=fps)
    assert palette_index(video.frames) == indices
    assert video.timestamps == pytest.approx(np.array(indices) / 5, abs=1e-3)


def test_decode_max_frames_spans_the_video(ten_colours: Path) -> None:
    video = read_frames(ten_colours, fps=None, max_frames=3)
    # 3 frames over 2 s: targets 0, 2/3, 4/3 s -> frames 0, 3, 7
    assert palette_index(video.frames) == [0, 3, 7]
    assert len(read_frames(ten_colours, fps=5.0, max_frames=4)) == 4


def test_decode_resizes_short_side(ten_colours: Path) -> None:
    video = read_frames(ten_colours, fps=2.5, size=24)
    assert video.frames.shape == (5, 24, 32, 3)
    assert palette_index(video.frames) == [0, 2, 4, 6, 8]


def test_decoded_video_feeds_slow_fast(tmp_path: Path) -> None:
    colours = PALETTE[[0, 0, 0, 0, 2, 2, 2, 0, 0, 0]]
    path = write_video(tmp_path / "cuts.mp4", colours, height=112, width=196)
    video = read_frames(path, fps=None)
    plan = select_slow_fast(video.frames, CONFIG)
    assert plan.slow_indices.tolist() == [0, 4, 7]


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        read_frames(missing)


@pytest.mark.parametrize("content", [b"this is not a video at all\n" * 40, b""])
def test_unreadable_file_raises_value_error_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"broken\.mp4") as info:
        read_frames(path)
    assert not isinstance(info.value, av.FFmpegError)  # ours, not PyAV's, with PyAV's as its cause


def test_directory_and_bad_arguments_raise(tmp_path: Path, ten_colours: Path) -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        read_frames(tmp_path)
    with pytest.raises(ValueError, match="'fps' parameter"):
        read_frames(ten_colours, fps=0)
    with pytest.raises(ValueError, match="'max_frames' parameter"):
        read_frames(ten_colours, max_frames=0)
    with pytest.raises(ValueError, match="'size' parameter"):
        read_frames(ten_colours, size=-4)


@pytest.mark.realdata
def test_microlens_video_at_2_fps(data_root: Path) -> None:
    videos = sorted((dataset_dir(data_root, "microlens-50k-partial") / "videos").glob("*.mp4"))
    if not videos:
        pytest.skip("no MicroLens videos found")
    video = read_frames(min(videos, key=lambda p: p.stat().st_size), fps=2.0, size=224)
    assert len(video) == pytest.approx(video.duration_s * 2, abs=1.5)
    assert np.diff(video.timestamps) == pytest.approx(0.5, abs=0.02)
    assert min(video.frames.shape[1:3]) == 224
    plan = select_slow_fast(video.frames)
    assert plan.is_slow[0] and plan.total_tokens <= SlowFastConfig().total_token_budget
