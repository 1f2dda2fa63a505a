"""FOMM networks: shapes, the published key names, and the geometric properties each module must have."""

import copy
import pathlib

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from services.creator import checkpoints
from services.creator.archs.fomm_blocks import AntiAliasInterpolation2d, kp2gaussian, make_coordinate_grid, warp
from services.creator.archs.fomm_keypoint_detector_arch import KPDetector
from services.creator.pipelines.fomm_animation import (
    FommAnimator,
    convex_hull_area,
    movement_scale,
    normalize_kp,
)

HERE = pathlib.Path(__file__).parent
VOX = pathlib.Path(checkpoints.__file__).parent / "configs" / "vox-256.yaml"


def tiny_config(**dense_overrides):
    config = checkpoints.load_config(HERE / "tiny_fomm.yaml")
    config["model_params"]["generator_params"]["dense_motion_params"].update(dense_overrides)
    return config


def randomised(model: checkpoints.FommModel, seed=0) -> checkpoints.FommModel:
    """Random weights and BatchNorm statistics, so no module is an accidental identity."""
    generator = torch.Generator().manual_seed(seed)
    for network in (model.generator, model.kp_detector):
        for name, tensor in network.state_dict().items():
            if name.endswith("num_batches_tracked") or name.endswith(".down.weight") or name == "down.weight":
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return model.eval()


def test_coordinate_grid_runs_from_minus_one_to_one_in_x_then_y():
    grid = make_coordinate_grid((3, 5))
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0]
    assert grid[-1, -1].tolist() == [1.0, 1.0]
    assert grid[0, -1].tolist() == [1.0, -1.0]


def test_keypoint_gaussian_peaks_at_the_keypoint():
    heat = kp2gaussian(torch.tensor([[[1.0, -1.0]]]), (9, 9), 0.01)
    assert heat.shape == (1, 1, 9, 9)
    assert heat[0, 0, 0, -1] == 1.0
    assert heat[0, 0].argmax() == 8


def test_heatmap_mean_of_a_one_hot_map_is_that_pixel():
    heatmap = torch.zeros(1, 1, 5, 7)
    heatmap[0, 0, 4, 3] = 1.0
    value = KPDetector.gaussian2kp(heatmap)["value"]
    assert torch.allclose(value, torch.tensor([[[0.0, 1.0]]]))


def test_anti_alias_downsampling_keeps_a_flat_image_flat_and_scales_its_size():
    down = AntiAliasInterpolation2d(3, 0.25)
    kernel = down.weight
    assert kernel.shape == (3, 1, 13, 13)
    assert torch.allclose(kernel.sum(dim=(1, 2, 3)), torch.ones(3))
    out = down(torch.full((1, 3, 64, 64), 0.5))
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out[..., 2:-2, 2:-2], torch.full_like(out[..., 2:-2, 2:-2], 0.5))


def test_warp_places_grid_corners_on_pixel_centres_as_torch_1_0_did():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(warp(image, make_coordinate_grid((4, 4))[None]), image)
    one_pixel = make_coordinate_grid((4, 4))[None].clone()
    one_pixel[..., 0] += 2 / 3
    shifted = warp(image, one_pixel)
    assert torch.equal(shifted[..., :3], image[..., 1:])


def test_tiny_networks_return_the_published_outputs_with_their_shapes():
    model = randomised(checkpoints.build_networks(tiny_config()))
    source = torch.rand(2, 3, 32, 32)
    kp = model.kp_detector(source)
    assert kp["value"].shape == (2, 4, 2) and kp["jacobian"].shape == (2, 4, 2, 2)
    assert kp["value"].abs().max() <= 1.0
    out = model.generator(source, kp_driving=kp, kp_source=kp)
    assert set(out) == {"mask", "sparse_deformed", "deformation", "occlusion_map", "deformed", "prediction"}
    assert out["prediction"].shape == (2, 3, 32, 32)
    assert out["deformed"].shape == (2, 3, 32, 32)
    assert out["occlusion_map"].shape == (2, 1, 16, 16)
    assert out["mask"].shape == (2, 5, 16, 16)
    assert out["sparse_deformed"].shape == (2, 5, 3, 16, 16)
    assert torch.allclose(out["mask"].sum(1), torch.ones(2, 16, 16), atol=1e-6)


def test_a_new_jacobian_head_predicts_the_identity():
    model = checkpoints.build_networks(tiny_config()).eval()
    jacobian = model.kp_detector(torch.rand(1, 3, 32, 32))["jacobian"]
    assert torch.allclose(jacobian, torch.eye(2).expand(1, 4, 2, 2), atol=1e-6)


def test_identical_keypoints_warp_the_source_onto_itself():
    # Same keypoints and jacobians: every sparse motion is the identity, whatever the mask, so the
    # deformed source equals the source exactly - only with grid corners on pixel centres.
    # A fixed source: the motion passes through each keypoint's inverted jacobian, whose float32
    # round-off grows with its condition number, so an unseeded draw now and then missed 1e-5.
    model = randomised(checkpoints.build_networks(tiny_config(scale_factor=1)))
    source = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kp = model.kp_detector(source)
    out = model.generator(source, kp_driving=kp, kp_source=kp)
    assert torch.allclose(out["deformed"], source, atol=1e-5)
    assert torch.allclose(out["sparse_deformed"][:, 0], source, atol=1e-6)


def test_sparse_motion_maps_the_driving_keypoint_onto_the_source_keypoint():
    model = checkpoints.build_networks(tiny_config(scale_factor=1))
    dense = model.generator.dense_motion_network
    kp_source = {"value": torch.tensor([[[0.5, -0.5]] * 4]), "jacobian": torch.eye(2).repeat(1, 4, 1, 1) * 2}
    kp_driving = {"value": torch.tensor([[[-0.5, 0.5]] * 4]), "jacobian": torch.eye(2).repeat(1, 4, 1, 1)}
    motions = dense.create_sparse_motions(torch.zeros(1, 3, 5, 5), kp_driving, kp_source)
    assert motions.shape == (1, 5, 5, 5, 2)
    # grid pixel (row 3, col 1) is (-0.5, 0.5): the driving keypoint; it comes from the source keypoint.
    assert torch.allclose(motions[0, 1, 3, 1], torch.tensor([0.5, -0.5]))
    # one pixel right of it moves by the jacobian (x2) in the source.
    assert torch.allclose(motions[0, 1, 3, 2], torch.tensor([0.5 + 2 * 0.5, -0.5]))


def test_vox_256_config_has_the_published_checkpoint_keys_and_sizes():
    model = checkpoints.build_networks(checkpoints.load_config(VOX))
    generator = model.generator.state_dict()
    kp = model.kp_detector.state_dict()
    for key in ("first.conv.weight", "down_blocks.1.norm.running_var", "bottleneck.r5.conv2.weight",
                "up_blocks.1.conv.weight", "final.weight", "dense_motion_network.down.weight",
                "dense_motion_network.mask.weight", "dense_motion_network.occlusion.weight",
                "dense_motion_network.hourglass.encoder.down_blocks.4.conv.weight",
                "dense_motion_network.hourglass.decoder.up_blocks.0.conv.weight"):
        assert key in generator, key
    for key in ("predictor.encoder.down_blocks.0.conv.weight", "kp.weight", "jacobian.bias", "down.weight"):
        assert key in kp, key
    assert generator["dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight"].shape == (128, 44, 3, 3)
    assert generator["dense_motion_network.mask.weight"].shape == (11, 108, 7, 7)
    assert kp["kp.weight"].shape == (10, 35, 7, 7)
    assert kp["jacobian.weight"].shape == (40, 35, 7, 7)
    assert sum(p.numel() for p in model.generator.parameters()) == 45_575_391
    assert sum(p.numel() for p in model.kp_detector.parameters()) == 14_215_368


def test_checkpoint_in_the_published_layout_loads_strictly_and_round_trips(tmp_path):
    config_path = HERE / "tiny_fomm.yaml"
    model = randomised(checkpoints.build_networks(tiny_config()))
    torch.save({"generator": model.generator.state_dict(), "kp_detector": model.kp_detector.state_dict(),
                "epoch": 3, "optimizer_generator": {"state": {}, "param_groups": []}}, tmp_path / "cpk.pth.tar")
    loaded = checkpoints.load_model(config_path, tmp_path / "cpk.pth.tar")
    source = torch.rand(1, 3, 32, 32)
    a = model.generator(source, kp_driving=model.kp_detector(source), kp_source=model.kp_detector(source))
    b = loaded.generator(source, kp_driving=loaded.kp_detector(source), kp_source=loaded.kp_detector(source))
    assert torch.equal(a["prediction"], b["prediction"])


@pytest.mark.parametrize("damage,message", [
    (lambda sd: sd.update({"extra.weight": torch.zeros(1)}), "1 unexpected"),
    (lambda sd: sd.pop("final.weight"), "1 missing"),
    (lambda sd: sd.update({"final.bias": torch.zeros(7)}), "1 of another shape"),
])
def test_checkpoint_that_does_not_fit_is_refused_with_the_differences(tmp_path, damage, message):
    model = checkpoints.build_networks(tiny_config())
    generator = copy.deepcopy(model.generator.state_dict())
    damage(generator)
    torch.save({"generator": generator, "kp_detector": model.kp_detector.state_dict()}, tmp_path / "bad.pth.tar")
    with pytest.raises(checkpoints.CheckpointMismatch, match=message):
        checkpoints.load_model(HERE / "tiny_fomm.yaml", tmp_path / "bad.pth.tar")


def test_data_parallel_prefixes_and_a_missing_batchnorm_counter_are_accepted(tmp_path):
    model = checkpoints.build_networks(tiny_config())
    generator = {f"module.{k}": v for k, v in model.generator.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"generator": generator, "kp_detector": model.kp_detector.state_dict()}, tmp_path / "dp.pth.tar")
    checkpoints.load_model(HERE / "tiny_fomm.yaml", tmp_path / "dp.pth.tar")


def test_a_config_typo_is_a_type_error():
    config = tiny_config()
    config["model_params"]["kp_detector_params"]["temprature"] = 0.1
    with pytest.raises(TypeError, match="temprature"):
        checkpoints.build_networks(config)


def test_convex_hull_area_matches_scipy():
    points = np.random.default_rng(0).uniform(-1, 1, (10, 2))
    assert convex_hull_area(points) == pytest.approx(ConvexHull(points).volume)
    assert convex_hull_area(np.array([[0, 0], [1, 1], [2, 2]])) == 0.0


def test_relative_mode_moves_the_source_keypoints_by_the_scaled_driving_movement():
    source = {"value": torch.tensor([[[0.0, 0.0], [0.2, 0.0], [0.0, 0.2]]]), "jacobian": torch.eye(2).repeat(1, 3, 1, 1)}
    initial = {"value": source["value"] * 2, "jacobian": torch.eye(2).repeat(1, 3, 1, 1)}
    driving = {"value": initial["value"] + 0.1, "jacobian": torch.eye(2).repeat(1, 3, 1, 1) * 3}
    scale = movement_scale(source["value"], initial["value"])
    assert scale == pytest.approx(0.5)
    relative = normalize_kp(source, driving, initial, adapt_movement_scale=True, use_relative_movement=True,
                            use_relative_jacobian=True)
    assert torch.allclose(relative["value"], source["value"] + 0.05)
    assert torch.allclose(relative["jacobian"], torch.eye(2).repeat(1, 3, 1, 1) * 3)
    absolute = normalize_kp(source, driving, initial)
    assert absolute["value"] is driving["value"]


def test_batches_give_the_same_frames_as_one_by_one():
    model = randomised(checkpoints.build_networks(tiny_config()))
    animator = FommAnimator(model)
    rng = np.random.default_rng(1)
    source, driving = rng.random((32, 32, 3), np.float32), rng.random((5, 32, 32, 3), np.float32)
    for mode in ("relative", "absolute"):
        state = animator.prepare(source, driving[0], mode)
        together = animator.animate_batch(state, driving).prediction
        alone = np.concatenate([animator.animate_batch(state, driving[i : i + 1]).prediction for i in range(5)])
        np.testing.assert_allclose(together, alone, atol=1e-5)
