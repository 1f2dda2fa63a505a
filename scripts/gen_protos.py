"""Generates the Python stubs for protos/ into the dfp package (`make protos`).

The generated modules (`dfp/v1/*_pb2*.py`, `dfp/enhancer/v1/*_pb2*.py`) are build output: they are
ignored by git and never edited by hand. TorchServe's own inference and management protos are taken
unmodified from the jar in the installed torchserve package and compiled into `dfp/torchserve/`.
"""

import importlib.util
import pathlib
import shutil
import sys
import zipfile

from google.longrunning import operations_proto_pb2
import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
BUILD = ROOT / ".build" / "proto-include"


def _include_dirs() -> list[pathlib.Path]:
    # googleapis-common-protos ships google/longrunning/operations.proto under another file name
    # (operations_proto.proto) while its generated module registers the canonical name; expose it
    # under the canonical name so our imports resolve to the same descriptor.
    longrunning = pathlib.Path(operations_proto_pb2.__file__).parent
    target = BUILD / "google" / "longrunning" / "operations.proto"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(longrunning / "operations_proto.proto", target)
    googleapis_root = longrunning.parent.parent
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    return [PROTOS, BUILD, well_known, googleapis_root]


TORCHSERVE_PROTOS = ("inference.proto", "management.proto")


def _torchserve_sources() -> list[pathlib.Path]:
    """TorchServe's protos, extracted from its jar as they are; none when torchserve is absent."""
    spec = importlib.util.find_spec("ts")
    if spec is None or spec.origin is None:
        return []
    jar = pathlib.Path(spec.origin).parent / "frontend" / "model-server.jar"
    target = BUILD / "dfp" / "torchserve"
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        for name in TORCHSERVE_PROTOS:
            (target / name).write_bytes(archive.read(f"proto/{name}"))
    return [target / name for name in TORCHSERVE_PROTOS]


def main() -> int:
    sources = sorted(PROTOS.rglob("*.proto"))
    torchserve = _torchserve_sources()
    args = ["grpc_tools.protoc"]
    args += [f"-I{d}" for d in _include_dirs()]
    args += [f"--python_out={ROOT}", f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}"]
    args += [str(s) for s in sources + torchserve]
    if protoc.main(args) != 0:
        return 1
    for source in sources + torchserve:
        root = PROTOS if source.is_relative_to(PROTOS) else BUILD
        package_dir = ROOT / source.parent.relative_to(root)
        while package_dir != ROOT / "dfp":
            (package_dir / "__init__.py").touch()
            package_dir = package_dir.parent
    print(f"generated stubs for {len(sources)} proto files and {len(torchserve)} TorchServe protos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
