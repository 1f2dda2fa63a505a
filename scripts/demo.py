"""`make demo`: the platform's main job on this machine, end to end.

Starts a real S3 server, the detector model server, TorchServe with the platform's animation model,
the enhancer and the gateway on 127.0.0.1. Through the `dfp` command line it detects deepfakes in an
image and a video with the platform's default detector (and the image with the original Meso4 too),
animates the portrait by the video (FOMM, labelled as synthetic; saved to .run/demo/animated.mp4),
scores that animation with the detector, reads its provenance marks back (watermark, tags, the
C2PA manifest the gateway signed), restores a small copy of the portrait with the `face`
enhancement (faces restored, the rest through Real-ESRGAN; .run/demo/restored.png) and scores it
too, and stops everything.
Inputs come from the shared data folder (DFP_SHARED_DIR) when present, otherwise from packages:
scikit-image's public-domain astronaut portrait, and a short clip made from it.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import config  # noqa: E402
from dfp.devstack import LocalStack  # noqa: E402
from services.creator import default_model  # noqa: E402
from services.detector.export import export_platform_models  # noqa: E402

OUTPUT = REPO / ".run" / "demo"


def demo_inputs(workdir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    shared = config.shared_dir() / "data" / "video"
    image, video = shared / "source" / "s0.jpg", shared / "driving" / "d0.mp4"
    if image.exists() and video.exists():
        return image, video
    import av
    from skimage import data

    portrait = data.astronaut()
    image = workdir / "astronaut.jpg"
    Image.fromarray(portrait).save(image, quality=92)
    video = workdir / "astronaut.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 384, 384, "yuv420p"
        for i in range(75):
            zoom = 1.0 + 0.3 * i / 75
            side = int(512 / zoom)
            crop = portrait[:side, (512 - side) // 2 : (512 - side) // 2 + side]
            frame = np.asarray(Image.fromarray(crop).resize((384, 384)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return image, video


def run(*args: str, env: dict[str, str]) -> None:
    print("$ dfp " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dfp.cli.main", *args], env=env, check=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dfp-demo-") as tmp:
        workdir = pathlib.Path(tmp)
        image, video = demo_inputs(workdir)
        models = workdir / "models"
        base_env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
        run("models", "pull", "mesonet", env=base_env)
        print("exporting the default detector and Meso4 for the model server (as `dfp dev up` does) ...", flush=True)
        export_platform_models(models)
        print("starting S3 (SeaweedFS), the detector model server, TorchServe, the enhancer and the gateway on "
              "127.0.0.1 ...", flush=True)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        animated = OUTPUT / "animated.mp4"
        with LocalStack(workdir / "stack", models,
                        animation_model=(default_model.CONFIG, default_model.CHECKPOINT)) as stack:
            env = stack.env()
            run("detect", str(image), env=env)
            run("detect", str(image), "--model", "meso4", env=env)
            run("detect", str(video), "--frames", "12", env=env)
            run("animate", "--source", str(image), "--driving", str(video), "--out", str(animated), env=env)
            run("detect", str(animated), "--frames", "12", env=env)
            run("provenance", "verify", str(animated), env=env)
            # Real-ESRGAN takes seconds per 10,000 pixels on a CPU: enhance a small copy.
            small, restored = workdir / "small.png", OUTPUT / "restored.png"
            portrait = Image.open(image).convert("RGB")
            portrait.resize((160, round(160 * portrait.height / portrait.width))).save(small)
            run("enhance", str(small), "--model", "face", "--scale", "2", "--out", str(restored), env=env)
            run("detect", str(restored), env=env)
            run("jobs", "list", env=env)
        print(f"the animated portrait is in {animated.relative_to(REPO)}, the restored one in {restored.relative_to(REPO)}")
        print("demo done; every process it started has stopped.")


if __name__ == "__main__":
    main()
