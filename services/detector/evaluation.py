"""Detector evaluation: ROC AUC (fake = positive), EER, accuracy, precision and recall, plots.

Metrics are computed here in NumPy (rank-based AUC with ties, ROC points at every distinct score) so
that training's early stopping and `dfp detector evaluate` report the very same numbers.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np


def roc_auc(fake: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random fake scores above a random real (ties count half)."""
    fake = np.asarray(fake).astype(bool)
    n_fake, n_real = int(fake.sum()), int((~fake).sum())
    if n_fake == 0 or n_real == 0:
        raise ValueError("AUC needs both real and fake samples")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = np.asarray(score)[order]
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1, len(score)]
    for start, end in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[fake].sum() - n_fake * (n_fake + 1) / 2.0) / (n_fake * n_real))


def roc_curve(fake: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at each distinct threshold, descending (fake = positive)."""
    fake = np.asarray(fake).astype(bool)
    order = np.argsort(-np.asarray(score), kind="mergesort")
    sorted_scores, sorted_fake = np.asarray(score)[order], fake[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tp = np.cumsum(sorted_fake)[distinct]
    fp = np.cumsum(~sorted_fake)[distinct]
    fpr = np.r_[0.0, fp / max(1, (~fake).sum())]
    tpr = np.r_[0.0, tp / max(1, fake.sum())]
    return fpr, tpr, np.r_[np.inf, sorted_scores[distinct]]


def equal_error_rate(fake: np.ndarray, score: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(fake, score)
    fnr = 1.0 - tpr
    index = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[index] + fnr[index]) / 2.0)


@dataclasses.dataclass(frozen=True)
class Metrics:
    auc: float
    accuracy: float
    eer: float
    precision: float
    recall: float
    threshold: float
    n_real: int
    n_fake: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def metrics(fake: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> Metrics:
    fake = np.asarray(fake).astype(bool)
    score = np.asarray(score, np.float64)
    called_fake = score >= threshold
    true_positive = int((called_fake & fake).sum())
    return Metrics(
        auc=roc_auc(fake, score),
        accuracy=float((called_fake == fake).mean()),
        eer=equal_error_rate(fake, score),
        precision=true_positive / max(1, int(called_fake.sum())),
        recall=true_positive / max(1, int(fake.sum())),
        threshold=threshold,
        n_real=int((~fake).sum()),
        n_fake=int(fake.sum()),
    )


def video_scores(videos: list[str], score: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregates frame scores per (video, label): mean and max probability of fake, and the label."""
    groups: dict[tuple[str, int], list[float]] = {}
    for video, value, label in zip(videos, score, fake):
        groups.setdefault((video, int(label)), []).append(float(value))
    keys = sorted(groups)
    return (
        np.array([np.mean(groups[k]) for k in keys]),
        np.array([np.max(groups[k]) for k in keys]),
        np.array([k[1] for k in keys]),
    )


def write_plots(out_dir: pathlib.Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[pathlib.Path]:
    """ROC curves of every model in one PNG, and a score histogram per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (fake, score) in curves.items():
        fpr, tpr, _ = roc_curve(fake, score)
        axis.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(fake, score):.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel("false positive rate (real called fake)")
    axis.set_ylabel("true positive rate (fake caught)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    written.append(out_dir / "roc.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)
    for name, (fake, score) in curves.items():
        figure, axis = plt.subplots(figsize=(6, 3.5))
        fake = np.asarray(fake).astype(bool)
        bins = np.linspace(0, 1, 41)
        axis.hist(np.asarray(score)[~fake], bins=bins, alpha=0.6, label="real")
        axis.hist(np.asarray(score)[fake], bins=bins, alpha=0.6, label="fake")
        axis.set_xlabel("probability of fake")
        axis.set_title(name)
        axis.legend()
        figure.tight_layout()
        written.append(out_dir / f"histogram-{slug(name)}.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)
    return written


def write_mistakes_sheet(path: pathlib.Path, images: np.ndarray, fake: np.ndarray, score: np.ndarray,
                         count: int = 16, tile: int = 128) -> pathlib.Path:
    """A contact sheet of the most confident mistakes, each captioned with its label and score."""
    from PIL import Image, ImageDraw

    fake = np.asarray(fake).astype(bool)
    error = np.where(fake, 1.0 - score, score)
    worst = [int(i) for i in np.argsort(-error)[:count] if error[i] > 0.5]
    columns = 4
    rows = max(1, (len(worst) + columns - 1) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for slot, index in enumerate(worst):
        x, y = (slot % columns) * tile, (slot // columns) * (tile + 16)
        sheet.paste(Image.fromarray(np.asarray(images[index])).resize((tile, tile)), (x, y))
        draw.text((x + 2, y + tile + 2), f"{'fake' if fake[index] else 'real'} p={score[index]:.2f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
