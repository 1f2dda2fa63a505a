"""Realism of animation on held-out material: every source still animated by every driving clip,
full resolution and the published (plain) path in the same run, each measured by ``realism``.

The made videos are written to a scratch folder and read back, so the measures see what a user
gets (encoded, pasted back, labelled). A contact sheet shows, per pair, the driving frames and both
results' face crops at the same moments."""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from dfp import faces as faces_lib
from dfp import media
from services.creator import realism
from services.creator.pipelines import animate_media

PATHS = ("full_resolution", "plain")
SHEET_FRAMES = 4
SHEET_TILE = 160
SUMMARY_KEYS = ("faces_found", "sharpness_ratio", "motion_correlation", "identity_distance",
                "driving_identity_distance", "flicker_ratio")


@dataclasses.dataclass
class PairResult:
    source: str
    driving: str
    path: str
    report: realism.RealismReport


def _frames(path: pathlib.Path, limit: int) -> list[np.ndarray]:
    frames = []
    for index, rgb in enumerate(media.iter_video_frames(path)):
        if limit and index >= limit:
            break
        frames.append(rgb)
    return frames


def _sheet_crop(rgb: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    left, top, side = box
    return np.asarray(Image.fromarray(rgb[top : top + side, left : left + side]).resize((SHEET_TILE, SHEET_TILE)))


def write_contact_sheet(path: pathlib.Path, rows: list[tuple[str, list[np.ndarray]]]) -> None:
    """One row per (caption, tiles); captions above each row."""
    columns = max(len(tiles) for _, tiles in rows)
    caption_height = 16
    sheet = Image.new("RGB", (columns * SHEET_TILE, len(rows) * (SHEET_TILE + caption_height)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (caption, tiles) in enumerate(rows):
        y = row * (SHEET_TILE + caption_height)
        draw.text((4, y + 2), caption, fill="black")
        for column, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (column * SHEET_TILE, y + caption_height))
    sheet.save(path)


def summarise(results: list[PairResult]) -> dict:
    """Per path: the mean of each measure over the pairs where it is defined."""
    summary = {}
    for path in sorted({r.path for r in results}):
        reports = [r.report.as_dict() for r in results if r.path == path]
        summary[path] = {"pairs": len(reports)}
        for key in SUMMARY_KEYS:
            values = [report[key] for report in reports if report[key] is not None]
            summary[path][key] = float(np.mean(values)) if values else None
    return summary


def evaluate_animation(
    make_animator: Callable[[str], animate_media.Animator],
    sources: list[pathlib.Path],
    clips: list[pathlib.Path],
    *,
    max_frames: int = 0,
    batch_size: int = 8,
    paths: tuple[str, ...] = PATHS,
    sheet: pathlib.Path | None = None,
    max_image_pixels: int = 50_000_000,
) -> dict:
    """Animate each source by each clip along each path (``make_animator(path)`` gives the
    animator); returns per-pair reports and the per-path summary."""
    detector = faces_lib.FaceDetector()
    results: list[PairResult] = []
    sheet_rows: list[tuple[str, list[np.ndarray]]] = []
    with tempfile.TemporaryDirectory(prefix="dfp-creator-evaluate-") as scratch:
        for source_path in sources:
            source_rgb = media.decode_image(source_path, max_image_pixels)
            for clip in clips:
                driving = _frames(clip, max_frames)
                picks = np.linspace(0, len(driving) - 1, SHEET_FRAMES).round().astype(int)
                driving_box = animate_media.driving_face_box(clip, detector, len(driving))
                sheet_rows.append((f"{source_path.name} by {clip.name}: driving",
                                   [_sheet_crop(driving[i], driving_box) for i in picks]))
                for path in paths:
                    out = pathlib.Path(scratch) / f"{source_path.stem}-{clip.stem}-{path}.mp4"
                    options = animate_media.AnimationOptions(batch_size=batch_size, full_resolution=path == "full_resolution")
                    made = animate_media.animate_video(make_animator(path), source_rgb, clip, out, options,
                                                       detector=detector, max_frames=max_frames)
                    made_frames = _frames(out, max_frames)
                    report = realism.measure(made_frames, driving, source_rgb, detector)
                    results.append(PairResult(source_path.name, clip.name, path, report))
                    sheet_rows.append((f"{path}: sharpness {format_measure(report.sharpness_ratio)}, motion "
                                       f"{format_measure(report.motion_correlation)}",
                                       [_sheet_crop(made_frames[i], made.source_box) for i in picks]))
    if sheet is not None:
        write_contact_sheet(sheet, sheet_rows)
    return {
        "pairs": [{"source": r.source, "driving": r.driving, "path": r.path, **r.report.as_dict()} for r in results],
        "summary": summarise(results),
        "max_frames": max_frames,
    }


def format_measure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
