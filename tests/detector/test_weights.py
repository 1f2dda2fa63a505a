"""The published MesoNet weights load strictly and give the original networks' outputs.

The reference is an independent re-implementation of both networks in PyTorch, reading the arrays
straight from the .h5 files; the platform's Keras path is exercised through `dfp detector score`.
"""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from services.detector import archs
from services.detector.weights import WeightMismatch, load_h5_weights


class H5Reference:
    def __init__(self, path):
        self.f = h5py.File(path, "r")

    def w(self, layer, index):
        group = self.f[layer]
        name = group.attrs["weight_names"][index]
        return torch.from_numpy(np.asarray(group[name]))

    def conv(self, x, layer, dilation=1):
        kernel = self.w(layer, 0).permute(3, 2, 0, 1)
        return F.relu(F.conv2d(x, kernel, self.w(layer, 1), padding="same", dilation=dilation))

    def bn(self, x, layer):
        gamma, beta, mean, var = (self.w(layer, i)[None, :, None, None] for i in range(4))
        return (x - mean) / torch.sqrt(var + 1e-3) * gamma + beta

    def dense(self, x, layer):
        return x @ self.w(layer, 0) + self.w(layer, 1)

    def head(self, x, dense_a, dense_b, leaky):
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # Keras flattens channels-last
        x = self.dense(x, dense_a)
        if leaky:
            x = F.leaky_relu(x, 0.1)
        return torch.sigmoid(self.dense(x, dense_b)).reshape(-1)


def meso4_reference(path, x):
    ref = H5Reference(path)
    for n, pool in zip(range(5, 9), (2, 2, 2, 4)):
        x = F.max_pool2d(ref.bn(ref.conv(x, f"conv2d_{n}"), f"batch_normalization_{n}"), pool)
    return ref.head(x, "dense_3", "dense_4", leaky=False)


def mesoinception_reference(path, x):
    ref = H5Reference(path)

    def inception(x, first):
        n = first
        a = ref.conv(x, f"conv2d_{n}")
        b = ref.conv(ref.conv(x, f"conv2d_{n + 1}"), f"conv2d_{n + 2}")
        c = ref.conv(ref.conv(x, f"conv2d_{n + 3}"), f"conv2d_{n + 4}", dilation=2)
        d = ref.conv(ref.conv(x, f"conv2d_{n + 5}"), f"conv2d_{n + 6}", dilation=3)
        return torch.cat([a, b, c, d], dim=1)

    x = F.max_pool2d(ref.bn(inception(x, 1), "batch_normalization_1"), 2)
    x = F.max_pool2d(ref.bn(inception(x, 8), "batch_normalization_2"), 2)
    x = F.max_pool2d(ref.bn(ref.conv(x, "conv2d_15"), "batch_normalization_3"), 2)
    x = F.max_pool2d(ref.bn(ref.conv(x, "conv2d_16"), "batch_normalization_4"), 4)
    return ref.head(x, "dense_1", "dense_2", leaky=True)


@pytest.fixture(scope="module")
def face_crops_256(shared, tmp_path_factory):
    """Real and fake DFDC face crops resized to 256x256, saved losslessly."""
    out = tmp_path_factory.mktemp("crops")
    paths = []
    for label in ("real", "fake"):
        folder = shared / "dfdc-faces" / "val" / label
        for source in sorted(folder.iterdir())[:3]:
            target = out / f"{label}_{source.stem}.png"
            Image.open(source).convert("RGB").resize((256, 256), Image.BICUBIC).save(target)
            paths.append(target)
    return paths


@pytest.mark.parametrize(
    "filename,reference",
    [
        ("Meso4_DF.h5", meso4_reference),
        ("Meso4_F2F.h5", meso4_reference),
        ("MesoInception_DF.h5", mesoinception_reference),
        ("MesoInception_F2F.h5", mesoinception_reference),
    ],
)
def test_detector_score_gives_the_original_networks_probabilities(filename, reference, mesonet_dir, face_crops_256):
    weights = mesonet_dir / filename
    command = [sys.executable, "-m", "dfp.cli.main", "detector", "score", "--no-face-crop", "--json",
               "--weights", str(weights), *map(str, face_crops_256)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in face_crops_256]

    batch = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in face_crops_256])
    with torch.no_grad():
        real = reference(weights, torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
    expected_fake = 1.0 - real
    got = np.array([line["fake_probability"] for line in lines])
    np.testing.assert_allclose(got, expected_fake, atol=1e-4)
    assert np.ptp(got) > 1e-3, "scores should differ between faces"


def test_a_weight_file_for_another_architecture_is_refused(mesonet_dir):
    with pytest.raises(WeightMismatch, match="stored layers the model lacks"):
        load_h5_weights(archs.build("meso4"), mesonet_dir / "MesoInception_DF.h5")


def test_meso4_with_a_leaky_relu_the_weights_never_had_is_refused(mesonet_dir):
    with pytest.raises(WeightMismatch, match="leaky_re_lu"):
        load_h5_weights(archs.build("meso4", dense_leaky_relu=True), mesonet_dir / "Meso4_DF.h5")
