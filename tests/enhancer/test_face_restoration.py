"""Face restoration: the platform's trained network, BasicSR's DFDNet from published-format files, and
the face pipeline that pastes restored faces into the upscaled image."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dfp.cli.main import cli
from dfp.faces import FaceDetector
from services.enhancer import face_restorers, metrics, tiling
from services.enhancer.pipelines.restore_faces import FaceEnhancer
from services.enhancer.training.degradation import degrade
from services.enhancer.training.face_restore_train import read_faces, restore
from services.enhancer.upscaler import load_upscaler


def test_degradation_is_reproducible_and_keeps_the_size(shared):
    face = read_faces(shared / "dfdc-faces", "val", 1)[0][0]
    first = degrade(face, np.random.default_rng(7))
    again = degrade(face, np.random.default_rng(7))
    other = degrade(face, np.random.default_rng(8))
    assert first.shape == face.shape and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert metrics.psnr(first, face) < 45


def test_the_committed_network_restores_degraded_held_out_faces_better_than_their_input(shared):
    faces = read_faces(shared / "dfdc-faces", "val", 8)[0]
    rng = np.random.default_rng(123)
    degraded = np.stack([degrade(face, rng) for face in faces])
    restored = restore(face_restorers.load_unet().model, degraded)
    before = np.mean([metrics.psnr(d, f) for d, f in zip(degraded, faces)])
    after = np.mean([metrics.psnr(r, f) for r, f in zip(restored, faces)])
    assert after > before


def test_training_writes_the_best_weights_and_resumes(shared, tmp_path):
    arguments = ["enhancer", "train-face", "--data", str(shared / "dfdc-faces"), "--out", str(tmp_path / "run"),
                 "--batch-size", "2", "--patch", "32", "--train-faces", "6", "--val-faces", "2", "--eval-every", "2",
                 "--device", "cpu", "--json"]
    result = CliRunner().invoke(cli, [*arguments, "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["step"] == 2
    result = CliRunner().invoke(cli, [*arguments, "--steps", "4"])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    assert face_restorers.load_unet(tmp_path / "run" / "face_restore.pth").size == 256


def test_faces_are_restored_and_pasted_back_into_the_upscaled_image(shared):
    portrait = np.asarray(Image.open(shared / "video" / "source" / "s0.jpg").convert("RGB").resize((96, 112)))
    upscaler = load_upscaler(str(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth"), "cpu")
    enhancer = FaceEnhancer(upscaler, face_restorers.load_unet(), FaceDetector())
    results, restored = enhancer.enhance_frames(portrait[None], 2, tiling.TileOptions(tile=0))
    assert results.shape == (1, 224, 192, 3) and restored == 1
    plain = (tiling.upscale(upscaler.model, portrait / np.float32(255), 4, 2, tiling.TileOptions(tile=0)) * 255 + 0.5)
    changed = np.abs(results[0].astype(int) - np.clip(plain, 0, 255).astype(int)).max(axis=2) > 2
    assert changed.any()
    # Only the face's region changes: the corners stay the plain upscale.
    assert not changed[:20, :20].any() and not changed[-20:, -20:].any()


def test_part_boxes_lie_inside_the_face_in_dfdnet_order():
    landmarks = np.array([[180, 220], [330, 220], [256, 300], [200, 380], [312, 380]], float)
    boxes = face_restorers.part_boxes(landmarks)
    assert len(boxes) == 4
    for box, centre in zip(boxes, [landmarks[0], landmarks[1], landmarks[2], landmarks[3:].mean(axis=0)]):
        assert 0 <= box[0] < centre[0] < box[2] <= 512 and 0 <= box[1] < centre[1] < box[3] <= 512


def _dictionary(path):
    channels = {"256": 128, "128": 256, "64": 512, "32": 512}
    generator = torch.Generator().manual_seed(0)
    torch.save({size: {part: torch.randn(2, c, 8, 8, generator=generator)
                       for part in ("left_eye", "right_eye", "nose", "mouth")} for size, c in channels.items()}, path)


def test_dfdnet_loads_a_checkpoint_and_dictionary_in_the_published_layout_without_downloads(tmp_path):
    from services.enhancer.basicsr_archs import vgg_arch

    _dictionary(tmp_path / "dictionary.pth")
    torch.manual_seed(0)
    made = face_restorers.build_dfdnet(tmp_path / "dictionary.pth")
    assert vgg_arch.VGG_PRETRAIN_PATH == "experiments/pretrained_models/vgg19-dcbb9e9d.pth"
    state = made.state_dict()
    assert "vgg_extractor.vgg_net.conv5_4.weight" in state and "upsample0.conv1.1.weight_orig" in state
    torch.save({"params": state}, tmp_path / "dfdnet.pth")

    restorer = face_restorers.load_dfdnet(tmp_path / "dfdnet.pth", tmp_path / "dictionary.pth")
    for name, tensor in restorer.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    face = np.random.default_rng(0).integers(0, 255, (1, 512, 512, 3), np.uint8)
    landmarks = np.array([[[180, 220], [330, 220], [256, 300], [200, 380], [312, 380]]], float)
    out = restorer.restore(face, landmarks)
    assert out.shape == (1, 512, 512, 3) and out.dtype == np.uint8

    without_vgg = {k: v for k, v in state.items() if not k.startswith("vgg_extractor.vgg_net")}
    torch.save({"params": without_vgg}, tmp_path / "no_vgg.pth")
    with pytest.raises(ValueError, match="not a DFDNet checkpoint"):
        face_restorers.load_dfdnet(tmp_path / "no_vgg.pth", tmp_path / "dictionary.pth")
