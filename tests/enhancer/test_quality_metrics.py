"""PSNR, SSIM and NIQE as BasicSR computes them, and the side-by-side evaluation command."""

import json

import numpy as np
from click.testing import CliRunner
from skimage.metrics import structural_similarity

from dfp.cli.main import cli
from services.enhancer import metrics


def test_identical_images_score_infinite_psnr_and_ssim_one():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    assert metrics.psnr(image, image) == float("inf")
    assert metrics.ssim(image, image) == 1.0


def _luma(rgb):
    return 16 + rgb.astype(np.float64) / 255 @ np.array([65.481, 128.553, 24.966])


def test_psnr_on_y_uses_bt601_luma_of_rgb_and_the_crop_border():
    reference = np.zeros((20, 20, 3), np.uint8)
    image = reference.copy()
    image[:2] = 255  # only in the border that is cropped
    assert metrics.psnr(image, reference, crop_border=2) == float("inf")
    image = np.zeros((20, 20, 3), np.uint8)
    image[..., 0] = 10  # red only: a channel-order mistake would weigh it as blue
    luma_difference = 10 / 255 * 65.481
    assert np.isclose(metrics.psnr(image, reference), 10 * np.log10(255 ** 2 / luma_difference ** 2), atol=1e-3)


def test_ssim_matches_the_gaussian_window_definition():
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 256, (48, 48, 3)).astype(np.uint8)
    image = np.clip(reference + rng.normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
    y_image, y_reference = _luma(image)[4:-4, 4:-4], _luma(reference)[4:-4, 4:-4]
    expected = structural_similarity(y_image, y_reference, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert np.isclose(metrics.ssim(image, reference, crop_border=4), expected, atol=1e-3)


def test_niqe_scores_a_blurred_photo_worse_than_the_photo(shared):
    from PIL import Image, ImageFilter

    photo = Image.open(shared / "video" / "source" / "s0.jpg").convert("RGB").resize((300, 352))
    blurred = photo.filter(ImageFilter.GaussianBlur(3))
    assert metrics.niqe(np.asarray(blurred), 4) > metrics.niqe(np.asarray(photo), 4)


def test_evaluate_reports_each_method_on_degraded_faces_with_a_contact_sheet(shared, tmp_path):
    result = CliRunner().invoke(cli, ["enhancer", "evaluate", "--data", str(shared / "dfdc-faces"), "--limit", "2",
                                      "--models", f"bicubic,face,{shared / 'weights' / 'realesrgan' / 'realesr-animevideov3.pth'}",
                                      "--device", "cpu", "--sheet", str(tmp_path / "sheet.png"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 2 and report["crop_border"] == 4
    assert set(report["methods"]) == {"bicubic", "face-restore-unet", "file:realesr-animevideov3.pth"}
    for scores in report["methods"].values():
        assert 15 < scores["psnr"] < 60 and 0 < scores["ssim"] <= 1 and scores["niqe"] > 0
    assert (tmp_path / "sheet.png").stat().st_size > 0
