"""The invisible watermark: read back after JPEG, resizing and H.264; absent from real media; on
what the platform generates, and readable with `dfp provenance verify`."""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dfp import media, provenance, watermark
from dfp.cli.main import cli


@pytest.fixture(scope="module")
def portraits(shared):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((shared / "video" / "source").glob("*.jpg"))[:4]]


def jpeg(rgb, quality):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def half(rgb):
    return np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 2, rgb.shape[0] // 2), Image.BILINEAR))


@pytest.mark.parametrize("change", ["none", "jpeg50", "jpeg90", "half", "half+jpeg70"])
def test_the_payload_survives_jpeg_and_resizing(portraits, change):
    changes = {"none": lambda a: a, "jpeg50": lambda a: jpeg(a, 50), "jpeg90": lambda a: jpeg(a, 90),
               "half": half, "half+jpeg70": lambda a: jpeg(half(a), 70)}
    for index, rgb in enumerate(portraits):
        payload = watermark.payload_for(f"operations/test-{index}")
        marked = watermark.embed(rgb, payload)
        assert np.abs(marked.astype(int) - rgb).mean() < 4  # invisible: a few levels of chroma
        reading = watermark.read_image(changes[change](marked))
        assert reading.marked and reading.payload == payload


def test_real_faces_and_stills_are_not_reported_as_marked(shared, portraits):
    faces = sorted((shared / "dfdc-faces" / "val" / "real").glob("*.jpg"))[:60]
    readings = [watermark.read_image(np.asarray(Image.open(p).convert("RGB"))) for p in faces]
    readings += [watermark.read_image(rgb) for rgb in portraits]
    assert len(readings) > 20 and not any(r.marked for r in readings)


def test_a_video_keeps_its_mark_through_h264(tmp_path, portraits):
    payload = watermark.payload_for("faceswap:test")
    writer = media.VideoWriter(tmp_path / "marked.mp4", 25.0, metadata=provenance.synthetic_metadata("faceswap:test"),
                               crf=30)
    base = portraits[0][:512, :512]
    for shift in range(12):
        writer.write(provenance.mark_frame(np.roll(base, shift * 3, axis=1), payload))
    writer.close()
    report = provenance.verify(tmp_path / "marked.mp4")
    assert report["watermark"]["marked"] and report["watermark"]["payload"] == f"{payload:08x}"
    assert report["synthetic_tag"] and report["tags"]["dfp_generator"] == "faceswap:test"

    result = CliRunner().invoke(cli, ["provenance", "verify", str(tmp_path / "marked.mp4"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["watermark"]["marked"]
