"""The face swap autoencoder: shapes, identities, layouts."""

import pytest
import torch

from services.creator.archs.autoencoder_arch import FaceSwapAutoencoder


@pytest.mark.parametrize("archi", ["df", "liae"])
@pytest.mark.parametrize("resolution", [64, 128])
def test_each_identity_decodes_an_image_and_a_mask_at_the_input_size(archi, resolution):
    model = FaceSwapAutoencoder(resolution, archi=archi, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    faces = torch.rand(2, 3, resolution, resolution)
    for identity in ("a", "b"):
        image, mask = model(faces, identity)
        assert image.shape == (2, 3, resolution, resolution) and mask.shape == (2, 1, resolution, resolution)
        assert 0 <= image.min() and image.max() <= 1 and 0 <= mask.min() and mask.max() <= 1


def test_the_two_identities_share_the_encoder_but_not_the_decoders():
    model = FaceSwapAutoencoder(64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    names = model.state_dict().keys()
    assert any(k.startswith("encoder.") for k in names)
    assert any(k.startswith("decoders.a.") for k in names) and any(k.startswith("decoders.b.") for k in names)
    faces = torch.rand(1, 3, 64, 64)
    assert not torch.equal(model(faces, "a")[0], model(faces, "b")[0])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        FaceSwapAutoencoder(100)
    with pytest.raises(ValueError, match="archi"):
        FaceSwapAutoencoder(64, archi="sae")
    with pytest.raises(ValueError, match="unknown identity"):
        FaceSwapAutoencoder(64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)(torch.rand(1, 3, 64, 64), "c")
