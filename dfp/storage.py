"""The object store, through the `minio` client: buckets, key layout and atomic writes.

Buckets: media (uploaded files), results (detection reports, generated media), models (the model
registry) and jobs (operation records). Every key of team data starts with `teams/{team}/`.

Each object is written with one PUT (multipart for large files), which S3 makes visible whole or
not at all. Records that must not be lost to a concurrent writer (job leases) use conditional
writes: If-None-Match to create, If-Match on the ETag read to update.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
from collections.abc import Iterator

import urllib3
from minio import Minio
from minio.error import S3Error

from dfp.config import StorageSettings
from dfp.ids import check_team

MEDIA, RESULTS, MODELS, JOBS, ADMIN = "media", "results", "models", "jobs", "admin"
PART_SIZE = 16 * 1024 * 1024


class NotFound(KeyError):
    """No object under that key."""


class PreconditionFailed(RuntimeError):
    """A conditional write lost: the object changed, or already existed, since it was read."""


def team_prefix(team: str) -> str:
    return f"teams/{check_team(team)}/"


def media_blob_key(team: str, media_id: str) -> str:
    return f"{team_prefix(team)}media/{media_id}/blob"


def media_record_key(team: str, media_id: str) -> str:
    return f"{team_prefix(team)}media/{media_id}/media.json"


def operation_key(team: str, operation_id: str) -> str:
    return f"{team_prefix(team)}operations/{operation_id}.json"


def result_key(team: str, operation_id: str, filename: str) -> str:
    return f"{team_prefix(team)}results/{operation_id}/{filename}"


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime | None = None


class ObjectStore:
    def __init__(self, settings: StorageSettings, timeout_s: float = 30.0):
        self.settings = settings
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout_s),
            maxsize=32,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key or None,
            secret_key=settings.secret_key or None,
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )

    def bucket(self, kind: str) -> str:
        return f"{self.settings.bucket_prefix}-{kind}"

    def ensure_buckets(self) -> None:
        for kind in (MEDIA, RESULTS, MODELS, JOBS, ADMIN):
            name = self.bucket(kind)
            if not self._client.bucket_exists(name):
                try:
                    self._client.make_bucket(name)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    def uri(self, kind: str, key: str) -> str:
        return f"s3://{self.bucket(kind)}/{key}"

    def parse_uri(self, uri: str) -> tuple[str, str]:
        """(kind, key) of `s3://{bucket}/{key}` in one of the platform's buckets; ValueError otherwise."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        kinds = {self.bucket(kind): kind for kind in (MEDIA, RESULTS, MODELS, JOBS, ADMIN)}
        if not uri.startswith("s3://") or not key or key.endswith("/"):
            raise ValueError(f"{uri!r} is not an object URI of the form s3://{{bucket}}/{{key}}")
        if bucket not in kinds:
            raise ValueError(f"bucket {bucket!r} is not one of the platform's buckets ({', '.join(sorted(kinds))})")
        return kinds[bucket], key

    def put_bytes(self, kind: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        result = self._client.put_object(self.bucket(kind), key, io.BytesIO(data), len(data), content_type=content_type)
        return result.etag

    def put_file(self, kind: str, key: str, path: str | os.PathLike, content_type: str = "application/octet-stream",
                 metadata: dict[str, str] | None = None) -> str:
        """Uploads a file as one object (multipart above PART_SIZE, visible only once complete)."""
        result = self._client.fput_object(self.bucket(kind), key, os.fspath(path), content_type=content_type,
                                          metadata=metadata, part_size=PART_SIZE)
        return result.etag

    def put_json(self, kind: str, key: str, value) -> str:
        return self.put_bytes(kind, key, json.dumps(value, sort_keys=True).encode(), "application/json")

    def put_conditional(self, kind: str, key: str, data: bytes, *, if_match: str | None = None) -> str:
        """Creates `key` only if absent (if_match None), or replaces it only if its ETag is `if_match`.

        Returns the new ETag; raises PreconditionFailed when another writer got there first.
        """
        headers = {"Content-Type": "application/json"}
        if if_match is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = f'"{if_match.strip(chr(34))}"'
        try:
            # The public put_object cannot send conditional headers; _put_object is the same single PUT.
            result = self._client._put_object(self.bucket(kind), key, data, headers)
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise PreconditionFailed(key) from None
            raise
        return result.etag.strip('"')

    def get_bytes(self, kind: str, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag."""
        try:
            response = self._client.get_object(self.bucket(kind), key)
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        try:
            return response.read(), response.headers.get("ETag", "").strip('"')
        finally:
            response.close()
            response.release_conn()

    def get_json(self, kind: str, key: str):
        data, etag = self.get_bytes(kind, key)
        return json.loads(data), etag

    def iter_chunks(self, kind: str, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            response = self._client.get_object(self.bucket(kind), key)
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def download_file(self, kind: str, key: str, path: str | os.PathLike) -> None:
        try:
            self._client.fget_object(self.bucket(kind), key, os.fspath(path))
        except S3Error as exc:
            raise self._translate(exc, key) from exc

    def exists(self, kind: str, key: str) -> bool:
        try:
            self._client.stat_object(self.bucket(kind), key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def delete(self, kind: str, key: str) -> None:
        self._client.remove_object(self.bucket(kind), key)

    def list(self, kind: str, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, all levels down."""
        for item in self._client.list_objects(self.bucket(kind), prefix=prefix, recursive=True, start_after=start_after):
            if not item.is_dir:
                yield ObjectInfo(item.object_name, item.size or 0, (item.etag or "").strip('"'), item.last_modified)

    @staticmethod
    def _translate(exc: S3Error, key: str) -> Exception:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
            return NotFound(key)
        return exc
