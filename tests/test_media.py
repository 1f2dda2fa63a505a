import io

import numpy as np
import pytest
from PIL import Image

from dfp import media
from tests.helpers import jpeg_bytes, mp4_file, png_claiming_size


def test_sniff_tells_images_videos_and_other_bytes_apart(tmp_path):
    mp4_file(tmp_path / "a.mp4")
    assert media.sniff(jpeg_bytes()[:64]) == media.IMAGE
    assert media.sniff((tmp_path / "a.mp4").read_bytes()[:64]) == media.VIDEO
    assert media.sniff(b"%PDF-1.7 hello") is None
    assert media.sniff(b"") is None


def test_image_is_decoded_to_rgb_and_described():
    data = jpeg_bytes(64, 48)
    info = media.probe_image(data, max_pixels=10_000)
    assert (info.media_type, info.content_type, info.width, info.height) == ("image", "image/jpeg", 64, 48)
    rgb = media.decode_image(data, max_pixels=10_000)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


def test_an_animated_gif_is_read_as_its_first_frame():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((200, 20, 20), (20, 200, 20))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    data = buffer.getvalue()
    assert media.sniff(data[:64]) == media.IMAGE
    info = media.probe_image(data, max_pixels=10_000)
    assert (info.content_type, info.width, info.height) == ("image/gif", 40, 30)
    rgb = media.decode_image(data, max_pixels=10_000)
    assert rgb.shape == (30, 40, 3) and rgb[15, 20, 0] > 150 and rgb[15, 20, 1] < 60


def test_a_photo_is_turned_upright_by_its_exif_orientation_and_a_greyscale_png_comes_out_rgb():
    wide = Image.new("RGB", (60, 20), (10, 10, 10))
    wide.paste((250, 250, 250), (0, 0, 10, 20))  # a white band at the left edge
    exif = Image.Exif()
    exif[media.EXIF_ORIENTATION] = 6  # the camera was turned: show it rotated 90 degrees clockwise
    buffer = io.BytesIO()
    wide.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    rgb = media.decode_image(buffer.getvalue(), max_pixels=10_000)
    assert rgb.shape == (60, 20, 3)
    assert rgb[:5].mean() > 200 and rgb[-5:].mean() < 60  # the left band is now at the top

    grey = io.BytesIO()
    Image.new("L", (16, 8), 128).save(grey, format="PNG")
    rgb = media.decode_image(grey.getvalue(), max_pixels=10_000)
    assert rgb.shape == (8, 16, 3) and rgb.dtype == np.uint8 and (rgb == 128).all()


def test_truncated_jpeg_is_refused():
    data = jpeg_bytes(256, 256)
    with pytest.raises(media.InvalidMedia, match="truncated"):
        media.decode_image(data[: len(data) // 2], max_pixels=10**6)


def test_decompression_bomb_is_refused_from_its_header_before_decoding():
    with pytest.raises(media.MediaTooLarge, match="over the limit"):
        media.decode_image(png_claiming_size(100_000, 100_000), max_pixels=50_000_000)


def test_video_is_probed_and_sampled_in_order(tmp_path):
    path = tmp_path / "clip.mp4"
    mp4_file(path, frames=20, fps=10)
    info = media.probe_video(path, max_seconds=60, max_pixels=10**6)
    assert (info.media_type, info.content_type, info.width, info.frame_count) == ("video", "video/mp4", 64, 20)
    assert info.duration_s == pytest.approx(2.0, abs=0.15)
    by_rate = list(media.sample_frames(path, frames_per_second=5))
    assert [f.index for f in by_rate] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    by_count = list(media.sample_frames(path, frame_count=4))
    assert len(by_count) == 4 and by_count[0].rgb.shape == (64, 64, 3)


def test_video_over_the_duration_limit_is_refused(tmp_path):
    path = tmp_path / "clip.mp4"
    mp4_file(path, frames=30, fps=10)
    with pytest.raises(media.MediaTooLarge, match="lasts"):
        media.probe_video(path, max_seconds=1, max_pixels=10**6)


def test_truncated_video_is_refused(tmp_path):
    path = tmp_path / "clip.mp4"
    mp4_file(path, frames=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:400])
    with pytest.raises(media.InvalidMedia):
        media.probe_video(cut, max_seconds=60, max_pixels=10**6)
