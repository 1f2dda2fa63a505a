"""The red-team metrics on scores made up to have known answers."""

import numpy as np

from dfp.redteam import report


def _variant(kind: str, item: str, clip: str, enhancement: str) -> dict:
    model, _, scale = enhancement.partition("@x")
    return {"key": f"{item}/{enhancement}", "kind": kind, "item": item, "clip": clip,
            "enhancement": {"model": model, "scale": int(scale or 1)}}


def _state(scores: dict[str, list[float | None]]) -> dict:
    """A finished run's state with one detector; `scores` maps variant keys to frame scores."""
    variants, steps = [], {}
    for key, frames in scores.items():
        kind, *rest = key.split("/")
        enhancement = rest[-1]
        item = "/".join([kind, *rest[:-1]])
        variants.append(_variant(kind, item, rest[-2], enhancement))
        steps[f"detect/det/{key}"] = {"result": {"model": {"name": "det", "version": 2}, "frames": [
            {"frame_index": i, "score": s, "box": None if s is None else [0, 0, 10, 10]} for i, s in enumerate(frames)]}}
    return {"fingerprint": "f", "steps": steps, "plan": {"variants": variants, "items": {}, "inputs": {}}}


def test_enhancement_that_hides_fakes_shows_as_a_drop_in_auc_with_a_paired_interval():
    rng = np.random.default_rng(0)
    scores = {}
    for clip in range(6):
        scores[f"real/r{clip}/none"] = list(rng.uniform(0.0, 0.4, 4))
        scores[f"animation/s{clip}/d{clip}/none"] = list(rng.uniform(0.6, 1.0, 4))
        # Enhanced fakes overlap the reals: the detector is fooled about half the time.
        scores[f"animation/s{clip}/d{clip}/esrgan-x4@x2"] = list(rng.uniform(0.0, 0.8, 4))
    metrics = report.compute(_state(scores), threshold=0.5, bootstrap=300, seed=1, enhance_reals=False)
    groups = {g["enhancement"]: g for g in metrics["groups"]}
    assert groups["none"]["auc"] == 1.0 and groups["none"]["detection_rate"] == 1.0
    assert 0.5 < groups["esrgan-x4@x2"]["auc"] < 0.95
    assert groups["esrgan-x4@x2"]["detection_rate"] < 0.7
    assert (groups["none"]["fake_videos"], groups["none"]["fake_frames"], groups["none"]["real_frames"]) == (6, 24, 24)
    low, high = groups["esrgan-x4@x2"]["auc_ci95"]
    assert low <= groups["esrgan-x4@x2"]["auc"] <= high
    [delta] = metrics["enhancement_effect"]
    assert delta["delta_auc"] < -0.05 and delta["delta_auc_ci95"][1] < 0
    assert metrics["served_versions"] == {"det": ["det v2"]}
    assert metrics["false_positives"][0]["false_positive_rate"] == 0.0


def test_frames_without_a_face_count_against_the_face_found_rate_not_the_auc():
    scores = {"real/r0/none": [0.1, 0.2], "real/r1/none": [0.3, 0.1],
              "face_swap/t0/none": [0.9, None], "face_swap/t1/none": [None, None]}
    metrics = report.compute(_state(scores), threshold=0.5, bootstrap=0, seed=0, enhance_reals=False)
    [group] = metrics["groups"]
    assert group["auc"] == 1.0 and group["fake_frames"] == 1 and group["face_found_rate"] == 0.25
    assert group["auc_ci95"] is None  # no bootstrap asked for


def test_the_hardest_fakes_are_the_lowest_scored_fake_frames():
    scores = {"real/r0/none": [0.0], "animation/s0/d0/none": [0.9, 0.2, None], "face_swap/t0/none": [0.4]}
    hardest = report.hardest_fakes(_state(scores), "det", count=2)
    assert [(f["variant"], f["score"]) for f in hardest] == [("animation/s0/d0/none", 0.2), ("face_swap/t0/none", 0.4)]


def test_the_markdown_report_has_every_table():
    scores = {"real/r0/none": [0.1, 0.3], "real/r1/none": [0.2], "animation/s0/d0/none": [0.8, 0.4],
              "animation/s0/d0/face@x2": [0.3, 0.6]}
    metrics = report.compute(_state(scores), threshold=0.5, bootstrap=50, seed=0, enhance_reals=False)
    text = report.markdown("unit", metrics, {"code_version": "abc", "fingerprint": "f", "threshold": 0.5,
                                             "bootstrap": 50, "frame_count": 2, "enhance_reals": False, "creation_models": {"animation": ["fomm (built-in)"]}})
    for heading in ("## Models", "## Detection per creation method and enhancement",
                    "## Change in AUC caused by enhancement", "## Real clips called fake"):
        assert heading in text
    assert "| det | animation | face@x2 |" in text


def test_figures_are_written_even_when_no_face_was_found(tmp_path):
    state = _state({"real/r0/none": [None, None], "animation/s0/d0/none": [None]})
    metrics = report.compute(state, threshold=0.5, bootstrap=10, seed=0, enhance_reals=False)
    report.write_auc_figure(tmp_path / "auc.png", metrics)
    report.write_score_figure(tmp_path / "scores.png", state, metrics)
    assert (tmp_path / "auc.png").stat().st_size and (tmp_path / "scores.png").stat().st_size


def test_two_runs_are_compared_row_by_row_with_groups_only_one_run_has():
    def group(method, auc, videos):
        return {"detector": "det", "method": method, "enhancement": "none", "auc": auc, "auc_ci95": [auc - 0.1, auc],
                "detection_rate": 0.5, "fake_videos": videos, "real_videos": 7}

    before = {"groups": [group("animation", 0.95, 6)],
              "false_positives": [{"detector": "det", "enhancement": "none", "false_positive_rate": 0.25}]}
    after = {"groups": [group("animation", 0.81, 80), group("face_swap", 0.9, 9)],
             "false_positives": [{"detector": "det", "enhancement": "none", "false_positive_rate": 0.1}]}
    table = report.comparison_markdown(before, after, "old", "new")
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| det |")}
    assert "0.950 [0.850, 0.950] | 0.810 [0.710, 0.810]" in rows["animation"]
    assert "6/7 / 80/7" in rows["animation"]
    assert "| n/a | 0.900 [0.800, 0.900] |" in rows["face_swap"] and "n/a / 9/7" in rows["face_swap"]
    assert "| det | none | 0.250 / 0.100 |" in table
