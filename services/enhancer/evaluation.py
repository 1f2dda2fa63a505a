"""Side-by-side quality of enhancement methods on degraded copies of good images.

Each reference image is degraded (bicubic x4 down, BasicSR's classic SR benchmark setting), every
method restores it to the reference size, and PSNR/SSIM (Y channel, crop border = the scale) and
NIQE (no reference, lower is better) are averaged per method. A contact sheet shows input, each method and the reference, one row per image.
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from dfp import media
from services.enhancer import metrics

Method = Callable[[np.ndarray], np.ndarray]


def reference_images(data: pathlib.Path, split: str, limit: int, max_pixels: int = 50_000_000,
                     label: str | None = None) -> list[np.ndarray]:
    """Up to `limit` RGB images: a folder with a labels.csv (path, split and label columns; `label`
    keeps one label only) or a plain folder."""
    data = pathlib.Path(data)
    labels = data / "labels.csv"
    if labels.exists():
        with open(labels, newline="") as handle:
            paths = [data / row["path"] for row in csv.DictReader(handle)
                     if row.get("split", split) == split and label in (None, row.get("label"))]
    else:
        paths = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not paths:
        raise ValueError(f"{data} has no images" + (f" in split {split!r}" if labels.exists() else ""))
    return [media.decode_image(path, max_pixels) for path in paths[:limit]]


def degrade_bicubic(reference: np.ndarray, factor: int = 4) -> np.ndarray:
    """Bicubic downscale (antialiased, as MATLAB's imresize); the sides are cut to multiples of `factor`."""
    height, width = (reference.shape[0] // factor) * factor, (reference.shape[1] // factor) * factor
    image = Image.fromarray(reference[:height, :width])
    return np.asarray(image.resize((width // factor, height // factor), Image.BICUBIC))


def bicubic_upscale(factor: int = 4) -> Method:
    def upscale(low: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(low).resize((low.shape[1] * factor, low.shape[0] * factor), Image.BICUBIC))
    return upscale


def methods_by_name(names: list[str], device: str | None = None,
                    face_weights: pathlib.Path | None = None) -> dict[str, Method]:
    """x4 methods by name: `bicubic`; `face` (bicubic, then the face restoration network); a built
    super-resolution model (`esrgan-x4`, `srvgg-x4`) or a super-resolution `.pth` path. Keys are the
    names the report shows."""
    from services.enhancer import face_restorers, tiling
    from services.enhancer.training.face_restore_train import restore
    from services.enhancer.upscaler import load_upscaler

    bicubic = bicubic_upscale(4)
    methods: dict[str, Method] = {}
    for name in names:
        if name == "bicubic":
            methods[name] = bicubic
        elif name == "face":
            restorer = face_restorers.load_unet(face_weights, device=device or "cpu")
            methods[restorer.name] = lambda low, model=restorer.model: restore(model, bicubic(low)[None])[0]
        else:
            upscaler = load_upscaler(name, device)

            def upscale(low: np.ndarray, upscaler=upscaler) -> np.ndarray:
                result = tiling.upscale(upscaler.model, low.astype(np.float32) / 255.0, upscaler.model_scale, 4,
                                        tiling.TileOptions(tile=0))
                return (np.clip(result, 0, 1) * 255.0 + 0.5).astype(np.uint8)

            methods[upscaler.name] = upscale
    return methods


def evaluate(references: list[np.ndarray], methods: dict[str, Method], factor: int = 4,
             sheet_path: pathlib.Path | None = None, sheet_rows: int = 6) -> dict:
    scores: dict[str, dict[str, list[float]]] = {name: {"psnr": [], "ssim": [], "niqe": []} for name in methods}
    rows = []
    for index, reference in enumerate(references):
        low = degrade_bicubic(reference, factor)
        reference = reference[:low.shape[0] * factor, :low.shape[1] * factor]
        row = [bicubic_nearest(low, factor)]
        for name, method in methods.items():
            restored = method(low)
            scores[name]["psnr"].append(metrics.psnr(restored, reference, crop_border=factor))
            scores[name]["ssim"].append(metrics.ssim(restored, reference, crop_border=factor))
            if min(restored.shape[:2]) - 2 * factor >= 96:
                scores[name]["niqe"].append(metrics.niqe(restored, crop_border=factor))
            row.append(restored)
        if index < sheet_rows:
            rows.append(row + [reference])
    if sheet_path is not None and rows:
        _write_sheet(sheet_path, rows, ["input"] + list(methods) + ["reference"])
    return {
        "images": len(references), "degradation": f"bicubic x{factor} down", "crop_border": factor, "channel": "Y",
        "methods": {name: {"psnr": round(float(np.mean(v["psnr"])), 3), "ssim": round(float(np.mean(v["ssim"])), 4),
                           "niqe": round(float(np.mean(v["niqe"])), 3) if v["niqe"] else None}
                    for name, v in scores.items()},
    }


def bicubic_nearest(low: np.ndarray, factor: int) -> np.ndarray:
    """The degraded input shown at the reference size, pixels visible as blocks."""
    return np.repeat(np.repeat(low, factor, axis=0), factor, axis=1)


def _write_sheet(path: pathlib.Path, rows: list[list[np.ndarray]], titles: list[str]) -> None:
    from PIL import ImageDraw

    cell_h, cell_w = rows[0][-1].shape[:2]
    header = 16
    sheet = Image.new("RGB", (cell_w * len(titles), header + cell_h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * cell_w + 4, 2), title, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for column, image in enumerate(row):
            sheet.paste(Image.fromarray(np.ascontiguousarray(image[:cell_h, :cell_w])), (column * cell_w, header + r * cell_h))
    sheet.save(path)
