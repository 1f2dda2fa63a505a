import numpy as np
import pytest

from services.detector import archs
from services.detector.weights import read_h5_weights


@pytest.mark.parametrize("arch", ["meso4", "mesoinception4", "resnet"])
def test_arch_maps_a_batch_of_images_to_one_probability_each(arch):
    model = archs.build(arch)
    out = model(np.zeros((2, 256, 256, 3), np.float32), training=False).numpy()
    assert out.shape == (2, 1)
    assert np.all((out >= 0) & (out <= 1))
    assert model.input.name == "image"


@pytest.mark.parametrize(
    "arch,filename", [("meso4", "Meso4_DF.h5"), ("mesoinception4", "MesoInception_DF.h5")]
)
def test_layer_names_are_the_ones_stored_in_the_published_weights(arch, filename, mesonet_dir):
    stored_layers, _ = read_h5_weights(mesonet_dir / filename)
    model = archs.build(arch)
    names = {layer.name for layer in model.layers} - {"image"}
    assert names == {n for n in stored_layers if not n.startswith("input_")}


def test_unknown_arch_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="meso4"):
        archs.build("vgg16")
