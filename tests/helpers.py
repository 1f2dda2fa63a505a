"""Small media files made in the tests (real encoders, tiny sizes), and a face swap model published
to the test stack."""

import io
import re
import struct
import time
import zlib

import av
import numpy as np
from PIL import Image


def jpeg_bytes(width=64, height=48, seed=0) -> bytes:
    rgb = np.random.RandomState(seed).randint(0, 255, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb's signature."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def mp4_file(path, frames=10, size=64, fps=10) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            rgb = np.full((size, size, 3), (i * 20) % 255, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def short_clip_with_audio(source, target, frames=6, size=40) -> None:
    """The first `frames` frames of `source`, resized to `size` square, with the same span of its audio."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video_in, audio_in = src.streams.video[0], src.streams.audio[0]
        video_out = out.add_stream("libx264", rate=video_in.average_rate)
        video_out.width = video_out.height = size
        video_out.pix_fmt = "yuv420p"
        audio_out = out.add_stream_from_template(audio_in)
        seconds = frames / float(video_in.average_rate)
        for index, frame in enumerate(src.decode(video_in)):
            if index == frames:
                break
            small = frame.reformat(width=size, height=size, format="yuv420p")
            small.pts = None
            out.mux(video_out.encode(small))
        out.mux(video_out.encode())
        src.seek(0)
        for packet in src.demux(audio_in):
            if packet.dts is None or packet.pts * packet.time_base > seconds:
                break
            packet.stream = audio_out
            out.mux(packet)


def mp4_without_frames(path) -> None:
    """An MP4 whose header declares an H.264 stream that holds no frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
        container.mux(stream.encode())


def wait_served(stack, name: str, version: int, timeout_s: float = 120.0) -> None:
    """Until the creator's log says it serves that version (its registry sync polls every 0.5 s here)."""
    line = f"face swap model {name} now serves version {version}"
    deadline = time.monotonic() + timeout_s
    while line not in stack.log_path("creator").read_text():
        assert time.monotonic() < deadline, f"creator did not load {name} v{version}"
        time.sleep(0.3)


def register_swap_model(stack, run, name: str) -> int:
    """Registers and publishes a `dfp swap train` run in the stack's registry; returns its version."""
    from click.testing import CliRunner

    from dfp.cli.main import cli

    result = CliRunner().invoke(cli, ["swap", "register", "--run", str(run), "--name", name, "--publish", "--json"],
                                env=stack.s3.env())
    assert result.exit_code == 0, result.output
    return int(re.search(r'"version": (\d+)', result.output).group(1))


def fresh_object_store(s3, prefix: str = "t"):
    """An ObjectStore on the test S3 server with buckets of its own (a unique bucket prefix), created."""
    from dfp.config import StorageSettings
    from dfp.storage import ObjectStore

    settings = StorageSettings(s3.endpoint, s3.access_key, s3.secret_key, False,
                               f"{prefix}{time.monotonic_ns() % 10**8}", "us-east-1")
    store = ObjectStore(settings)
    store.ensure_buckets()
    return store
