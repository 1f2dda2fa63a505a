"""Face sets: aligned faces of one person with their origin and a consent attestation."""

import json

import numpy as np
import pytest

from dfp import media
from services.creator.pipelines import faceset

CONSENT = faceset.Consent("test suite", "LivePortrait example clip, published for research use")


def test_a_talking_head_clip_gives_aligned_faces_without_near_duplicates(shared, tmp_path):
    frames = ((f"frame:{i}", rgb) for i, rgb in enumerate(media.iter_video_frames(shared / "video" / "driving" / "d18.mp4")))
    manifest = faceset.extract(shared / "video" / "driving" / "d18.mp4", tmp_path / "set", CONSENT, size=64,
                               every=6, frames=frames)
    loaded, faces = faceset.load(tmp_path / "set", min_faces=5)
    assert faces.shape[1:] == (64, 64, 3) and len(faces) == len(manifest["faces"]) >= 5
    assert loaded["consent"]["attested_by"] == "test suite"
    assert all(np.asarray(entry["matrix"]).shape == (2, 3) for entry in loaded["faces"])
    thumbs = [faceset.thumbnail(face) for face in faces]
    assert all(np.abs(a - b).mean() >= faceset.DUPLICATE_THRESHOLD for a, b in zip(thumbs, thumbs[1:]))


def test_blurry_and_repeated_frames_are_dropped(shared, tmp_path):
    from PIL import Image, ImageFilter

    portrait = media.decode_image(shared / "video" / "source" / "s3.jpg", 50_000_000)
    blurred = np.asarray(Image.fromarray(portrait).filter(ImageFilter.GaussianBlur(6)))
    frames = [("sharp", portrait), ("again", portrait.copy()), ("blurred", blurred)]
    manifest = faceset.extract(tmp_path, tmp_path / "set", CONSENT, size=64, frames=frames)
    assert [entry["origin"] for entry in manifest["faces"]] == ["sharp"]
    assert manifest["dropped"] == {"blurry": 1, "duplicate": 1}


def test_no_face_and_no_consent_are_refused(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    with pytest.raises(faceset.FaceSetError, match="no face"):
        faceset.extract(tmp_path, tmp_path / "set", CONSENT, frames=[("noise", noise)])
    with pytest.raises(faceset.FaceSetError, match="consent"):
        faceset.extract(tmp_path, tmp_path / "set", faceset.Consent("", ""), frames=[("noise", noise)])
    (tmp_path / "unattested").mkdir()
    (tmp_path / "unattested" / "faceset.json").write_text(json.dumps({"faces": [], "consent": {}}))
    with pytest.raises(faceset.FaceSetError, match="no consent"):
        faceset.load(tmp_path / "unattested")


def test_face_sets_go_to_the_object_store_whole_and_come_back_unchanged(s3, swap_facesets, tmp_path):
    import shutil

    from click.testing import CliRunner

    from dfp.cli.main import cli

    def dfp(*args):
        return CliRunner().invoke(cli, ["swap", *args], env=s3.env())

    pushed = dfp("push", str(swap_facesets[0]), "--name", "actor-a")
    assert pushed.exit_code == 0, pushed.output
    again = dfp("push", str(swap_facesets[1]), "--name", "actor-a")
    assert again.exit_code == 1 and "already exists" in str(again.exception)
    pulled = dfp("pull", "actor-a", "--out", str(tmp_path / "a"))
    assert pulled.exit_code == 0, pulled.output
    original, original_faces = faceset.load(swap_facesets[0])
    copy, copy_faces = faceset.load(tmp_path / "a")
    assert copy == original
    assert np.array_equal(copy_faces, original_faces)

    unattested = tmp_path / "unattested"
    shutil.copytree(swap_facesets[1], unattested)
    manifest = json.loads((unattested / "faceset.json").read_text())
    manifest["consent"] = {}
    (unattested / "faceset.json").write_text(json.dumps(manifest))
    refused = dfp("push", str(unattested), "--name", "actor-x")
    assert refused.exit_code == 1 and "no consent attestation" in str(refused.exception)
    missing = dfp("pull", "actor-x", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 1 and "no face set named actor-x" in str(missing.exception)
    assert not (tmp_path / "x").exists()
