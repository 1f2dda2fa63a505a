"""Super-resolution networks load the published weights, strictly, in every published layout."""

import re

import numpy as np
import pytest
import torch

from services.enhancer import ncnn_import, weights
from services.enhancer.basicsr_archs import RRDBNet, SRVGGNetCompact


def test_rrdbnet_has_the_published_x4plus_size_and_names():
    model = RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    assert type(model).__module__ == "basicsr.archs.rrdbnet_arch"
    assert sum(p.numel() for p in model.parameters()) == 16_697_987
    names = set(model.state_dict())
    assert {"conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight", "conv_up2.weight",
            "conv_hr.weight", "conv_last.bias"} <= names


def test_the_shared_srvgg_release_loads_strictly_and_upscales_x4(shared):
    model = weights.load(str(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth"))
    assert isinstance(model, SRVGGNetCompact)
    assert (weights.model_scale(model), len(model.body)) == (4, 35)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 10)).shape == (1, 3, 32, 40)


def test_x4plus_built_from_the_ncnn_export_matches_ncnn_on_the_same_input(enhancer_model_dir, tmp_path):
    ncnn = pytest.importorskip("ncnn")
    from click.testing import CliRunner

    from dfp.cli.main import cli

    image = np.random.default_rng(0).random((20, 28, 3), dtype=np.float32)
    np.save(tmp_path / "in.npy", image)
    result = CliRunner().invoke(cli, ["enhancer", "run", "--model", "esrgan-x4", "--tile", "0", "--device", "cpu",
                                      str(tmp_path / "in.npy"), str(tmp_path / "out.npy")])
    assert result.exit_code == 0, result.output
    ours = np.load(tmp_path / "out.npy")

    export = weights.ncnn_export_dir()
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.load_param(str(export / "realesrgan-x4plus.param"))
    net.load_model(str(export / "realesrgan-x4plus.bin"))
    extractor = net.create_extractor()
    # ncnn.Mat wraps the array's memory without a copy: the planar array must outlive the extraction.
    planar = np.ascontiguousarray(image.transpose(2, 0, 1))
    extractor.input("data", ncnn.Mat(planar))
    _, output = extractor.extract("output")
    reference = np.clip(np.array(output).transpose(1, 2, 0), 0, 1)

    assert ours.shape == reference.shape == (80, 112, 3)
    assert np.abs(ours - reference).max() < 1e-3


def test_srvgg_built_from_the_ncnn_export_equals_the_published_pth_to_fp16_precision(enhancer_models, shared):
    built = weights.read_state_dict(enhancer_models / "realesr-animevideov3-x4.pth")
    published = weights.read_state_dict(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth")
    assert built.keys() == published.keys()
    for name, tensor in published.items():
        assert torch.allclose(built[name].float(), tensor, rtol=1e-3, atol=1e-4), name


def test_params_and_original_esrgan_names_load_into_the_same_network(tmp_path):
    torch.manual_seed(0)
    model = RRDBNet(3, 3, num_block=2, num_feat=16, num_grow_ch=8).eval()
    state = model.state_dict()
    old_names = {}
    for name, tensor in state.items():
        name = re.sub(r"^body\.", "RRDB_trunk.", name).replace(".rdb", ".RDB")
        name = name.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.").replace("conv_up", "upconv")
        old_names[name] = tensor
    torch.save({"params": state}, tmp_path / "basicsr.pth")
    torch.save(old_names, tmp_path / "esrgan.pth")
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        expected = model(x)
        for path in ("basicsr.pth", "esrgan.pth"):
            loaded = weights.load(str(tmp_path / path))
            assert (loaded.scale, len(loaded.body)) == (4, 2)
            assert torch.equal(loaded(x), expected)


def test_params_ema_is_preferred_over_params(tmp_path):
    ema, plain = SRVGGNetCompact(num_feat=8, num_conv=2), SRVGGNetCompact(num_feat=8, num_conv=2)
    torch.save({"params": plain.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "both.pth")
    loaded = weights.load(str(tmp_path / "both.pth"))
    assert torch.equal(loaded.body[0].weight, ema.body[0].weight)


def test_corrupt_or_foreign_weight_files_are_refused_with_the_reason(tmp_path):
    (tmp_path / "truncated.pth").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(weights.WeightsError, match="not a readable PyTorch weights file"):
        weights.load(str(tmp_path / "truncated.pth"))
    torch.save({"params": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "foreign.pth")
    with pytest.raises(weights.WeightsError, match="neither an RRDBNet"):
        weights.load(str(tmp_path / "foreign.pth"))


def test_an_ncnn_export_of_another_network_is_refused_whole():
    export = weights.ncnn_export_dir()
    with pytest.raises(ncnn_import.NcnnFormatError, match="weighted layers"):
        ncnn_import.load_into(RRDBNet(3, 3), export / "realesr-animevideov3-x4.param", export / "realesr-animevideov3-x4.bin")


def test_a_truncated_ncnn_bin_is_refused(tmp_path):
    export = weights.ncnn_export_dir()
    data = (export / "realesr-animevideov3-x4.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ncnn_import.NcnnFormatError, match="truncated"):
        ncnn_import.load_into(SRVGGNetCompact(), export / "realesr-animevideov3-x4.param", tmp_path / "short.bin")
