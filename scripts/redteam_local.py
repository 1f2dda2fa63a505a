"""A red-team run on this machine: the platform started locally (as `make demo` does), a trained face
swap pair published to its registry, then `dfp redteam run` against its gateway.

The model server gets the default detector (version 1, or the versions already in --detector-base),
Meso4 and MesoInception4 with the published weights; the creator serves the platform's animation model
and the swap pair from --swap-run (a finished `dfp swap train` folder) as the configuration's
face_swap.model.

    python scripts/redteam_local.py --config redteam/shared-clips.yaml --out .run/redteam \
        --swap-run .run/swap/run-d6-d9
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp.devstack import LocalStack  # noqa: E402
from dfp.redteam import config as redteam_config  # noqa: E402
from services.creator import default_model  # noqa: E402


def dfp(*args: str, env: dict[str, str]) -> None:
    print("$ dfp " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dfp.cli.main", *args], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--swap-run", type=pathlib.Path, help="A finished `dfp swap train` run folder.")
    parser.add_argument("--detector-base", type=pathlib.Path,
                        help="A model base path to serve (kept between runs); default: a fresh one.")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    run = redteam_config.load(args.config)
    if run.swap_targets and not args.swap_run:
        parser.error("the configuration has face_swap targets: give --swap-run")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="dfp-redteam-") as tmp:
        workdir = pathlib.Path(tmp)
        models = args.detector_base or workdir / "models"
        if not (models / "detector").exists():
            dfp("detector", "export", "--base-path", str(models), env=env)
        dfp("models", "pull", "mesonet", env=env)
        for arch in ("meso4", "mesoinception4"):
            if not (models / arch).exists():
                dfp("detector", "export", "--arch", arch, "--base-path", str(models), env=env)
        with LocalStack(workdir / "stack", models,
                        animation_model=(default_model.CONFIG, default_model.CHECKPOINT)) as stack:
            stack_env = stack.env()
            if run.swap_targets:
                dfp("swap", "register", "--run", str(args.swap_run), "--name", run.swap_model, "--publish",
                    env=stack_env)
            dfp("redteam", "run", "--config", str(args.config), "--out", str(args.out),
                "--parallel", str(args.parallel), "--timeout", "600", env=stack_env)


if __name__ == "__main__":
    main()
