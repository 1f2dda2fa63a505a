"""Media I/O: recognise, check and decode images and videos.

Every path that reads user media (upload, detection, offline scoring) goes through here, so the same
limits and the same decoding apply everywhere. Checks read headers before decoding pixels, so that a
small file claiming huge dimensions (a decompression bomb) is refused without allocating them.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps

from dfp import png

IMAGE = "image"
VIDEO = "video"
EXIF_ORIENTATION = 0x0112

# A truncated image must fail loudly, never decode half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's global bomb guard is replaced by the explicit per-call limit in _open_image, which every
# decode goes through and which checks the header's dimensions before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


class InvalidMedia(ValueError):
    """The bytes are not a supported, readable image or video."""


class MediaTooLarge(InvalidMedia):
    """The media is readable but over a size, pixel or duration limit."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    media_type: str
    content_type: str
    width: int
    height: int
    duration_s: float = 0.0
    frame_rate: float = 0.0
    frame_count: int = 0
    has_audio: bool = False


# A GIF is read as its first frame (an animated GIF is scored as a still; convert it to a video to
# score every frame).
_IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp",
                  "GIF": "image/gif"}
# For messages that tell a user what they may send.
SUPPORTED_IMAGES = "JPEG, PNG, WebP, BMP or GIF"
SUPPORTED_VIDEOS = "MP4, MOV, MKV, WebM or AVI"
_VIDEO_CONTENT_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "matroska": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
}


def sniff(header: bytes) -> str | None:
    """Returns IMAGE or VIDEO from a file's first bytes (at least 12), or None when neither."""
    if header.startswith(b"\xff\xd8\xff") or header.startswith(b"\x89PNG\r\n\x1a\n"):
        return IMAGE
    if header.startswith(b"BM") and len(header) >= 14:
        return IMAGE
    if header[:6] in (b"GIF87a", b"GIF89a"):
        return IMAGE
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return IMAGE
    if header[:4] == b"RIFF" and header[8:12] == b"AVI ":
        return VIDEO
    if header[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return VIDEO
    if header.startswith(b"\x1a\x45\xdf\xa3"):
        return VIDEO
    return None


def _open_image(source: bytes | str | os.PathLike, max_pixels: int) -> Image.Image:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(stream, formats=list(_IMAGE_FORMATS))
    except FileNotFoundError:
        raise InvalidMedia(f"no such file: {source}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"not a readable image ({SUPPORTED_IMAGES}): {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidMedia(f"image has empty dimensions {width}x{height}")
    if width * height > max_pixels:
        raise MediaTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "downscale it first"
        )
    return image


def probe_image(source: bytes | str | os.PathLike, max_pixels: int) -> MediaInfo:
    """Checks that `source` is a whole, decodable image within `max_pixels` and describes it."""
    rgb, image_format = _load_image(source, max_pixels)
    return MediaInfo(IMAGE, _IMAGE_FORMATS[image_format], rgb.shape[1], rgb.shape[0])


def decode_image(source: bytes | str | os.PathLike, max_pixels: int) -> np.ndarray:
    """Decodes an image to RGB uint8 HxWx3, upright per its EXIF orientation."""
    return _load_image(source, max_pixels)[0]


def _load_image(source: bytes | str | os.PathLike, max_pixels: int) -> tuple[np.ndarray, str]:
    image = _open_image(source, max_pixels)
    image_format = image.format
    if image_format == "PNG" and isinstance(source, bytes):
        rgb = png.decode_plain_rgb(source)
        if rgb is not None:
            return rgb, image_format
    try:
        image.load()
        # Each of these copies the pixels, so it is made only when the image needs it (most
        # uploads are upright RGB).
        if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"image is corrupt or truncated: {exc}") from None
    return np.asarray(image, dtype=np.uint8), image_format


def probe_video(path: str | os.PathLike, max_seconds: float, max_pixels: int) -> MediaInfo:
    """Checks that `path` is a video whose first frame decodes, within the limits, and describes it."""
    import av

    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidMedia(f"not a readable video: {exc}") from None
    with container:
        if not container.streams.video:
            raise InvalidMedia("file has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise InvalidMedia(f"video has empty dimensions {width}x{height}")
        if width * height > max_pixels:
            raise MediaTooLarge(
                f"video frames are {width}x{height}, over the limit of {max_pixels} pixels"
            )
        duration_s = _video_duration(container, stream)
        if duration_s > max_seconds:
            raise MediaTooLarge(
                f"video lasts {duration_s:.1f} s, over the limit of {max_seconds:.0f} s; cut it first"
            )
        frame_rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        frame_count = int(stream.frames or round(duration_s * frame_rate))
        try:
            next(container.decode(stream))
        except StopIteration:
            raise InvalidMedia("video has no decodable frame") from None
        except av.error.FFmpegError as exc:
            raise InvalidMedia(f"video is corrupt or truncated: {exc}") from None
        content_type = _video_content_type(container)
        return MediaInfo(
            VIDEO,
            content_type,
            width,
            height,
            duration_s=duration_s,
            frame_rate=frame_rate,
            frame_count=frame_count,
            has_audio=bool(container.streams.audio),
        )


def _video_content_type(container) -> str:
    # FFmpeg names one demuxer for MOV and MP4 ("mov,mp4,m4a,..."); the ftyp brand tells them apart.
    names = container.format.name.split(",")
    if "mp4" in names:
        return "video/quicktime" if container.metadata.get("major_brand", "").strip() == "qt" else "video/mp4"
    return _VIDEO_CONTENT_TYPES.get(names[0], "video/" + names[0])


def _video_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


@dataclasses.dataclass(frozen=True)
class Frame:
    index: int
    timestamp_s: float
    rgb: np.ndarray


def sample_frames(
    path: str | os.PathLike,
    *,
    frames_per_second: float = 2.0,
    frame_count: int = 0,
    max_frames: int = 300,
) -> Iterator[Frame]:
    """Decodes a video in order and yields the sampled frames as RGB uint8.

    With `frame_count`, that many frames spread evenly over the duration; otherwise one frame per
    1/`frames_per_second` seconds. Never more than `max_frames`. Memory stays bounded: one decoded
    frame at a time.
    """
    import av

    with av.open(os.fspath(path), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration_s = _video_duration(container, stream)
        if frame_count > 0:
            wanted = min(frame_count, max_frames)
            step = duration_s / wanted if duration_s > 0 else 0.0
        else:
            wanted = max_frames
            step = 1.0 / frames_per_second
        next_time = 0.0
        emitted = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                timestamp = float(frame.time) if frame.time is not None else index / float(
                    stream.average_rate or 25
                )
                if timestamp + 1e-6 < next_time:
                    continue
                yield Frame(index, timestamp, frame.to_ndarray(format="rgb24"))
                emitted += 1
                if emitted >= wanted:
                    return
                next_time += step
                while next_time <= timestamp:
                    next_time += step if step > 0 else 1.0
        except av.error.FFmpegError as exc:
            raise InvalidMedia(f"video is corrupt past frame {emitted}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class VideoStreamInfo:
    frames_per_second: float
    frame_count: int  # as the container states it; 0 when unknown
    width: int
    height: int
    has_audio: bool


def video_stream_info(path: str | os.PathLike) -> VideoStreamInfo:
    import av

    try:
        with av.open(os.fspath(path), mode="r") as container:
            if not container.streams.video:
                raise InvalidMedia(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            return VideoStreamInfo(rate, int(stream.frames or 0), stream.width, stream.height,
                                   bool(container.streams.audio))
    except av.error.FFmpegError as exc:
        raise InvalidMedia(f"{path}: not a readable video: {exc}") from None


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as RGB uint8, one decoded frame in memory at a time."""
    import av

    emitted = 0
    try:
        with av.open(os.fspath(path), mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                emitted += 1
    except av.error.FFmpegError as exc:
        raise InvalidMedia(f"video is corrupt past frame {emitted}: {exc}") from None


class VideoWriter:
    """H.264 (yuv420p) MP4 writer, frame by frame; optionally copies another file's audio track.

    Odd frame sides are cropped by one pixel (yuv420p needs even sides). ``metadata`` goes into the
    container's tags. The file appears at ``path`` only when ``close`` succeeds.
    """

    def __init__(self, path: str | os.PathLike, frames_per_second: float, *, audio_from: str | os.PathLike | None = None,
                 metadata: dict[str, str] | None = None, crf: int = 18):
        import av
        from fractions import Fraction

        self._path = os.fspath(path)
        self._tmp_path = f"{self._path}.partial.mp4"
        # Without use_metadata_tags the MP4 muxer keeps only the tags it knows and drops ours.
        self._container = av.open(self._tmp_path, mode="w", format="mp4",
                                  container_options={"movflags": "+use_metadata_tags"})
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value
        self._rate = Fraction(frames_per_second).limit_denominator(1001)
        self._stream = None
        self._crf = crf
        # Every stream must exist before the first packet is written: the audio one is added now.
        self._audio_source = self._audio_in = self._audio_out = None
        if audio_from is not None:
            self._audio_source = av.open(os.fspath(audio_from), mode="r")
            if self._audio_source.streams.audio:
                self._audio_in = self._audio_source.streams.audio[0]
                self._audio_out = self._container.add_stream_from_template(self._audio_in)

    def write(self, rgb: np.ndarray) -> None:
        import av

        height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self._rate)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self._crf), "preset": "veryfast"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _copy_audio(self) -> None:
        for packet in self._audio_source.demux(self._audio_in):
            if packet.dts is None:
                continue
            packet.stream = self._audio_out
            self._container.mux(packet)

    def _close_audio_source(self) -> None:
        if self._audio_source is not None:
            self._audio_source.close()
            self._audio_source = None

    def close(self) -> None:
        if self._stream is None:
            self.abort()
            raise InvalidMedia("no frames were written")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            if self._audio_out is not None:
                self._copy_audio()
            self._container.close()
        finally:
            self._close_audio_source()
        os.replace(self._tmp_path, self._path)

    def abort(self) -> None:
        try:
            self._close_audio_source()
            self._container.close()
        finally:
            if os.path.exists(self._tmp_path):
                os.unlink(self._tmp_path)
