"""The red-team report: how well each detector tells each kind of fake, as made or enhanced, from the
real clips — with confidence intervals, the change enhancement causes, the hardest examples, and
the exact versions of every model involved.

Scores are per sampled frame (the most confidently found face); frames of one clip are alike, so
every interval comes from a bootstrap that resamples whole videos (fake items and real clips), not
frames. The change in AUC is a paired bootstrap: the same fake items and real clips with and
without enhancement.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from services.detector.evaluation import roc_auc, slug

HARDEST_COUNT = 16


@dataclasses.dataclass
class Samples:
    """Frame scores with the video each frame comes from."""

    scores: np.ndarray
    clusters: np.ndarray  # index of the video of each frame
    videos: list[str]
    frames_sampled: int  # including frames where no face was found


def _samples(results: list[tuple[str, dict]]) -> Samples:
    scores, clusters, videos, sampled = [], [], [], 0
    for video, result in results:
        videos.append(video)
        for frame in result["frames"]:
            sampled += 1
            if frame["score"] is not None:
                scores.append(frame["score"])
                clusters.append(len(videos) - 1)
    return Samples(np.asarray(scores, np.float64), np.asarray(clusters, np.int64), videos, sampled)


def _resample(samples: Samples, rng: np.random.Generator, picks: np.ndarray | None = None) -> np.ndarray:
    picks = rng.integers(0, len(samples.videos), len(samples.videos)) if picks is None else picks
    return np.concatenate([samples.scores[samples.clusters == p] for p in picks]) if len(picks) else np.zeros(0)


def _auc(fake: np.ndarray, real: np.ndarray) -> float | None:
    if len(fake) == 0 or len(real) == 0:
        return None
    return roc_auc(np.r_[np.ones(len(fake)), np.zeros(len(real))], np.r_[fake, real])


def _interval(values: list[float]) -> list[float] | None:
    values = [v for v in values if v is not None]
    if len(values) < 20:
        return None
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def group_metrics(fake: Samples, real: Samples, threshold: float, bootstrap: int, rng: np.random.Generator) -> dict:
    auc = _auc(fake.scores, real.scores)
    aucs, rates = [], []
    for _ in range(bootstrap):
        fake_scores = _resample(fake, rng)
        aucs.append(_auc(fake_scores, _resample(real, rng)))
        rates.append(float(np.mean(fake_scores >= threshold)) if len(fake_scores) else None)
    found = len(fake.scores) / fake.frames_sampled if fake.frames_sampled else None
    return {
        "auc": None if auc is None else round(auc, 4),
        "auc_ci95": _interval(aucs),
        "detection_rate": round(float(np.mean(fake.scores >= threshold)), 4) if len(fake.scores) else None,
        "detection_rate_ci95": _interval(rates),
        "mean_fake_score": round(float(np.mean(fake.scores)), 4) if len(fake.scores) else None,
        "fake_videos": len(fake.videos), "fake_frames": int(len(fake.scores)),
        "real_videos": len(real.videos), "real_frames": int(len(real.scores)),
        "face_found_rate": None if found is None else round(found, 4),
    }


def paired_delta(fake_base: Samples, fake_enhanced: Samples, real_base: Samples, real_enhanced: Samples,
                 bootstrap: int, rng: np.random.Generator) -> dict:
    """AUC(enhanced) - AUC(as made), resampling the same fake items and real clips for both."""
    base, enhanced = _auc(fake_base.scores, real_base.scores), _auc(fake_enhanced.scores, real_enhanced.scores)
    if base is None or enhanced is None or fake_base.videos != fake_enhanced.videos:
        return {"delta_auc": None, "delta_auc_ci95": None}
    deltas = []
    for _ in range(bootstrap):
        fake_picks = rng.integers(0, len(fake_base.videos), len(fake_base.videos))
        real_picks = rng.integers(0, len(real_base.videos), len(real_base.videos))
        a = _auc(_resample(fake_enhanced, rng, fake_picks), _resample(real_enhanced, rng, real_picks))
        b = _auc(_resample(fake_base, rng, fake_picks), _resample(real_base, rng, real_picks))
        deltas.append(None if a is None or b is None else a - b)
    return {"delta_auc": round(enhanced - base, 4), "delta_auc_ci95": _interval(deltas)}


def enhancement_key(variant: dict) -> str:
    """A planned variant's enhancement as the configuration names it: none, or model@xscale."""
    enhancement = variant["enhancement"]
    return "none" if enhancement["model"] == "none" else f"{enhancement['model']}@x{enhancement['scale']}"


def detection(state: dict, detector: str, variant: dict) -> dict | None:
    """What the detector said of a variant (model and per-frame scores); None if it never scored it."""
    return state["steps"].get(f"detect/{detector}/{variant['key']}", {}).get("result")


def scored_frames(state: dict, detector: str, variant: dict) -> list[dict]:
    """The variant's frames where the detector scored a face, each tagged with the variant's key."""
    return [{"variant": variant["key"], **frame} for frame in (detection(state, detector, variant) or {}).get("frames", [])
            if frame["score"] is not None]


def compute(state: dict, threshold: float, bootstrap: int, seed: int, enhance_reals: bool) -> dict:
    """Every metric of the report, from a run's state."""
    rng = np.random.default_rng(seed)
    variants = state["plan"]["variants"]
    steps = state["steps"]
    detectors = sorted({key.split("/")[1] for key in steps if key.startswith("detect/")})
    enhancements = list(dict.fromkeys(enhancement_key(v) for v in variants))
    methods = list(dict.fromkeys(v["kind"] for v in variants if v["kind"] != "real"))

    def samples(detector: str, kind: str, enhancement: str) -> Samples:
        chosen = [(v["item"], detection(state, detector, v)) for v in variants
                  if v["kind"] == kind and enhancement_key(v) == enhancement]
        return _samples([(item, result) for item, result in chosen if result is not None])

    groups, deltas, served = [], [], {}
    for detector in detectors:
        for key, step in steps.items():
            if key.startswith(f"detect/{detector}/") and "result" in step and step["result"]["model"]["name"]:
                model = step["result"]["model"]
                served.setdefault(detector, set()).add(f"{model['name']} v{model['version']}")
        real_as_made = samples(detector, "real", "none")
        for method in methods:
            base = samples(detector, method, "none")
            for enhancement in enhancements:
                real = samples(detector, "real", enhancement) if enhance_reals else real_as_made
                fake = samples(detector, method, enhancement)
                groups.append({"detector": detector, "method": method, "enhancement": enhancement,
                               **group_metrics(fake, real, threshold, bootstrap, rng)})
                if enhancement != "none" and "none" in enhancements:
                    deltas.append({"detector": detector, "method": method, "enhancement": enhancement,
                                   **paired_delta(base, fake, real_as_made, real, bootstrap, rng)})
    false_positives = []
    for detector in detectors:
        for enhancement in (enhancements if enhance_reals else ["none"]):
            real = samples(detector, "real", enhancement)
            if len(real.scores):
                false_positives.append({"detector": detector, "enhancement": enhancement,
                                        "false_positive_rate": round(float(np.mean(real.scores >= threshold)), 4),
                                        "real_frames": int(len(real.scores)), "real_videos": len(real.videos)})
    failed = {key: step["error"] for key, step in steps.items() if "error" in step}
    return {"detectors": detectors, "served_versions": {d: sorted(v) for d, v in served.items()},
            "methods": methods, "enhancements": enhancements, "groups": groups, "enhancement_effect": deltas,
            "false_positives": false_positives, "failed_steps": failed}


def hardest_fakes(state: dict, detector: str, count: int = HARDEST_COUNT) -> list[dict]:
    """The fake frames this detector scored lowest (most confidently called real)."""
    frames = [frame for variant in state["plan"]["variants"] if variant["kind"] != "real"
              for frame in scored_frames(state, detector, variant)]
    return sorted(frames, key=lambda f: f["score"])[:count]


def frame_crops(folder: pathlib.Path, wanted: list[dict]) -> list[np.ndarray]:
    """The face crop of each wanted frame (variant key, frame index, box), from the downloaded media."""
    from dfp import media
    from dfp.faces import crop_face

    crops = []
    by_variant: dict[str, dict[int, list[int]]] = {}
    for position, frame in enumerate(wanted):
        by_variant.setdefault(frame["variant"], {}).setdefault(frame["frame_index"], []).append(position)
    found: dict[int, np.ndarray] = {}
    for variant, indices in by_variant.items():
        path = folder / "media" / f"{variant.replace('/', '__')}.mp4"
        for index, rgb in enumerate(media.iter_video_frames(path)):
            for position in indices.get(index, []):
                found[position] = crop_face(rgb, tuple(wanted[position]["box"]))
            if index >= max(indices):
                break
    for position in range(len(wanted)):
        crops.append(found[position])
    return crops


def write_contact_sheet(path: pathlib.Path, crops: list[np.ndarray], captions: list[str], tile: int = 128) -> None:
    from PIL import Image, ImageDraw

    columns = 4
    rows = max(1, (len(crops) + columns - 1) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 28)), "white")
    draw = ImageDraw.Draw(sheet)
    for slot, (crop, caption) in enumerate(zip(crops, captions)):
        x, y = (slot % columns) * tile, (slot // columns) * (tile + 28)
        sheet.paste(Image.fromarray(np.ascontiguousarray(crop)).resize((tile, tile)), (x, y))
        for line, text in enumerate(caption.split("\n")[:2]):
            draw.text((x + 2, y + tile + 2 + 12 * line), text[:21], fill="black")
    sheet.save(path)


def write_auc_figure(path: pathlib.Path, metrics: dict) -> None:
    """AUC with its 95% interval per method and enhancement, one panel per detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detectors, methods, enhancements = metrics["detectors"], metrics["methods"], metrics["enhancements"]
    figure, axes = plt.subplots(1, len(detectors), figsize=(4 * len(detectors), 3.6), squeeze=False)
    width = 0.8 / max(1, len(enhancements))
    for axis, detector in zip(axes[0], detectors):
        for e_index, enhancement in enumerate(enhancements):
            xs, ys, low, high = [], [], [], []
            for m_index, method in enumerate(methods):
                group = next(g for g in metrics["groups"] if g["detector"] == detector and g["method"] == method
                             and g["enhancement"] == enhancement)
                if group["auc"] is None:
                    continue
                interval = group["auc_ci95"] or [group["auc"], group["auc"]]
                xs.append(m_index + (e_index - (len(enhancements) - 1) / 2) * width)
                ys.append(group["auc"])
                low.append(group["auc"] - interval[0])
                high.append(interval[1] - group["auc"])
            axis.bar(xs, ys, width, yerr=[low, high], capsize=3, label=enhancement)
        axis.axhline(0.5, color="grey", linestyle=":")
        axis.set_xticks(range(len(methods)), methods)
        axis.set_ylim(0, 1)
        axis.set_title(detector)
        axis.set_ylabel("AUC (fake vs real frames)")
    axes[0][0].legend(title="enhancement", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_score_figure(path: pathlib.Path, state: dict, metrics: dict) -> None:
    """The distribution of frame scores per variant kind and enhancement, one panel per detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detectors = metrics["detectors"]
    figure, axes = plt.subplots(len(detectors), 1, figsize=(8, 2.6 * len(detectors)), squeeze=False)
    for axis, detector in zip(axes[:, 0], detectors):
        columns: dict[str, list[float]] = {}
        for variant in state["plan"]["variants"]:
            label = f"{variant['kind']}\n{enhancement_key(variant)}"
            columns.setdefault(label, []).extend(f["score"] for f in scored_frames(state, detector, variant))
        labels = [k for k, v in columns.items() if v]
        if labels:
            axis.boxplot([columns[k] for k in labels], tick_labels=labels)
        else:
            axis.text(0.5, 0.5, "no face found in any sampled frame", ha="center", va="center", transform=axis.transAxes)
        axis.axhline(0.5, color="grey", linestyle=":")
        axis.set_ylim(0, 1)
        axis.set_title(detector, fontsize=9)
        axis.set_ylabel("probability of fake", fontsize=8)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value, interval=None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else text


def markdown(name: str, metrics: dict, context: dict) -> str:
    lines = [f"# Red-team report: {name}", "",
             f"Code version `{context['code_version']}`; configuration fingerprint `{context['fingerprint']}`. "
             f"Frame-level scores (the most confident face of each sampled frame, {context['frame_count']} frames "
             f"per video); fake = positive; threshold {context['threshold']}; 95% intervals from "
             f"{context['bootstrap']} bootstrap resamples of whole videos. Real side of every comparison: "
             + ("the real clips given the same enhancement as the fakes (a control: a detector that reacts to "
                "enhancement itself does not gain or lose from it)." if context["enhance_reals"]
                else "the real clips as recorded (enhanced fakes against untouched footage)."), "",
             "## Models", ""]
    lines += [f"- detector `{d}`: served as {', '.join(v)}" for d, v in metrics["served_versions"].items()]
    lines += [f"- {kind}: {', '.join(sorted(models))}" for kind, models in context["creation_models"].items()]
    lines += [f"- enhancement settings: {', '.join(metrics['enhancements'])}", ""]
    lines += ["## Detection per creation method and enhancement", "",
              "| detector | method | enhancement | AUC [95% CI] | detection rate [95% CI] | mean fake score | "
              "fake videos/frames | real videos/frames | faces found |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in metrics["groups"]:
        lines.append(f"| {g['detector']} | {g['method']} | {g['enhancement']} | {_fmt(g['auc'], g['auc_ci95'])} | "
                     f"{_fmt(g['detection_rate'], g['detection_rate_ci95'])} | {_fmt(g['mean_fake_score'])} | "
                     f"{g['fake_videos']}/{g['fake_frames']} | {g['real_videos']}/{g['real_frames']} | "
                     f"{_fmt(g['face_found_rate'])} |")
    if metrics["enhancement_effect"]:
        lines += ["", "## Change in AUC caused by enhancement (enhanced minus as made, paired)", "",
                  "| detector | method | enhancement | delta AUC [95% CI] |", "| --- | --- | --- | --- |"]
        lines += [f"| {d['detector']} | {d['method']} | {d['enhancement']} | "
                  f"{_fmt(d['delta_auc'], d['delta_auc_ci95'])} |" for d in metrics["enhancement_effect"]]
    lines += ["", "## Real clips called fake (false positive rate at the threshold)", "",
              "| detector | real clips enhanced with | false positive rate | real videos/frames |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {f['detector']} | {f['enhancement']} | {f['false_positive_rate']:.3f} | "
              f"{f['real_videos']}/{f['real_frames']} |" for f in metrics["false_positives"]]
    lines += ["", "## Figures", "", "![AUC per method and enhancement](auc.png)", "",
              "![Frame scores](scores.png)", ""]
    lines += [f"Hardest fakes for `{d}` (lowest scores): ![hardest {d}](hardest-{slug(d)}.jpg)" for d in metrics["detectors"]]
    if metrics["failed_steps"]:
        lines += ["", "## Steps that failed", ""]
        lines += [f"- `{k}`: {v}" for k, v in sorted(metrics["failed_steps"].items())]
    return "\n".join(lines) + "\n"


def comparison_markdown(before: dict, after: dict, before_label: str, after_label: str) -> str:
    """Two runs' reports side by side: AUC and detection rate per detector, method and enhancement,
    and the false positive rates, with a row for every group either run has (n/a where one lacks it)."""

    def by_key(rows: list[dict], *fields: str) -> dict[tuple, dict]:
        return {tuple(row[f] for f in fields): row for row in rows}

    def sizes(row: dict | None) -> str:
        return "n/a" if row is None else f"{row['fake_videos']}/{row['real_videos']}"

    def rate(row: dict | None, field: str) -> str:
        return "n/a" if row is None or row.get(field) is None else f"{row[field]:.3f}"

    groups_before = by_key(before["groups"], "detector", "method", "enhancement")
    groups_after = by_key(after["groups"], "detector", "method", "enhancement")
    lines = [f"| detector | method | enhancement | AUC {before_label} [95% CI] | AUC {after_label} [95% CI] | "
             f"detection rate {before_label} / {after_label} | fake/real videos {before_label} / {after_label} |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(groups_before.keys() | groups_after.keys()):
        old, new = groups_before.get(key), groups_after.get(key)
        auc = [_fmt(g["auc"], g["auc_ci95"]) if g else "n/a" for g in (old, new)]
        lines.append(f"| {' | '.join(key)} | {auc[0]} | {auc[1]} | {rate(old, 'detection_rate')} / "
                     f"{rate(new, 'detection_rate')} | {sizes(old)} / {sizes(new)} |")
    positives_before = by_key(before["false_positives"], "detector", "enhancement")
    positives_after = by_key(after["false_positives"], "detector", "enhancement")
    lines += ["", f"| detector | real clips enhanced with | false positive rate {before_label} / {after_label} |",
              "| --- | --- | --- |"]
    for key in sorted(positives_before.keys() | positives_after.keys()):
        lines.append(f"| {' | '.join(key)} | {rate(positives_before.get(key), 'false_positive_rate')} / "
                     f"{rate(positives_after.get(key), 'false_positive_rate')} |")
    return "\n".join(lines) + "\n"


def write(folder: pathlib.Path, name: str, state: dict, *, threshold: float, bootstrap: int, seed: int,
          enhance_reals: bool, frame_count: int, code_version: str) -> dict:
    """report.json, report.md, auc.png, scores.png and a hardest-fakes sheet per detector, in `folder`."""
    metrics = compute(state, threshold, bootstrap, seed, enhance_reals)
    creation_models: dict[str, set[str]] = {}  # and the enhancers, as the enhancer service names them
    for key, step in state["steps"].items():
        if key.startswith("create/") and "result" in step:
            model = step["result"]["model"]
            creation_models.setdefault(key.split("/")[1], set()).add(
                f"{model['name']} v{model['version']}" if model["version"] else f"{model['name']} (built-in)")
    for key, step in state["steps"].items():
        if key.startswith("enhance/") and "result" in step:
            creation_models.setdefault("enhancement", set()).add(step["result"]["model"])
    hardest = {}
    for detector in metrics["detectors"]:
        frames = hardest_fakes(state, detector)
        hardest[detector] = frames
        if frames:
            write_contact_sheet(folder / f"hardest-{slug(detector)}.jpg", frame_crops(folder, frames),
                                [f"{f['variant'].split('/', 1)[1]}\np={f['score']:.3f} frame {f['frame_index']}"
                                 for f in frames])
    write_auc_figure(folder / "auc.png", metrics)
    write_score_figure(folder / "scores.png", state, metrics)
    context = {"code_version": code_version, "fingerprint": state["fingerprint"], "threshold": threshold,
               "bootstrap": bootstrap, "frame_count": frame_count, "enhance_reals": enhance_reals,
               "creation_models": {k: sorted(v) for k, v in creation_models.items()}}
    report = {"name": name, **context, **metrics, "hardest_fakes": hardest, "inputs": state["plan"]["inputs"]}
    (folder / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    (folder / "report.md").write_text(markdown(name, metrics, context))
    return report


def write_run(run, folder: pathlib.Path, state: dict) -> dict:
    """The report of a run (a dfp.redteam.config.RunConfig) with its own settings."""
    from dfp.provenance import code_version

    return write(folder, run.name, state, threshold=run.threshold, bootstrap=run.bootstrap, seed=run.seed,
                 enhance_reals=run.enhance_reals, frame_count=run.frame_count, code_version=code_version())
