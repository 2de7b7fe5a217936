"""Keye-VL 1.5 Slow-Fast frame selection on the real MicroLens videos.

For each video under ``$SHORTLIST_DATA/microlens-50k-partial/videos/*.mp4``: decode at 2 fps (full
resolution), split the frames into slow and fast, and size the token budgets; once at the paper's
75K-token budget and once at a tight one where the budget binds. Per video and budget: duration, frames,
slow/fast counts, tokens per slow/fast frame, total tokens against the uniform baseline (every frame at
one resolution under the same budget and per-frame cap) and against every frame at the slow
resolution, the tokens saved, and decode / selection time. Writes ``benchmarks/results/slowfast.json``
and a contact sheet per video, ``benchmarks/results/slowfast_<id>.png`` (slow frames outlined in
orange, fast in blue, with each frame's similarity to its reference slow frame).

Usage:
    python benchmarks/slowfast.py                          # 2 fps, budgets 75000 and 8192
    python benchmarks/slowfast.py --fps 4 --budgets 75000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Row, write_result
from shortlist.items.video import (
    SlowFastConfig,
    SlowFastPlan,
    VideoFrames,
    read_frames,
    select_slow_fast,
)

log = logging.getLogger("benchmarks.slowfast")

SLOW_COLOUR = (255, 140, 0)  # orange
FAST_COLOUR = (40, 110, 255)  # blue
THUMB_WIDTH = 160  # pixels of the long side of a thumbnail
COLUMNS = 8
MAX_PNG_BYTES = 300_000


def video_dir() -> Path:
    data = Path(os.environ.get("SHORTLIST_DATA", ROOT.parent / "shared" / "data"))
    return data / "microlens-50k-partial" / "videos"


def contact_sheet(video: VideoFrames, plan: SlowFastPlan, title: str, path: Path) -> int:
    """A grid of thumbnails, slow frames outlined in orange and fast in blue; returns the PNG bytes."""
    _, height, width, _ = video.frames.shape
    scale = THUMB_WIDTH / max(height, width)
    tw, th = max(1, round(width * scale)), max(1, round(height * scale))
    border, caption, header = 4, 14, 36
    cell_w, cell_h = tw + 2 * border + 4, th + 2 * border + caption + 4
    rows = -(-len(video) // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * cell_w, header + rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((4, 2), title, fill=(0, 0, 0), font=font)
    draw.rectangle((4, 20, 16, 32), fill=SLOW_COLOUR)
    draw.text((20, 20), "slow", fill=(0, 0, 0), font=font)
    draw.rectangle((64, 20, 76, 32), fill=FAST_COLOUR)
    draw.text(
        (80, 20),
        "fast   (label: frame, time s, similarity to its reference slow frame)",
        fill=(0, 0, 0),
        font=font,
    )
    for i, frame in enumerate(video.frames):
        r, c = divmod(i, COLUMNS)
        x, y = c * cell_w + 2, header + r * cell_h + 2
        colour = SLOW_COLOUR if plan.is_slow[i] else FAST_COLOUR
        draw.rectangle((x, y, x + tw + 2 * border - 1, y + th + 2 * border - 1), fill=colour)
        thumb = Image.fromarray(frame).resize((tw, th), Image.Resampling.BOX)
        sheet.paste(thumb, (x + border, y + border))
        label = f"{i} {video.timestamps[i]:.1f}s {plan.similarity[i]:.3f}"
        draw.text((x, y + th + 2 * border + 1), label, fill=(0, 0, 0), font=font)
    # photographic thumbnails: a 256-colour palette keeps the PNG ~4x smaller than RGB
    sheet.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    if path.stat().st_size > MAX_PNG_BYTES:
        log.warning(
            "%s is %d KB, over %d KB", path, path.stat().st_size // 1000, MAX_PNG_BYTES // 1000
        )
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fps", type=float, default=2.0, help="frames sampled per second")
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[75_000, 8_192], help="token budgets per video"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    folder = video_dir()
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        log.warning("skipped: no MicroLens videos under %s (set SHORTLIST_DATA)", folder)
        return

    rows: list[Row] = []
    extra: dict[str, Any] = {}
    for path in videos:
        vid = path.stem
        start = time.perf_counter()
        video = read_frames(path, fps=args.fps)
        decode_s = time.perf_counter() - start
        for budget in args.budgets:
            config = SlowFastConfig(total_token_budget=budget)
            start = time.perf_counter()
            plan = select_slow_fast(video.frames, config)
            select_s = time.perf_counter() - start
            metrics = {
                "duration_s": round(video.duration_s, 3),
                "frames": len(video),
                "slow_frames": plan.n_slow,
                "fast_frames": plan.n_fast,
                "slow_tokens_per_frame": plan.slow_tokens,
                "fast_tokens_per_frame": plan.fast_tokens,
                "total_tokens": plan.total_tokens,
                "uniform_tokens_per_frame": plan.uniform_tokens_per_frame,
                "uniform_tokens": plan.uniform_tokens,
                "all_slow_tokens": plan.all_slow_tokens,
                "tokens_saved_ratio": round(plan.tokens_saved_ratio, 4),
                "decode_s": round(decode_s, 3),
                "select_s": round(select_s, 3),
            }
            protocol = f"{args.fps:g} fps, budget {budget}"
            rows.append(
                Row(
                    dataset="microlens",
                    protocol=protocol,
                    model="slow-fast",
                    variant=vid,
                    metrics=metrics,
                )
            )
            extra.setdefault("plans", {}).setdefault(vid, {})[str(budget)] = {
                "slow_indices": plan.slow_indices.tolist(),
                "slow_size": list(plan.slow_size),
                "fast_size": list(plan.fast_size),
                "similarity": [round(float(s), 3) for s in plan.similarity],
            }
            log.info(
                "%s %s: %.1f s, %d frames -> %d slow x %d tok (%dx%d px) + %d fast x %d tok "
                "(%dx%d px) = %d tokens; uniform %d x %d = %d; all-slow %d; saved %.1f%%; "
                "decode %.2f s, select %.2f s",
                vid,
                protocol,
                video.duration_s,
                len(video),
                plan.n_slow,
                plan.slow_tokens,
                *plan.slow_size,
                plan.n_fast,
                plan.fast_tokens,
                *plan.fast_size,
                plan.total_tokens,
                len(video),
                plan.uniform_tokens_per_frame,
                plan.uniform_tokens,
                plan.all_slow_tokens,
                100 * plan.tokens_saved_ratio,
                decode_s,
                select_s,
            )
            if budget == args.budgets[0]:
                RESULTS.mkdir(parents=True, exist_ok=True)
                sheet = RESULTS / f"slowfast_{vid}.png"
                title = (
                    f"MicroLens {vid}: {len(video)} frames at {args.fps:g} fps, "
                    f"{plan.n_slow} slow ({plan.slow_size[1]}x{plan.slow_size[0]} px), "
                    f"{plan.n_fast} fast ({plan.fast_size[1]}x{plan.fast_size[0]} px)"
                )
                size = contact_sheet(video, plan, title, sheet)
                log.info("  contact sheet %s (%d KB)", sheet.relative_to(ROOT), size // 1000)

    defaults = SlowFastConfig()
    notes = (
        f"Keye-VL 1.5 Slow-Fast on {len(videos)} MicroLens videos at full resolution: similarity = "
        f"fraction of {defaults.patch_size}-px patches with mean |diff| < {defaults.pixel_delta:g} "
        f"after area-downsampling to {defaults.downsample_size} px short side (our design); slow if "
        f"<= {defaults.similarity_threshold}; fast tokens = ceil({defaults.fast_token_ratio} x slow); "
        f"tokens per frame in [{defaults.min_tokens_per_frame}, {defaults.max_tokens_per_frame}] and "
        "at most native; uniform = every frame at min(max, budget // frames); "
        "saved = 1 - total / all_slow"
    )
    path = write_result("slowfast", rows, rebuild=False, notes=notes, extra=extra)
    log.info("wrote %s", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
