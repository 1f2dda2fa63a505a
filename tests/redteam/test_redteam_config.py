"""The red-team configuration: what a run needs is checked before anything is uploaded."""

import pathlib

import pytest

from dfp.redteam import config

VALID = {
    "name": "shared-clips",
    "animation": {"sources": ["video/source/s0.jpg"], "drivers": ["video/driving/d0.mp4"]},
    "face_swap": {"model": "swap-d6-d9", "targets": ["video/driving/d6.mp4"]},
    "real_clips": ["video/driving/d20.mp4"],
    "enhancements": ["none", {"model": "esrgan-x4", "scale": 2}, "face"],
    "detectors": [{"model": "detector", "version": 1}, "meso4"],
}


def test_a_full_configuration_names_every_item_and_defaults_the_rest(shared):
    run = config.parse(VALID, shared)
    assert [e.key for e in run.enhancements] == ["none", "esrgan-x4@x2", "face@x4"]
    assert [d.key for d in run.detectors] == ["detector@v1", "meso4"]
    assert run.methods == ("animation", "face_swap")
    # Every clip a fake was made from is also scored as real, with the extra real clips.
    assert [pathlib.Path(p).name for p in run.real_clips] == ["d0.mp4", "d6.mp4", "d20.mp4"]
    assert (run.max_side, run.frames, run.frame_count, run.threshold) == (256, 16, 8, 0.5)


def test_the_fingerprint_ignores_report_settings_but_not_items(shared):
    run = config.parse(VALID, shared)
    assert config.parse({**VALID, "threshold": 0.7, "bootstrap": 10}, shared).fingerprint() == run.fingerprint()
    assert config.parse({**VALID, "real_clips": []}, shared).fingerprint() != run.fingerprint()


@pytest.mark.parametrize("change, message", [
    ({"name": "Shared Clips"}, "name must be"),
    ({"surprise": 1}, "unknown keys: surprise"),
    ({"animation": {"sources": ["video/source/nope.jpg"], "drivers": ["video/driving/d0.mp4"]}}, "is not a file"),
    ({"animation": {"sources": ["video/source/s0.jpg"]}}, "both sources"),
    ({"face_swap": {"targets": ["video/driving/d6.mp4"]}}, "face_swap.model"),
    ({"animation": {}, "face_swap": {}}, "nothing to create"),
    ({"enhancements": ["gfpgan"]}, "model must be none or one of"),
    ({"enhancements": [{"model": "esrgan-x4", "scale": 8}]}, "scale must be 2, 3 or 4"),
    ({"enhancements": ["none", "none"]}, "without repeats"),
    ({"detectors": [{"model": "detector", "version": 0}]}, "positive integer"),
    ({"detectors": []}, "non-empty"),
    ({"inputs": {"frames": 1}}, "inputs.frames must be an integer in [2, 600]"),
    ({"threshold": 1.5}, "threshold must be in (0, 1)"),
])
def test_a_bad_configuration_is_refused_with_the_key_at_fault(shared, change, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        config.parse({**VALID, **change}, shared)


def test_stored_media_names_stand_for_files_in_a_cluster_run(shared):
    run = config.parse({**VALID, "face_swap": {"model": "swap-ab", "targets": ["media/0abc9"]}}, shared)
    assert run.swap_targets == ("media/0abc9",) and "media/0abc9" in run.real_clips
    with pytest.raises(config.ConfigError, match="is not a media name"):
        config.parse({**VALID, "real_clips": ["media/../secrets"]}, shared)


def test_the_shipped_configuration_is_valid(shared):
    run = config.load(pathlib.Path(__file__).resolve().parents[2] / "redteam" / "shared-clips.yaml", shared)
    assert len(run.detectors) >= 2 and len(run.enhancements) == 3 and run.methods == ("animation", "face_swap")
