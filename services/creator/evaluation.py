"""Realism of made videos on held-out material, each measured by ``realism``: animation (every
source still animated by every driving clip, full resolution and the published (plain) path in the
same run) and face swap (each held-out target clip merged at full resolution and at the model's).

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
from services.creator.pipelines import animate_media, full_resolution, swap_media

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


def _result_row(path: str, report: realism.RealismReport, tiles: list[np.ndarray]) -> tuple[str, list[np.ndarray]]:
    """A contact sheet row of made faces, captioned with the two headline measures."""
    return (f"{path}: sharpness {format_measure(report.sharpness_ratio)}, motion "
            f"{format_measure(report.motion_correlation)}", tiles)


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
                    sheet_rows.append(_result_row(path, report, [_sheet_crop(made_frames[i], made.source_box)
                                                                 for i in picks]))
    if sheet is not None:
        write_contact_sheet(sheet, sheet_rows)
    return {
        "pairs": [{"source": r.source, "driving": r.driving, "path": r.path, **r.report.as_dict()} for r in results],
        "summary": summarise(results),
        "max_frames": max_frames,
    }


def format_measure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# Each merge the swap evaluation runs, by name: the default; the same with the decoder's whole oval
# mask, as the merge blended before the skin mask; and the merge at the model's resolution.
SWAP_PATHS = {
    "full_resolution": {"full_resolution": True, "smooth_alignment": True, "skin_mask": True},
    "full_resolution_oval_mask": {"full_resolution": True, "smooth_alignment": True, "skin_mask": False},
    "model_resolution": {"full_resolution": False, "smooth_alignment": False, "skin_mask": False},
}
# The scratch copy of a target clip is encoded near-losslessly, so that the measures compare the
# swap with the frames it was made from, not with a second generation of compression.
SCRATCH_CRF = 10


@dataclasses.dataclass(frozen=True)
class SwapTarget:
    clip: pathlib.Path
    to_identity: str
    identity_still: np.ndarray  # a frame of the identity put in, for the identity measure
    start_fraction: float = 0.0  # the clip's frames before this share are skipped (those trained on)


def _clip_tail(clip: pathlib.Path, start_fraction: float, max_frames: int, out: pathlib.Path) -> list[np.ndarray]:
    """The clip's frames from ``start_fraction`` of its length on (at most ``max_frames``), written
    to ``out`` as a video and returned as read back from it."""
    info = media.video_stream_info(clip)
    total = sum(1 for _ in media.iter_video_frames(clip)) if not info.frame_count else info.frame_count
    start = int(total * start_fraction)
    writer = media.VideoWriter(out, info.frames_per_second, crf=SCRATCH_CRF)
    written = 0
    try:
        for index, rgb in enumerate(media.iter_video_frames(clip)):
            if index < start:
                continue
            if max_frames and written >= max_frames:
                break
            writer.write(rgb)
            written += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return _frames(out, 0)


def evaluate_swap(
    swapper: swap_media.FaceSwapper,
    targets: list[SwapTarget],
    *,
    coverage: float,
    restore: full_resolution.Restore | None,
    max_frames: int = 0,
    batch_size: int = 8,
    paths: tuple[str, ...] = tuple(SWAP_PATHS),
    sheet: pathlib.Path | None = None,
) -> dict:
    """Swap the faces of each target clip along each path of ``SWAP_PATHS`` (``full_resolution``:
    merged at the face's own size, restored, alignment smoothed, blended within the target's skin;
    ``full_resolution_oval_mask``: the same with the decoder's whole oval; ``model_resolution``:
    merged at the model's size, as the platform did before) and measure each against the frames it
    was made from."""
    detector = faces_lib.FaceDetector()
    results: list[PairResult] = []
    sheet_rows: list[tuple[str, list[np.ndarray]]] = []
    with tempfile.TemporaryDirectory(prefix="dfp-swap-evaluate-") as scratch:
        for target in targets:
            target_path = pathlib.Path(scratch) / f"{target.clip.stem}-target.mp4"
            frames = _clip_tail(target.clip, target.start_fraction, max_frames, target_path)
            picks = np.linspace(0, len(frames) - 1, SHEET_FRAMES).round().astype(int)
            face = next((f for f in (realism.largest_face(found) for found in detector.detect_batch(
                [frames[i] for i in picks])) if f is not None), None)
            if face is None:
                raise ValueError(f"no face found in {target.clip.name}")
            box = faces_lib.square_crop_box(face.box, frames[0].shape[:2], 0.3)
            sheet_rows.append((f"{target.clip.name} (to {target.to_identity}): target",
                               [_sheet_crop(frames[i], box) for i in picks]))
            for path in paths:
                out = pathlib.Path(scratch) / f"{target.clip.stem}-{path}.mp4"
                merge = SWAP_PATHS[path]
                full = merge["full_resolution"]
                options = swap_media.MergeOptions(to_identity=target.to_identity, coverage=coverage,
                                                  batch_size=batch_size, **merge)
                swap_media.swap_video(swapper, target_path, out, options, detector=detector,
                                      restore=restore if full else None)
                made_frames = _frames(out, 0)
                report = realism.measure(made_frames, frames, target.identity_still, detector,
                                         sharpness_reference="driving")
                results.append(PairResult(target.to_identity, target.clip.name, path, report))
                sheet_rows.append(_result_row(path, report, [_sheet_crop(made_frames[i], box) for i in picks]))
    if sheet is not None:
        write_contact_sheet(sheet, sheet_rows)
    return {
        "pairs": [{"to_identity": r.source, "target": r.driving, "path": r.path, **r.report.as_dict()} for r in results],
        "summary": summarise(results),
        "max_frames": max_frames,
    }
