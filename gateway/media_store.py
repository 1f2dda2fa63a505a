"""The team's media in the object store: upload with checks, read, list, delete, expire.

An upload is spooled to a temporary file while it is hashed and counted, then checked (sha256, type,
decodability, limits) and only then written: first the blob, then the record (`media.json`) that
makes it visible. Reads go through the record, so a blob without one (a write cut short) is never
served, and the sweeper removes it. Deletion removes the record first, for the same reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import pathlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from dfp import content_credentials
from dfp import media as media_lib
from dfp import storage
from dfp.client import sha256_file
from dfp.config import LimitSettings
from dfp.ids import new_id, parse_name
from dfp.storage import MEDIA, NotFound, ObjectStore
from gateway.errors import InvalidArgument, LimitExceeded, ResourceNotFound
from gateway.paging import decode_page_token, encode_page_token, page_size

log = logging.getLogger(__name__)

MAX_LABELS = 16
MAX_LABEL_CHARS = 63
ORPHAN_AGE = dt.timedelta(hours=1)
# A team's stored-bytes recount lists every object it has; it is repeated no sooner than this many
# times its own duration, so that it takes at most 5% of the time however much the team stores.
RECOUNT_SPACING = 20.0


@dataclasses.dataclass
class MediaRecord:
    """What the record object holds; mirrors dfp.v1.Media."""

    id: str
    team: str
    media_type: str
    content_type: str
    display_name: str
    size_bytes: int
    sha256: str
    create_time: str
    expire_time: str | None
    width: int
    height: int
    duration_s: float = 0.0
    frame_rate: float = 0.0
    frame_count: int = 0
    has_audio: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"media/{self.id}"

    def expired(self, now: dt.datetime) -> bool:
        return self.expire_time is not None and dt.datetime.fromisoformat(self.expire_time) <= now


@dataclasses.dataclass(frozen=True)
class UploadRequest:
    display_name: str
    sha256: str
    declared_size: int
    retention: dt.timedelta | None
    labels: dict[str, str]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class MediaStore:
    """``stored_bytes_quota(team)``, when given, caps the bytes of media a team keeps."""

    def __init__(self, store: ObjectStore, limits: LimitSettings, spool_dir: str | None = None,
                 stored_bytes_quota: Callable[[str], int] | None = None, usage_cache_s: float = 10.0,
                 credentials: content_credentials.SigningIdentity | None = None,
                 on_generated: Callable[[str, "MediaRecord"], None] | None = None):
        self._store = store
        self._credentials = credentials
        self._on_generated = on_generated
        self._limits = limits
        self._spool_dir = spool_dir
        self._stored_bytes_quota = stored_bytes_quota
        self._usage_cache_s = usage_cache_s
        self._usage: dict[str, tuple[int, float]] = {}
        self._usage_lock = threading.Lock()
        self._recounts: dict[str, threading.Lock] = {}

    def stored_bytes(self, team: str) -> int:
        """Bytes of the team's media blobs (uploaded and generated), counted in the object store."""
        prefix = f"{storage.team_prefix(team)}media/"
        return sum(item.size for item in self._store.list(MEDIA, prefix) if item.key.endswith("/blob"))

    def _room_left(self, team: str) -> int | None:
        """Bytes the team may still store. The count is re-read every ``usage_cache_s`` and grown by
        this gateway's own uploads in between, so a listing is not paid on every upload; a listing
        that takes long is repeated less often (RECOUNT_SPACING). One call at a time re-reads a
        team's count (a listing of every stored object: seconds for a team with many); the others
        go on with the count they had, and wait only when there is none yet."""
        if self._stored_bytes_quota is None:
            return None
        now = time.monotonic()
        with self._usage_lock:
            cached = self._usage.get(team)
            stale = cached is None or cached[1] <= now
            recount = self._recounts.setdefault(team, threading.Lock())
        if stale and recount.acquire(blocking=cached is None):
            try:
                with self._usage_lock:
                    cached = self._usage.get(team)
                if cached is None or cached[1] <= time.monotonic():
                    began = time.monotonic()
                    used = self.stored_bytes(team)
                    took = time.monotonic() - began
                    cached = (used, time.monotonic() + max(self._usage_cache_s, RECOUNT_SPACING * took))
                    log.info("team %s stores %d bytes of media (recounted in %.2f s)", team, used, took)
                    with self._usage_lock:
                        self._usage[team] = cached
            finally:
                recount.release()
        with self._usage_lock:
            used = self._usage[team][0]
        return self._stored_bytes_quota(team) - used

    def _count_stored(self, team: str, change: int) -> None:
        with self._usage_lock:
            if team in self._usage:
                used, expires = self._usage[team]
                self._usage[team] = (used + change, expires)

    def check_upload_request(self, request: UploadRequest) -> None:
        sha = request.sha256.lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise InvalidArgument("metadata.sha256 must be the file's SHA-256 as 64 hex characters")
        if request.declared_size < 0:
            raise InvalidArgument("metadata.size_bytes must not be negative")
        if request.declared_size > self._limits.max_upload_bytes:
            raise LimitExceeded(
                f"upload of {request.declared_size} bytes is over the limit of {self._limits.max_upload_bytes} bytes"
            )
        if len(request.labels) > MAX_LABELS:
            raise InvalidArgument(f"at most {MAX_LABELS} labels")
        for key, value in request.labels.items():
            if not key or len(key) > MAX_LABEL_CHARS or len(value) > MAX_LABEL_CHARS:
                raise InvalidArgument(f"label keys must be 1-{MAX_LABEL_CHARS} characters, values up to {MAX_LABEL_CHARS}")
        if request.retention is not None and request.retention < dt.timedelta(0):
            raise InvalidArgument("metadata.retention must not be negative")

    def upload(self, team: str, request: UploadRequest, chunks: Iterable[bytes]) -> MediaRecord:
        """Stores the upload if it is whole and valid; raises before anything is written otherwise."""
        self.check_upload_request(request)
        room = self._room_left(team)
        if room is not None and request.declared_size > room:
            raise LimitExceeded(f"team {team} has {max(room, 0)} bytes left of its storage quota; this upload "
                                f"needs {request.declared_size}. Delete media or ask an administrator for more")
        with tempfile.NamedTemporaryFile(dir=self._spool_dir, prefix="dfp-upload-") as spool:
            digest = hashlib.sha256()
            size = 0
            for chunk in chunks:
                size += len(chunk)
                if size > self._limits.max_upload_bytes:
                    raise LimitExceeded(
                        f"upload is over the limit of {self._limits.max_upload_bytes} bytes; nothing was stored"
                    )
                if room is not None and size > room:
                    raise LimitExceeded(f"upload goes over team {team}'s storage quota ({max(room, 0)} bytes left); "
                                        "nothing was stored. Delete media or ask an administrator for more")
                digest.update(chunk)
                spool.write(chunk)
            spool.flush()
            if size == 0:
                raise InvalidArgument("the upload is empty (0 bytes)")
            if request.declared_size and size != request.declared_size:
                raise InvalidArgument(
                    f"received {size} bytes but metadata.size_bytes said {request.declared_size}; nothing was stored"
                )
            if digest.hexdigest() != request.sha256.lower():
                raise InvalidArgument(
                    f"sha256 mismatch: received bytes hash to {digest.hexdigest()}, metadata said "
                    f"{request.sha256.lower()}; the upload was corrupted or the hash is wrong; nothing was stored"
                )
            info = self.probe(pathlib.Path(spool.name))
            record = self._new_record(team, request, info, size, digest.hexdigest())
            self._store.put_file(MEDIA, storage.media_blob_key(team, record.id), spool.name, info.content_type,
                                 metadata={"sha256": record.sha256})
        self._store.put_json(MEDIA, storage.media_record_key(team, record.id), dataclasses.asdict(record))
        self._count_stored(team, size)
        log.info("stored %s for team %s: %s %d bytes", record.name, team, record.content_type, size)
        return record

    def store_generated(self, team: str, path: pathlib.Path, display_name: str, labels: dict[str, str],
                        media_id: str) -> MediaRecord:
        """Stores a file the platform made (blob, then record) under a given id, so that a job that
        runs again after a lost worker overwrites its own result instead of leaving a second one.
        With a signing identity, the file first gets its C2PA manifest (generator and operation from
        the labels); `on_generated` (the audit log) hears of every item stored."""
        path = pathlib.Path(path)
        if self._credentials is not None and path.suffix.lower() in content_credentials.MIME_TYPES:
            signed = path.with_name(f"{path.stem}.c2pa{path.suffix}")
            content_credentials.embed(path, signed, self._credentials, labels.get("dfp_generator", "dfp"),
                                      labels.get("dfp_operation", ""), title=display_name)
            os.replace(signed, path)
        sha256 = sha256_file(path)
        size = os.path.getsize(path)
        info = self.probe(pathlib.Path(path))
        request = UploadRequest(display_name=display_name, sha256=sha256, declared_size=size, retention=None,
                                labels=labels)
        record = dataclasses.replace(self._new_record(team, request, info, size, sha256), id=media_id)
        self._store.put_file(MEDIA, storage.media_blob_key(team, record.id), os.fspath(path), info.content_type,
                             metadata={"sha256": record.sha256})
        self._store.put_json(MEDIA, storage.media_record_key(team, record.id), dataclasses.asdict(record))
        log.info("stored generated %s for team %s: %s %d bytes", record.name, team, record.content_type, size)
        if self._on_generated is not None:
            self._on_generated(team, record)
        return record

    def probe(self, path: pathlib.Path) -> media_lib.MediaInfo:
        """Type, dimensions and decodability of a file, within the limits."""
        with open(path, "rb") as f:
            kind = media_lib.sniff(f.read(64))
        if kind == media_lib.IMAGE:
            return media_lib.probe_image(path, self._limits.max_image_pixels)
        if kind == media_lib.VIDEO:
            return media_lib.probe_video(path, self._limits.max_video_seconds, self._limits.max_video_pixels)
        raise InvalidArgument(
            "not an image or video: the file starts with no known signature "
            f"(images: {media_lib.SUPPORTED_IMAGES}; videos: {media_lib.SUPPORTED_VIDEOS})"
        )

    def _new_record(self, team, request, info, size, sha256) -> MediaRecord:
        now = _now()
        retention = request.retention or dt.timedelta(days=self._limits.default_retention_days)
        retention = min(retention, dt.timedelta(days=self._limits.max_retention_days))
        return MediaRecord(
            id=new_id(),
            team=team,
            media_type=info.media_type,
            content_type=info.content_type,
            display_name=request.display_name[:255],
            size_bytes=size,
            sha256=sha256,
            create_time=now.isoformat(),
            expire_time=(now + retention).isoformat(),
            width=info.width,
            height=info.height,
            duration_s=info.duration_s,
            frame_rate=info.frame_rate,
            frame_count=info.frame_count,
            has_audio=info.has_audio,
            labels=dict(request.labels),
        )

    def get(self, team: str, name: str) -> MediaRecord:
        media_id = parse_name(name, "media")
        try:
            value, _ = self._store.get_json(MEDIA, storage.media_record_key(team, media_id))
        except NotFound:
            raise ResourceNotFound(f"{name} not found") from None
        record = MediaRecord(**value)
        if record.expired(_now()):
            raise ResourceNotFound(f"{name} not found (it expired on {record.expire_time})")
        return record

    def blob_key(self, record: MediaRecord) -> str:
        return storage.media_blob_key(record.team, record.id)

    def read_chunks(self, record: MediaRecord, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        return self._store.iter_chunks(MEDIA, self.blob_key(record), chunk_size)

    def read_bytes(self, record: MediaRecord) -> bytes:
        return self._store.get_bytes(MEDIA, self.blob_key(record))[0]

    def download_to(self, record: MediaRecord, path: str | os.PathLike) -> None:
        self._store.download_file(MEDIA, self.blob_key(record), path)

    def list(self, team: str, requested_page_size: int, page_token: str) -> tuple[list[MediaRecord], str]:
        size = page_size(requested_page_size)
        prefix = storage.team_prefix(team) + "media/"
        after = decode_page_token(page_token, prefix)
        records: list[MediaRecord] = []
        now = _now()
        last_key = None
        for item in self._store.list(MEDIA, prefix, start_after=after):
            if not item.key.endswith("/media.json"):
                continue
            if len(records) == size:
                # One more record exists past this page: hand out a token for it.
                return records, encode_page_token(last_key)
            try:
                value, _ = self._store.get_json(MEDIA, item.key)
            except NotFound:
                continue
            record = MediaRecord(**value)
            last_key = item.key
            if not record.expired(now):
                records.append(record)
        return records, ""

    def delete(self, team: str, name: str) -> None:
        record = self.get(team, name)
        self._store.delete(MEDIA, storage.media_record_key(team, record.id))
        self._store.delete(MEDIA, self.blob_key(record))
        self._count_stored(team, -record.size_bytes)

    def sweep(self) -> int:
        """Deletes expired media of every team, and blobs whose record was never written. Returns the count."""
        now = _now()
        removed = 0
        blobs: dict[str, storage.ObjectInfo] = {}
        records: set[str] = set()
        for item in self._store.list(MEDIA, "teams/"):
            folder, _, leaf = item.key.rpartition("/")
            if leaf == "blob":
                blobs[folder] = item
            elif leaf == "media.json":
                records.add(folder)
                try:
                    value, _ = self._store.get_json(MEDIA, item.key)
                except NotFound:
                    continue
                if MediaRecord(**value).expired(now):
                    self._store.delete(MEDIA, item.key)
                    self._store.delete(MEDIA, folder + "/blob")
                    blobs.pop(folder, None)
                    records.discard(folder)
                    removed += 1
        for folder in set(blobs) - records:
            # An upload in progress writes its blob a moment before its record: leave young blobs alone.
            modified = blobs[folder].last_modified
            if modified is not None and now - modified > ORPHAN_AGE:
                self._store.delete(MEDIA, folder + "/blob")
                removed += 1
        return removed
