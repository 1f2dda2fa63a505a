"""Tiled super-resolution equals the whole-image forward where the tile context covers the network."""

import numpy as np
import pytest

from services.enhancer import tiling, weights
from services.enhancer.basicsr_archs import RRDBNet


@pytest.fixture(scope="module")
def srvgg(shared):
    return weights.load(str(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth"))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    return rng.random((37, 53, 3), dtype=np.float32)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiles_with_enough_context_equal_the_whole_image_at_every_scale(srvgg, image, scale):
    whole = tiling.upscale(srvgg, image, 4, scale, tiling.TileOptions(tile=0))
    tiled = tiling.upscale(srvgg, image, 4, scale, tiling.TileOptions(tile=16, tile_pad=18, batch_size=3))
    assert whole.shape == (37 * scale, 53 * scale, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiles_cover_the_image_exactly_once():
    tiles = tiling.plan_tiles(37, 53, 16, 5)
    covered = np.zeros((37, 53), int)
    for tile in tiles:
        covered[tile.y0:tile.y1, tile.x0:tile.x1] += 1
        assert tile.pad_y0 >= 0 and tile.pad_x1 <= 53
    assert (covered == 1).all()


def test_the_result_can_be_written_into_a_memory_mapped_array(srvgg, image, tmp_path):
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(74, 106, 3))
    tiling.upscale(srvgg, image, 4, 2, tiling.TileOptions(tile=24, tile_pad=18), out=out)
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), tiling.upscale(srvgg, image, 4, 2, tiling.TileOptions(tile=0)),
                               atol=1e-5)


def test_frames_batched_together_equal_frames_one_by_one(srvgg):
    frames = np.random.default_rng(4).random((3, 12, 10, 3), dtype=np.float32)
    batched = tiling.upscale_frames(srvgg, frames, 4, 3, tiling.TileOptions(tile=0, batch_size=2))
    one_by_one = np.stack([tiling.upscale(srvgg, frame, 4, 3, tiling.TileOptions(tile=0)) for frame in frames])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_an_x2_rrdbnet_takes_odd_sized_tiles():
    model = RRDBNet(3, 3, scale=2, num_block=1, num_feat=8, num_grow_ch=4).eval()
    image = np.random.default_rng(5).random((9, 11, 3), dtype=np.float32)
    out = tiling.upscale(model, image, 2, 2, tiling.TileOptions(tile=5, tile_pad=2, input_multiple=weights.input_multiple(model)))
    assert out.shape == (18, 22, 3)
    assert np.isfinite(out).all()


def test_an_unsupported_scale_is_refused(srvgg, image):
    for scale in (1, 5):
        with pytest.raises(ValueError, match="use 2 to 4"):
            tiling.upscale(srvgg, image, 4, scale)

