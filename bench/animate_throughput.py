"""Animation throughput and memory: FOMM frames per second batched vs frame by frame, and the peak
memory of animating a long driving video (streamed) against a short one.

1. Throughput: the published vox-256 configuration (random weights; speed does not depend on them)
   at 256x256, the same driving frames animated one per forward pass and in batches, on the same
   device in the same run; printed as frames/s and their ratio.
2. Full resolution: the platform's model on the same driving frames, the plain path (the face at the
   model's 64x64) against the full-resolution path (the source crop warped at --full-side pixels,
   the generator's pixels restored where occluded), in the same run; printed as frames/s and the
   full/plain ratio.
3. Memory: the media pipeline (decode, animate, encode) on a synthetic driving video of
   --memory-frames frames and of a tenth of that, each in a fresh process; printed as peak resident
   memory and the long/short ratio (1.0 = memory does not grow with the video's length). The same
   for full-resolution animation of the shared portrait s0 by the longest shared clip (d6), whole
   and its first tenth.

    make bench
    python bench/animate_throughput.py --device cuda --batch 32 --frames 256
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces  # noqa: E402,F401  (torch stack first: see dfp.faces)
import torch  # noqa: E402

from services.creator import checkpoints, default_model  # noqa: E402
from services.creator.pipelines.fomm_animation import FommAnimator  # noqa: E402
from services.creator.pipelines.full_resolution import FullResolutionAnimator  # noqa: E402


def frames_per_second(animator: FommAnimator, frames: np.ndarray, batch: int, source: np.ndarray) -> float:
    state = animator.prepare(source, frames[0], "relative")
    animator.animate_batch(state, frames[:batch])  # warm-up at this batch size
    if animator.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        animator.animate_batch(state, frames[start : start + batch])
    if animator.device.type == "cuda":
        torch.cuda.synchronize()
    return len(frames) / (time.perf_counter() - started)


def throughput(config_path: pathlib.Path, device: str, batch: int, count: int) -> dict:
    model = checkpoints.build_networks(checkpoints.load_config(config_path)).eval()
    animator = FommAnimator(model, device)
    size = animator.frame_size
    rng = np.random.default_rng(0)
    source = rng.random((size, size, 3), dtype=np.float32)
    frames = rng.random((count, size, size, 3), dtype=np.float32)
    single = frames_per_second(animator, frames, 1, source)
    batched = frames_per_second(animator, frames, batch, source)
    return {"config": config_path.name, "frame_size": size, "frames": count, "batch": batch,
            "fps_frame_by_frame": single, "fps_batched": batched, "batched_over_frame_by_frame": batched / single}


def full_resolution_throughput(device: str, batch: int, count: int, side: int) -> dict:
    plain = FommAnimator(default_model.load(), device)
    full = FullResolutionAnimator(plain, default_model.load_face_restorer(device))
    size = plain.frame_size
    rng = np.random.default_rng(0)
    frames = rng.random((count, size, size, 3), dtype=np.float32)
    plain_fps = frames_per_second(plain, frames, batch, rng.random((size, size, 3), dtype=np.float32))
    full_fps = frames_per_second(full, frames, batch, rng.random((side, side, 3), dtype=np.float32))
    return {"side": side, "frames": count, "batch": batch, "fps_plain": plain_fps, "fps_full_resolution": full_fps,
            "full_over_plain": full_fps / plain_fps}


def synthetic_video(path: pathlib.Path, frames: int, size: int = 128) -> None:
    from dfp import media

    writer = media.VideoWriter(path, 25.0)
    yy, xx = np.mgrid[0:size, 0:size]
    for index in range(frames):
        shift = int(8 * np.sin(index / 10))
        blob = ((xx - size / 2 - shift) ** 2 + (yy - size / 2) ** 2 < (size / 4) ** 2)
        frame = np.full((size, size, 3), 60, np.uint8)
        frame[blob] = (200, 160, 140)
        writer.write(frame)
    writer.close()


def memory_child(frames: int, device: str, full_resolution: bool) -> None:
    """Animate `frames` frames with the platform's model; print peak RSS (MiB). Plain: a synthetic
    clip, whole frames; full resolution: the shared portrait s0 by the shared clip d6, face-cropped."""
    from dfp import media
    from dfp.config import shared_dir
    from services.creator.pipelines import animate_media

    with tempfile.TemporaryDirectory() as tmp:
        animator = FommAnimator(default_model.load(), device)
        if full_resolution:
            clips = shared_dir() / "data" / "video"
            driving = clips / "driving" / "d6.mp4"
            source = media.decode_image(clips / "source" / "s0.jpg", 50_000_000)
            animator = FullResolutionAnimator(animator, default_model.load_face_restorer(device))
            options = animate_media.AnimationOptions(batch_size=8)
        else:
            driving = pathlib.Path(tmp) / "driving.mp4"
            synthetic_video(driving, frames)
            source = np.full((128, 128, 3), 128, np.uint8)
            options = animate_media.AnimationOptions(crop_faces=False, batch_size=16)
        result = animate_media.animate_video(animator, source, driving, pathlib.Path(tmp) / "out.mp4", options,
                                             max_frames=frames)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": result.frames, "peak_rss_mib": peak_mib}))


def peak_memory(frames: int, device: str, full_resolution: bool = False) -> dict:
    command = [sys.executable, __file__, "--memory-child", str(frames), "--device", device]
    output = subprocess.run(command + (["--full-resolution"] if full_resolution else []),
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=pathlib.Path, default=REPO / "services" / "creator" / "configs" / "vox-256.yaml")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16, help="Driving frames timed each way.")
    parser.add_argument("--memory-frames", type=int, default=1000)
    parser.add_argument("--full-side", type=int, default=216,
                        help="Source crop side for full resolution (216: the shared portrait s0's face crop).")
    parser.add_argument("--full-frames", type=int, default=1008, help="Frames of d6 animated for its peak memory.")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--full-resolution", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.device, args.full_resolution)
        return

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device: {args.device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    speed = throughput(args.config, args.device, args.batch, args.frames)
    print(f"{speed['config']} at {speed['frame_size']}x{speed['frame_size']}: frame by frame "
          f"{speed['fps_frame_by_frame']:.2f} frames/s, batch {speed['batch']} {speed['fps_batched']:.2f} frames/s, "
          f"ratio {speed['batched_over_frame_by_frame']:.2f}")
    full = full_resolution_throughput(args.device, args.batch, args.frames, args.full_side)
    print(f"platform model, plain (64x64 face) {full['fps_plain']:.2f} frames/s, full resolution "
          f"({full['side']}x{full['side']} face, restored where occluded) {full['fps_full_resolution']:.2f} frames/s, "
          f"full/plain ratio {full['full_over_plain']:.2f}")
    for label, frames, full_resolution in (("plain, synthetic clip", args.memory_frames, False),
                                           ("full resolution, s0 by d6", args.full_frames, True)):
        long = peak_memory(frames, args.device, full_resolution)
        short = peak_memory(max(1, frames // 10), args.device, full_resolution)
        print(f"peak memory, platform model, {label}, streamed: {long['frames']} frames {long['peak_rss_mib']:.0f} MiB, "
              f"{short['frames']} frames {short['peak_rss_mib']:.0f} MiB, "
              f"ratio {long['peak_rss_mib'] / short['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
