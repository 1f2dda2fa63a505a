"""Each service's image installs what its code imports: the service's extra in pyproject.toml, with
everything those packages require, and the few packages its Dockerfile adds without dependencies."""

import importlib.metadata
import json
import pathlib
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parent.parent
# What each image runs; what its Dockerfile installs beside the extra, with their dependencies
# (grpcio-tools compiles the stubs); and what it installs without their declared dependencies.
SERVICES = {
    "gateway": (["gateway.server"], ["grpcio-tools"], {"facenet-pytorch"}),
    "creator": (["services.creator.serving.__main__"], ["grpcio-tools"], {"facenet-pytorch"}),
    "enhancer": (["services.enhancer.server.__main__", "services.enhancer.training.face_restore_train"],
                 ["grpcio-tools", "setuptools"], {"facenet-pytorch", "basicsr"}),
    "tools": (["dfp.faces", "dfp.cli.main", "services.detector.export", "services.detector.model_server.__main__",
               "services.detector.training.train", "dfp.registry", "dfp.batch", "kubernetes", "dfp.redteam.runner",
               "dfp.redteam.report", "dfp.redteam.hard_examples", "matplotlib.pyplot"],
              ["grpcio-tools"], {"facenet-pytorch"}),
}
# Imported only when present (inside try/except ImportError), so an image may lack them.
OPTIONAL = {
    "opt-einsum": "torch.backends.opt_einsum", "optree": "torch.utils._cxx_pytree",
    "matplotlib": "keras's image gallery", "contourpy": "matplotlib", "cycler": "matplotlib",
    "fonttools": "matplotlib", "kiwisolver": "matplotlib", "pyparsing": "matplotlib", "python-dateutil": "matplotlib",
    "psutil": "keras.src.saving.saving_lib",
    "kubernetes-validate": "kubernetes.dynamic.client", "jsonschema": "kubernetes-validate",
    "jsonschema-specifications": "kubernetes-validate", "referencing": "kubernetes-validate",
    "rpds-py": "kubernetes-validate", "importlib-resources": "kubernetes-validate",
}


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution these requirements install, transitively."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found: set[str] = set()
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, from_extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": from_extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in found:
            continue
        found.add(key)
        found.add(name)
        if name == "dfp":
            for extra in extras:
                pending += [(Requirement(r), "") for r in project["optional-dependencies"][extra]]
            continue
        for text in importlib.metadata.requires(requirement.name) or []:
            for extra in ["", *extras]:
                pending.append((Requirement(text), extra))
    return {item for item in found if "[" not in item}


def _imported_distributions(modules: list[str]) -> set[str]:
    """The distributions whose modules a fresh interpreter loads when it imports `modules`; those
    vendored inside another package (setuptools/_vendor) come with that package and are left out."""
    code = (
        "import importlib, importlib.metadata as md, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "owners = md.packages_distributions()\n"
        "found = {dist for module in list(sys.modules) for dist in owners.get(module.split('.')[0], [])}\n"
        "print(json.dumps(sorted(d for d in found if '_vendor' not in str(md.distribution(d).locate_file('')))))"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {canonicalize_name(dist) for dist in json.loads(output.strip().splitlines()[-1])}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_image_installs_what_its_code_imports(service):
    modules, installed_beside, installed_apart = SERVICES[service]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    available = (_closure([*project["dependencies"], f"dfp[{service}]", *installed_beside])
                 | {canonicalize_name(n) for n in installed_apart})
    missing = _imported_distributions(modules) - available - set(OPTIONAL) - {"dfp"}
    assert not missing, f"the {service} image would lack {sorted(missing)}"
    dockerfile = (REPO / "docker" / f"{service}.Dockerfile").read_text()
    pip_line = next(line for line in dockerfile.splitlines() if "pip install -c constraints.txt" in line)
    assert f"'.[{service}]'" in pip_line and all(name in pip_line for name in installed_beside), pip_line
    for name in installed_apart:
        assert name in dockerfile, f"docker/{service}.Dockerfile does not install {name}"


def test_the_creator_and_enhancer_images_carry_no_tensorflow():
    for service in ("creator", "enhancer"):
        assert "tensorflow" not in _closure([f"dfp[{service}]"])
