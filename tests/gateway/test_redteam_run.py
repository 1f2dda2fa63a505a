"""A small red-team run through the real gateway: both creation methods, an enhancement, two detector
versions; its report, its resumption without duplicates, and hard-example data made from it."""

import csv
import json

import pytest
import yaml
from click.testing import CliRunner

from dfp import content_credentials, provenance
from dfp.cli.main import cli
from tests.helpers import register_swap_model, wait_served

pytestmark = pytest.mark.slow
SWAP_MODEL = "swap-redteam"
CONFIG = {
    "name": "test-run",
    "inputs": {"max_side": 128, "frames": 3},
    "animation": {"sources": ["video/source/s3.jpg"], "drivers": ["video/driving/d18.mp4"]},
    "face_swap": {"model": SWAP_MODEL, "targets": ["video/driving/d18.mp4"]},
    "real_clips": ["video/driving/d20.mp4"],
    "enhancements": ["none", {"model": "srvgg-x4", "scale": 2}],
    "detectors": [{"model": "detector", "version": 1}, {"model": "meso4", "version": 1}],
    "sampling": {"frame_count": 3},
    "bootstrap": 50,
}


def redteam(*args, token=""):
    result = CliRunner().invoke(cli, ["redteam", *args], env={"DFP_TOKEN": token}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def finished_run(stack, swap_run, tmp_path_factory):
    wait_served(stack, SWAP_MODEL, register_swap_model(stack, swap_run, SWAP_MODEL))
    folder = tmp_path_factory.mktemp("redteam")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = folder / "run"
    redteam("run", "--config", str(config), "--out", str(out), "--server", stack.gateway_target, "--parallel", "3",
            "--json", token=stack.token)
    return config, out


def test_a_run_scores_every_variant_with_every_detector_and_writes_the_report(finished_run):
    _, out = finished_run
    report = json.loads((out / "report.json").read_text())
    assert {(g["detector"], g["method"], g["enhancement"]) for g in report["groups"]} == {
        (d, m, e) for d in ("detector@v1", "meso4@v1") for m in ("animation", "face_swap")
        for e in ("none", "srvgg-x4@x2")}
    assert report["served_versions"] == {"detector@v1": ["detector v1"], "meso4@v1": ["meso4 v1"]}
    assert report["creation_models"]["face_swap"] == [f"{SWAP_MODEL} v1"]
    assert report["failed_steps"] == {}
    # The real clips (the swap target and the extra clip) have faces at this size; every frame was sampled.
    real = [g for g in report["groups"] if g["enhancement"] == "none"][0]
    assert real["real_videos"] == 2 and real["real_frames"] == 6
    assert len(report["enhancement_effect"]) == 4
    for name in ("report.md", "auc.png", "scores.png"):
        assert (out / name).stat().st_size > 0
    assert "## Change in AUC caused by enhancement" in (out / "report.md").read_text()


def test_the_fakes_carry_the_synthetic_tags_and_credentials_but_not_the_visible_label(stack, finished_run):
    _, out = finished_run
    state = json.loads((out / "state.json").read_text())
    assert len(state["downloads"]) == 2 * 2 + 2  # two fakes and two real clips, the fakes also enhanced
    fake = out / "media" / "face_swap__d18__none.mp4"
    marks = provenance.verify(fake)
    assert marks["synthetic_tag"] and marks["tags"]["dfp_generator"] == f"faceswap:{SWAP_MODEL}:v1"
    # The gateway signed it: a C2PA manifest naming the generator, from the stack's own signer.
    credentials = content_credentials.read(fake, (stack.c2pa_dir / "ca.pem").read_bytes())
    assert credentials["trusted"] and credentials["generated_by_ai"]
    assert credentials["generator"] == f"faceswap:{SWAP_MODEL}:v1"
    from dfp import media

    # The visible label is a black box with white text in the bottom-left corner; without it the
    # corner looks like the rest of the frame.
    frame = next(iter(media.iter_video_frames(fake)))
    corner = frame[-12:, :60].astype(float)
    assert not ((corner < 30).mean() > 0.5 and (corner > 220).mean() > 0.05)


def test_a_rerun_resumes_without_submitting_or_uploading_anything_twice(stack, finished_run, client):
    config, out = finished_run
    state_path = out / "state.json"
    before = json.loads(state_path.read_text())
    operations = {o.name for o in client.list_operations()}
    media = {m.name for m in client.list_media()}
    # As if the run had stopped right after submitting: the uploads and one job's outcome forgotten.
    forgotten = json.loads(state_path.read_text())
    forgotten["uploads"] = {}
    step = next(k for k in forgotten["steps"] if k.startswith("create/face_swap"))
    forgotten["steps"][step] = {"attempt": 1}
    state_path.write_text(json.dumps(forgotten))
    redteam("run", "--config", str(config), "--out", str(out), "--server", stack.gateway_target, "--quiet",
            token=stack.token)
    after = json.loads(state_path.read_text())
    assert after["uploads"] == before["uploads"]
    assert after["steps"][step]["operation"] == before["steps"][step]["operation"]
    assert {o.name for o in client.list_operations()} == operations
    assert {m.name for m in client.list_media()} == media


def test_a_rerun_with_another_configuration_in_the_same_folder_is_refused(stack, finished_run, tmp_path):
    config, out = finished_run
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**CONFIG, "enhancements": ["none"]}))
    result = CliRunner().invoke(cli, ["redteam", "run", "--config", str(other), "--out", str(out), "--server",
                                      stack.gateway_target], env={"DFP_TOKEN": stack.token})
    assert result.exit_code != 0 and "another configuration" in str(result.exception)


def test_hard_examples_keep_the_held_out_method_and_its_real_clips_out_of_training(finished_run, shared, tmp_path):
    _, out = finished_run
    dataset = tmp_path / "hard"
    summary = json.loads(redteam("hard-examples", "--run", str(out), "--detector", "detector@v1", "--holdout",
                                 "face_swap", "--base-data", str(shared / "dfdc-faces"), "--out", str(dataset),
                                 "--base-train", "10", "--threshold", "0.99", "--json"))
    with open(dataset / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    test_groups = {r["source_video"] for r in rows if r["split"] == "test"}
    train_groups = {r["source_video"] for r in rows if r["split"] == "train"}
    # The swap's fakes (when their faces were found) and the clip they were made from.
    assert "redteam/real/d18" in test_groups and test_groups <= {"redteam/face_swap/d18", "redteam/real/d18"}
    assert not test_groups & train_groups
    assert "redteam/real/d20" in train_groups
    missed = [r for r in rows if r["split"] == "train" and r["source_video"].startswith("redteam/animation")]
    assert len(missed) == summary["missed_fakes"] * 4
    assert summary["counts"]["train"]["real"] >= 5 and summary["counts"]["val"]["real"] > 0
    from services.detector.training.dataset import read_labels

    assert len(read_labels(dataset)) == len(rows)  # a dataset `dfp detector train` accepts as it is


def test_the_audit_log_records_every_item_the_run_created(stack, finished_run):
    import time

    _, out = finished_run
    state = json.loads((out / "state.json").read_text())
    created = {step["result"]["media"] for key, step in state["steps"].items()
               if key.startswith(("create/", "enhance/"))}

    def stored(name):
        result = CliRunner().invoke(cli, ["admin", "audit", "--team", "default", "--action", "StoreGenerated",
                                          "--resource", name, "--json"], env=stack.s3.env())
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    deadline = time.monotonic() + 30
    while not all(stored(name) for name in created):
        assert time.monotonic() < deadline, "generated items missing from the audit log"
        time.sleep(0.5)
    event = stored(sorted(created)[0])[0]
    assert event["outcome"] == "OK" and any(r.startswith("generator:") for r in event["resources"])
